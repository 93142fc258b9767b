"""MagnaTagATune: the native layout -> the ``mtat`` top-50 tagging task folder.

Layout read::

    <data_folder>/annotations_final.csv     tab-separated (despite the name),
                                            quoted fields, header row:
                                            clip_id, 188 tag columns (0/1), mp3_path
    <data_folder>/mp3/<0-9a-f>/<artist>-<album>-<nn>-<title>-<start>-<end>.mp3

(``mp3/`` is where ``unzip -d mp3`` puts the audio; the folders ``0``..``f``
directly in ``data_folder`` are found too, or pass ``audio_folder``.)

Split: the conventional 12:1:3 folder rule used by MARBLE and jukemir: first
character of ``mp3_path`` ``0``-``9``, ``a``, ``b`` -> train, ``c`` -> valid,
``d``, ``e``, ``f`` -> test. Labels: the 50 most frequent tags, in MARBLE v2's
order (``TOP50``), ``;``-joined in the ``tags`` column. As in MARBLE v1, clips
with no top-50 tag are kept unless ``drop_untagged``; the three known corrupt
MP3s (clip ids 35644, 55753, 57881) fail the header read and are skipped and
counted like any unreadable file. One row per whole (~29.1 s) clip.

Authors
 * muselq_sb team
"""
from __future__ import annotations

import csv
import logging
import os
import re
from pathlib import Path
from typing import Sequence

from muselq_sb.prepare.common import (
    Built,
    ListedAudio,
    PrepareError,
    TaskSpec,
    listed_audio_rows,
    open_text,
    prepare_parser,
    prepare_tasks,
    require_file,
    run_cli,
)

logger = logging.getLogger(__name__)

TOP50 = (
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic",
    "rock", "fast", "piano", "ambient", "beat", "violin", "vocal", "synth",
    "female", "indian", "opera", "male", "singing", "vocals", "no vocals",
    "harpsichord", "loud", "quiet", "flute", "woman", "male vocal", "no vocal",
    "pop", "soft", "sitar", "solo", "man", "classic", "choir", "voice",
    "new age", "dance", "male voice", "female vocal", "beats", "harp", "cello",
    "no voice", "weird", "country", "metal", "female voice", "choral",
)
TASK = TaskSpec("mtat", "multilabel", "tags", TOP50, ("roc_auc", "ap"))
ANNOTATIONS = "annotations_final.csv"
_MP3_PATH = re.compile(r"^[0-9a-f]/[^/]+\.mp3$")


def split_of(mp3_path: str) -> str:
    """The split of a clip from its folder (the 12:1:3 rule).

    Example
    -------
    >>> [split_of(p) for p in ("0/x.mp3", "b/x.mp3", "c/x.mp3", "f/x.mp3")]
    ['train', 'train', 'valid', 'test']
    """
    folder = int(mp3_path[0], 16)
    return "train" if folder < 12 else "valid" if folder == 12 else "test"


def read_annotations(path: Path) -> list[tuple[int, str, list[str], str]]:
    """Reads ``annotations_final.csv``.

    Arguments
    ---------
    path : Path
        The tab-separated annotation file.

    Returns
    -------
    list of (line, clip_id, top-50 tags in ``TOP50`` order, mp3_path)

    Example
    -------
    >>> import tempfile
    >>> f = Path(tempfile.mkdtemp()) / ANNOTATIONS
    >>> head = ["clip_id", *TOP50, "mp3_path"]
    >>> row = ["2", "1", *["0"] * 48, "1", "f/a-b-01-c-0-29.mp3"]
    >>> _ = f.write_text("\\n".join("\\t".join(f'"{v}"' for v in r)
    ...                             for r in (head, row)))
    >>> read_annotations(f)
    [(2, '2', ['guitar', 'choral'], 'f/a-b-01-c-0-29.mp3')]
    """
    require_file(path, "MTAT annotations")
    with open_text(path, newline="") as f:
        reader = csv.reader(f, delimiter="\t")
        header = next(reader, [])
        missing = [c for c in ("clip_id", *TOP50, "mp3_path") if c not in header]
        if missing:
            raise PrepareError(
                f"header lacks columns {missing}; expected a tab-separated "
                "header 'clip_id <188 tags> mp3_path'", path, 1,
            )
        tag_index = [header.index(t) for t in TOP50]
        id_index, path_index = header.index("clip_id"), header.index("mp3_path")
        value_index = [i for i in range(len(header)) if i not in (id_index, path_index)]
        clips = []
        for fields in reader:
            line = reader.line_num
            if not fields:
                continue
            if len(fields) != len(header):
                raise PrepareError(
                    f"expected {len(header)} tab-separated fields, found "
                    f"{len(fields)}", path, line,
                )
            clip_id, mp3_path = fields[id_index], fields[path_index]
            values = {fields[i] for i in value_index}
            if not clip_id.isdigit() or not _MP3_PATH.match(mp3_path):
                raise PrepareError(
                    f"bad clip_id {clip_id!r} or mp3_path {mp3_path!r}; "
                    "expected an integer and '<0-f>/<name>.mp3'", path, line,
                )
            if values - {"0", "1"}:
                raise PrepareError(
                    f"tag values must be 0 or 1, found {sorted(values)}",
                    path, line,
                )
            tags = [t for t, i in zip(TOP50, tag_index) if fields[i] == "1"]
            clips.append((line, clip_id, tags, mp3_path))
    return clips


