"""The vocabulary and manifest cells of the frame-level tasks (beats, chords).

A prepared frame-level task keeps each item's annotation in one CSV cell as
JSON, so that a task folder stays a manifest plus ``task.json`` (written
atomically, fingerprinted by the embedding cache like any other):

* type ``beats``, column ``beats``: ``[[time, position], ...]`` (seconds,
  increasing; ``position`` is the beat's place in its bar, 1 = downbeat, or
  null when the annotation has none);
* type ``chords``, column ``chords``: ``[[start, end, label], ...]``
  (seconds; Harte labels as ``mir_eval.chord`` reads them).

Authors
 * muselq_sb team
"""
from __future__ import annotations

import json
from typing import Sequence

FRAME_TASK_TYPES = ("beats", "chords")
BEAT_CLASSES = ("none", "beat", "downbeat")
BEAT_METRICS = ("beat_f", "downbeat_f", "cmlt", "amlt")
CHORD_METRICS = ("majmin", "root")
PITCH_NAMES = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")
#: ``N``, then the major and the minor triad on each of the 12 roots.
MAJMIN_CLASSES = ("N",) + tuple(f"{p}:maj" for p in PITCH_NAMES) + tuple(
    f"{p}:min" for p in PITCH_NAMES)


def beats_cell(beats: Sequence[tuple[float, int | None]]) -> str:
    """The manifest cell of a beat annotation (times rounded to 0.1 ms).

    Example
    -------
    >>> beats_cell([(0.5, 1), (1.0, 2), (1.5, None)])
    '[[0.5,1],[1.0,2],[1.5,null]]'
    """
    return json.dumps([[round(float(t), 4), None if p is None else int(p)]
                       for t, p in beats], separators=(",", ":"))


def chords_cell(segments: Sequence[tuple[float, float, str]]) -> str:
    """The manifest cell of a chord annotation (times rounded to 0.1 ms).

    Example
    -------
    >>> chords_cell([(0.0, 2.0, "C:maj"), (2.0, 3.5, "A:min7")])
    '[[0.0,2.0,"C:maj"],[2.0,3.5,"A:min7"]]'
    """
    return json.dumps([[round(float(s), 4), round(float(e), 4), str(label)]
                       for s, e, label in segments], separators=(",", ":"))
