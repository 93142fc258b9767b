"""Frame-level task folders (beats, chords) from audio + annotation files.

The user brings the audio (any format ``muselq_sb.dataio.audio`` reads)
and one annotation file per track (:mod:`muselq_sb.prepare.annotations`:
``.beats`` / ``.jams`` for beats, ``.lab`` / ``.jams`` for chords),
anywhere under the data folder (or ``--annotations_folder``). A track's
annotation is matched to its audio by name: ``song.beats``,
``song.jams`` and ``song.wav.jams`` all belong to ``song.<audio ext>``.
Every annotation is read and checked before anything is written (a bad one
stops the preparation with ``file:line:`` and nothing half-written); the
items are split with a seeded, shares-based split (``--split_shares``,
default 8/1/1) and written as one task folder whose manifests keep each
annotation as JSON (:mod:`muselq_sb.dataio.frame_labels`).

Authors
 * muselq_sb team
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from muselq_sb.dataio.audio import AUDIO_EXTENSIONS
from muselq_sb.dataio.frame_labels import (
    BEAT_CLASSES,
    BEAT_METRICS,
    CHORD_METRICS,
    MAJMIN_CLASSES,
    beats_cell,
    chords_cell,
)
from muselq_sb.prepare.annotations import BEAT_SUFFIXES, CHORD_SUFFIXES, read_annotation
from muselq_sb.prepare.common import (
    Built,
    ListedAudio,
    PrepareError,
    TaskSpec,
    listed_audio_rows,
    prepare_parser,
    prepare_tasks,
    require_dir,
    run_cli,
    split_items,
)

KINDS = {
    "beats": (BEAT_SUFFIXES, beats_cell, BEAT_CLASSES, BEAT_METRICS),
    "chords": (CHORD_SUFFIXES, chords_cell, MAJMIN_CLASSES, CHORD_METRICS),
}
DEFAULT_SHARES = (8, 1, 1)


def track_name(path: Path, suffixes: Sequence[str]) -> str:
    """The track an audio or annotation file belongs to (its name's stem).

    Example
    -------
    >>> track_name(Path("/d/blues.00001.wav.jams"), (".jams",))
    'blues.00001'
    >>> track_name(Path("/d/blues.00001.wav"), ())
    'blues.00001'
    """
    name = path.name
    for suffix in suffixes:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    stem, ext = os.path.splitext(name)
    return stem if ext.lower() in AUDIO_EXTENSIONS else name


def _index(folder: Path, suffixes: Sequence[str], what: str) -> dict[str, Path]:
    """Track name -> file, for the files with one of ``suffixes``."""
    found: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.suffix.lower() not in suffixes:
            continue
        name = track_name(path, suffixes if what != "audio" else ())
        if name in found:
            raise PrepareError(f"two {what} files for track {name!r} (the other is "
                               f"{found[name]}): expected one", path)
        found[name] = path
    return found


def collect_annotated(
    kind: str,
    data_folder: str | os.PathLike,
    annotations_folder: str | os.PathLike | None = None,
) -> list[ListedAudio]:
    """Every annotated track: its checked annotation cell and its audio path.

    Arguments
    ---------
    kind : str
        ``beats`` or ``chords``.
    data_folder : path-like
        Holds the audio (searched recursively).
    annotations_folder : path-like, optional
        Holds the annotation files (default: ``data_folder``).

    Returns
    -------
    list of ListedAudio
        Row ``{"ID": track, kind: cell}``, the audio path (possibly absent:
        ``listed_audio_rows`` decides), the annotation file and line 1.
    """
    suffixes, cell, _, _ = KINDS[kind]
    data_folder = require_dir(data_folder, "data folder")
    annotations_folder = require_dir(annotations_folder or data_folder,
                                     "annotations folder")
    annotations = _index(annotations_folder, suffixes, f"{kind} annotation")
    if not annotations:
        raise PrepareError(f"no {kind} annotation files ({', '.join(suffixes)}) "
                           "found", annotations_folder)
    audio = _index(data_folder, AUDIO_EXTENSIONS, "audio")
    items = []
    for name, path in sorted(annotations.items()):
        row = {"ID": name, kind: cell(read_annotation(path, kind))}
        audio_path = audio.get(name, data_folder / f"{name}.wav")
        items.append(ListedAudio(row, audio_path, path, 1))
    return items


def prepare_frame_task(
    kind: str,
    data_folder: str | os.PathLike,
    save_folder: str | os.PathLike,
    annotations_folder: str | os.PathLike | None = None,
    name: str | None = None,
    seed: int = 0,
    split_shares: Sequence[int] = DEFAULT_SHARES,
    allow_missing: bool = False,
) -> Path:
    """Writes ``<save_folder>/<name>`` for a beats or chords data set.

    Arguments
    ---------
    kind : str
        ``beats`` or ``chords``.
    data_folder, annotations_folder
        See :func:`collect_annotated`.
    save_folder : path-like
        Parent of the task folder.
    name : str, optional
        Task name (default: ``kind``); the probe reads
        ``hparams/downstream/<name>.yaml``.
    seed : int
        Seed of the split.
    split_shares : three ints
        Train / valid / test shares.
    allow_missing : bool
        Skip (and count) annotated tracks without audio instead of failing.

    Returns
    -------
    pathlib.Path
        The task folder.

    Example
    -------
    >>> import tempfile, numpy, soundfile
    >>> d = Path(tempfile.mkdtemp())
    >>> for k in range(3):
    ...     soundfile.write(d / f"t{k}.wav", numpy.zeros(8000), 8000)
    ...     _ = (d / f"t{k}.lab").write_text("0 1 C:maj\\n")
    >>> folder = prepare_frame_task("chords", d, d / "tasks", split_shares=(1, 1, 1))
    ... # doctest: +ELLIPSIS
    task chords (chords) in ...
    ...
    >>> (folder / "train.csv").read_text().splitlines()[1].split(",", 5)[5]
    '"[[0.0,1.0,""C:maj""]]"'
    """
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r}: expected one of {list(KINDS)}")
    _, _, classes, metrics = KINDS[kind]
    name = name or kind
    spec = TaskSpec(name, kind, kind, classes, metrics)
    options = {"kind": kind, "seed": seed, "split_shares": list(split_shares),
               "allow_missing": allow_missing,
               "annotations_folder": str(annotations_folder or data_folder)}

    def build() -> Built:
        items = collect_annotated(kind, data_folder, annotations_folder)
        rows, skipped = listed_audio_rows({"all": items}, allow_missing)
        if not rows["all"]:
            raise PrepareError("no annotated track has readable audio", data_folder)
        splits = split_items(rows["all"], None, seed, name, split_shares)
        return Built({name: splits}, skipped)

    inputs = [data_folder] + ([annotations_folder] if annotations_folder else [])
    [folder] = prepare_tasks(save_folder, [spec], inputs, options, build)
    return folder


def main_for(kind: str, argv: Sequence[str] | None = None) -> int:
    """``python -m muselq_sb.prepare <kind> ...`` for beats or chords."""
    suffixes = ", ".join(KINDS[kind][0])
    parser = prepare_parser(kind, f"Prepare a {kind} data set: audio files and one "
                            f"annotation file ({suffixes}) per track.")
    parser.add_argument("--annotations_folder", default=None,
                        help="where the annotation files are (default: data_folder)")
    parser.add_argument("--name", default=kind,
                        help="task name (hparams/downstream/<name>.yaml): %(default)s")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split_shares", default="8,1,1", metavar="TRAIN,VALID,TEST",
                        type=lambda s: [int(x) for x in s.split(",")])

    def prepare(**kwargs) -> Path:
        return prepare_frame_task(kind, **kwargs)

    return run_cli(parser, prepare, argv)
