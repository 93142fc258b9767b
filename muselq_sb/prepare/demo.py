"""Prepares the built-in demo corpus: audio files, task folders, cache.

``build_demo_corpus`` renders every clip of the synthesiser
(:mod:`muselq_sb.dataio.demo_corpus`) as a 16-bit wav, writes a pre-training
task folder and one task folder per downstream task (stratified, seeded
splits), and does nothing on a second call with the same configuration.
The same seed gives byte-identical files whatever the number of worker
processes.

Command line (also the ``muselq-demo-corpus`` script)::

    python -m muselq_sb.prepare demo --root /tmp/demo_corpus --seed 0
    python -m muselq_sb.prepare demo --root /tmp/demo_corpus --plots docs/img

Authors
 * muselq_sb team
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import shutil
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import soundfile as sf
from tqdm import tqdm

from muselq_sb.dataio import demo_corpus as synth
from muselq_sb.dataio.frame_labels import (
    BEAT_CLASSES,
    BEAT_METRICS,
    CHORD_METRICS,
    MAJMIN_CLASSES,
    beats_cell,
    chords_cell,
)
from muselq_sb.dataio.manifest import read_task, write_task
from muselq_sb.prepare.common import SPLIT_SHARES, TaskSpec, split_items, write_pretrain_task
from muselq_sb.prepare.demo_plots import plot_demo_corpus
from muselq_sb.prepare.folder import TrackListing, list_folder

DEMO_VERSION = 1

#: Task name -> (its spec, the clip family it is cut from, the clip label
#: it takes its target from). Classes None: those present, naturally sorted.
TASKS: dict[str, tuple[TaskSpec, str, str]] = {
    spec.name: (spec, family, source) for spec, family, source in (
        (TaskSpec("demo_key", "multiclass", "label", synth.KEYS,
                  ("key_weighted", "accuracy")), "music", "key"),
        (TaskSpec("demo_genre", "multiclass", "label", tuple(sorted(synth.STYLES)),
                  ("accuracy",)), "music", "genre"),
        (TaskSpec("demo_instrument", "multiclass", "label", None, ("accuracy",)),
         "music", "lead"),
        (TaskSpec("demo_tags", "multilabel", "tags", synth.TAGS, ("roc_auc", "ap")),
         "music", "tags"),
        (TaskSpec("demo_emotion", "regression", ("arousal", "valence"), None,
                  ("r2",)), "music", ""),
        (TaskSpec("demo_tempo", "regression", ("tempo",), None, ("r2",)), "music", ""),
        (TaskSpec("demo_nsynth_instrument", "multiclass", "label", None,
                  ("accuracy",)), "note", "instrument"),
        (TaskSpec("demo_nsynth_pitch", "multiclass", "pitch", None, ("accuracy",)),
         "note", "pitch"),
        (TaskSpec("demo_vocal_technique", "multiclass", "label", None,
                  ("accuracy",)), "voice", "technique"),
        (TaskSpec("demo_vocal_singer", "multiclass", "label", None, ("accuracy",)),
         "voice", "singer"),
        (TaskSpec("demo_beats", "beats", "beats", BEAT_CLASSES, BEAT_METRICS),
         "music", "beats"),
        (TaskSpec("demo_chords", "chords", "chords", MAJMIN_CLASSES, CHORD_METRICS),
         "music", "chords"),
    )
}
#: How a frame-level task's annotation becomes its manifest cell.
CELLS = {"beats": beats_cell, "chords": chords_cell}


def _natural(text: str) -> list:
    """Sort key comparing runs of digits as numbers (``singer2 < singer10``)."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text)]


def _write_tasks(root: Path, items: list[dict], config: Mapping) -> None:
    base = ("ID", "path", "duration", "start", "stop")
    for name, (spec, family, source) in TASKS.items():
        family_items = [it for it in items if it["family"] == family]
        rows = []
        for item in family_items:
            row = {k: item[k] for k in base}
            if spec.task_type == "regression":
                row.update({t: item[t] for t in spec.target})
            elif spec.task_type in CELLS:
                row[spec.target] = CELLS[spec.task_type](item[source])
            else:
                row[spec.target] = item[source]
            rows.append(row)
        classes = spec.classes
        if classes is None and spec.task_type != "regression":
            classes = sorted({str(it[source]) for it in family_items}, key=_natural)
        strata = spec.target if spec.task_type == "multiclass" else None
        write_task(root / "tasks" / name, name, spec.task_type,
                   spec.target if isinstance(spec.target, str) else list(spec.target),
                   split_items(rows, strata, config["seed"], name, config["split_shares"]),
                   classes=classes, metrics=spec.metrics,
                   extra={"demo_config": dict(config)})


