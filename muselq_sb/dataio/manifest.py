"""The one manifest format every recipe reads and every preparation writes.

A data set is prepared into a *task folder*::

    <save_folder>/<task>/train.csv
    <save_folder>/<task>/valid.csv
    <save_folder>/<task>/test.csv      (absent for pre-training corpora)
    <save_folder>/<task>/task.json

CSV schema (SpeechBrain ``DynamicItemDataset.from_csv`` compatible):

=========  ==============================================================
column     meaning
=========  ==============================================================
ID         unique item id (str)
path       audio file, absolute path
duration   seconds of audio the item covers (float; stop - start if set)
start      first second to read (float) or empty for the file start
stop       last second to read (float) or empty for the file end
<labels>   task columns, by convention: ``label`` (one class name),
           ``tags`` (class names joined by ``;``), ``arousal``/``valence``
           (floats), ``pitch`` (MIDI number), ``group`` (song/track id used
           to average the predictions of the segments of one recording)
=========  ==============================================================

``task.json`` says how to read the targets::

    {"name": "gtzan", "type": "multiclass", "target": "label",
     "classes": ["blues", ...], "metrics": ["accuracy"]}

``type`` is one of ``multiclass``, ``multilabel``, ``regression``,
``pretrain``, or a frame-level task: ``beats`` (the ``beats`` column holds
the item's beats as JSON, ``[[time, position or null], ...]``) or
``chords`` (``chords``: ``[[start, end, label], ...]``). For
``regression`` ``target`` is a list of columns.

All files are written atomically (temporary file + ``os.replace``), so a
reader never sees a partial manifest.

Authors
 * muselq_sb team
"""
from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path
from typing import Iterable, Mapping, Sequence

BASE_COLUMNS = ("ID", "path", "duration", "start", "stop")
TASK_TYPES = ("multiclass", "multilabel", "regression", "pretrain", "beats", "chords")
SPLITS = ("train", "valid", "test")


class ManifestError(ValueError):
    """A manifest or task description is malformed (the message names it)."""


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Writes ``text`` to ``path`` so that readers never see a partial file.

    Example
    -------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> atomic_write_text(os.path.join(d, "a.txt"), "hello")
    >>> open(os.path.join(d, "a.txt")).read()
    'hello'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; honour the umask
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _fmt(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return ";".join(str(v) for v in value)
    return str(value)


def write_manifest(
    path: str | os.PathLike,
    rows: Iterable[Mapping[str, object]],
    label_columns: Sequence[str] = (),
) -> int:
    """Writes one manifest CSV atomically and returns the number of rows.

    Arguments
    ---------
    path : path-like
        The CSV file to write.
    rows : iterable of mappings
        Each has the base columns (``start``/``stop`` may be missing or
        ``None``) and every column of ``label_columns``. List values are
        joined with ``;``.
    label_columns : sequence of str
        The task columns, written after the base columns.

    Returns
    -------
    int
        The number of rows written.

    Example
    -------
    >>> import tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "train.csv")
    >>> write_manifest(f, [{"ID": "a", "path": "/x.wav", "duration": 3.0,
    ...                     "label": "rock"}], ["label"])
    1
    >>> read_manifest(f)[0]["label"]
    'rock'
    """
    columns = list(BASE_COLUMNS) + [c for c in label_columns]
    lines: list[list[str]] = []
    seen: set[str] = set()
    for i, row in enumerate(rows):
        missing = [c for c in ("ID", "path", "duration") if c not in row]
        missing += [c for c in label_columns if c not in row]
        if missing:
            raise ManifestError(f"{path}: row {i} lacks columns {missing}")
        if row["ID"] in seen:
            raise ManifestError(f"{path}: duplicate ID {row['ID']!r}")
        seen.add(str(row["ID"]))
        lines.append([_fmt(row.get(c)) for c in columns])
    buf = _CsvBuffer()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(lines)
    atomic_write_text(path, buf.text())
    return len(lines)


class _CsvBuffer:
    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, s: str) -> None:
        self.parts.append(s)

    def text(self) -> str:
        return "".join(self.parts)


