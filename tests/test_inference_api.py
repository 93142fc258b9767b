"""Inference: packaging, MusicEncoder, whole tracks, CLI and export."""
import json
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from muselq_sb.inference import cli
from muselq_sb.inference.encoder import MusicEncoder
from muselq_sb.inference.export import (
    check_onnx,
    check_torchscript,
    export_onnx,
    export_torchscript,
    quantize_int8,
)
from muselq_sb.inference.package import package_model
from muselq_sb.lobes.branchformer import BranchformerEncoder
from muselq_sb.lobes.frontend import n_stacked_frames
from muselq_sb.lobes.model import MusicModel
from muselq_sb.utils.hparams import ModelFolderError
from tests.fixtures.audio import write_audio

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "--size=tiny", "--d_model=32", "--nhead=2", "--num_layers=2",
    "--csgu_linear_units=64", "--kernel_size=5", "--subsampling_channels=32",
    "--cb_vocab=256", "--segment_seconds=2.0", "--max_batch_seconds=8.0",
    "--num_workers=0", "--valid_fraction=0.25", "--warmup_steps=1",
    "--log_interval=1", "--noprogressbar",
]


def env():
    e = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    return e


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A real (tiny, 2-step) brn_sum pre-training run."""
    music = tmp_path_factory.mktemp("music")
    for i in range(4):
        write_audio(music / f"song{i}.wav", 3.0, 24000, freq=110 * (i + 1), seed=i)
    out = tmp_path_factory.mktemp("run") / "brn_sum"
    cmd = [sys.executable, str(ROOT / "recipes" / "pretrain" / "train.py"),
           str(ROOT / "hparams" / "brn_sum.yaml"), f"--data_folder={music}",
           f"--output_folder={out}", "--total_steps=2", "--precision=fp32", *TINY]
    proc = subprocess.run(cmd, env=env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def model_folder(run_folder, tmp_path_factory):
    return package_model(run_folder, tmp_path_factory.mktemp("pkg") / "model")


@pytest.fixture(scope="module")
def encoder(model_folder):
    return MusicEncoder.from_folder(model_folder)


def attention_model(seed=0):
    torch.manual_seed(seed)
    enc = BranchformerEncoder(2, d_model=16, nhead=2, kernel_size=3,
                              csgu_linear_units=32, attention_type="RoPEMHA")
    return MusicModel(enc, 16, subsampling_channels=16).eval()


# ---- packaging ---------------------------------------------------------------

def test_package_folder_is_self_contained(run_folder, model_folder, encoder):
    names = sorted(p.name for p in model_folder.iterdir())
    assert names == ["README.md", "custom_interface.py", "hyperparams.yaml",
                     "model.safetensors", "quantizer.safetensors"]
    weights = load_file(str(model_folder / "model.safetensors"))
    assert set(weights) == set(encoder.model.state_dict())
    assert float(weights["normalizer.count"]) > 0  # statistics travel along
    assert set(load_file(str(model_folder / "quantizer.safetensors"))) == {
        "projection", "codebook"}
    text = (model_folder / "hyperparams.yaml").read_text()
    for absent in ("data_folder", "optimizer", "checkpointer", str(run_folder),
                   "!apply"):
        assert absent not in text
    assert "attention_type: SummaryMixing" in text
    card = (model_folder / "README.md").read_text()
    n_params = sum(p.numel() for p in encoder.model.parameters())
    assert f"{n_params:,}" in card
    # the precision it trained in (a run option), not the yaml's `auto`
    assert "| optimizer steps | 2 |" in card and "| precision | fp32 |" in card
    assert "BranchformerEncoder" in card and "SummaryMixing" in card


def test_from_folder_never_unpickles(model_folder, run_folder, monkeypatch):
    from_run = MusicEncoder.from_run(run_folder)

    def refuse(*args, **kwargs):
        raise AssertionError("unpickling attempted")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    loaded = MusicEncoder.from_folder(model_folder)
    wav = torch.randn(1, 30000)
    assert torch.equal(loaded.encode_batch(wav), from_run.encode_batch(wav))


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_malicious_checkpoint_is_refused(run_folder, tmp_path):
    evil_run = tmp_path / "evil_run"
    shutil.copytree(run_folder, evil_run)
    ckpt = next((evil_run / "save").glob("CKPT+*")) / "ssl_model.ckpt"
    marker = tmp_path / "pwned"
    torch.save({"model.x": _Payload(marker)}, ckpt)
    with pytest.raises(ModelFolderError, match="refused"):
        MusicEncoder.from_run(evil_run)
    with pytest.raises(ModelFolderError, match="ssl_model.ckpt"):
        package_model(evil_run, tmp_path / "out")
    assert not marker.exists()
    # the payload is live: an unsafe load would have run it
    torch.load(ckpt, weights_only=False)
    assert marker.exists()


def test_tampered_yaml_is_refused(model_folder, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(model_folder, bad)
    marker = tmp_path / "ran"
    with open(bad / "hyperparams.yaml", "a", encoding="utf-8") as f:
        f.write(f"boom: !apply:os.system [touch {marker}]\n")
    with pytest.raises(ModelFolderError, match="!apply:os.system"):
        MusicEncoder.from_folder(bad)
    assert not marker.exists()


# ---- MusicEncoder --------------------------------------------------------------

def test_encode_file_layers_and_pooling(encoder, tmp_path):
    path = write_audio(tmp_path / "a.flac", 2.5, 44100, channels=2, seed=3)
    frames = n_stacked_frames(round(2.5 * 24000))
    n_states = encoder.model.num_layers + 1
    last = encoder.encode_file(path)
    every = encoder.encode_file(path, layers="all")
    assert encoder.frame_rate == 25.0 and last.dtype == torch.float32
    assert last.shape == (frames, 32) and every.shape == (n_states, frames, 32)
    assert torch.equal(every[-1], last)
    assert torch.equal(encoder.encode_file(path, layers=[0, 2]), every[[0, 2]])
    w = [0.2, 0.3, 0.5]
    weighted = encoder.encode_file(path, layers="weighted", weights=w)
    assert torch.allclose(weighted, sum(wi * h for wi, h in zip(w, every)),
                          atol=1e-6)
    assert torch.allclose(encoder.encode_file(path, pooling="mean"),
                          last.mean(0), atol=1e-6)
    assert torch.equal(encoder.encode_file(path, layers="all", pooling="max"),
                       every.amax(1))
    with pytest.raises(ValueError, match="out of range"):
        encoder.encode_file(path, layers=5)
    with pytest.raises(ValueError, match="needs 3 weights"):
        encoder.encode_file(path, layers="weighted")


def test_batch_matches_single_and_bf16(encoder, model_folder):
    a, b = torch.randn(48000) * 0.1, torch.randn(30000) * 0.1
    wavs = torch.zeros(2, 48000)
    wavs[0], wavs[1, :30000] = a, b
    out = encoder.encode_batch(wavs, torch.tensor([1.0, 30000 / 48000]),
                               layers="all")
    single = encoder.encode_batch(b[None], layers="all")[0]
    n = single.shape[1]
    assert out.shape[2] == n_stacked_frames(48000) > n
    # the front-end pads with zeros and padding never enters the encoder:
    # an item's frames do not depend on its batch mates
    assert torch.allclose(out[1, :, :n], single, atol=1e-4)
    pooled = encoder.encode_batch(wavs, torch.tensor([1.0, 30000 / 48000]),
                                  pooling="mean")
    assert torch.allclose(pooled[1], out[1, -1, :n].mean(0), atol=1e-6)
    bf16 = MusicEncoder.from_folder(model_folder, dtype="bf16")
    low = bf16.encode_batch(a[None])
    ref = encoder.encode_batch(a[None])
    assert low.dtype == torch.float32
    assert 0 < (low - ref).abs().mean() < 0.05


def test_ten_minute_track_in_one_pass(model_folder):
    script = textwrap.dedent(f"""
        import json, resource, torch
        from muselq_sb.inference.encoder import MusicEncoder
        enc = MusicEncoder.from_folder({str(model_folder)!r})
        seen = []
        inner = enc.model.encode
        enc.model.encode = lambda mel, lens: seen.append(mel.shape[1]) or inner(mel, lens)
        wav = 0.1 * torch.randn(1, 24000 * 600)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        out = enc.encode_batch(wav, layers="all")
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({{"calls": seen, "shape": list(out.shape),
                          "peak_mb": after - before}}))
    """)
    proc = subprocess.run([sys.executable, "-c", script], env=env(),
                          capture_output=True, text=True, timeout=200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["calls"] == [60001]  # one pass over all the mel frames
    assert result["shape"] == [1, 3, 15001, 32]
    # the unchunked STFT alone would take ~1.2 GB more
    assert result["peak_mb"] < 800, result


def _reference_windows(model, wav, window_frames, overlap_frames):
    """Runs the windows by hand and cuts them in the middle of each overlap."""
    step, half = window_frames - overlap_frames, overlap_frames // 2
    n, total = wav.shape[0], n_stacked_frames(wav.shape[0])
    starts = [0]
    while (starts[-1] + window_frames) * 960 < n:
        starts.append(starts[-1] + step)
    pieces = []
    for k, s in enumerate(starts):
        seg = wav[s * 960:(s + window_frames) * 960][None]
        with torch.no_grad():
            hidden = model(seg, torch.ones(1))
        first = 0 if k == 0 else half
        last = (starts[k + 1] + half - s) if k + 1 < len(starts) else total - s
        pieces.append(torch.stack(hidden)[:, 0, first:last])
    return torch.cat(pieces, dim=1)


def test_attention_model_falls_back_to_windows(caplog):
    model = attention_model()
    enc = MusicEncoder(model)
    wav = 0.1 * torch.randn(24000 * 7 + 333)
    kwargs = {"window_seconds": 2.0, "overlap_seconds": 0.6}
    with caplog.at_level("INFO", logger="muselq_sb.inference.encoder"):
        out = enc.encode_batch(wav[None], layers="all", **kwargs)[0]
    assert "windows" in caplog.text and "RoPEMHA" in caplog.text
    ref = _reference_windows(model, wav, 50, 15)
    assert out.shape == ref.shape == (3, n_stacked_frames(wav.shape[0]), 16)
    assert torch.allclose(out, ref, atol=1e-5)
    full = enc.encode_batch(wav[None], layers="all", mode="full", **kwargs)[0]
    with torch.no_grad():
        one_pass = torch.stack(model(wav[None], torch.ones(1)))[:, 0]
    assert torch.allclose(full, one_pass, atol=1e-5)
    assert not torch.allclose(full, out, atol=1e-3)
    # a padded batch is windowed item by item
    short = wav[: 24000 * 5]
    batch = torch.stack([wav, torch.nn.functional.pad(short, (0, wav.numel() - short.numel()))])
    both = enc.encode_batch(batch, torch.tensor([1.0, short.numel() / wav.numel()]),
                            **kwargs)
    alone = enc.encode_batch(short[None], **kwargs)[0]
    assert torch.allclose(both[1, :alone.shape[0]], alone, atol=1e-5)


# ---- command line ----------------------------------------------------------------

def test_cli_embeds_tree_resumes_and_reports(model_folder, tmp_path, capsys):
    src, out = tmp_path / "in", tmp_path / "out"
    write_audio(src / "a" / "x.wav", 1.0, 24000)
    write_audio(src / "a" / "x.flac", 1.2, 48000)
    write_audio(src / "b" / "c" / "y.ogg", 1.5, 22050, seed=1)
    (src / "b" / "broken.mp3").write_bytes(b"not audio at all" * 50)
    (src / "notes.txt").write_text("ignored")
    args = [str(model_folder), str(src), str(out), "--no-progress",
            "--pooling", "mean", "--layers", "all"]
    assert cli.main(args) == 0
    captured = capsys.readouterr()
    assert "unreadable files (1)" in captured.err and "broken.mp3" in captured.err
    made = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.npy"))
    assert made == ["a/x.flac.npy", "a/x.wav.npy", "b/c/y.ogg.npy"]
    assert np.load(out / "a" / "x.wav.npy").shape == (3, 32)
    stamp = (out / "a" / "x.wav.npy").stat().st_mtime_ns
    assert cli.main(args) == 0
    assert "0 embedded, 3 up to date, 1 unreadable" in capsys.readouterr().out
    assert (out / "a" / "x.wav.npy").stat().st_mtime_ns == stamp
    future = (out / "a" / "x.wav.npy").stat().st_mtime + 10
    os.utime(src / "a" / "x.wav", (future, future))
    assert cli.main(args) == 0
    assert "1 embedded, 2 up to date" in capsys.readouterr().out


def test_cli_single_file_pt_and_failures(model_folder, run_folder, tmp_path, capsys):
    wav = write_audio(tmp_path / "s.au", 1.0, 16000)
    assert cli.main([str(run_folder), str(wav), str(tmp_path / "o"),
                     "--format", "pt", "--no-progress"]) == 0
    emb = torch.load(tmp_path / "o" / "s.au.pt", weights_only=True)
    assert emb.shape == (n_stacked_frames(24000), 32)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "z.wav").write_bytes(b"RIFF....junk")
    assert cli.main([str(model_folder), str(bad), str(tmp_path / "o2"),
                     "--no-progress"]) == 1
    assert cli.main([str(model_folder), str(bad), str(tmp_path / "o2"),
                     "--layers", "weighted"]) == 2
    assert "needs 3 weights" in capsys.readouterr().err


# ---- export ----------------------------------------------------------------------

def test_torchscript_and_int8_match_pytorch(encoder, tmp_path):
    model = encoder.model
    diffs = check_torchscript(model, export_torchscript(model, tmp_path / "m.pt"))
    assert len(diffs) == 3 and max(diffs) < 1e-4
    stacked = export_torchscript(model, tmp_path / "all.pt", all_layers=True)
    assert max(check_torchscript(model, stacked, all_layers=True)) < 1e-4
    assert torch.jit.load(str(stacked))(torch.randn(1, 24000)).shape == (1, 3, 26, 32)
    q = quantize_int8(model)
    q_diffs = check_torchscript(model, export_torchscript(q, tmp_path / "q.pt"))
    assert 0 < max(q_diffs) < 0.1


def test_onnx_matches_pytorch(encoder, tmp_path):
    model = encoder.model
    diffs = check_onnx(model, export_onnx(model, tmp_path / "m.onnx"))
    assert len(diffs) == 3 and max(diffs) < 1e-4


def test_packaged_model_equals_training_time_forward(run_folder, model_folder):
    """load -> embed gives what the pre-training run's own model computes."""
    from hyperpyyaml import load_hyperpyyaml

    from muselq_sb.utils.checkpoints import latest_checkpoint

    # the model as the run's whole training yaml builds it, with its weights
    with open(run_folder / "hyperparams.yaml", encoding="utf-8") as f:
        trained = load_hyperpyyaml(f)["model"].eval()
    ckpt = latest_checkpoint(run_folder / "save") / "ssl_model.ckpt"
    state = torch.load(ckpt, weights_only=True)
    trained.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("model.")})
    wav = torch.randn(1, 36000)
    with torch.no_grad():
        reference = trained(wav, torch.ones(1))
    got = MusicEncoder.from_folder(model_folder).encode_batch(wav, layers="all")
    assert got.shape[1] == len(reference)
    for layer, ref in enumerate(reference):
        assert torch.allclose(got[0, layer], ref[0], atol=1e-5), layer
