"""GiantSteps key: the native layouts -> the ``giantsteps_key`` task folder.

Layouts read (the two git repositories, audio fetched by their
``audio_dl.sh``), by default both inside ``data_folder``::

    giantsteps-mtg-key-dataset/annotations/annotations.txt
        TSV "ID  MANUAL KEY  C": sharp spelling ("D# minor"), trailing
        spaces, "-"/blank/"A/E major" for unknown or ambiguous keys
    giantsteps-mtg-key-dataset/audio/<ID>.LOFI.mp3        train + valid
    giantsteps-key-dataset/annotations/key/<ID>.LOFI.key  "C minor", one line
    giantsteps-key-dataset/audio/<ID>.LOFI.mp3            test

Split (jukemir = MARBLE): GiantSteps-MTG-key songs with confidence 2 and a
single key, split train/valid by an artist hash (923 / 236 songs), and the
604 GiantSteps key songs as test. Membership comes from the shipped list
``muselq_sb/resources/splits/giantsteps/marble_split.tsv``; labels are read
from the annotations, mapped onto the 24 class names (``KEYS``, flat
spelling, valid mir_eval key strings) and checked against the list.

The manifests hold **whole previews** (one row per song, mostly 120 s, empty
start/stop, ``group`` = the song id): the protocol's 30-s clips (predictions
averaged per song) are cut by the embedding extractor. MARBLE drops an
incomplete last clip; an extractor keeping windows >= 1 s keeps it.

Authors
 * muselq_sb team
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

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
    tsv_rows,
)

TONICS = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")
MODES = ("major", "minor")
KEYS = tuple(f"{tonic} {mode}" for mode in MODES for tonic in TONICS)
TASK = TaskSpec("giantsteps_key", "multiclass", "label", KEYS,
                ("key_weighted", "accuracy"), columns=("group",))
SPLIT_FILE = SPLITS_DIR / "giantsteps" / "marble_split.tsv"
SPLIT_HEADER = ["id", "source", "split", "key", "n_30s_clips"]
SOURCES = {"train": "giantsteps-mtg-key", "valid": "giantsteps-mtg-key",
           "test": "giantsteps-key"}
MTG_HEADER = ["ID", "MANUAL KEY", "C"]
_NATURALS = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}
_ACCIDENTALS = {"": 0, "#": 1, "b": -1}


def parse_key(text: str) -> str:
    """Maps a key annotation onto its class name in ``KEYS``.

    The tonic is case-insensitive and may be spelled with a sharp or a flat
    (enharmonics map to the flat spelling); the mode is major or minor.

    Arguments
    ---------
    text : str
        E.g. ``"C minor"``, ``"d# minor"``, ``"B major "``.

    Returns
    -------
    str
        The class name, e.g. ``"Eb minor"``.

    Raises
    ------
    ValueError
        For anything else (``"-"``, ``"A/E major"``, ``"H major"`` ...).

    Example
    -------
    >>> parse_key("d# minor"), parse_key("B major "), parse_key("C Minor")
    ('Eb minor', 'B major', 'C minor')
    >>> parse_key("F minor / G# major")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unparseable key 'F minor / G# major'; expected ...
    """
    parts = text.split()
    if len(parts) == 2:
        tonic, mode = parts[0].lower(), parts[1].lower()
        if (mode in MODES and tonic[:1] in _NATURALS
                and tonic[1:] in _ACCIDENTALS):
            semitone = _NATURALS[tonic[0]] + _ACCIDENTALS[tonic[1:]]
            return f"{TONICS[semitone % 12]} {mode}"
    raise ValueError(
        f"unparseable key {text!r}; expected '<tonic> major|minor' with a "
        "tonic among C, C#, Db, ... B"
    )


def _key_or_error(text: str, path: Path, line: int) -> str:
    try:
        return parse_key(text)
    except ValueError as err:
        raise PrepareError(str(err), path, line) from None


def read_split_list(path: Path) -> list[tuple[int, str, str, str]]:
    """Reads the split list: ``(line, id, split, key)`` per song.

    Example
    -------
    >>> songs = read_split_list(SPLIT_FILE)
    >>> songs[0], len(songs)
    ((2, '5061', 'train', 'Eb minor'), 1763)
    """
    songs = []
    for line, (song_id, source, split, key, _) in tsv_rows(
            path, SPLIT_HEADER, "GiantSteps split list"):
        if SOURCES.get(split) != source or not song_id.isdigit():
            raise PrepareError(
                f"bad id {song_id!r}, split {split!r} or source {source!r}; "
                f"expected an integer id and one of {SOURCES}", path, line,
            )
        songs.append((line, song_id, split, _key_or_error(key, path, line)))
    return songs


def read_mtg_annotations(path: Path) -> dict[str, tuple[int, str, str]]:
    """Reads ``annotations.txt``: id -> (line, MANUAL KEY, confidence C).

    Example
    -------
    >>> import tempfile
    >>> f = Path(tempfile.mkdtemp()) / "annotations.txt"
    >>> _ = f.write_text("ID\\tMANUAL KEY\\tC\\n5061\\tD# minor\\t2\\n")
    >>> read_mtg_annotations(f)
    {'5061': (2, 'D# minor', '2')}
    """
    rows = {}
    for line, (song_id, key, confidence) in tsv_rows(
            path, MTG_HEADER, "GiantSteps-MTG-key annotations"):
        if song_id in rows:
            raise PrepareError(f"duplicate ID {song_id}", path, line)
        rows[song_id] = (line, key, confidence.strip())
    return rows


def prepare_giantsteps(
    data_folder: str | os.PathLike,
    save_folder: str | os.PathLike,
    key_dataset: str | os.PathLike | None = None,
    mtg_key_dataset: str | os.PathLike | None = None,
    split_file: str | os.PathLike | None = None,
    allow_missing: bool = False,
) -> Path:
    """Prepares the ``giantsteps_key`` task folder.

    Arguments
    ---------
    data_folder : path-like
        Holds ``giantsteps-key-dataset/`` and ``giantsteps-mtg-key-dataset/``.
    save_folder : path-like
        The task folder is ``<save_folder>/giantsteps_key``.
    key_dataset, mtg_key_dataset : path-like, optional
        The two repositories, when they are not inside ``data_folder``.
    split_file : path-like, optional
        The split list (default: the shipped MARBLE split).
    allow_missing : bool
        Skip (and count) listed songs whose mp3 is absent.

    Returns
    -------
    Path
        The task folder.

    Example
    -------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> prepare_giantsteps(d, d / "out")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    muselq_sb.prepare.common.PrepareError: .../annotations.txt: ... not found
    """
    data_folder = Path(data_folder)
    key_root = Path(key_dataset or data_folder / "giantsteps-key-dataset")
    mtg_root = Path(mtg_key_dataset or data_folder / "giantsteps-mtg-key-dataset")
    mtg_annotations = require_file(
        mtg_root / "annotations" / "annotations.txt",
        "GiantSteps-MTG-key annotations")
    split_file = require_file(split_file or SPLIT_FILE, "GiantSteps split list")
    songs = read_split_list(split_file)
    key_files = {song_id: key_root / "annotations" / "key" / f"{song_id}.LOFI.key"
                 for _, song_id, split, _ in songs if split == "test"}
    options = {
        "key_dataset": os.path.abspath(key_root),
        "mtg_key_dataset": os.path.abspath(mtg_root),
        "split_file": os.path.abspath(split_file),
        "allow_missing": allow_missing,
    }

    def label(song_id: str, split: str, mtg: dict) -> str:
        """The annotated key of a listed song (PrepareError if unusable)."""
        if split == "test":
            path = require_file(key_files[song_id], "GiantSteps key annotation")
            return _key_or_error(read_text(path).strip(), path, 1)
        if song_id not in mtg:
            raise PrepareError(f"song {song_id} of the split list {split_file} "
                               "is not annotated", mtg_annotations)
        line, key, confidence = mtg[song_id]
        if confidence != "2":
            raise PrepareError(f"song {song_id} is listed but its confidence "
                               f"C is {confidence!r}, not 2", mtg_annotations, line)
        return _key_or_error(key, mtg_annotations, line)

    def build() -> Built:
        mtg = read_mtg_annotations(mtg_annotations)
        listed: dict[str, list[ListedAudio]] = {"train": [], "valid": [], "test": []}
        for line, song_id, split, listed_key in songs:
            key = label(song_id, split, mtg)
            if key != listed_key:
                raise PrepareError(
                    f"song {song_id} is annotated {key!r} but the split list "
                    f"says {listed_key!r} (different annotation version?)",
                    split_file, line,
                )
            root = key_root if split == "test" else mtg_root
            listed[split].append(ListedAudio(
                {"ID": song_id, "label": key, "group": song_id},
                root / "audio" / f"{song_id}.LOFI.mp3", split_file, line,
            ))
        rows, skipped = listed_audio_rows(listed, allow_missing)
        return Built({TASK.name: rows}, skipped)

    [folder] = prepare_tasks(
        save_folder, [TASK], [mtg_annotations, split_file, *key_files.values()],
        options, build)
    return folder


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``python -m muselq_sb.prepare giantsteps --data_folder D ...``."""
    parser = prepare_parser("giantsteps", __doc__.splitlines()[0])
    parser.add_argument("--key_dataset", default=None,
                        help="giantsteps-key-dataset (default: inside DATA_FOLDER)")
    parser.add_argument("--mtg_key_dataset", default=None,
                        help="giantsteps-mtg-key-dataset (default: inside DATA_FOLDER)")
    parser.add_argument("--split_file", default=None,
                        help="split list (default: the shipped MARBLE split)")
    return run_cli(parser, prepare_giantsteps, argv)


if __name__ == "__main__":
    raise SystemExit(main())