def read_manifest(path: str | os.PathLike) -> list[dict[str, str]]:
    """Reads a manifest CSV into a list of dicts (values are strings).

    Raises ``ManifestError`` naming the file when a base column is missing.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest not found: {path}")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        missing = [c for c in BASE_COLUMNS if c not in header]
        if missing:
            raise ManifestError(f"{path}: header lacks columns {missing}")
        return list(reader)


def write_task(
    folder: str | os.PathLike,
    name: str,
    task_type: str,
    target: str | Sequence[str],
    splits: Mapping[str, Sequence[Mapping[str, object]]],
    classes: Sequence[str] | None = None,
    metrics: Sequence[str] = (),
    extra: Mapping[str, object] | None = None,
    columns: Sequence[str] = (),
) -> Path:
    """Writes a whole task folder: one CSV per split and ``task.json``.

    ``task.json`` is written last, so its presence means the folder is
    complete. The CSVs hold the base columns, the target column(s), then
    ``columns`` (e.g. ``group``).

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> rows = [{"ID": "a", "path": "/a.wav", "duration": 1.0, "label": "x"}]
    >>> p = write_task(d, "toy", "multiclass", "label",
    ...                {"train": rows, "valid": rows, "test": rows},
    ...                classes=["x"], metrics=["accuracy"])
    >>> read_task(p)["classes"]
    ['x']
    >>> rows[0]["group"] = "song1"
    >>> p = write_task(d, "toy", "multiclass", "label", {"train": rows},
    ...                classes=["x"], columns=["group"])
    >>> read_manifest(p / "train.csv")[0]["group"]
    'song1'
    """
    if task_type not in TASK_TYPES:
        raise ManifestError(
            f"task {name!r}: unknown type {task_type!r}; expected one of "
            f"{list(TASK_TYPES)}"
        )
    folder = Path(folder)
    targets = [target] if isinstance(target, str) else list(target)
    task_json = folder / "task.json"
    if task_json.exists():
        task_json.unlink()
    for split, rows in splits.items():
        write_manifest(folder / f"{split}.csv", rows, [*targets, *columns])
    info = {
        "name": name,
        "type": task_type,
        "target": target if isinstance(target, str) else list(target),
        "classes": list(classes) if classes is not None else None,
        "metrics": list(metrics),
        "splits": {s: len(r) for s, r in splits.items()},
    }
    if extra:
        info.update(extra)
    atomic_write_text(task_json, json.dumps(info, indent=2) + "\n")
    return folder


def read_task(folder: str | os.PathLike) -> dict:
    """Reads ``task.json`` of a task folder (``ManifestError`` if absent)."""
    path = Path(folder) / "task.json"
    if not path.is_file():
        raise ManifestError(
            f"{path} not found: the task folder is not prepared (or was "
            "interrupted); run its preparation script"
        )
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def is_up_to_date(
    outputs: Sequence[str | os.PathLike], inputs: Sequence[str | os.PathLike]
) -> bool:
    """True when every output exists and is newer than every input.

    Preparation scripts call it to skip work already done.

    Example
    -------
    >>> import tempfile, os, time
    >>> d = tempfile.mkdtemp()
    >>> src, dst = os.path.join(d, "in"), os.path.join(d, "out")
    >>> atomic_write_text(src, "x")
    >>> is_up_to_date([dst], [src])
    False
    >>> atomic_write_text(dst, "y"); os.utime(dst, (time.time() + 5,) * 2)
    >>> is_up_to_date([dst], [src])
    True
    """
    outs = [Path(p) for p in outputs]
    if not all(p.exists() for p in outs):
        return False
    oldest_out = min(p.stat().st_mtime for p in outs)
    newest_in = max(
        (Path(p).stat().st_mtime for p in inputs if Path(p).exists()),
        default=0.0,
    )
    return oldest_out >= newest_in
