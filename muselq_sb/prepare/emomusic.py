"""Prepares EmoMusic ("1000 songs", MediaEval 2013) for emotion regression.

Native layout (``clips_45sec.tar.gz`` and ``annotations.tar.gz`` unpacked
side by side; the annotation CSVs sit at the archive top level)::

    <data_folder>/clips_45seconds/<song_id>.mp3
    <annotation_folder>/songs_info.csv         song_id, file_name, ...,
                                               Mediaeval 2013 set
    <annotation_folder>/static_annotations.csv song_id, mean_arousal,
                                               std_arousal, mean_valence,
                                               std_valence

The CSVs are comma separated with spaces after the commas; every field is
stripped. The split is the one of jukemir and MARBLE (744 unique songs:
504 train / 115 valid / 125 test), shipped as package data in
``muselq_sb/resources/splits/emomusic/marble_split.tsv``.

Task ``emomusic`` (type ``regression``): targets ``arousal`` and ``valence``
are the static mean ratings (1-9 scale), z-normalised with the mean and
standard deviation (ddof 0) of the development (train + valid) songs as in
jukemir/MARBLE; the statistics are stored in ``task.json`` under
``target_stats``. R² is unchanged by this affine map. By default each row
covers the first 30 s of the 45 s clip (``start`` 0, ``stop`` 30), the crop
of MARBLE v1; ``crop_seconds=None`` keeps the whole clip.

Authors
 * muselq_sb team
"""
from __future__ import annotations

import csv
import os
import statistics
from pathlib import Path
from typing import Mapping, Sequence

from muselq_sb.dataio.manifest import SPLITS
from muselq_sb.prepare.common import (
    SPLITS_DIR,
    Built,
    ListedAudio,
    PrepareError,
    TaskSpec,
    listed_audio_rows,
    prepare_parser,
    prepare_tasks,
    read_text,
    require_file,
    run_cli,
)

TARGETS = ("arousal", "valence")
METRICS = ("r2_arousal", "r2_valence")
TASK = TaskSpec("emomusic", "regression", TARGETS, metrics=METRICS)
SPLIT_LIST = SPLITS_DIR / "emomusic" / "marble_split.tsv"
# MediaEval 2013 set of each split of the list (checked against songs_info).
MEDIAEVAL_SET = {"train": "development", "valid": "development",
                 "test": "evaluation"}
SONGS_INFO_COLUMNS = ("song_id", "file_name", "Mediaeval 2013 set")
STATIC_COLUMNS = ("song_id", "mean_arousal", "mean_valence")
RATING_RANGE = (1.0, 9.0)


def read_split_list(path: str | os.PathLike = SPLIT_LIST) -> dict[str, str]:
    """Reads a ``song_id<TAB>split`` list (with header) into a dict.

    Arguments
    ---------
    path : path-like
        The split list; the default is the MARBLE list shipped with the
        package.

    Returns
    -------
    dict
        song id (str) -> ``train`` / ``valid`` / ``test``.

    Example
    -------
    >>> split = read_split_list()
    >>> len(split), split["3"]
    (744, 'test')
    """
    path = require_file(path, "EmoMusic split list")
    split: dict[str, str] = {}
    lines = read_text(path).splitlines()
    if not lines or lines[0].split("\t") != ["song_id", "split"]:
        raise PrepareError("expected the header 'song_id<TAB>split'", path, 1)
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split("\t")
        if (len(fields) != 2 or not fields[0].isdigit()
                or fields[1] not in SPLITS):
            raise PrepareError(
                "expected 'song_id<TAB>split' with a numeric song_id and "
                f"split in {list(SPLITS)},"
                f" got {line!r}", path, number,
            )
        if fields[0] in split:
            raise PrepareError(f"duplicate song_id {fields[0]}", path, number)
        split[fields[0]] = fields[1]
    return split


