"""Helpers shared by the preparation scripts of every data set.

Errors and inputs: ``PrepareError``, ``require_file``, ``require_dir``,
``audio_duration``. Files named by an annotation or split list:
``ListedAudio`` and ``listed_audio_rows``. Writing task folders:
``TaskSpec``, ``Built`` and ``prepare_tasks`` (up-to-date check, one
``write_task`` per task, summary). The command line: ``prepare_parser`` and
``run_cli``.

Besides the fields ``write_task`` writes, ``prepare_tasks`` stores in each
``task.json``:

* ``options``: the preparation options; the folder is prepared again when
  they change;
* ``skipped``: how many items were left out, by reason, as ints, e.g.
  ``{"missing": 920, "unreadable": 0, "excluded": 1}``. The reasons in use:
  ``missing`` (a listed item whose audio file or annotation row is absent,
  counted only with ``allow_missing``), ``unreadable`` (the audio header
  cannot be read), ``excluded`` (left out by the protocol), ``untagged``
  (no class of the task), ``too_short`` (shorter than one segment, or than
  a track), ``not_music`` (audio outside a music folder), ``duplicate``
  (the same bytes as a file already kept);
* ``skipped_paths``: the same reasons -> the left-out audio files (absolute
  paths; an item whose file is not even known, such as a song without an
  annotation row, is named by its ID), at most ``MAX_SKIPPED_PATHS`` per
  reason (the counts of ``skipped`` stay exact).

Authors
 * muselq_sb team
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, Iterable, Iterator, Mapping, NamedTuple, Sequence

import numpy as np

from muselq_sb.dataio.audio import AudioError, probe_duration
from muselq_sb.dataio.manifest import (
    SPLITS,
    is_up_to_date,
    read_manifest,
    read_task,
    write_task,
)

logger = logging.getLogger(__name__)

MAX_SKIPPED_PATHS = 1000
#: Default train / valid / test shares of seeded splits (the demo corpus, the
#: annotation folders): a large test share, so that each test split of the
#: demo corpus has 100 items (enough to tell encoders apart).
SPLIT_SHARES = (5, 1, 4)
SPLITS_DIR = Path(__file__).resolve().parent.parent / "resources" / "splits"


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
    """Duration in seconds, or None (logged) if unreadable or empty.

    ``muselq_sb.dataio.audio.probe_duration``: the file header where it has
    a length (cheap on large sets), a decode for bare streams such as .aac.

    Example
    -------
    >>> audio_duration("/nonexistent/a.m4a") is None
    True
    """
    try:
        return probe_duration(path)
    except AudioError as err:
        logger.warning("unreadable audio %s (%s): skipped", path, err.reason)
        return None


def summarize_task(folder: str | os.PathLike) -> str:
    """A human-readable summary of a prepared task folder.

    Lists items and hours per split, the classes and the ``skipped`` counts
    (when one is not zero); preparation scripts print it when they finish.

    Example
    -------
    >>> import tempfile
    >>> rows = [{"ID": "a", "path": "/a.wav", "duration": 1.0, "label": "x"}]
    >>> d = write_task(tempfile.mkdtemp(), "toy", "multiclass", "label",
    ...                {"train": rows}, classes=["x"],
    ...                extra={"skipped": {"missing": 2, "unreadable": 0}})
    >>> print(summarize_task(d))  # doctest: +ELLIPSIS +NORMALIZE_WHITESPACE
    task toy (multiclass) in ...
      train 1 items 0.00 h
      1 classes: x
      skipped: 2 missing, 0 unreadable
    """
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
    skipped: Mapping[str, int] = info.get("skipped", {})
    if any(skipped.values()):
        lines.append("  skipped: " + ", ".join(
            f"{count} {reason}" for reason, count in skipped.items()))
    return "\n".join(lines)


def _first_undecodable_line(path: str | os.PathLike, encoding: str) -> int | None:
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, start=1):
            try:
                raw.decode(encoding)
            except UnicodeDecodeError:
                return line_no
    return None


@contextlib.contextmanager
def open_text(
    path: str | os.PathLike, encoding: str = "utf-8", newline: str | None = None
) -> Iterator[IO[str]]:
    """Opens an annotation file for reading text.

    Bytes that do not decode (while the ``with`` block reads) raise
    ``PrepareError`` naming the file and the line they are on, instead of
    a bare ``UnicodeDecodeError``.

    Arguments
    ---------
    path : path-like
        The file.
    encoding : str
        Its text encoding.
    newline : str, optional
        As for ``open``.

    Returns
    -------
    context manager
        Yielding the open text file.

    Example
    -------
    >>> import tempfile
    >>> f = Path(tempfile.mkdtemp()) / "a.txt"
    >>> _ = f.write_bytes(b"fine\\n\\xff broken\\n")
    >>> with open_text(f) as text:  # doctest: +ELLIPSIS
    ...     text.read()
    Traceback (most recent call last):
    ...
    muselq_sb.prepare.common.PrepareError: ...a.txt:2: not valid utf-8 text (invalid start byte)
    """
    try:
        with open(path, encoding=encoding, newline=newline) as f:
            yield f
    except UnicodeDecodeError as err:
        raise PrepareError(f"not valid {encoding} text ({err.reason})", path,
                           _first_undecodable_line(path, encoding)) from None


def read_text(path: str | os.PathLike, encoding: str = "utf-8") -> str:
    """The whole text of an annotation file (see ``open_text``).

    Example
    -------
    >>> import tempfile
    >>> f = Path(tempfile.mkdtemp()) / "a.txt"
    >>> _ = f.write_text("C minor\\n")
    >>> read_text(f)
    'C minor\\n'
    """
    with open_text(path, encoding) as f:
        return f.read()


def tsv_rows(
    path: str | os.PathLike, header: Sequence[str], what: str,
    more_fields: bool = False,
) -> Iterator[tuple[int, list[str]]]:
    """Yields ``(line, fields)`` of a tab-separated file after its header.

    CRLF line ends are tolerated, header fields are stripped, blank lines
    skipped; a file that is absent, a wrong header or a row with a wrong
    number of fields raises ``PrepareError`` naming the file and line.

    Arguments
    ---------
    path : path-like
        The file.
    header : sequence of str
        The expected header.
    what : str
        What the file is (for the "not found" error).
    more_fields : bool
        Rows may have more fields than the header (a list spread over the
        last columns).

    Example
    -------
    >>> import tempfile
    >>> f = Path(tempfile.mkdtemp()) / "a.tsv"
    >>> _ = f.write_bytes(b"id\\tkey \\r\\n5061\\tD# minor\\r\\n\\r\\n")
    >>> list(tsv_rows(f, ["id", "key"], "key list"))
    [(2, ['5061', 'D# minor'])]
    """
    path = require_file(path, what)
    with open_text(path, newline="") as f:
        for line_no, line in enumerate(f, start=1):
            fields = line.rstrip("\r\n").split("\t")
            if line_no == 1:
                if [h.strip() for h in fields] != list(header):
                    raise PrepareError(
                        f"header {fields} is not {list(header)}", path, line_no)
                continue
            if fields == [""]:
                continue
            if len(fields) < len(header) or (
                    len(fields) > len(header) and not more_fields):
                at_least, etc = ("at least ", " ...") if more_fields else ("", "")
                raise PrepareError(
                    f"expected {at_least}{len(header)} tab-separated fields "
                    f"({', '.join(header)}{etc}), found {len(fields)}",
                    path, line_no,
                )
            yield line_no, fields


@dataclass(frozen=True)
class ListedAudio:
    """An audio file named at ``source``:``line`` with its manifest fields.

    Arguments
    ---------
    row : dict
        ``ID`` and the label columns of the manifest row.
    path : Path
        Where the audio file should be.
    source : Path
        The annotation or split file that names it.
    line : int
        The line of ``source`` that names it.

    Example
    -------
    >>> item = ListedAudio({"ID": "a", "label": "rock"}, Path("/a.wav"),
    ...                    Path("/list.txt"), 3)
    >>> item.row["ID"]
    'a'
    """

    row: dict
    path: Path
    source: Path
    line: int


def listed_audio_rows(
    splits: Mapping[str, Iterable[ListedAudio]],
    allow_missing: bool = False,
    duration_of: Callable[[Path], float | None] = audio_duration,
) -> tuple[dict[str, list[dict]], dict[str, list[str]]]:
    """Turns the listed files of each split into manifest rows.

    A missing file raises ``PrepareError`` naming the list file and line,
    unless ``allow_missing`` (then it is skipped and counted). A file whose
    header cannot be read is logged, skipped and counted. An ``ID`` listed
    twice in one split raises ``PrepareError`` naming both places.

    Arguments
    ---------
    splits : mapping
        Split name -> the ``ListedAudio`` items of that split.
    allow_missing : bool
        Skip (and count) listed files that are absent instead of failing.
    duration_of : callable
        Path -> duration in seconds or None when unreadable.

    Returns
    -------
    rows : dict
        Split name -> manifest rows (``path`` absolute, ``duration`` from
        the audio header, empty ``start``/``stop``).
    skipped : dict
        ``{"missing": [paths], "unreadable": [paths]}`` (absolute paths).

    Example
    -------
    >>> import tempfile, numpy, soundfile
    >>> d = Path(tempfile.mkdtemp())
    >>> wav = d / "a.wav"
    >>> soundfile.write(wav, numpy.zeros(4000), 8000)
    >>> items = [ListedAudio({"ID": "a"}, wav, d / "l.txt", 1),
    ...          ListedAudio({"ID": "b"}, d / "b.wav", d / "l.txt", 2)]
    >>> rows, skipped = listed_audio_rows({"train": items}, allow_missing=True)
    >>> rows["train"][0]["duration"], skipped["missing"] == [str(d / "b.wav")]
    (0.5, True)
    """
    rows: dict[str, list[dict]] = {}
    skipped: dict[str, list[str]] = {"missing": [], "unreadable": []}
    for split, items in splits.items():
        rows[split] = []
        first_seen: dict[str, ListedAudio] = {}
        for item in items:
            first = first_seen.setdefault(item.row["ID"], item)
            if first is not item:
                raise PrepareError(
                    f"item {item.row['ID']} is listed twice (first at "
                    f"{first.source}:{first.line})", item.source, item.line,
                )
            path = os.path.abspath(item.path)
            if not item.path.is_file():
                if not allow_missing:
                    raise PrepareError(
                        f"audio file {item.path} of item {item.row['ID']} not "
                        "found (pass allow_missing=True to skip absent files)",
                        item.source, item.line,
                    )
                skipped["missing"].append(path)
                continue
            duration = duration_of(item.path)
            if duration is None:
                skipped["unreadable"].append(path)
                continue
            rows[split].append({**item.row, "path": path, "duration": duration,
                                "start": None, "stop": None})
    return rows, skipped


@dataclass(frozen=True)
class TaskSpec:
    """What ``task.json`` says about a task (the ``write_task`` arguments).

    Arguments
    ---------
    name : str
        Task name, also the task folder's name.
    task_type : str
        ``multiclass``, ``multilabel`` or ``regression``.
    target : str or tuple of str
        The target column(s).
    classes : tuple of str, optional
        The class names (None for regression).
    metrics : tuple of str
        The metrics of the task.
    columns : tuple of str
        More CSV columns, written after the target(s) (e.g. ``group``).

    Example
    -------
    >>> TaskSpec("toy", "multiclass", "label", ("x", "y"), ("accuracy",)).name
    'toy'
    """

    name: str
    task_type: str
    target: str | tuple[str, ...]
    classes: tuple[str, ...] | None = None
    metrics: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()


def write_pretrain_task(
    folder: str | os.PathLike,
    rows: Sequence[Mapping[str, object]],
    valid_fraction: float,
    seed: int,
    name: str = "pretrain",
    extra: Mapping[str, object] | None = None,
) -> Path:
    """Writes a "pretrain" task folder, holding out whole groups for valid.

    Arguments
    ---------
    folder : path-like
        The task folder (``train.csv``, ``valid.csv``, ``task.json``).
    rows : sequence of dict
        Manifest rows with a ``group`` column (the track id).
    valid_fraction : float
        Fraction of the groups (tracks) held out; at least one group when
        the fraction is positive and there are two groups or more.
    seed : int
        Seed of the held-out draw.
    name : str
        Task name in ``task.json``.
    extra : mapping, optional
        More ``task.json`` fields.

    Returns
    -------
    pathlib.Path
        ``folder``.

    Example
    -------
    >>> import tempfile
    >>> rows = [{"ID": f"{g}-{k}", "path": "/a.wav", "duration": 1.0,
    ...          "group": g} for g in "abcd" for k in range(2)]
    >>> folder = write_pretrain_task(tempfile.mkdtemp(), rows, 0.25, seed=0)
    >>> read_task(folder)["splits"]
    {'train': 6, 'valid': 2}
    """
    groups = sorted({str(r["group"]) for r in rows})
    n_valid = int(round(valid_fraction * len(groups)))
    if valid_fraction > 0 and len(groups) >= 2:
        n_valid = min(max(n_valid, 1), len(groups) - 1)
    order = np.random.default_rng(seed).permutation(len(groups))
    held_out = {groups[i] for i in order[:n_valid]}
    splits = {
        "train": [r for r in rows if str(r["group"]) not in held_out],
        "valid": [r for r in rows if str(r["group"]) in held_out],
    }
    return write_task(folder, name, "pretrain", "group", splits, extra=extra)


class Built(NamedTuple):
    """What the ``build`` function given to ``prepare_tasks`` returns.

    Arguments
    ---------
    rows : mapping
        Task name -> split name -> manifest rows.
    skipped : mapping
        Reason -> the items left out for it (see the module docstring).
    extra : mapping, optional
        More ``task.json`` fields, the same for every task.
    classes : mapping, optional
        Task name -> its class names, for tasks whose classes are known
        only from the data (they replace ``TaskSpec.classes``).

    Example
    -------
    >>> Built({"toy": {"train": []}}, {"missing": []}).extra is None
    True
    """

    rows: Mapping[str, Mapping[str, Sequence[Mapping[str, object]]]]
    skipped: Mapping[str, Sequence[str]]
    extra: Mapping[str, object] | None = None
    classes: Mapping[str, Sequence[str]] | None = None


def skipped_fields(skipped: Mapping[str, Sequence[str]]) -> dict[str, dict]:
    """The ``skipped`` and ``skipped_paths`` fields of ``task.json``.

    Arguments
    ---------
    skipped : mapping
        Reason -> the items left out for it (paths, or IDs).

    Returns
    -------
    dict
        ``{"skipped": {reason: count}, "skipped_paths": {reason: [...]}}``,
        at most ``MAX_SKIPPED_PATHS`` items a reason in ``skipped_paths``.

    Example
    -------
    >>> skipped_fields({"missing": ["/d/a.wav"], "unreadable": []})
    {'skipped': {'missing': 1, 'unreadable': 0}, 'skipped_paths': {'missing': ['/d/a.wav'], 'unreadable': []}}
    """
    return {
        "skipped": {reason: len(items) for reason, items in skipped.items()},
        "skipped_paths": {reason: [str(i) for i in items[:MAX_SKIPPED_PATHS]]
                          for reason, items in skipped.items()},
    }


def prepare_tasks(
    save_folder: str | os.PathLike,
    tasks: Sequence[TaskSpec],
    inputs: Sequence[str | os.PathLike],
    options: Mapping[str, object],
    build: Callable[[], Built],
    outputs: Sequence[str | os.PathLike] = (),
) -> list[Path]:
    """Writes task folders unless they are up to date, then prints summaries.

    The folders (``<save_folder>/<task name>``) are up to date when all
    their files are newer than ``inputs`` and every ``task.json`` records
    the same ``options``. Otherwise ``build`` makes the rows of all the
    tasks in one pass and each folder is written by ``write_task``, with
    ``options``, ``skipped``, ``skipped_paths`` (see the module docstring)
    and the ``extra`` fields in its ``task.json``.

    Arguments
    ---------
    save_folder : path-like
        The parent of the task folders.
    tasks : sequence of TaskSpec
        The tasks written from one pass over the data.
    inputs : sequence of path-like
        The files (or folders) the manifests derive from.
    options : mapping
        JSON-serialisable preparation options.
    build : callable
        Returns a ``Built``; called only when the folders must be written.
    outputs : sequence of path-like
        More files ``build`` writes besides the task folders; the work is
        done again when one is absent or older than ``inputs``.

    Returns
    -------
    list of Path
        The task folders, in the order of ``tasks``.

    Example
    -------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> tasks = [TaskSpec("toy", "multiclass", "label", ("x",), ("accuracy",)),
    ...          TaskSpec("toy_group", "multiclass", "group", ("g",))]
    >>> rows = [{"ID": "a", "path": "/a.wav", "duration": 1.0, "label": "x",
    ...          "group": "g"}]
    >>> calls = []
    >>> def build():
    ...     calls.append(1)
    ...     splits = {s: rows for s in SPLITS}
    ...     return Built({"toy": splits, "toy_group": splits}, {"missing": []})
    >>> _ = prepare_tasks(d, tasks, [], {"k": 1}, build)  # doctest: +ELLIPSIS
    task toy (multiclass) in ...
    task toy_group (multiclass) in ...
    >>> folders = prepare_tasks(d, tasks, [], {"k": 1}, build)
    ... # doctest: +ELLIPSIS
    task toy ...
    >>> len(calls), read_task(folders[1])["skipped"]
    (1, {'missing': 0})
    """
    folders = [Path(save_folder) / task.name for task in tasks]
    outputs = [*outputs, *(folder / name for folder in folders
               for name in (*(f"{s}.csv" for s in SPLITS), "task.json"))]
    if is_up_to_date(outputs, inputs) and all(
            read_task(f).get("options") == dict(options) for f in folders):
        logger.info("%s up to date: preparation skipped",
                    ", ".join(map(str, folders)))
    else:
        built = build()
        extra = {"options": dict(options), **skipped_fields(built.skipped),
                 **(built.extra or {})}
        classes = built.classes or {}
        for task, folder in zip(tasks, folders):
            write_task(folder, task.name, task.task_type, task.target,
                       built.rows[task.name],
                       classes=classes.get(task.name, task.classes),
                       metrics=task.metrics, extra=extra, columns=task.columns)
    for folder in folders:
        print(summarize_task(folder))
    return folders


def prepare_parser(
    name: str, description: str, allow_missing: bool = True,
    data_folder: bool = True,
) -> argparse.ArgumentParser:
    """An argument parser with the options every preparation script has.

    Arguments
    ---------
    name : str
        The data set, as named to ``python -m muselq_sb.prepare``.
    description : str
        What the script does (its first docstring line).
    allow_missing : bool
        Add ``--allow_missing`` (for data sets whose files are listed).
    data_folder : bool
        Add the required ``--data_folder`` (for data sets downloaded by
        hand; not for those the script fetches itself).

    Returns
    -------
    argparse.ArgumentParser
        With ``--save_folder`` (and ``--data_folder``, ``--allow_missing``).

    Example
    -------
    >>> parser = prepare_parser("gtzan", "x")
    >>> parser.prog
    'python -m muselq_sb.prepare gtzan'
    >>> parser.parse_args(["--data_folder", "d", "--save_folder", "s"])
    Namespace(data_folder='d', save_folder='s', allow_missing=False)
    """
    parser = argparse.ArgumentParser(
        prog=f"python -m muselq_sb.prepare {name}", description=description)
    if data_folder:
        parser.add_argument("--data_folder", required=True,
                            help="the data set as downloaded (native layout)")
    parser.add_argument("--save_folder", required=True,
                        help="where the task folder(s) are written")
    if allow_missing:
        parser.add_argument("--allow_missing", action="store_true",
                            help="skip (and count) listed audio files that "
                                 "are absent instead of failing")
    return parser


class PrepareExit(SystemExit):
    """The exit (status 1) after ``report_error`` has printed the error."""


def report_error(err: PrepareError) -> int:
    """Prints ``err`` to stderr as one line and returns the exit status 1.

    Example
    -------
    >>> import contextlib, io
    >>> with contextlib.redirect_stderr(io.StringIO()) as err:
    ...     report_error(PrepareError("bad", "/d/a.csv", 2))
    1
    >>> err.getvalue()
    'error: /d/a.csv:2: bad\\n'
    """
    print(f"error: {err}", file=sys.stderr)
    return 1


def run_cli(
    parser: argparse.ArgumentParser,
    prepare: Callable[..., object],
    argv: Sequence[str] | None = None,
) -> int:
    """Parses ``argv`` and calls ``prepare(**args)``.

    A ``PrepareError`` is printed as one line and raises ``PrepareExit``
    (exit status 1), which the dispatcher ``python -m muselq_sb.prepare``
    turns into its return value.

    Arguments
    ---------
    parser : argparse.ArgumentParser
        Its options are the keyword arguments of ``prepare``.
    prepare : callable
        The preparation function.
    argv : sequence of str, optional
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success.

    Example
    -------
    >>> run_cli(prepare_parser("x", "x"), lambda **kw: None,
    ...         ["--data_folder", "d", "--save_folder", "s"])
    0
    >>> def fail(**kw):
    ...     raise PrepareError("no such folder", kw["data_folder"])
    >>> run_cli(prepare_parser("x", "x"), fail,
    ...         ["--data_folder", "d", "--save_folder", "s"])
    Traceback (most recent call last):
    ...
    muselq_sb.prepare.common.PrepareExit: 1
    """
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        prepare(**vars(args))
    except PrepareError as err:
        raise PrepareExit(report_error(err)) from None
    return 0


def split_items(rows: Sequence[dict], strata: str | None, seed: int, name: str,
                shares: Sequence[int] = SPLIT_SHARES) -> dict[str, list[dict]]:
    """Seeded train/valid/test split in ``shares``; stratified by ``strata``.

    Items are ordered by stratum (randomly within it) and dealt in cycles of
    ``sum(shares)`` (by default 10: 5 train, 1 valid, 4 test), so each class
    of a full cycle of items or more reaches every split.

    Example
    -------
    >>> rows = [{"ID": str(i), "label": "ab"[i % 2]} for i in range(20)]
    >>> parts = split_items(rows, "label", 0, "toy", shares=(5, 1, 4))
    >>> [len(parts[s]) for s in ("train", "valid", "test")]
    [10, 2, 8]
    """
    if len(shares) != 3 or min(shares) < 1:
        raise ValueError(f"split shares {tuple(shares)}: expected three positive "
                         "integers (train, valid, test)")
    rng = np.random.default_rng([seed, sum(map(ord, name))])
    noise = rng.random(len(rows))
    order = sorted(range(len(rows)), key=lambda i: (
        str(rows[i][strata]) if strata else "", noise[i]))
    n_train, n_valid, _ = shares
    splits: dict[str, list[dict]] = {"train": [], "valid": [], "test": []}
    for position, i in enumerate(order):
        cycle = position % sum(shares)
        split = ("train" if cycle < n_train else
                 "valid" if cycle < n_train + n_valid else "test")
        splits[split].append(rows[i])
    return splits
