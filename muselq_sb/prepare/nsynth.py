"""Prepares NSynth for instrument-family and pitch classification.

Native layout (the three ``nsynth-*.jsonwav.tar.gz`` archives unpacked)::

    <data_folder>/nsynth-train/examples.json
    <data_folder>/nsynth-train/audio/<note_str>.wav    4 s, 16 kHz, mono
    <data_folder>/nsynth-valid/...
    <data_folder>/nsynth-test/...

``examples.json`` is one JSON object keyed by ``note_str``; every entry has
(among others) ``pitch`` (MIDI 0-127), ``instrument_family`` (int) and
``instrument_family_str``. The official folders are the splits (289,205 /
12,678 / 4,096 notes).

Two tasks are written from one pass over the data:

* ``nsynth_instrument``: ``label`` = family name, 11 classes in the official
  index order (``synth_lead`` only occurs in train);
* ``nsynth_pitch``: ``pitch`` = MIDI number as a class name, 128 classes
  ``"0"`` .. ``"127"`` (label = pitch, no offset).

Both use ``accuracy``. A note listed in ``examples.json`` whose wav is absent
(a partial download) raises ``PrepareError`` unless ``allow_missing=True``,
which skips and counts it; unreadable wavs are logged and skipped.

Authors
 * muselq_sb team
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

from muselq_sb.dataio.manifest import SPLITS
from muselq_sb.prepare.common import (
    Built,
    PrepareError,
    TaskSpec,
    audio_duration,
    prepare_parser,
    prepare_tasks,
    require_file,
    run_cli,
)

FAMILIES = ("bass", "brass", "flute", "guitar", "keyboard", "mallet", "organ",
            "reed", "string", "synth_lead", "vocal")
PITCHES = tuple(str(p) for p in range(128))
METRICS = ("accuracy",)
INSTRUMENT_TASK = TaskSpec("nsynth_instrument", "multiclass", "label",
                           FAMILIES, METRICS)
PITCH_TASK = TaskSpec("nsynth_pitch", "multiclass", "pitch", PITCHES, METRICS)
# The fields of an examples.json entry the tasks use (the rest is dropped
# while parsing, which keeps the 289k-entry train file small in memory).
FIELDS = ("pitch", "instrument_family", "instrument_family_str")


def split_folder(data_folder: str | os.PathLike, split: str) -> Path:
    """The folder of one official split, e.g. ``<data_folder>/nsynth-valid``.

    Example
    -------
    >>> split_folder("/data/nsynth", "valid").as_posix()
    '/data/nsynth/nsynth-valid'
    """
    return Path(data_folder) / f"nsynth-{split}"


def _line_of(path: Path, key: str) -> int | None:
    """Line of ``path`` where entry ``key`` starts (for error messages)."""
    needle = json.dumps(key)
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            if needle in line:
                return number
    return None


def read_examples(path: str | os.PathLike) -> dict[str, dict]:
    """Loads an ``examples.json`` and checks the fields the tasks use.

    Arguments
    ---------
    path : path-like
        The ``examples.json`` of one split.

    Returns
    -------
    dict
        ``note_str`` -> entry, every entry with a valid ``pitch`` and a
        known ``instrument_family_str`` matching ``instrument_family``.

    Example
    -------
    >>> import tempfile, os, json
    >>> f = os.path.join(tempfile.mkdtemp(), "examples.json")
    >>> entry = {"pitch": 60, "instrument_family": 4,
    ...          "instrument_family_str": "keyboard"}
    >>> _ = open(f, "w").write(json.dumps({"keyboard_acoustic_004-060-025":
    ...                                    entry}))
    >>> read_examples(f)["keyboard_acoustic_004-060-025"]["pitch"]
    60
    >>> entry["instrument_family_str"] = "kazoo"
    >>> _ = open(f, "w").write(json.dumps({"k-060-025": entry}, indent=1))
    >>> read_examples(f)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    muselq_sb.prepare.common.PrepareError: ...examples.json:2: entry 'k-060-025': unknown instrument_family_str 'kazoo'; expected one of [...]
    """
    path = require_file(path, "NSynth examples.json")
    try:
        with open(path, encoding="utf-8") as f:
            examples = json.load(f, object_hook=_slim)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise PrepareError(f"not valid JSON ({err})", path,
                           getattr(err, "lineno", None)) from None
    if not isinstance(examples, dict):
        raise PrepareError("expected one JSON object keyed by note_str", path,
                           1)
    for key, entry in examples.items():
        problem = _check_entry(entry)
        if problem:
            raise PrepareError(f"entry {key!r}: {problem}", path,
                               _line_of(path, key))
    return examples


def _slim(obj: dict) -> dict:
    """Keeps only ``FIELDS`` of an entry (other objects pass unchanged)."""
    if any(k in obj for k in FIELDS):
        return {k: obj[k] for k in FIELDS if k in obj}
    return obj


def _check_entry(entry: object) -> str | None:
    """What is wrong with one ``examples.json`` entry, or None."""
    if not isinstance(entry, dict):
        return "expected a JSON object"
    missing = [k for k in FIELDS if k not in entry]
    if missing:
        return f"lacks fields {missing}"
    pitch, family = entry["pitch"], entry["instrument_family_str"]
    if type(pitch) is not int or not 0 <= pitch < len(PITCHES):
        return f"pitch must be an integer in 0..127, got {pitch!r}"
    if family not in FAMILIES:
        return (f"unknown instrument_family_str {family!r}; expected one of "
                f"{list(FAMILIES)}")
    if entry["instrument_family"] != FAMILIES.index(family):
        return (f"instrument_family {entry['instrument_family']!r} does not "
                f"match instrument_family_str {family!r}")
    return None


def _split_rows(
    folder: Path, allow_missing: bool, skipped: dict[str, list[str]]
) -> list[dict]:
    """Rows of one split folder; adds the skipped wavs to ``skipped``.

    Unlike ``listed_audio_rows`` (one ``stat`` a file, the line known up
    front) the presence test uses one directory listing and the line of a
    missing entry is only looked up for the error.
    """
    examples_path = folder / "examples.json"
    examples = read_examples(examples_path)
    audio_folder = folder / "audio"
    present = ({e.name for e in os.scandir(audio_folder)}
               if audio_folder.is_dir() else set())
    rows = []
    for key, entry in examples.items():
        audio = audio_folder / f"{key}.wav"
        if audio.name not in present:
            if not allow_missing:
                raise PrepareError(
                    f"entry {key!r}: audio file {audio} not found (partial "
                    "download? allow_missing=True skips such notes)",
                    examples_path, _line_of(examples_path, key),
                )
            skipped["missing"].append(str(audio))
            continue
        duration = audio_duration(audio)
        if duration is None:
            skipped["unreadable"].append(str(audio))
            continue
        rows.append({
            "ID": key, "path": str(audio), "duration": duration,
            "label": entry["instrument_family_str"],
            "pitch": str(entry["pitch"]),
        })
    return rows


def prepare_nsynth(
    data_folder: str | os.PathLike,
    save_folder: str | os.PathLike,
    allow_missing: bool = False,
) -> tuple[Path, Path]:
    """Writes the ``nsynth_instrument`` and ``nsynth_pitch`` task folders.

    Arguments
    ---------
    data_folder : path-like
        Folder holding ``nsynth-train``, ``nsynth-valid``, ``nsynth-test``.
    save_folder : path-like
        The tasks are written to ``<save_folder>/nsynth_instrument`` and
        ``<save_folder>/nsynth_pitch``.
    allow_missing : bool
        Skip (and count) notes whose wav is absent instead of raising
        ``PrepareError``.

    Returns
    -------
    tuple of Path
        The instrument and the pitch task folders.

    Example
    -------
    >>> import tempfile
    >>> prepare_nsynth(tempfile.mkdtemp(), tempfile.mkdtemp())
    Traceback (most recent call last):
    ...
    muselq_sb.prepare.common.PrepareError: .../nsynth-train/examples.json: NSynth examples.json not found
    """
    data_folder = Path(data_folder).resolve()
    options = {"data_folder": str(data_folder), "allow_missing": allow_missing}
    # An audio folder's mtime changes when a wav is added or removed.
    inputs = [split_folder(data_folder, s) / name for s in SPLITS
              for name in ("examples.json", "audio")]

    def build() -> Built:
        skipped: dict[str, list[str]] = {"missing": [], "unreadable": []}
        splits = {s: _split_rows(split_folder(data_folder, s), allow_missing,
                                 skipped) for s in SPLITS}
        return Built({INSTRUMENT_TASK.name: splits, PITCH_TASK.name: splits},
                     skipped)

    instrument, pitch = prepare_tasks(
        save_folder, [INSTRUMENT_TASK, PITCH_TASK], inputs, options, build)
    return instrument, pitch


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m muselq_sb.prepare nsynth --data_folder X
    --save_folder Y [--allow_missing]``.

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
    parser = prepare_parser("nsynth", __doc__.split("\n")[0])
    return run_cli(parser, prepare_nsynth, argv)


if __name__ == "__main__":
    raise SystemExit(main())
