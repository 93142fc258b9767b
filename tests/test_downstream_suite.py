"""The downstream suite end to end on tiny task folders, and the recipe."""
import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from muselq_sb.dataio.manifest import write_task
from muselq_sb.downstream.suite import discover_tasks, run_suite
from tests.fixtures.audio import write_audio

REPO = Path(__file__).resolve().parents[1]
SR = 24000
FAST = "number_of_epochs: 2\nbatch_size: 4\nhidden_dim: 16\n"


RUN_HPARAMS = """\
model: !new:muselq_sb.lobes.model.MusicModel
    encoder: !new:muselq_sb.lobes.branchformer.BranchformerEncoder
        num_layers: 2
        d_model: 16
        nhead: 2
        kernel_size: 3
        csgu_linear_units: 32
    d_model: 16
    subsampling_channels: 16
"""


def make_run(root: Path) -> Path:
    """A pre-training output folder as ``load_music_model`` reads it."""
    from hyperpyyaml import load_hyperpyyaml

    run = root / "brn_tiny"
    ckpt = run / "save" / "CKPT+2024-01-01+00-00-00+00"
    ckpt.mkdir(parents=True)
    (run / "hyperparams.yaml").write_text(RUN_HPARAMS)
    torch.manual_seed(0)
    model = load_hyperpyyaml(RUN_HPARAMS)["model"]
    model.normalizer.mean.fill_(-5.0)
    model.normalizer.std.fill_(3.0)
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    torch.save(state, ckpt / "ssl_model.ckpt")
    (ckpt / "CKPT.yaml").write_text("unixtime: 100\n")
    return run


def clip(root, name, freq, seconds=1.0, seed=0):
    return str(write_audio(root / "audio" / f"{name}.wav", seconds, SR, freq, seed=seed))


