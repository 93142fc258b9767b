"""Lists FMA large/full (+ ``fma_metadata/tracks.csv``) for pre-training.

Native layout (datasets.md section 10)::

    <root>/fma_large/<NNN>/<NNNNNN>.mp3   (or fma_full/; NNNNNN = zero-padded
                                           track id, NNN its first 3 digits)
    <root>/fma_metadata/tracks.csv

``tracks.csv`` has a three-row header: row 1 the column group (``album``,
``artist``, ``set``, ``track``), row 2 the field name, row 3 ``track_id``
followed by empty cells. Quoted fields may hold commas and newlines. Some
FMA clips are known to be broken or too short; those are skipped (and
counted) when their duration is read.

Authors
 * muselq_sb team
"""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Iterable

from muselq_sb.prepare.common import (
    PrepareError,
    open_text,
    require_dir,
    require_file,
)
from muselq_sb.prepare.folder import TrackListing

AUDIO_DIRS = ("fma_full", "fma_large")
SUBSETS = ("small", "medium", "large")
SPLITS = ("training", "validation", "test")


def fma_audio_path(audio_dir: str | os.PathLike, track_id: int) -> Path:
    """``<audio_dir>/NNN/NNNNNN.mp3`` for a track id.

    Example
    -------
    >>> fma_audio_path("/fma_large", 2).as_posix()
    '/fma_large/000/000002.mp3'
    """
    tid = f"{track_id:06d}"
    return Path(audio_dir) / tid[:3] / f"{tid}.mp3"


def _column(groups: list[str], fields: list[str], group: str, name: str,
            path: Path) -> int:
    for i, (g, f) in enumerate(zip(groups, fields)):
        if g == group and f == name:
            return i
    raise PrepareError(f"header lacks column ({group!r}, {name!r})", path, 2)


def read_fma_tracks(tracks_csv: str | os.PathLike) -> dict[int, dict[str, str]]:
    """``track_id -> {"subset": ..., "split": ...}`` from ``tracks.csv``.

    Raises ``PrepareError`` naming the file and line for a header that is
    not the three-row FMA header, a row with the wrong number of fields, a
    non-integer or repeated track id, or an unknown subset/split value.

    Example
    -------
    >>> import tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "tracks.csv")
    >>> _ = open(f, "w").write(",set,set,track\\n,split,subset,title\\n"
    ...                        "track_id,,,\\n2,training,small,\\"Food, etc\\"\\n")
    >>> read_fma_tracks(f)
    {2: {'subset': 'small', 'split': 'training'}}
    """
    path = require_file(tracks_csv, "FMA tracks.csv")
    tracks: dict[int, dict[str, str]] = {}
    with open_text(path, newline="") as f:
        reader = csv.reader(f)
        header = [next(reader, []) for _ in range(3)]
        groups, fields, index = header
        if not index or index[0] != "track_id" or len(groups) != len(fields):
            raise PrepareError(
                "expected the three-row FMA header (groups, fields, 'track_id')",
                path, 3)
        subset_col = _column(groups, fields, "set", "subset", path)
        split_col = _column(groups, fields, "set", "split", path)
        line = reader.line_num
        for row in reader:
            first_line, line = line + 1, reader.line_num
            if not row:
                continue
            if len(row) != len(fields):
                raise PrepareError(
                    f"expected {len(fields)} fields, got {len(row)}", path, first_line)
            try:
                track_id = int(row[0])
            except ValueError:
                raise PrepareError(f"track id {row[0]!r} is not an integer",
                                   path, first_line) from None
            if track_id in tracks:
                raise PrepareError(f"duplicate track id {track_id}", path, first_line)
            subset, split = row[subset_col], row[split_col]
            if subset not in SUBSETS or split not in SPLITS:
                raise PrepareError(
                    f"track {track_id}: subset {subset!r} / split {split!r} not in "
                    f"{SUBSETS} / {SPLITS}", path, first_line)
            tracks[track_id] = {"subset": subset, "split": split}
    return tracks


def list_fma(
    root: str | os.PathLike,
    audio: str | None = None,
    subset: str = "large",
    exclude_splits: Iterable[str] = (),
) -> TrackListing:
    """The tracks of ``tracks.csv`` that have an mp3 in the audio folder.

    Arguments
    ---------
    root : path-like
        Folder holding ``fma_metadata/`` and ``fma_large/`` or ``fma_full/``.
    audio : str, optional
        ``"fma_full"`` or ``"fma_large"``; by default the first present.
    subset : str
        Keep tracks of this subset and the smaller ones (``"large"``: all).
    exclude_splits : iterable of str
        Official splits to leave out (e.g. ``["validation", "test"]`` to keep
        FMA-based downstream evaluation sets unseen).

    Returns
    -------
    TrackListing
        Track ids ``fma_<NNNNNN>``; listed ids without an mp3 are counted in
        ``n_missing``.
    """
    root = require_dir(root, "FMA folder")
    tracks_csv = require_file(root / "fma_metadata" / "tracks.csv", "FMA tracks.csv")
    if audio is None:
        audio = next((d for d in AUDIO_DIRS if (root / d).is_dir()), AUDIO_DIRS[-1])
    if audio not in AUDIO_DIRS:
        raise ValueError(f"unknown FMA audio folder {audio!r}; expected one of {AUDIO_DIRS}")
    if subset not in SUBSETS:
        raise ValueError(f"unknown FMA subset {subset!r}; expected one of {SUBSETS}")
    excluded = set(exclude_splits)
    if excluded - set(SPLITS):
        raise ValueError(f"unknown FMA splits {sorted(excluded - set(SPLITS))}; "
                         f"expected some of {SPLITS}")
    audio_dir = require_dir(root / audio, f"FMA audio folder {audio}")
    keep_subsets = SUBSETS[: SUBSETS.index(subset) + 1]
    listing = TrackListing(inputs=[tracks_csv])
    for track_id, meta in sorted(read_fma_tracks(tracks_csv).items()):
        if meta["subset"] not in keep_subsets or meta["split"] in excluded:
            continue
        listing.add_listed(f"fma_{track_id:06d}",
                           fma_audio_path(audio_dir, track_id), "FMA", tracks_csv)
    return listing

