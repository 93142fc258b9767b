"""Smoke test of the benchmark scripts: each runs with ``--quick`` (the GPU
check with ``--device cpu --tiny``) and writes JSON with the expected
structure (timing values are not checked).

The scripts run concurrently (separate processes), since most of their
wall time is importing torch on a shared 2-core machine.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ("quantizer", "mixer_scaling", "encoders_vs_peers", "hardware_limit",
           "pretrain_throughput", "data_pipeline", "decoders", "gpu_check",
           "frame_long_track", "unmasked_heads")


def command(name, out):
    if name == "gpu_check":
        return ["--device", "cpu", "--tiny", "--out", str(out / "gpu_check")]
    return ["--quick", "--threads", "1", "--out", str(out / f"{name}.json")]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    procs = {
        name: subprocess.Popen(
            [sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), *command(name, out)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for name in SCRIPTS
    }
    logs = {name: proc.communicate(timeout=600)[0] for name, proc in procs.items()}
    return {name: (procs[name].returncode, logs[name], out / f"{name}.json")
            for name in SCRIPTS if name != "gpu_check"} | {
        "gpu_check": (procs["gpu_check"].returncode, logs["gpu_check"],
                      out / "gpu_check" / "gpu_check.json")}


def load(results, name):
    code, log, path = results[name]
    assert code == 0, log
    data = json.loads(path.read_text())
    assert data["benchmark"] == name
    assert {"cpu", "cores", "torch", "threads"} <= set(data["machine"])
    assert data["config"]["quick"] is True
    return data


def test_quantizer(results):
    data = load(results, "quantizer")
    assert [r["side"] for r in data["rows"]] == ["ours", "speechbrain"]
    for row in data["rows"]:
        assert {"median_s", "peak_mib"} <= set(row)
        assert "error" not in row["memory"]
    assert data["tokens_identical"] is True
    assert {"speedup", "memory_ratio"} == set(data["targets"])


def test_mixer_scaling(results):
    data = load(results, "mixer_scaling")
    mixers = {r["mixer"] for r in data["rows"]}
    assert mixers == {"SummaryMixing", "RoPEMHA", "regularMHA"}
    assert all({"median_s", "peak_mib", "frames"} <= set(r) for r in data["rows"])
    check = data["checks"]["fp32"]
    assert {"summary_time_growth", "linear", "RoPEMHA", "regularMHA"} <= set(check)


def test_encoders_vs_peers(results):
    data = load(results, "encoders_vs_peers")
    pairs = {(r["model"], r["clip"]) for r in data["rows"]}
    models = {"brn_sum_large", "brn_sum_small", "mert_330m", "mert_95m"}
    assert pairs == {(m, c) for m in models for c in ("short", "long")}
    assert all({"median_s", "peak_mib", "gflop"} <= set(r) for r in data["rows"])
    assert all(c["flop_ratio"] > 1 for c in data["comparisons"].values())
    assert set(data["comparisons"]) == {
        "brn_sum_large/short", "brn_sum_large/long",
        "brn_sum_small/short", "brn_sum_small/long"}


def test_hardware_limit(results):
    data = load(results, "hardware_limit")
    assert {(r["dtype"], r["workload"]) for r in data["rows"]} == {
        (d, w) for d in ("fp32", "bf16") for w in ("encoder", "model", "mm")}
    assert all(r["gflop"] > 0 for r in data["rows"])
    assert set(data["targets"]) == {"fp32", "bf16"}


def test_pretrain_throughput(results):
    data = load(results, "pretrain_throughput")
    assert {(r["kind"], r["precision"]) for r in data["rows"]} == {
        (k, p) for k in ("train", "infer") for p in ("fp32", "bf16")}
    assert all(r["audio_hours_per_hour"] > 0 for r in data["rows"])
    assert set(data["bf16_vs_fp32"]) == {"tiny/train", "tiny/infer"}


def test_data_pipeline(results):
    data = load(results, "data_pipeline")
    assert [r["loader"] for r in data["rows"]] == [
        "files (mp3)", "shards (mp3 bytes)", "shards (int16 PCM, 24 kHz)",
        "shards (FLAC, 24 kHz)"]
    assert all(r["clips_per_s_per_core"] > 0 and r["cores_per_gpu"] > 0
               for r in data["rows"])
    assert [s["stage"] for s in data["stages"]] == [
        "decode", "decode+resample", "decode+resample+logmel"]
    assert data["demand"]["train_step_tflop_per_clip"] > 0


def test_decoders(results):
    data = load(results, "decoders")
    read = {(r["format"], r["decoder"]) for r in data["rows"]}
    assert read == {(f, d) for f in ("mp3", "ogg", "opus", "flac")
                    for d in ("soundfile", "PyAV")} | {("m4a", "PyAV")}
    assert all(r["x_realtime"] > 0 and r["crop_s"] > 0 for r in data["rows"])
    # both decoders give the same samples wherever both read the file
    assert all(r["max_abs_diff"] < 1e-4 for r in data["rows"] if r["max_abs_diff"] is not None)
    assert set(data["pyav_over_soundfile"]) == {"mp3", "ogg", "opus", "flac"}


def test_gpu_check_on_cpu(results):
    code, log, path = results["gpu_check"]
    assert code == 0, log
    data = json.loads(path.read_text())
    assert (path.parent / "gpu_check.md").read_text().startswith("# GPU check")
    assert data["config"]["device"] == "cpu" and data["config"]["tiny"] is True
    bf16, fp16, track = data["rows"]
    assert (bf16["precision"], bf16["skipped_steps"]) == ("bf16", 0)
    assert bf16["step_s"] > 0 and bf16["tflop_per_step"] > 0 and bf16["tflops"] > 0
    assert bf16["audio_h_per_gpu_h"] > 0 and bf16["frac_bf16_mm"] > 0
    assert fp16["precision"] == "fp16" and "CUDA" in fp16["skipped"]
    assert track["finite"] is True and track["step_s"] > 0


def test_frame_long_track(results):
    data = load(results, "frame_long_track")
    [row] = data["rows"]
    assert row["error"] == "" and row["peak_mib"] >= 0
    summary = data["summary"]  # 30 s in one pass: 751 frames, both tasks scored
    assert summary["frames"] == 751 and summary["one_pass"] is True
    assert summary["errors"] == {} and set(summary["test"]) == {"beats", "chords"}
    assert {"beat_f", "cmlt", "amlt", "downbeat_f"} <= set(summary["test"]["beats"])


def test_unmasked_heads(results):
    """Both sides of the step give the same gradients: the token head on
    the masked frames only changes the cost, not the training."""
    data = load(results, "unmasked_heads")
    assert [r["heads"] for r in data["rows"]] == [
        "every frame (before stop 30)", "masked frames (since)"]
    assert data["grad_rel_diff"] < 1e-5
    assert data["speedup"] > 0