def _is_built(root: Path, config: Mapping) -> bool:
    try:
        info = read_task(root / "pretrain")
        tasks = [read_task(root / "tasks" / name) for name in TASKS]
    except (ValueError, OSError):  # absent or unreadable: build again
        return False
    return all(t.get("demo_config") == dict(config) for t in [info, *tasks])


def _render_job(args: tuple[dict, dict, str]) -> dict:
    """Renders and writes one clip; returns its manifest fields."""
    job, config, audio_root = args
    y, labels = synth.render_clip(job, config)
    item_id = f"{job['family']}_{job['index']:04d}"
    path = Path(audio_root) / job["family"] / f"{item_id}.wav"
    sf.write(str(path), y, synth.SAMPLE_RATE, subtype="PCM_16")
    return {"ID": item_id, "family": job["family"], "path": str(path),
            "duration": y.size / synth.SAMPLE_RATE, "start": "", "stop": "", **labels}


def _map(fn: Callable, jobs: list, workers: int, done: Callable[[], object]):
    """``fn`` over ``jobs`` in order, in ``workers`` processes if > 1."""
    if workers > 1:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            for result in pool.imap(fn, jobs, chunksize=4):
                done()
                yield result
    else:
        for job in jobs:
            yield fn(job)
            done()


def default_demo_root() -> Path:
    """``$MUSELQ_SB_DATA/demo_corpus``, else ``~/.cache/muselq_sb/demo_corpus``.

    Example
    -------
    >>> default_demo_root().name
    'demo_corpus'
    """
    base = os.environ.get("MUSELQ_SB_DATA")
    return Path(base or Path.home() / ".cache" / "muselq_sb") / "demo_corpus"


def build_demo_corpus(
    root: str | os.PathLike | None = None,
    seed: int = 0,
    n_music: int = 250,
    n_notes: int = 250,
    n_voice: int = 250,
    clip_seconds: float = 10.0,
    n_singers: int = 6,
    split_shares: Sequence[int] = SPLIT_SHARES,
    workers: int | None = None,
    progress: bool = True,
) -> Path:
    """Builds (or finds already built) the demo corpus under ``root``.

    Arguments
    ---------
    root : path-like, optional
        Output folder (``default_demo_root()`` when None).
    seed : int
        Everything is derived from it; same seed, same bytes.
    n_music, n_notes, n_voice : int
        Clips per family.
    clip_seconds : float
        Length of the music clips (notes and voices last 4 s).
    n_singers : int
        Singer identities of the voice clips.
    split_shares : three ints
        Train / valid / test shares of every downstream task (default
        5 / 1 / 4: 100 test items per task with the default counts).
    workers : int, optional
        Processes rendering clips (default: up to 2).
    progress : bool
        Show a progress bar and print a summary.

    Returns
    -------
    pathlib.Path
        The corpus root, holding ``audio/``, ``pretrain/`` and ``tasks/``.

    Example
    -------
    >>> import tempfile
    >>> root = build_demo_corpus(tempfile.mkdtemp(), n_music=3, n_notes=2,
    ...                          n_voice=2, clip_seconds=1.0, workers=1,
    ...                          progress=False)
    >>> sorted(p.name for p in (root / "tasks").iterdir())[:3]
    ['demo_beats', 'demo_chords', 'demo_emotion']
    """
    root = Path(root) if root is not None else default_demo_root()
    config = {"version": DEMO_VERSION, "seed": seed, "n_music": n_music,
              "n_notes": n_notes, "n_voice": n_voice, "clip_seconds": clip_seconds,
              "n_singers": n_singers, "split_shares": list(split_shares),
              "sample_rate": synth.SAMPLE_RATE}
    if _is_built(root, config):
        return root
    started = time.time()
    for sub in ("audio", "pretrain", "tasks"):
        shutil.rmtree(root / sub, ignore_errors=True)
    for family in synth.FAMILIES:
        (root / "audio" / family).mkdir(parents=True, exist_ok=True)
    jobs = [(job, config, str(root / "audio")) for job in synth.plan_clips(config)]
    workers = workers or min(2, os.cpu_count() or 1)
    with tqdm(total=len(jobs), desc="demo corpus", unit="clip",
              disable=not progress) as bar:
        items = list(_map(_render_job, jobs, workers, bar.update))
    _write_tasks(root, items, config)
    rows = [{**{k: it[k] for k in ("ID", "path", "duration", "start", "stop")},
             "group": it["ID"]} for it in items]
    write_pretrain_task(root / "pretrain", rows, valid_fraction=0.05, seed=seed,
                        name="demo_pretrain", extra={"demo_config": config})
    if progress:
        hours = sum(it["duration"] for it in items) / 3600
        print(f"demo corpus: {len(items)} clips, {hours * 60:.1f} min of audio, "
              f"{len(TASKS)} tasks, built in {time.time() - started:.1f} s -> {root}")
    return root


