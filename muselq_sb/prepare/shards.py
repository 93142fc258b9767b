"""Writes pre-training sources into WebDataset tar shards.

Usage::

    python -m muselq_sb.prepare shards --source music4all:/d/music4all \\
        --source fma:/d/fma --save_folder /d/shards [--shard_mb 1024] [--jobs 8]

The sources are first prepared as for file training
(``muselq_sb.prepare.pretrain``: ``<save_folder>/pretrain/{train,valid}.csv``,
segments of ``--segment_seconds``, whole tracks held out for validation);
then the tracks of each split, in a seeded random order, are packed into
``<save_folder>/<split>-NNNNNN.tar`` of about ``--shard_mb`` MiB each: per
track the original audio bytes and a JSON with its id, source path,
duration and clips (the manifest's segments, the "offsets"), in the format
``muselq_sb.dataio.shards`` reads. ``--pcm_rate 24000`` stores instead the
audio decoded once, mono 16-bit at that rate, as WAV (``--pcm_format
wav``: 1.5-3x the bytes of common mp3s) or FLAC (about the bytes of an
mp3); a loader core reads either many times faster than mp3
(docs/benchmarks.md, section 8). ``index.json`` lists every shard (split,
tracks, clips, seconds, bytes, a fingerprint of its content) and the hours
per split.

A shard is written to a temporary file and renamed when complete. A re-run
skips the shards that the index lists with the same fingerprint (the index
is rewritten at least every ``--index_every`` seconds while shards are
written, and at the end), and removes shards of an earlier layout that the
new one has no more.

Authors
 * muselq_sb team
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import multiprocessing
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import soundfile as sf
from tqdm import tqdm
from webdataset import TarWriter

from muselq_sb.dataio.audio import load_audio, probe_duration
from muselq_sb.dataio.manifest import atomic_write_text, read_manifest
from muselq_sb.dataio.shards import INDEX_FORMAT, INDEX_NAME
from muselq_sb.prepare.common import PrepareError, PrepareExit, report_error
from muselq_sb.prepare.pretrain import (
    SOURCES, add_options, parse_sources, prepare_pretrain,
)

logger = logging.getLogger(__name__)

SPLITS = ("train", "valid")


@dataclass
class Track:
    """One track of a split and its clips (manifest rows)."""

    track_id: str
    path: str
    clips: list[tuple[str, float, float]] = field(default_factory=list)

    @property
    def size(self) -> int:
        """Bytes of its audio file (0 when it is gone)."""
        try:
            return os.path.getsize(self.path)
        except OSError:
            return 0


@dataclass
class ShardPlan:
    """The tracks of one shard to write."""

    name: str
    split: str
    tracks: list[Track]
    pcm_rate: int = 0  # 0: original bytes; else mono int16 at this rate
    pcm_format: str = "wav"  # of the decoded audio: wav or flac

    def fingerprint(self) -> str:
        """Hash of the content: tracks, clips, file sizes and times."""
        items = []
        for t in self.tracks:
            try:
                stat = os.stat(t.path)
                mark = (stat.st_size, stat.st_mtime_ns)
            except OSError:
                mark = None
            items.append((t.track_id, t.path, t.clips, mark))
        text = json.dumps([INDEX_FORMAT, self.pcm_rate, self.pcm_format, items],
                          sort_keys=True, default=str)
        return hashlib.sha1(text.encode("utf-8")).hexdigest()


def split_tracks(manifest: str | os.PathLike) -> list[Track]:
    """The tracks of a pre-training manifest, clips in manifest order.

    Example
    -------
    >>> import tempfile, os
    >>> from muselq_sb.dataio.manifest import write_manifest
    >>> f = os.path.join(tempfile.mkdtemp(), "train.csv")
    >>> _ = write_manifest(f, [
    ...     {"ID": "a-0000", "path": "/a.mp3", "duration": 30.0, "start": 0.0,
    ...      "stop": 30.0, "group": "a"},
    ...     {"ID": "a-0001", "path": "/a.mp3", "duration": 5.0, "start": 30.0,
    ...      "stop": 35.0, "group": "a"}], ["group"])
    >>> split_tracks(f)
    [Track(track_id='a', path='/a.mp3', clips=[('a-0000', 0.0, 30.0), ('a-0001', 30.0, 35.0)])]
    """
    tracks: dict[str, Track] = {}
    for row in read_manifest(manifest):
        track = tracks.setdefault(row["group"], Track(row["group"], row["path"]))
        track.clips.append((row["ID"], float(row["start"]), float(row["stop"])))
    return list(tracks.values())


def plan_shards(
    tracks: Sequence[Track], split: str, shard_bytes: int, seed: int,
    pcm_rate: int = 0, pcm_format: str = "wav",
) -> list[ShardPlan]:
    """Deals the tracks, in a seeded random order, into shards of about
    ``shard_bytes`` of audio (a shard closes once it reaches the size).

    Example
    -------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> tracks = []
    >>> for i in range(5):
    ...     _ = open(os.path.join(d, f"{i}.mp3"), "wb").write(b"x" * 100)
    ...     tracks.append(Track(str(i), os.path.join(d, f"{i}.mp3")))
    >>> plans = plan_shards(tracks, "train", 250, seed=0)
    >>> [(p.name, len(p.tracks)) for p in plans]
    [('train-000000.tar', 3), ('train-000001.tar', 2)]
    """
    order = np.random.default_rng(seed).permutation(len(tracks))
    plans: list[ShardPlan] = []
    current: list[Track] = []
    size = 0
    for i in order:
        current.append(tracks[i])
        size += tracks[i].size
        if size >= shard_bytes:
            plans.append(ShardPlan(f"{split}-{len(plans):06d}.tar", split, current,
                                   pcm_rate, pcm_format))
            current, size = [], 0
    if current:
        plans.append(ShardPlan(f"{split}-{len(plans):06d}.tar", split, current,
                               pcm_rate, pcm_format))
    return plans


def _member_key(index: int, track_id: str) -> str:
    """A tar member key (no dot, which would end a WebDataset key)."""
    return f"{index:06d}_" + re.sub(r"[^A-Za-z0-9_-]", "_", track_id)[:80]


def _audio(path: str, pcm_rate: int, pcm_format: str) -> tuple[bytes, str, float]:
    """The bytes to store, their extension and the duration in seconds."""
    if not pcm_rate:
        data = Path(path).read_bytes()
        ext = Path(path).suffix.lower().lstrip(".") or "audio"
        return data, ext, probe_duration(io.BytesIO(data), path)
    wav = load_audio(path, sample_rate=pcm_rate).numpy()
    buf = io.BytesIO()
    sf.write(buf, wav, pcm_rate, format=pcm_format.upper(), subtype="PCM_16")
    return buf.getvalue(), pcm_format, len(wav) / pcm_rate


def _samples(plan: ShardPlan) -> Iterator[tuple[dict[str, Any], int, float]]:
    """The samples of a shard, with their clip count and seconds;
    unreadable tracks are logged and left out."""
    offset = 0
    for i, track in enumerate(plan.tracks):
        try:
            data, ext, duration = _audio(track.path, plan.pcm_rate, plan.pcm_format)
        except (OSError, RuntimeError) as err:
            logger.warning("skipping unreadable audio %s (%s)", track.path, err)
            continue
        meta = {"track_id": track.track_id, "source": track.path,
                "duration": round(duration, 6), "clip_offset": offset,
                "clips": [list(c) for c in track.clips]}
        sample = {"__key__": _member_key(i, track.track_id), ext: data,
                  "json": json.dumps(meta).encode("utf-8")}
        offset += len(track.clips)
        yield sample, len(track.clips), sum(stop - start for _, start, stop in track.clips)


def write_shard(plan: ShardPlan, folder: str | os.PathLike) -> dict[str, Any]:
    """Writes one shard atomically; returns its index entry."""
    final = Path(folder) / plan.name
    tmp = final.with_name(f".{plan.name}.{os.getpid()}.part")
    n_tracks = n_clips = 0
    seconds = 0.0
    try:
        with open(tmp, "wb") as stream:
            with TarWriter(stream, encoder=False, mtime=0) as writer:
                for sample, clips, secs in _samples(plan):
                    writer.write(sample)
                    n_tracks, n_clips, seconds = n_tracks + 1, n_clips + clips, seconds + secs
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()
    return {"name": plan.name, "split": plan.split, "fingerprint": plan.fingerprint(),
            "n_tracks": n_tracks, "n_clips": n_clips, "seconds": round(seconds, 3),
            "bytes": final.stat().st_size}


def _write_one(job: tuple[ShardPlan, str]) -> dict[str, Any]:
    return write_shard(*job)


def _index(entries: Sequence[dict[str, Any]], complete: bool,
           config: dict[str, Any]) -> dict[str, Any]:
    splits = {}
    for split in SPLITS:
        mine = [e for e in entries if e["split"] == split]
        splits[split] = {"shards": len(mine),
                         "tracks": sum(e["n_tracks"] for e in mine),
                         "clips": sum(e["n_clips"] for e in mine),
                         "hours": round(sum(e["seconds"] for e in mine) / 3600, 3),
                         "bytes": sum(e["bytes"] for e in mine)}
    return {"format": INDEX_FORMAT, "complete": complete, "config": config,
            "hours": round(sum(s["hours"] for s in splits.values()), 3),
            "splits": splits, "shards": sorted(entries, key=lambda e: e["name"])}


def _previous_entries(folder: Path) -> dict[str, dict[str, Any]]:
    try:
        with open(folder / INDEX_NAME, encoding="utf-8") as f:
            return {e["name"]: e for e in json.load(f)["shards"]}
    except (OSError, ValueError, KeyError):
        return {}


def write_shards(
    sources: Sequence[dict[str, Any]],
    save_folder: str | os.PathLike,
    shard_mb: float = 1024.0,
    segment_seconds: float = 30.0,
    min_segment_seconds: float = 1.0,
    valid_fraction: float = 0.01,
    seed: int = 0,
    jobs: int = 1,
    index_every: float = 30.0,
    pcm_rate: int = 0,
    pcm_format: str = "wav",
) -> dict[str, Any]:
    """Prepares ``sources`` and writes their shards and ``index.json``.

    Arguments
    ---------
    sources : sequence of dict
        ``{"type": ..., "path": ...}`` as ``prepare_pretrain`` takes.
    save_folder : path-like
        Receives the shards, ``index.json`` and the ``pretrain`` manifests.
    shard_mb : float
        Audio bytes per shard, in MiB.
    segment_seconds, min_segment_seconds, valid_fraction, seed
        As ``prepare_pretrain`` (``seed`` also orders the tracks).
    jobs : int
        Shards written in parallel (processes).
    index_every : float
        Seconds between rewrites of the index while shards are written.
    pcm_rate : int
        0: store the original bytes; else the audio decoded, mono 16-bit
        at this rate.
    pcm_format : str
        ``wav`` or ``flac``: the container of the decoded audio.

    Returns
    -------
    dict
        The index.

    Example
    -------
    >>> import tempfile, os, numpy as np, soundfile as sf
    >>> d = tempfile.mkdtemp()
    >>> for i in range(3):
    ...     sf.write(os.path.join(d, f"{i}.flac"), np.zeros(8000 * 3, "float32"), 8000)
    >>> index = write_shards([{"type": "folder", "path": d}], os.path.join(d, "s"),
    ...                      shard_mb=0.0001, segment_seconds=2.0,
    ...                      valid_fraction=0.34)  # doctest: +ELLIPSIS
    task pretrain ...
    >>> index["splits"]["train"]["shards"], index["splits"]["train"]["clips"]
    (2, 4)
    """
    folder = Path(save_folder)
    task = prepare_pretrain(sources, folder, segment_seconds=segment_seconds,
                            valid_fraction=valid_fraction, seed=seed,
                            min_segment_seconds=min_segment_seconds)
    plans = [plan for split in SPLITS for plan in plan_shards(
        split_tracks(task / f"{split}.csv"), split, int(shard_mb * 2**20), seed,
        pcm_rate, pcm_format)]
    config = {"sources": json.loads(json.dumps(list(sources), default=str)),
              "shard_mb": shard_mb, "segment_seconds": segment_seconds,
              "min_segment_seconds": min_segment_seconds,
              "valid_fraction": valid_fraction, "seed": seed, "pcm_rate": pcm_rate,
              "pcm_format": pcm_format}
    previous = _previous_entries(folder)
    entries, todo = [], []
    for plan in plans:
        old = previous.get(plan.name)
        if old and old["fingerprint"] == plan.fingerprint() \
                and (folder / plan.name).is_file():
            entries.append(old)
        else:
            todo.append(plan)
    planned = {p.name for p in plans}
    for split in SPLITS:
        for stale in folder.glob(f"{split}-*.tar"):
            if stale.name not in planned:
                stale.unlink()
    logger.info("%d shards planned, %d already written", len(plans), len(entries))
    last_write = time.monotonic()
    pool = multiprocessing.get_context("spawn").Pool(jobs) if jobs > 1 else _Serial()
    with pool:
        done = pool.imap_unordered(_write_one, [(p, str(folder)) for p in todo])
        for entry in tqdm(done, total=len(todo), desc="shards", unit="shard"):
            entries.append(entry)
            if time.monotonic() - last_write >= index_every:
                atomic_write_text(folder / INDEX_NAME,
                                  json.dumps(_index(entries, False, config)))
                last_write = time.monotonic()
    index = _index(entries, True, config)
    atomic_write_text(folder / INDEX_NAME, json.dumps(index, indent=1))
    for split in SPLITS:
        s = index["splits"][split]
        print(f"  {split}: {s['shards']} shards, {s['tracks']} tracks, "
              f"{s['clips']} clips, {s['hours']:.2f} h, {s['bytes'] / 2**30:.2f} GiB")
    return index


class _Serial:
    """``imap_unordered`` in this process (``--jobs 1``)."""

    def __enter__(self) -> "_Serial":
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    @staticmethod
    def imap_unordered(fn, items):
        return map(fn, items)


def main(argv: Sequence[str] | None = None) -> int:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="python -m muselq_sb.prepare shards",
        description="Write pre-training sources into WebDataset tar shards.")
    parser.add_argument("--source", action="append", required=True, metavar="TYPE:PATH",
                        help=f"repeatable; TYPE in {list(SOURCES)}")
    add_options(parser)
    parser.add_argument("--shard_mb", type=float, default=1024.0,
                        help="audio MiB per shard (default 1024)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="shards written in parallel (processes)")
    parser.add_argument("--index_every", type=float, default=30.0,
                        help="seconds between index rewrites while writing")
    parser.add_argument("--pcm_rate", type=int, default=0,
                        help="store the audio decoded, mono 16-bit at this rate, "
                             "instead of the original bytes (0, the default)")
    parser.add_argument("--pcm_format", choices=["wav", "flac"], default="wav",
                        help="container of the decoded audio (with --pcm_rate)")
    args = vars(parser.parse_args(argv))
    sources = parse_sources(parser, args.pop("source"))
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        write_shards(sources, **args)
    except PrepareError as err:
        raise PrepareExit(report_error(err)) from None
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
