"""Helpers shared by the preparation scripts of every data set.

Authors
 * muselq_sb team
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Mapping, Sequence

import soundfile as sf

from muselq_sb.dataio.manifest import read_task

logger = logging.getLogger(__name__)


class PrepareError(ValueError):
    """A data set on disk does not match its documented layout.

    The message always names the file (and the line, where there is one).

    Example
    -------
    >>> str(PrepareError("bad key 'H major'", "/d/a.key", 3))
    "/d/a.key:3: bad key 'H major'"
    """

    def __init__(
        self, message: str, path: str | os.PathLike | None = None,
        line: int | None = None,
    ) -> None:
        where = "" if path is None else str(path)
        if line is not None:
            where += f":{line}"
        super().__init__(f"{where}: {message}" if where else message)
        self.path = None if path is None else str(path)
        self.line = line


def require_file(path: str | os.PathLike, what: str = "file") -> Path:
    """Returns ``path`` as a Path, or raises ``PrepareError`` naming it.

    Example
    -------
    >>> require_file("/nonexistent/annotations.csv", "MTAT annotations")
    Traceback (most recent call last):
    ...
    muselq_sb.prepare.common.PrepareError: /nonexistent/annotations.csv: MTAT annotations not found
    """
    path = Path(path)
    if not path.is_file():
        raise PrepareError(f"{what} not found", path)
    return path


def require_dir(path: str | os.PathLike, what: str = "folder") -> Path:
    """Returns ``path`` as a Path, or raises ``PrepareError`` naming it."""
    path = Path(path)
    if not path.is_dir():
        raise PrepareError(f"{what} not found", path)
    return path


def audio_duration(path: str | os.PathLike) -> float | None:
    """Duration in seconds from the file header, or None if unreadable.

    Only the header is read (no decoding), so it is cheap on large sets.
    """
    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError, OSError) as err:
        logger.warning("unreadable audio %s (%s): skipped", path, err)
        return None
    if info.frames <= 0 or info.samplerate <= 0:
        logger.warning("empty audio %s: skipped", path)
        return None
    return info.frames / info.samplerate


def summarize_task(folder: str | os.PathLike) -> str:
    """A human-readable summary of a prepared task folder.

    Lists items and hours per split and the classes; preparation scripts
    print it when they finish.
    """
    from muselq_sb.dataio.manifest import read_manifest

    folder = Path(folder)
    info = read_task(folder)
    lines = [f"task {info['name']} ({info['type']}) in {folder}"]
    for split in info.get("splits", {}):
        rows = read_manifest(folder / f"{split}.csv")
        hours = sum(float(r["duration"]) for r in rows) / 3600
        lines.append(f"  {split:<6} {len(rows):>8} items {hours:>9.2f} h")
    classes: Sequence[str] | None = info.get("classes")
    if classes:
        shown = ", ".join(classes[:12]) + (" ..." if len(classes) > 12 else "")
        lines.append(f"  {len(classes)} classes: {shown}")
    return "\n".join(lines)


def count_labels(
    rows: Sequence[Mapping[str, str]], column: str
) -> dict[str, int]:
    """Counts class occurrences in a manifest column (``;``-joined allowed).

    Example
    -------
    >>> count_labels([{"tags": "a;b"}, {"tags": "a"}], "tags")
    {'a': 2, 'b': 1}
    """
    counts: dict[str, int] = {}
    for row in rows:
        for name in str(row[column]).split(";"):
            if name:
                counts[name] = counts.get(name, 0) + 1
    return counts