def ensure_demo_corpus(root: str | os.PathLike, seed: int = 0) -> Path:
    """The demo corpus of ``seed`` at ``root``, whatever its clip counts.

    A corpus already built there by the command line with other sizes
    (``--n-music 1000``...) is used as it is. A corpus of another seed or
    version is rebuilt only in the default cache folder; anywhere else it is
    an error, so that a folder the user built is never deleted. Nothing
    there: the default corpus is built.

    Raises
    ------
    ValueError
        Naming the folder, the seed or version found and the one asked for.

    Example
    -------
    >>> import tempfile
    >>> root = build_demo_corpus(tempfile.mkdtemp(), seed=3, n_music=2, n_notes=1,
    ...                          n_voice=1, clip_seconds=1.0, workers=1,
    ...                          progress=False)
    >>> ensure_demo_corpus(root, seed=3) == root
    True
    >>> ensure_demo_corpus(root, seed=0)
    Traceback (most recent call last):
    ...
    ValueError: demo_folder ...: holds the demo corpus of seed 3 (version 1), not seed 0 (version 1); point demo_folder elsewhere or set demo_seed: 3
    """
    root = Path(root)
    try:
        found = read_task(root / "pretrain").get("demo_config")
    except (ValueError, OSError):  # nothing built there (or half): build
        found = None
    if found is not None:
        if found.get("seed") == seed and found.get("version") == DEMO_VERSION:
            return root
        if root.resolve() != default_demo_root().resolve():
            raise ValueError(
                f"demo_folder {root}: holds the demo corpus of seed {found.get('seed')} "
                f"(version {found.get('version')}), not seed {seed} (version "
                f"{DEMO_VERSION}); point demo_folder elsewhere or set demo_seed: "
                f"{found.get('seed')}")
    return build_demo_corpus(root, seed=seed)


def list_demo(path: str | os.PathLike) -> TrackListing:
    """The clips of the demo corpus at ``path`` (a pre-training source).

    A corpus already built there is used whatever its configuration (the
    caller may have built it with another seed); else the default one is
    built.
    """
    root = Path(path)
    if not (root / "pretrain" / "task.json").is_file():
        build_demo_corpus(root)
    return list_folder(root / "audio", prefix="demo")


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m muselq_sb.prepare demo --root DIR`` (``muselq-demo-corpus``)."""
    parser = argparse.ArgumentParser(description="Build the synthetic demo corpus.")
    parser.add_argument("--root", default=None, help="output folder (default: %(default)s -> "
                        "$MUSELQ_SB_DATA/demo_corpus or ~/.cache/muselq_sb/demo_corpus)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-music", type=int, default=250)
    parser.add_argument("--n-notes", type=int, default=250)
    parser.add_argument("--n-voice", type=int, default=250)
    parser.add_argument("--split-shares", default="5,1,4", metavar="TRAIN,VALID,TEST",
                        help="shares of the downstream splits (default: %(default)s)")
    parser.add_argument("--clip-seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--plots", default=None, metavar="DIR",
                        help="also draw the documentation pictures into DIR")
    args = parser.parse_args(argv)
    root = build_demo_corpus(args.root, seed=args.seed, n_music=args.n_music,
                             n_notes=args.n_notes, n_voice=args.n_voice,
                             clip_seconds=args.clip_seconds, workers=args.workers,
                             split_shares=[int(x) for x in args.split_shares.split(",")])
    print(json.dumps({name: read_task(root / "tasks" / name)["splits"] for name in TASKS}))
    if args.plots:
        for path in plot_demo_corpus(root, args.plots):
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
