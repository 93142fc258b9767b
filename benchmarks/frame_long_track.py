#!/usr/bin/env python3
"""Frame-level tasks on one long synthetic track, through the suite, in one pass.

Renders a ``--minutes`` long track of the demo synthesiser (its beats and
chords known), prepares a beats and a chords task from it (the same track
in train, valid and test: the point is the path, not the score), and runs
``run_suite`` on both with a SummaryMixing Branchformer (random weights of
the given width and depth: time and memory do not depend on them). The
encoder sees the whole track in one pass (``mode="auto"`` resolves to
``full`` for SummaryMixing); the peak resident memory of the suite run is
measured in a fresh process.

Run: ``.venv/bin/python benchmarks/frame_long_track.py [--minutes 10]
[--d_model 192 --layers 4]``; prints a table, writes
``results/bench/frame_long_track.json``.

Authors
 * muselq_sb team
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import soundfile as sf
import torch
from hyperpyyaml import load_hyperpyyaml

from common import benchmark_result, parser, peak_memory, report, set_threads, write_json

RUN_YAML = """\
model: !new:muselq_sb.lobes.model.MusicModel
    encoder: !new:muselq_sb.lobes.branchformer.BranchformerEncoder
        num_layers: {layers}
        d_model: {d_model}
        nhead: 4
        kernel_size: 15
        csgu_linear_units: {units}
        attention_type: SummaryMixing
    d_model: {d_model}
    subsampling_channels: {d_model}
"""


def make_run(folder: Path, d_model: int, layers: int) -> Path:
    """A pre-training output folder holding random weights."""
    text = RUN_YAML.format(d_model=d_model, layers=layers, units=4 * d_model)
    ckpt = folder / "save" / "CKPT+2024-01-01+00-00-00+00"
    ckpt.mkdir(parents=True)
    (folder / "hyperparams.yaml").write_text(text)
    model = load_hyperpyyaml(text)["model"]
    torch.save({f"model.{k}": v for k, v in model.state_dict().items()},
               ckpt / "ssl_model.ckpt")
    (ckpt / "CKPT.yaml").write_text("unixtime: 100\n")
    return folder


def make_tasks(root: Path, minutes: float) -> Path:
    """A beats and a chords task folder around one long synthetic track."""
    from muselq_sb.dataio import demo_corpus as synth
    from muselq_sb.dataio.frame_labels import (
        BEAT_CLASSES, BEAT_METRICS, CHORD_METRICS, MAJMIN_CLASSES, beats_cell,
        chords_cell)
    from muselq_sb.dataio.manifest import write_task

    seconds = minutes * 60
    y, labels = synth.render_music("rock", "A minor", seconds, np.random.default_rng(0))
    path = root / "long.wav"
    sf.write(str(path), y, synth.SAMPLE_RATE, subtype="PCM_16")
    for name, kind, cell, classes, metrics in (
            ("beats", "beats", beats_cell, BEAT_CLASSES, BEAT_METRICS),
            ("chords", "chords", chords_cell, MAJMIN_CLASSES, CHORD_METRICS)):
        row = {"path": str(path), "duration": seconds, kind: cell(labels[kind])}
        write_task(root / "tasks" / name, name, kind, kind,
                   {s: [{"ID": f"{s}_long", **row}] for s in ("train", "valid", "test")},
                   classes=list(classes), metrics=list(metrics))
    return root / "tasks"


def build(root: str, minutes: float, d_model: int, layers: int,
          epochs: int) -> Callable[[], Any]:
    """The call to measure: the suite on both tasks (no baselines, one seed);
    it writes ``<root>/summary.json`` (frames, one pass, test scores)."""
    from muselq_sb.downstream.suite import run_suite
    from muselq_sb.inference.embedding import load_model, resolve_mode

    root = Path(root)
    run = make_run(root / "brn_sum", d_model, layers)
    tasks = make_tasks(root, minutes)
    mode = resolve_mode(load_model(run), "auto")
    hparams = Path(__file__).resolve().parents[1] / "hparams" / "downstream"

    def call() -> None:
        results = run_suite(run, tasks, root / "suite", hparams_dir=hparams,
                            baselines=False, n_seeds=1,
                            run_opts={"noprogressbar": True},
                            overrides=f"number_of_epochs: {epochs}\nbatch_size: 1\n")
        shape = torch.load(root / "suite" / "checkpoint" / "beats" / "embeddings"
                           / "test.pt", weights_only=True)["embeddings"][0].shape
        test = {task: {k: v["mean"] for k, v in r["test"].items()}
                for task, r in results["checkpoint"].items() if "test" in r}
        write_json(root / "summary.json", {
            "frames": shape[2], "hidden_states": shape[1],
            "one_pass": mode == "full" and shape[0] == 1,
            "test": test, "errors": {t: r["error"] for t, r in
                                     results["checkpoint"].items() if "error" in r}})

    return call


def main(argv: list[str] | None = None) -> None:
    """Runs the measurement and prints the table."""
    p = parser("frame_long_track", __doc__)
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--d_model", type=int, default=192)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--epochs", type=int, default=3)
    args = p.parse_args(argv)
    if args.quick:
        args.minutes, args.d_model, args.layers, args.epochs = 0.5, 32, 2, 1
    set_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="frame_long_") as tmp:
        root = Path(tmp)
        m = peak_memory(build, {"root": str(root), "minutes": args.minutes, "d_model": args.d_model,
                                "layers": args.layers, "epochs": args.epochs}, args.threads)
        summary = {}
        if (root / "summary.json").is_file():
            summary = json.loads((root / "summary.json").read_text())
    row = {"minutes": args.minutes, "d_model": args.d_model, "layers": args.layers,
           "frames": summary.get("frames"), "seconds": m.get("seconds"),
           "peak_mib": m.get("peak_mib"), "baseline_mib": m.get("baseline_mib"),
           "error": m.get("error", "")}
    config = {"quick": args.quick, "minutes": args.minutes, "d_model": args.d_model,
              "layers": args.layers, "epochs": args.epochs}
    report(benchmark_result("frame_long_track", args.threads, config, [row],
                            summary=summary), list(row), args.out)


if __name__ == "__main__":
    main()