def split3(make, n):
    """train / valid / test rows from ``make(split, index)``."""
    return {s: [make(s, i) for i in range(k)] for s, k in
            (("train", n), ("valid", n // 2), ("test", n // 2))}


def make_tasks(root: Path) -> Path:
    tasks = root / "tasks"
    freqs = [220.0, 1760.0]

    def genre(s, i):
        return {"ID": f"{s}{i}", "path": clip(root, f"g_{s}{i}", freqs[i % 2], seed=i),
                "duration": 1.0, "label": ["blues", "rock"][i % 2]}

    def tags(s, i):
        return {"ID": f"{s}{i}", "path": clip(root, f"t_{s}{i}", freqs[i % 2], seed=i),
                "duration": 1.0, "tags": ["low", "high;bright"][i % 2]}

    def emotion(s, i):
        return {"ID": f"{s}{i}", "path": clip(root, f"e_{s}{i}", 200.0 + 100 * i, seed=i),
                "duration": 1.0, "arousal": 0.1 * i, "valence": -0.2 * i}

    def key(s, i):  # two 1 s segments of one 2 s song, averaged as a group
        path = clip(root, f"k_{s}{i // 2}", freqs[(i // 2) % 2], 2.0, seed=i // 2)
        start = float(i % 2)
        return {"ID": f"{s}{i}", "path": path, "duration": 1.0, "start": start,
                "stop": start + 1.0, "group": f"song{i // 2}",
                "label": ["C major", "A minor"][(i // 2) % 2]}

    write_task(tasks / "demo" / "demo_genre", "demo_genre", "multiclass", "label",
               split3(genre, 8), classes=["blues", "rock"], metrics=["accuracy"])
    write_task(tasks / "mtat", "mtat", "multilabel", "tags", split3(tags, 8),
               classes=["low", "high", "bright"], metrics=["roc_auc", "ap"])
    write_task(tasks / "emomusic", "emomusic", "regression", ["arousal", "valence"],
               split3(emotion, 8), metrics=["r2_arousal", "r2_valence"])
    write_task(tasks / "giantsteps_key", "giantsteps_key", "multiclass", "label",
               split3(key, 8), classes=["C major", "A minor"],
               metrics=["key_weighted", "accuracy"])
    write_task(tasks / "mystery", "mystery", "multiclass", "label", split3(genre, 2),
               classes=["blues", "rock"], metrics=["accuracy"])
    write_task(tasks / "pretraining", "pretrain", "pretrain", "group",
               {"train": [{"ID": "p", "path": "/p.wav", "duration": 1.0, "group": "p"}]})
    return tasks


@pytest.fixture(scope="module")
def suite_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("suite")
    run, tasks = make_run(root), make_tasks(root)
    out = root / "out"
    with pytest.MonkeyPatch.context() as patch:  # skip `pip freeze` per run (speed)
        patch.setattr("speechbrain.utils.logger.get_environment_description",
                      lambda: "test environment")
        results = run_suite(run, tasks, out, hparams_dir=REPO / "hparams" / "downstream",
                            run_opts={"device": "cpu", "noprogressbar": True},
                            overrides=FAST)
    return results, out, tasks


def test_discover_tasks_finds_probe_tasks_only(suite_run):
    _, _, tasks = suite_run
    assert list(discover_tasks(tasks)) == [
        "demo_genre", "emomusic", "giantsteps_key", "mtat", "mystery"]
    with pytest.raises(ValueError, match="not prepared"):
        discover_tasks(tasks, ["gtzan", "nsynth_pitch"])


def test_suite_runs_every_task_type_for_checkpoint_and_baselines(suite_run):
    results, out, _ = suite_run
    assert set(results) == {"checkpoint", "random", "logmel"}
    for variant, runs in results.items():
        assert "not found" in runs["mystery"]["error"]  # no yaml: reported, not fatal
        for task in ("demo_genre", "mtat", "emomusic", "giantsteps_key"):
            run = runs[task]
            assert "error" not in run, run
            assert run["items"] == {"train": 8, "valid": 4, "test": 4}
            folder = out / variant / task
            assert json.loads((folder / "results.json").read_text()) == run
            assert (folder / "embeddings" / "train.pt").is_file()
        assert runs["mtat"]["test"].keys() >= {"roc_auc", "ap"}
        assert runs["emomusic"]["test"].keys() >= {"r2_arousal", "r2_valence"}
        key = runs["giantsteps_key"]["test"]
        assert 0.0 <= key["accuracy"] <= key["key_weighted"] <= 1.0
        assert 0.0 <= runs["demo_genre"]["test"]["accuracy"] <= 1.0
    layers = {v: r["demo_genre"]["embedding_shape"] for v, r in results.items()}
    assert layers == {"checkpoint": [3, 16], "random": [3, 16], "logmel": [1, 256]}


def test_group_segments_are_averaged_before_the_key_metric(suite_run):
    results, _, _ = suite_run
    # 4 test items = 2 songs of 2 segments: every score is a multiple of 1/2
    # of a song-level credit, never of a segment-level quarter
    for runs in results.values():
        accuracy = runs["giantsteps_key"]["test"]["accuracy"]
        assert accuracy in (0.0, 0.5, 1.0)


def test_results_tables_have_paper_and_our_rows(suite_run):
    _, out, _ = suite_run
    md = (out / "results.md").read_text()
    assert "| model | MTAT ROC | MTAT AP | MTG ROC |" in md
    for row in ("paper: MERT-330M", "paper: BRN sum large (200k h)",
                "ours: brn_tiny", "ours: random init", "ours: pooled log-mel"):
        assert f"| {row} |" in md
    assert "## Other tasks (demo corpus)" in md and "demo_genre accuracy" in md
    assert "mystery" in md and "failed" in md
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["model"] for r in rows][-3:] == [
        "ours: brn_tiny", "ours: random init", "ours: pooled log-mel"]
    paper = next(r for r in rows if r["model"] == "paper: MERT-330M")
    assert paper["GTZAN"] == "0.6890" and paper["demo_genre accuracy"] == ""
    ours = rows[-1]
    assert float(ours["MTAT ROC"]) >= 0 and ours["MTG ROC"] == ""
    assert float(ours["EMO A"]) <= 1.0 and float(ours["GS"]) >= 0
    assert 0 <= float(ours["demo_genre accuracy"]) <= 1
    assert (out / "results.png").stat().st_size > 1000


def test_train_recipe_runs_as_a_script(suite_run, tmp_path):
    _, _, tasks = suite_run
    run = make_run(tmp_path)
    out = tmp_path / "probe"
    cmd = [sys.executable, str(REPO / "recipes" / "downstream" / "train.py"),
           str(REPO / "hparams" / "downstream" / "giantsteps_key.yaml"),
           f"--task_folder={tasks / 'giantsteps_key'}", f"--encoder={run}",
           f"--output_folder={out}",
           "--hidden_dim=16", "--layer=-1", "--debug", "--device=cpu",
           "--noprogressbar"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["task"] == "giantsteps_key" and results["layer"] == -1
    assert set(results["test"]) >= {"key_weighted", "accuracy", "loss"}
    assert (out / "hyperparams.yaml").is_file() and (out / "train_log.txt").is_file()
    assert (out / "embeddings" / "test.pt").is_file()
