"""The downstream suite end to end on tiny task folders, and the recipe."""
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from muselq_sb.dataio.manifest import write_task
from muselq_sb.downstream.suite import discover_tasks, run_suite
from muselq_sb.inference.package import recommended_layers
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
    """A pre-training output folder as ``load_model`` reads it."""
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
    def segment(s, i):  # two 1 s halves of one 2 s track: same-track retrieval
        path = clip(root, f"r_{s}{i // 2}", 150.0 * (1 + i // 2), 2.0, seed=i // 2)
        start = float(i % 2)
        return {"ID": f"{s}{i}", "path": path, "duration": 1.0, "start": start,
                "stop": start + 1.0, "track": f"{s}track{i // 2}",
                "label": ["flute", "organ"][(i // 2) % 2]}

    write_task(tasks / "demo_instrument", "demo_instrument", "multiclass", "label",
               split3(segment, 8), classes=["flute", "organ"], metrics=["accuracy"],
               columns=["track"], extra={"retrieval": {"key": "track"}})
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
                            overrides=FAST, n_seeds=2, first_seed=7)
    return results, out, tasks


def test_discover_tasks_finds_probe_tasks_only(suite_run):
    _, _, tasks = suite_run
    assert list(discover_tasks(tasks)) == [
        "demo_genre", "demo_instrument", "emomusic", "giantsteps_key", "mtat", "mystery"]
    with pytest.raises(ValueError, match="not prepared"):
        discover_tasks(tasks, ["gtzan", "nsynth_pitch"])


def test_suite_runs_every_task_type_for_checkpoint_and_baselines(suite_run):
    results, out, _ = suite_run
    assert set(results) == {"checkpoint", "random", "logmel"}
    for variant, runs in results.items():
        assert "not found" in runs["mystery"]["error"]  # no yaml: reported, not fatal
        for task in ("demo_genre", "mtat", "emomusic", "giantsteps_key"):
            entry = runs[task]
            assert "error" not in entry, entry
            assert entry["items"] == {"train": 8, "valid": 4, "test": 4}
            assert entry["seeds"] == [7, 8] and len(entry["runs"]) == 2
            for seed, run in zip((7, 8), entry["runs"]):
                assert run["seed"] == seed
                folder = out / variant / task / f"seed{seed}"
                assert json.loads((folder / "results.json").read_text()) == {
                    k: v for k, v in run.items() if k != "seconds"}
            for metric, summary in entry["test"].items():
                values = [r["test"][metric] for r in entry["runs"]]
                assert summary["values"] == values
                assert summary["mean"] == pytest.approx(sum(values) / 2)
                low, high = summary["ci95"]
                assert low <= summary["mean"] <= high
        assert runs["mtat"]["test"].keys() >= {"roc_auc", "ap"}
        assert runs["emomusic"]["test"].keys() >= {"r2_arousal", "r2_valence"}
        for run in runs["giantsteps_key"]["runs"]:
            key = run["test"]
            assert 0.0 <= key["accuracy"] <= key["key_weighted"] <= 1.0
    layers = {v: r["demo_genre"]["embedding_shape"] for v, r in results.items()}
    assert layers == {"checkpoint": [3, 16], "random": [3, 16], "logmel": [1, 256]}
    # the learned layer weights travel to the model card (recommended layers)
    checkpoint = results["checkpoint"]
    for task in ("demo_genre", "mtat", "emomusic", "giantsteps_key"):
        for run in checkpoint[task]["runs"]:
            assert len(run["layer_weights"]) == 3
            assert sum(run["layer_weights"]) == pytest.approx(1.0)
    recommended = recommended_layers(results)
    assert recommended["tonal"]["tasks"] == ["giantsteps_key"]
    assert recommended["semantic"]["tasks"] == ["demo_genre", "emomusic", "mtat"]
    key = np.mean([r["layer_weights"] for r in checkpoint["giantsteps_key"]["runs"]], 0)
    assert recommended["tonal"]["layer"] == int(np.argmax(key))


def test_embeddings_extracted_once_per_encoder_and_reused_by_every_seed(suite_run):
    results, out, _ = suite_run
    for variant in ("checkpoint", "logmel"):
        first, second = results[variant]["demo_genre"]["runs"]
        assert not any(first["embeddings_reused"].values())
        assert all(second["embeddings_reused"].values())  # same encoder: cache reused
        assert (out / variant / "demo_genre" / "embeddings" / "train.pt").is_file()
    # random weights: weight seed i with probe seed i, each its own encoder
    first, second = results["random"]["demo_genre"]["runs"]
    assert not any(second["embeddings_reused"].values())
    caches = [torch.load(out / "random" / "demo_genre" / f"seed{s}" / "embeddings"
                         / "test.pt", weights_only=True) for s in (7, 8)]
    assert not torch.equal(caches[0]["embeddings"][0], caches[1]["embeddings"][0])
    # the probe seeds differ too: the probes' initial weights are not the same
    genre = results["checkpoint"]["demo_genre"]["test"]["loss"]["values"]
    assert genre[0] != genre[1]


def test_same_track_retrieval_is_scored_for_every_variant(suite_run):
    results, out, _ = suite_run
    for variant, runs in results.items():
        entry = runs["demo_instrument"]
        assert entry["metrics"] == ["accuracy", "P@1"]
        retrieval = entry["retrieval"]
        encoders = 2 if variant == "random" else 1  # one per weight seed
        n_layers = entry["embedding_shape"][0]
        assert len(retrieval["layer"]) == len(retrieval["test"]) == encoders
        assert all(len(t) == n_layers for t in retrieval["test"] + retrieval["valid"])
        assert retrieval["queries"] == [4] * encoders
        chosen = retrieval["layer"]
        for k, layer in enumerate(chosen):  # the best valid layer
            assert retrieval["valid"][k][layer] == max(retrieval["valid"][k])
        p_at_1 = retrieval["p_at_1"]
        assert p_at_1["values"] == [t[layer] for t, layer in zip(retrieval["test"], chosen)]
        assert p_at_1["ci95"][0] <= p_at_1["mean"] <= p_at_1["ci95"][1]
    # the two halves of a tone have the same log-mel statistics
    assert results["logmel"]["demo_instrument"]["retrieval"]["p_at_1"]["mean"] == 1.0
    assert "demo_instrument P@1" in (out / "results.md").read_text()


def test_group_segments_are_averaged_before_the_key_metric(suite_run):
    results, _, _ = suite_run
    # 4 test items = 2 songs of 2 segments: every score is a multiple of 1/2
    # of a song-level credit, never of a segment-level quarter
    for runs in results.values():
        for run in runs["giantsteps_key"]["runs"]:
            assert run["test"]["accuracy"] in (0.0, 0.5, 1.0)


def test_results_tables_have_paper_and_our_rows(suite_run):
    results, out, _ = suite_run
    md = (out / "results.md").read_text()
    assert "| model | MTAT ROC | MTAT AP | MTG ROC |" in md
    for row in ("paper: MERT-330M", "paper: BRN sum large (200k h)",
                "ours: brn_tiny", "ours: random init", "ours: pooled log-mel"):
        assert f"| {row} |" in md
    assert "## Other tasks (demo corpus, frame-level tasks)" in md and "demo_genre accuracy" in md
    assert "mystery" in md and "failed" in md
    assert "over 2 probe seeds" in md and "## 95 % intervals" in md
    genre = results["checkpoint"]["demo_genre"]["test"]["accuracy"]
    assert f"{genre['mean']:.3f} ± {genre['std']:.3f}" in md
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["model"] for r in rows][-3:] == [
        "ours: brn_tiny", "ours: random init", "ours: pooled log-mel"]
    paper = next(r for r in rows if r["model"] == "paper: MERT-330M")
    assert paper["GTZAN"] == "0.6890" and paper["demo_genre accuracy"] == ""
    assert paper["GTZAN ci95_low"] == ""
    ours = rows[-1]
    assert float(ours["MTAT ROC"]) >= 0 and ours["MTG ROC"] == ""
    assert float(ours["EMO A"]) <= 1.0 and float(ours["GS"]) >= 0
    assert 0 <= float(ours["demo_genre accuracy"]) <= 1
    low, high = float(ours["GS ci95_low"]), float(ours["GS ci95_high"])
    assert low <= float(ours["GS"]) <= high
    assert (out / "results.png").stat().st_size > 1000
    assert (out / "env.log").is_file()
    # the comparison with random weights, column by column
    versus_part = md.split("## Against random weights")[1].split("##")[0]
    line = next(l for l in versus_part.splitlines() if l.startswith("| ours: brn_tiny |"))
    header = next(l for l in versus_part.splitlines() if l.startswith("| model |"))
    col = [c.strip() for c in header.split("|")].index("demo_genre accuracy")
    mine, rand = (results[v]["demo_genre"]["test"]["accuracy"]["ci95"]
                  for v in ("checkpoint", "random"))
    expected = "▲" if mine[0] > rand[1] else "▼" if mine[1] < rand[0] else "="
    assert [c.strip() for c in line.split("|")][col] == expected
    assert "| ours: random init |" not in versus_part


def run_train_recipe(tmp_path: Path, task: str, task_folder: Path, *options: str) -> Path:
    """Runs recipes/downstream/train.py on a fresh checkpoint; its output folder."""
    out = tmp_path / "probe"
    cmd = [sys.executable, str(REPO / "recipes" / "downstream" / "train.py"),
           str(REPO / "hparams" / "downstream" / f"{task}.yaml"),
           f"--task_folder={task_folder}", f"--encoder={make_run(tmp_path)}",
           f"--output_folder={out}", "--hidden_dim=16", "--device=cpu", "--noprogressbar",
           *options]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_train_recipe_runs_as_a_script(suite_run, tmp_path):
    _, _, tasks = suite_run
    out = run_train_recipe(tmp_path, "giantsteps_key", tasks / "giantsteps_key",
                           "--layer=-1", "--debug")
    results = json.loads((out / "results.json").read_text())
    assert results["task"] == "giantsteps_key" and results["layer"] == -1
    assert set(results["test"]) >= {"key_weighted", "accuracy", "loss"}
    assert (out / "hyperparams.yaml").is_file() and (out / "train_log.txt").is_file()
    assert (out / "embeddings" / "test.pt").is_file()


def test_standardize_uses_the_training_split_statistics(suite_run, tmp_path):
    _, _, tasks = suite_run
    out = run_train_recipe(tmp_path, "demo_genre", tasks / "demo" / "demo_genre",
                           "--number_of_epochs=1", "--standardize=True")
    train = torch.cat([e.float() for e in torch.load(out / "embeddings" / "train.pt")["embeddings"]])
    ckpts = list((out / "save").glob("CKPT*/probe.ckpt"))
    assert ckpts
    for ckpt in ckpts:
        state = torch.load(ckpt)
        assert torch.allclose(state["normalizer.mean"], train.mean(0).flatten(), atol=1e-4)
        assert torch.allclose(state["normalizer.std"], train.std(0, unbiased=False).flatten(),
                              atol=1e-3)


def test_best_layer_probes_every_layer_and_keeps_the_best_on_valid(suite_run, tmp_path):
    """``layer: best`` (MARBLE's protocol): one probe per hidden state on the
    one embedding cache; the layer best on valid gives the test results."""
    _, _, tasks = suite_run
    out = run_train_recipe(tmp_path, "demo_genre", tasks / "demo" / "demo_genre",
                           "--number_of_epochs=2", "--layer=best")
    results = json.loads((out / "results.json").read_text())
    per_layer = [json.loads((out / f"layer{i}" / "results.json").read_text())
                 for i in range(3)]  # the test run's encoder: 2 layers + front-end
    assert not (out / "layer3").exists()
    assert [r["layer"] for r in per_layer] == [0, 1, 2]
    assert results["layer"] == "best"
    assert results["layer_valid"] == [r["valid"]["accuracy"] for r in per_layer]
    assert results["layer_test"] == [r["test"]["accuracy"] for r in per_layer]
    chosen = results["chosen_layer"]
    assert results["layer_valid"][chosen] == max(results["layer_valid"])
    assert results["layer_valid"].index(max(results["layer_valid"])) == chosen
    assert results["test"] == per_layer[chosen]["test"]
    # extracted once, into the experiment's cache; every layer's probe reads it
    assert (out / "embeddings" / "test.pt").is_file()
    assert not any((out / f"layer{i}" / "embeddings").exists() for i in range(3))
    assert [r["embeddings_reused"]["test"] for r in per_layer] == [False, True, True]


def test_several_encoders_share_one_table(suite_run, tmp_path):
    """An ablation: named checkpoints are rows of one table; the same
    encoder and seed give the same numbers under any name."""
    _, _, tasks = suite_run
    run = make_run(tmp_path)
    out = tmp_path / "ablation"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("speechbrain.utils.logger.get_environment_description",
                      lambda: "test environment")
        results = run_suite([f"paper={run}", f"unm05={run}"], tasks, out,
                            hparams_dir=REPO / "hparams" / "downstream",
                            tasks=["demo_genre"], baselines=False,
                            run_opts={"device": "cpu", "noprogressbar": True},
                            overrides=FAST, n_seeds=1, first_seed=7)
    assert list(results) == ["paper", "unm05"]
    a, b = (results[v]["demo_genre"]["test"]["accuracy"]["values"] for v in results)
    assert a == b
    table = (out / "results.md").read_text()
    assert "| ours: paper |" in table and "| ours: unm05 |" in table
    with pytest.raises(ValueError, match="name each one as NAME=PATH"):
        run_suite([str(run), str(run)], tasks, out, tasks=["demo_genre"])


def test_per_layer_probes_read_the_suite_caches(suite_run):
    """``python -m muselq_sb.downstream.layers``: a linear probe per hidden
    state of every encoder variant (log-mel excluded), multiclass tasks only."""
    from muselq_sb.downstream.layers import main, suite_layer_table

    results, out, _ = suite_run
    table = suite_layer_table(out)
    assert set(table) == {"demo_genre", "demo_instrument", "giantsteps_key"}
    n_states = results["checkpoint"]["demo_genre"]["embedding_shape"][0]
    for rows in table.values():
        assert set(rows) == {"checkpoint", "random"}
        assert all(len(accs) == n_states and all(0 <= a <= 1 for a in accs)
                   for accs in rows.values())
    # the fixture's genres are a 220 Hz and a 1760 Hz tone: any state separates them
    assert min(table["demo_genre"]["checkpoint"]) == 1.0
    main([str(out), "--tasks", "demo_genre"])
    assert "### demo_genre" in (out / "layers.md").read_text()
    assert (out / "layers.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="no multiclass task cache"):
        suite_layer_table(out, ["emomusic"])