def find_audio_folder(data_folder: Path) -> Path:
    """``data_folder/mp3`` if it exists, else ``data_folder`` itself.

    Example
    -------
    >>> find_audio_folder(Path("/nonexistent")).as_posix()
    '/nonexistent'
    """
    unzipped = data_folder / "mp3"
    return unzipped if unzipped.is_dir() else data_folder


def prepare_mtat(
    data_folder: str | os.PathLike,
    save_folder: str | os.PathLike,
    audio_folder: str | os.PathLike | None = None,
    drop_untagged: bool = False,
    allow_missing: bool = False,
) -> Path:
    """Prepares the ``mtat`` task folder (top-50 tags, 12:1:3 split).

    Arguments
    ---------
    data_folder : path-like
        Holds ``annotations_final.csv`` and the unzipped ``mp3/`` folder.
    save_folder : path-like
        The task folder is ``<save_folder>/mtat``.
    audio_folder : path-like, optional
        The folder with ``0``..``f`` (default: ``data_folder/mp3`` or
        ``data_folder``).
    drop_untagged : bool
        Leave out clips without any top-50 tag (MARBLE keeps them).
    allow_missing : bool
        Skip (and count) annotated clips whose mp3 is absent.

    Returns
    -------
    Path
        The task folder.

    Example
    -------
    >>> import tempfile, numpy, soundfile
    >>> d = Path(tempfile.mkdtemp())
    >>> head = ["clip_id", *TOP50, "mp3_path"]
    >>> row = ["2", "1", *["0"] * 49, "c/a-b-01-c-0-29.mp3"]
    >>> _ = (d / ANNOTATIONS).write_text(
    ...     "\\n".join("\\t".join(r) for r in (head, row)))
    >>> (d / "mp3" / "c").mkdir(parents=True)
    >>> soundfile.write(d / "mp3" / row[-1], numpy.zeros(1600), 16000)
    >>> folder = prepare_mtat(d, d / "out")  # doctest: +ELLIPSIS
    task mtat (multilabel) in ...
    >>> (folder / "valid.csv").read_text().splitlines()[1]  # doctest: +ELLIPSIS
    '2,.../mp3/c/a-b-01-c-0-29.mp3,0.1,,,guitar'
    """
    data_folder = Path(data_folder)
    annotations = require_file(data_folder / ANNOTATIONS, "MTAT annotations")
    audio_root = Path(audio_folder) if audio_folder else find_audio_folder(data_folder)
    options = {
        "data_folder": os.path.abspath(data_folder),
        "audio_folder": os.path.abspath(audio_root),
        "drop_untagged": drop_untagged,
        "allow_missing": allow_missing,
    }

    def build() -> Built:
        listed: dict[str, list[ListedAudio]] = {"train": [], "valid": [], "test": []}
        untagged = []
        for line, clip_id, tags, mp3_path in read_annotations(annotations):
            if drop_untagged and not tags:
                untagged.append(os.path.abspath(audio_root / mp3_path))
                continue
            listed[split_of(mp3_path)].append(ListedAudio(
                {"ID": clip_id, "tags": tags}, audio_root / mp3_path,
                annotations, line,
            ))
        rows, skipped = listed_audio_rows(listed, allow_missing)
        for split, split_rows in rows.items():
            absent = set(TOP50).difference(*(r["tags"] for r in split_rows))
            if absent:  # macro ROC-AUC is undefined for such tags
                logger.warning("mtat %s: no clip has the tags %s", split,
                               [t for t in TOP50 if t in absent])
        return Built({TASK.name: rows}, {**skipped, "untagged": untagged})

    [folder] = prepare_tasks(save_folder, [TASK], [annotations], options, build)
    return folder


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``python -m muselq_sb.prepare mtat --data_folder D ...``."""
    parser = prepare_parser("mtat", __doc__.splitlines()[0])
    parser.add_argument("--audio_folder", default=None,
                        help="folder with 0..f (default: DATA_FOLDER/mp3)")
    parser.add_argument("--drop_untagged", action="store_true",
                        help="leave out clips without any top-50 tag")
    return run_cli(parser, prepare_mtat, argv)


if __name__ == "__main__":
    raise SystemExit(main())