def read_annotation_csv(
    path: str | os.PathLike, columns: Sequence[str]
) -> dict[str, tuple[int, dict[str, str]]]:
    """Reads an EmoMusic annotation CSV keyed by its ``song_id`` column.

    Fields are stripped (the files have spaces after the commas); both LF
    and CRLF line endings are accepted; blank lines are ignored.

    Arguments
    ---------
    path : path-like
        The CSV file.
    columns : sequence of str
        Columns the header must contain (``song_id`` among them).

    Returns
    -------
    dict
        song id -> (line number, row as a dict of stripped strings).

    Example
    -------
    >>> import tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "static_annotations.csv")
    >>> _ = open(f, "w").write("song_id, mean_arousal\\r\\n2, 3.1\\r\\n")
    >>> read_annotation_csv(f, ["song_id", "mean_arousal"])
    {'2': (2, {'song_id': '2', 'mean_arousal': '3.1'})}
    """
    path = require_file(path, "EmoMusic annotation file")
    rows: dict[str, tuple[int, dict[str, str]]] = {}
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
        reader = csv.reader(f, skipinitialspace=True)
        header = [h.strip() for h in next(reader, [])]
        missing = [c for c in columns if c not in header]
        if missing:
            raise PrepareError(
                f"header lacks columns {missing} (found {header})", path, 1
            )
        for fields in reader:
            line = reader.line_num
            if not any(field.strip() for field in fields):
                continue
            if len(fields) != len(header):
                raise PrepareError(
                    f"expected {len(header)} comma-separated fields, got "
                    f"{len(fields)}", path, line,
                )
            row = {h: v.strip() for h, v in zip(header, fields)}
            if row["song_id"] in rows:
                raise PrepareError(
                    f"duplicate song_id {row['song_id']}", path, line
                )
            rows[row["song_id"]] = (line, row)
    return rows


def _rating(
    row: Mapping[str, str], column: str, path: Path, line: int
) -> float:
    """A static rating, checked to be a number on the 1-9 scale."""
    try:
        value = float(row[column])
    except ValueError:
        raise PrepareError(
            f"{column} must be a number, got {row[column]!r}", path, line
        ) from None
    low, high = RATING_RANGE
    if not low <= value <= high:
        raise PrepareError(
            f"{column} = {value} is outside the rating scale [{low}, {high}]",
            path, line,
        )
    return value


def _listed_songs(
    data_folder: Path, annotation_folder: Path, split_list: Path,
    allow_missing: bool,
) -> tuple[dict[str, list[ListedAudio]], list[str]]:
    """The songs of the split list with their raw ratings, by split, and
    the songs skipped for lack of an annotation row (``allow_missing``)."""
    info_path = annotation_folder / "songs_info.csv"
    static_path = annotation_folder / "static_annotations.csv"
    info = read_annotation_csv(info_path, SONGS_INFO_COLUMNS)
    static = read_annotation_csv(static_path, STATIC_COLUMNS)
    listed: dict[str, list[ListedAudio]] = {s: [] for s in SPLITS}
    unannotated = []
    for song, split in sorted(read_split_list(split_list).items(),
                              key=lambda item: int(item[0])):
        lacking = [path for rows, path in ((info, info_path),
                                           (static, static_path))
                   if song not in rows]
        if lacking:
            if not allow_missing:
                raise PrepareError(
                    f"no row for song {song} of the split list", lacking[0])
            unannotated.append(song)
            continue
        line, row = info[song]
        if row["Mediaeval 2013 set"] != MEDIAEVAL_SET[split]:
            raise PrepareError(
                f"song {song} is in the MediaEval {row['Mediaeval 2013 set']!r}"
                f" set but the split list puts it in {split!r} (expected "
                f"{MEDIAEVAL_SET[split]!r})", info_path, line,
            )
        static_line, ratings = static[song]
        listed[split].append(ListedAudio(
            {"ID": song, **{t: _rating(ratings, f"mean_{t}", static_path,
                                       static_line) for t in TARGETS}},
            data_folder / "clips_45seconds" / row["file_name"], info_path, line,
        ))
    return listed, unannotated


def _normalize(rows: Mapping[str, list[dict]]) -> dict[str, dict[str, float]]:
    """Z-normalises the targets in place with development-set statistics."""
    stats = {}
    development = rows["train"] + rows["valid"]
    for target in TARGETS:
        values = [r[target] for r in development] or [0.0]
        mean = statistics.fmean(values)
        std = statistics.pstdev(values) or 1.0
        for row in (r for split_rows in rows.values() for r in split_rows):
            row[target] = (row[target] - mean) / std
        stats[target] = {"mean": mean, "std": std}
    return stats


