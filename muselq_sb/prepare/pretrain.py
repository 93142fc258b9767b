"""Prepares the pre-training task folder from one or several corpora.

Each source is a dict ``{"type": ..., "path": ..., **options}`` with type
``music4all``, ``fma``, ``folder`` or ``demo`` (the built-in demo corpus,
built first if needed). Every track is cut into non-overlapping segments
(one manifest row each, with ``start``/``stop``; ``group`` is the track id)
and whole tracks are held out for ``valid.csv``.

Authors
 * muselq_sb team
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Callable, Mapping, Sequence

from muselq_sb.dataio.audio import window_bounds
from muselq_sb.dataio.manifest import is_up_to_date, read_task
from muselq_sb.prepare.common import audio_duration, summarize_task, write_pretrain_task
from muselq_sb.prepare.demo import list_demo
from muselq_sb.prepare.fma import list_fma
from muselq_sb.prepare.folder import TrackListing, list_folder
from muselq_sb.prepare.music4all import list_music4all

logger = logging.getLogger(__name__)


SOURCES: dict[str, Callable[..., TrackListing]] = {
    "music4all": list_music4all,
    "fma": list_fma,
    "folder": list_folder,
    "demo": list_demo,
}


def list_source(source: Mapping[str, object]) -> TrackListing:
    """Lists one source dict; extra keys are passed to its lister.

    Example
    -------
    >>> list_source({"type": "youtube", "path": "/x"})
    Traceback (most recent call last):
    ...
    ValueError: unknown pre-training source type 'youtube'; expected one of ['music4all', 'fma', 'folder', 'demo']
    """
    options = dict(source)
    kind = options.pop("type", None)
    if kind not in SOURCES:
        raise ValueError(f"unknown pre-training source type {kind!r}; "
                         f"expected one of {list(SOURCES)}")
    if "path" not in options:
        raise ValueError(f"pre-training source {source!r} lacks 'path'")
    return SOURCES[kind](options.pop("path"), **options)


def segment_tracks(
    tracks: Sequence[tuple[str, Path]],
    segment_seconds: float,
    min_segment_seconds: float,
) -> tuple[list[dict], int]:
    """One manifest row per segment of every readable track.

    Arguments
    ---------
    tracks : sequence of (track id, path)
        The tracks.
    segment_seconds : float
        Segment length.
    min_segment_seconds : float
        Shortest last segment kept; a track shorter than that has none.

    Returns
    -------
    (list of dict, int)
        The rows (``group`` = track id) and the number of unreadable tracks.

    Example
    -------
    >>> import tempfile, os, numpy as np, soundfile as sf
    >>> f = os.path.join(tempfile.mkdtemp(), "a.wav")
    >>> sf.write(f, np.zeros(16000 * 5, "float32"), 16000)
    >>> rows, bad = segment_tracks([("a", f), ("b", f + ".nope")], 2.0, 1.0)
    >>> [(r["ID"], r["start"], r["stop"]) for r in rows], bad
    ([('a-0000', 0.0, 2.0), ('a-0001', 2.0, 4.0), ('a-0002', 4.0, 5.0)], 1)
    """
    rows: list[dict] = []
    unreadable = 0
    for track_id, path in tracks:
        duration = audio_duration(path)
        if duration is None:
            unreadable += 1
            continue
        for k, (start, stop) in enumerate(
            window_bounds(duration, segment_seconds, min_last=min_segment_seconds)
        ):
            rows.append({"ID": f"{track_id}-{k:04d}", "path": str(path),
                         "duration": round(stop - start, 6), "start": start,
                         "stop": stop, "group": track_id})
    return rows, unreadable


def _fingerprint(config: Mapping[str, object], listings: Sequence[TrackListing]) -> str:
    tracks = [(tid, str(p)) for listing in listings for tid, p in listing.tracks]
    text = json.dumps({"config": config, "tracks": tracks}, sort_keys=True)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def prepare_pretrain(
    sources: Sequence[Mapping[str, object]],
    save_folder: str | os.PathLike,
    segment_seconds: float = 30.0,
    valid_fraction: float = 0.01,
    seed: int = 0,
    min_segment_seconds: float = 1.0,
) -> Path:
    """Writes ``<save_folder>/pretrain/`` from the given sources.

    Skips the work when the folder is newer than the annotation files and
    was made from the same configuration and track list (a fingerprint
    stored in ``task.json``).

    Arguments
    ---------
    sources : sequence of dict
        ``{"type": "music4all"|"fma"|"folder"|"demo", "path": ...}`` plus
        lister options (FMA: ``audio``, ``subset``, ``exclude_splits``).
    save_folder : path-like
        Parent of the task folder.
    segment_seconds : float
        Segment length.
    valid_fraction : float
        Fraction of tracks held out for validation.
    seed : int
        Seed of the held-out draw.
    min_segment_seconds : float
        Shortest last segment kept.

    Returns
    -------
    pathlib.Path
        The task folder.
    """
    folder = Path(save_folder) / "pretrain"
    listings = [list_source(s) for s in sources]
    plain_sources = json.loads(json.dumps([dict(s) for s in sources], default=str))
    config = {"sources": plain_sources, "segment_seconds": segment_seconds,
              "valid_fraction": valid_fraction, "seed": seed,
              "min_segment_seconds": min_segment_seconds}
    fingerprint = _fingerprint(config, listings)
    outputs = [folder / "train.csv", folder / "valid.csv", folder / "task.json"]
    inputs = [p for listing in listings for p in listing.inputs]
    if is_up_to_date(outputs, inputs) and read_task(folder).get("fingerprint") == fingerprint:
        logger.info("%s is up to date: skipped", folder)
        return folder
    tracks = [t for listing in listings for t in listing.tracks]
    rows, unreadable = segment_tracks(tracks, segment_seconds, min_segment_seconds)
    missing = sum(listing.n_missing for listing in listings)
    used = len({r["group"] for r in rows})
    too_short = len(tracks) - unreadable - used
    write_pretrain_task(folder, rows, valid_fraction, seed, extra={
        "fingerprint": fingerprint, "n_tracks": used, "n_unreadable": unreadable,
        "n_missing": missing, "n_too_short": too_short, **config})
    print(summarize_task(folder))
    print(f"  {used} tracks used; skipped: {unreadable} unreadable, {missing} "
          f"missing, {too_short} shorter than {min_segment_seconds} s")
    return folder


def add_options(parser: argparse.ArgumentParser) -> None:
    """Adds the options of ``prepare_pretrain`` (``--save_folder`` ...)."""
    parser.add_argument("--save_folder", required=True,
                        help="the 'pretrain' task folder is written inside")
    parser.add_argument("--segment_seconds", type=float, default=30.0)
    parser.add_argument("--min_segment_seconds", type=float, default=1.0)
    parser.add_argument("--valid_fraction", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)


def _run(sources: list[dict], args: argparse.Namespace) -> Path:
    return prepare_pretrain(sources, args.save_folder,
                            segment_seconds=args.segment_seconds,
                            valid_fraction=args.valid_fraction, seed=args.seed,
                            min_segment_seconds=args.min_segment_seconds)


def source_cli(source_type: str, description: str,
               argv: Sequence[str] | None = None) -> Path:
    """The command line of a one-source script (``--data_folder`` + options).

    Example
    -------
    >>> import tempfile, os, numpy as np, soundfile as sf
    >>> d = tempfile.mkdtemp()
    >>> sf.write(os.path.join(d, "a.wav"), np.zeros(8000, "float32"), 8000)
    >>> folder = source_cli("folder", "demo", ["--data_folder", d, "--save_folder", d])
    task pretrain (pretrain) in ...
    >>> read_task(folder)["splits"]
    {'train': 1, 'valid': 0}
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data_folder", required=True, help="the data set root")
    add_options(parser)
    args = parser.parse_args(argv)
    return _run([{"type": source_type, "path": args.data_folder}], args)


def parse_sources(parser: argparse.ArgumentParser, texts: Sequence[str]) -> list[dict]:
    """``--source TYPE:PATH`` values as source dicts (a parser error else).

    Example
    -------
    >>> parse_sources(argparse.ArgumentParser(), ["fma:/d/fma"])
    [{'type': 'fma', 'path': '/d/fma'}]
    """
    sources = []
    for text in texts:
        kind, sep, path = text.partition(":")
        if not sep:
            parser.error(f"--source {text!r}: expected TYPE:PATH")
        sources.append({"type": kind, "path": path})
    return sources


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m muselq_sb.prepare.pretrain --source fma:/d/fma --source folder:/d/x ...``."""
    parser = argparse.ArgumentParser(description="Prepare mixed pre-training corpora.")
    parser.add_argument("--source", action="append", required=True, metavar="TYPE:PATH",
                        help=f"repeatable; TYPE in {list(SOURCES)}")
    add_options(parser)
    args = parser.parse_args(argv)
    _run(parse_sources(parser, args.source), args)
    return 0


if __name__ == "__main__":
    main()
