"""GTZAN genre: the native layout -> the fault-filtered ``gtzan`` task folder.

Layouts read (the first one found under ``data_folder``)::

    genres/<genre>/<genre>.000NN.wav           original archive (.au in old copies)
    Data/genres_original/<genre>/<genre>.000NN.wav     Kaggle copy (used by MARBLE)
    genres_original/<genre>/...  or  <genre>/...       the same, unpacked one level up

Split: the fault-filtered lists of Kereliuk, Sturm & Larsen (2015), shipped in
``muselq_sb/resources/splits/gtzan/`` (443 / 197 / 290 tracks). As MARBLE v1
does, ``jazz/jazz.00054.wav`` (corrupt in the Kaggle copy) is always left out
of train, so a complete copy gives 442 / 197 / 290 rows. A listed file is
found with the ``.wav`` or the ``.au`` extension. One row per whole 30-s
file; ``label`` = the genre folder; metric: accuracy.

Authors
 * muselq_sb team
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Sequence

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
    require_dir,
    require_file,
    run_cli,
)

CLASSES = (
    "blues", "classical", "country", "disco", "hiphop",
    "jazz", "metal", "pop", "reggae", "rock",
)
EXCLUDED = ("jazz/jazz.00054.wav",)
GENRE_ROOTS = ("genres", "Data/genres_original", "genres_original", ".")
DISTRIBUTED_AS = (".wav", ".au")  # a listed .wav may be the original .au
LIST_FILES = {s: f"{s}_filtered.txt" for s in SPLITS}
_ENTRY = re.compile(r"^([a-z]+)/([a-z]+)\.(\d{5})\.wav$")
TASK = TaskSpec("gtzan", "multiclass", "label", CLASSES, ("accuracy",))


def find_genres_folder(data_folder: str | os.PathLike) -> Path:
    """The folder holding the ten ``<genre>/`` folders of a GTZAN copy.

    Example
    -------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> (d / "Data" / "genres_original" / "blues").mkdir(parents=True)
    >>> find_genres_folder(d).relative_to(d).as_posix()
    'Data/genres_original'
    """
    data_folder = require_dir(data_folder, "GTZAN data folder")
    for rel in GENRE_ROOTS:
        root = data_folder / rel
        if any((root / genre).is_dir() for genre in CLASSES):
            return root
    raise PrepareError(
        "no GTZAN genre folders found; expected one of "
        f"{[f'{r}/<genre>/' for r in GENRE_ROOTS]}", data_folder,
    )


def read_split_list(
    path: Path, genres_folder: Path
) -> list[ListedAudio]:
    """Reads one fault-filtered list (``blues/blues.00029.wav`` per line).

    Entries of ``EXCLUDED`` are left out; blank lines are ignored. The audio
    path is the ``.wav`` file or, when only that exists, the ``.au`` one.

    Example
    -------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "l.txt").write_text("pop/pop.00001.wav\\njazz/jazz.00054.wav\\n")
    >>> [(i.row, i.line) for i in read_split_list(d / "l.txt", d)]
    [({'ID': 'pop.00001', 'label': 'pop'}, 1)]
    """
    items = []
    text = read_text(require_file(path, "GTZAN split list"))
    for line_no, line in enumerate(text.splitlines(), start=1):
        entry = line.strip()
        if not entry or entry in EXCLUDED:
            continue
        match = _ENTRY.match(entry)
        if match is None or match.group(1) != match.group(2):
            raise PrepareError(
                f"malformed entry {entry!r}; expected "
                "'<genre>/<genre>.000NN.wav'", path, line_no,
            )
        genre = match.group(1)
        if genre not in CLASSES:
            raise PrepareError(
                f"unknown genre {genre!r}; expected one of {list(CLASSES)}",
                path, line_no,
            )
        wav = genres_folder / entry
        found = [wav.with_suffix(e) for e in DISTRIBUTED_AS
                 if wav.with_suffix(e).is_file()]
        items.append(ListedAudio(
            {"ID": wav.stem, "label": genre}, found[0] if found else wav,
            path, line_no,
        ))
    return items


def prepare_gtzan(
    data_folder: str | os.PathLike,
    save_folder: str | os.PathLike,
    split_folder: str | os.PathLike | None = None,
    allow_missing: bool = False,
) -> Path:
    """Prepares the ``gtzan`` task folder (fault-filtered split).

    Arguments
    ---------
    data_folder : path-like
        A GTZAN copy (original archive or Kaggle layout).
    save_folder : path-like
        The task folder is ``<save_folder>/gtzan``.
    split_folder : path-like, optional
        Folder with ``{train,valid,test}_filtered.txt``; default: the
        shipped fault-filtered lists.
    allow_missing : bool
        Skip (and count) listed files absent from ``data_folder``.

    Returns
    -------
    Path
        The task folder.

    Example
    -------
    >>> import tempfile, numpy, soundfile
    >>> d = Path(tempfile.mkdtemp())
    >>> (d / "genres" / "pop").mkdir(parents=True)
    >>> soundfile.write(d / "genres/pop/pop.00001.wav", numpy.zeros(800), 8000)
    >>> folder = prepare_gtzan(d, d / "out", allow_missing=True)
    ... # doctest: +ELLIPSIS +NORMALIZE_WHITESPACE
    task gtzan (multiclass) in ...
      train 0 items 0.00 h
      valid 0 items 0.00 h
      test 1 items 0.00 h
      10 classes: blues, classical, country, disco, hiphop, jazz, metal, ...
      skipped: 928 missing, 0 unreadable, 1 excluded
    >>> from muselq_sb.dataio.manifest import read_task
    >>> read_task(folder)["splits"]
    {'train': 0, 'valid': 0, 'test': 1}
    """
    split_folder = Path(split_folder or SPLITS_DIR / "gtzan")
    lists = {s: split_folder / name for s, name in LIST_FILES.items()}
    for path in lists.values():
        require_file(path, "GTZAN split list")
    options = {
        "data_folder": os.path.abspath(data_folder),
        "split_folder": os.path.abspath(split_folder),
        "allow_missing": allow_missing,
    }

    def build() -> Built:
        genres_folder = find_genres_folder(data_folder)
        listed = {s: read_split_list(p, genres_folder) for s, p in lists.items()}
        rows, skipped = listed_audio_rows(listed, allow_missing)
        excluded = [os.path.abspath(genres_folder / e) for e in EXCLUDED]
        return Built({TASK.name: rows}, {**skipped, "excluded": excluded})

    [folder] = prepare_tasks(save_folder, [TASK], list(lists.values()),
                             options, build)
    return folder


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``python -m muselq_sb.prepare gtzan --data_folder D ...``."""
    parser = prepare_parser("gtzan", __doc__.splitlines()[0])
    parser.add_argument("--split_folder", default=None,
                        help="folder with {train,valid,test}_filtered.txt "
                             "(default: the shipped fault-filtered lists)")
    return run_cli(parser, prepare_gtzan, argv)


if __name__ == "__main__":
    raise SystemExit(main())