def _crop(rows: Mapping[str, list[dict]], crop_seconds: float | None) -> None:
    """Restricts every row to its first ``crop_seconds`` (in place)."""
    if crop_seconds is None:
        return
    for row in (r for split_rows in rows.values() for r in split_rows):
        row["start"] = 0.0
        row["stop"] = min(crop_seconds, row["duration"])
        row["duration"] = row["stop"]


def prepare_emomusic(
    data_folder: str | os.PathLike,
    save_folder: str | os.PathLike,
    annotation_folder: str | os.PathLike | None = None,
    crop_seconds: float | None = 30.0,
    normalize: bool = True,
    allow_missing: bool = False,
    split_list: str | os.PathLike = SPLIT_LIST,
) -> Path:
    """Writes the ``emomusic`` task folder from the native EmoMusic layout.

    Arguments
    ---------
    data_folder : path-like
        Folder holding ``clips_45seconds/``.
    save_folder : path-like
        The task folder is written to ``<save_folder>/emomusic``.
    annotation_folder : path-like, optional
        Folder of ``songs_info.csv`` and ``static_annotations.csv``;
        defaults to ``data_folder``.
    crop_seconds : float, optional
        Each row covers the first ``crop_seconds`` of its clip (MARBLE v1:
        30); ``None`` keeps the whole 45 s clip.
    normalize : bool
        Z-normalise the targets with development-set statistics.
    allow_missing : bool
        Skip (and count) songs of the split list that have no annotation
        row or no audio file instead of raising ``PrepareError``.
    split_list : path-like
        The ``song_id<TAB>split`` list (default: the MARBLE split).

    Returns
    -------
    Path
        The task folder.

    Example
    -------
    >>> import tempfile
    >>> prepare_emomusic(tempfile.mkdtemp(), tempfile.mkdtemp())
    Traceback (most recent call last):
    ...
    muselq_sb.prepare.common.PrepareError: .../songs_info.csv: EmoMusic annotation file not found
    """
    data_folder = Path(data_folder).resolve()
    annotation_folder = Path(annotation_folder or data_folder).resolve()
    split_list = Path(split_list).resolve()
    options = {
        "data_folder": str(data_folder),
        "annotation_folder": str(annotation_folder),
        "split_list": str(split_list), "crop_seconds": crop_seconds,
        "normalize": normalize, "allow_missing": allow_missing,
    }
    # The audio folder's mtime changes when a clip is added or removed.
    inputs = [annotation_folder / "songs_info.csv",
              annotation_folder / "static_annotations.csv", split_list,
              data_folder / "clips_45seconds"]

    def build() -> Built:
        listed, unannotated = _listed_songs(data_folder, annotation_folder,
                                            split_list, allow_missing)
        rows, skipped = listed_audio_rows(listed, allow_missing)
        stats = _normalize(rows) if normalize else None
        _crop(rows, crop_seconds)
        return Built({TASK.name: rows},
                     {**skipped, "missing": unannotated + skipped["missing"]},
                     {"target_stats": stats, "crop_seconds": crop_seconds})

    [folder] = prepare_tasks(save_folder, [TASK], inputs, options, build)
    return folder


def _crop_seconds(text: str) -> float | None:
    """``--crop_seconds``: a number of seconds, 0 meaning the whole clip."""
    return float(text) or None


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m muselq_sb.prepare emomusic --data_folder X
    --save_folder Y [--annotation_folder A] [--crop_seconds S]
    [--no_normalize] [--allow_missing]``.

    Arguments
    ---------
    argv : sequence of str, optional
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success (a ``PrepareError`` exits with status 1).

    Example
    -------
    >>> main(["--help"])
    Traceback (most recent call last):
    ...
    SystemExit: 0
    """
    parser = prepare_parser("emomusic", __doc__.split("\n")[0])
    parser.add_argument("--annotation_folder", default=None,
                        help="folder of the annotation CSVs (default: "
                        "data_folder)")
    parser.add_argument("--crop_seconds", type=_crop_seconds, default=30.0,
                        help="keep the first S seconds of each clip "
                        "(default 30, MARBLE v1); 0 keeps the whole clip")
    parser.add_argument("--no_normalize", dest="normalize",
                        action="store_false",
                        help="keep the raw 1-9 ratings as targets")
    return run_cli(parser, prepare_emomusic, argv)


if __name__ == "__main__":
    raise SystemExit(main())
