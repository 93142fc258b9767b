"""Targets of the frame-level tasks: annotation cells -> per-frame classes.

A prepared frame-level task keeps each item's annotation in one CSV cell
as JSON (written by ``muselq_sb.prepare.annotations``):

* ``beats``: ``[[time, position], ...]``, ``position`` the beat's place in
  its bar (1 = downbeat) or null when the annotation has none;
* ``chords``: ``[[start, end, label], ...]`` with Harte labels.

Frame ``i`` stands for the time ``i / frame_rate``. A beat marks the frame
nearest to it as ``beat`` or ``downbeat``; a frame takes the majmin class
of the chord segment holding its time (``N`` outside every segment, and
:data:`~muselq_sb.downstream.frame_metrics.IGNORE` for a chord out of the
vocabulary).

Authors
 * muselq_sb team
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from muselq_sb.downstream.frame_metrics import FRAME_TASK_TYPES, majmin_class
from muselq_sb.downstream.targets import TargetError


def parse_annotation(task_type: str, cell: str, path: str | Path, line: int):
    """The reference annotation of one manifest row.

    Arguments
    ---------
    task_type : str
        ``beats`` or ``chords``.
    cell : str
        The row's annotation cell (JSON).
    path : path-like
        The manifest (for errors).
    line : int
        The row's line in it (for errors).

    Returns
    -------
    tuple
        ``(beats, downbeats)`` (downbeats None when positions are absent),
        or ``(intervals [n, 2], labels)``.

    Example
    -------
    >>> parse_annotation("beats", "[[0.5, 1], [1.0, 2], [1.5, 1]]", "t.csv", 2)
    (array([0.5, 1. , 1.5]), array([0.5, 1.5]))
    >>> parse_annotation("chords", '[[0, 1.5, "C"], [1.5, 2, "N"]]', "t.csv", 3)[1]
    ['C', 'N']
    >>> parse_annotation("beats", "[[1.0, 1], [0.5, 2]]", "t.csv", 4)
    Traceback (most recent call last):
    ...
    muselq_sb.downstream.targets.TargetError: t.csv:4: beat times must increase (0.5 after 1.0)
    """
    try:
        entries = json.loads(cell)
    except json.JSONDecodeError as err:
        raise TargetError(f"{path}:{line}: {task_type} cell is not JSON ({err})") from None
    if not isinstance(entries, list):
        raise TargetError(f"{path}:{line}: expected a JSON list of {task_type}")
    try:
        return _parse_entries(task_type, entries, path, line)
    except (ValueError, TypeError, IndexError, KeyError) as err:
        if isinstance(err, TargetError):
            raise
        raise TargetError(f"{path}:{line}: malformed {task_type} annotation "
                          f"({type(err).__name__}: {err})") from None


def _parse_entries(task_type: str, entries: list, path: str | Path, line: int):
    if task_type == "beats":
        times = np.array([e[0] for e in entries], dtype=float)
        if np.any(np.diff(times) <= 0):
            k = int(np.flatnonzero(np.diff(times) <= 0)[0])
            raise TargetError(f"{path}:{line}: beat times must increase "
                              f"({times[k + 1]} after {times[k]})")
        positions = [e[1] for e in entries]
        if entries and all(p is not None for p in positions):
            return times, times[np.array(positions) == 1]
        return times, None
    if task_type == "chords":
        intervals = np.array([e[:2] for e in entries], dtype=float).reshape(-1, 2)
        if len(intervals) == 0 or np.any(intervals[:, 1] <= intervals[:, 0]):
            raise TargetError(f"{path}:{line}: expected chord segments with "
                              "start < end, at least one")
        return intervals, [str(e[2]) for e in entries]
    raise TargetError(f"{path}:{line}: unknown frame task type {task_type!r}; "
                      f"expected one of {list(FRAME_TASK_TYPES)}")


def frame_targets(task_type: str, reference, n_frames: int, frame_rate: float) -> torch.Tensor:
    """Per-frame classes [n_frames] of one track's reference annotation.

    Beats: 0 none, 1 beat, 2 downbeat (a track without positions has
    beats only); chords: the majmin class of the segment at each frame's
    time.

    Example
    -------
    >>> ref = (np.array([0.0, 0.5, 1.04]), np.array([0.0]))
    >>> frame_targets("beats", ref, 8, frame_rate=4.0).tolist()
    [2, 0, 1, 0, 1, 0, 0, 0]
    >>> ref = (np.array([[0.0, 0.5], [0.5, 1.0]]), ["C:min", "F#"])
    >>> frame_targets("chords", ref, 5, frame_rate=4.0).tolist()
    [13, 13, 7, 7, 0]
    """
    if task_type == "beats":
        beats, downbeats = reference
        targets = torch.zeros(n_frames, dtype=torch.long)
        frames = np.round(np.asarray(beats) * frame_rate).astype(np.int64)
        keep = (frames >= 0) & (frames < n_frames)
        targets[torch.from_numpy(frames[keep])] = 1
        if downbeats is not None:
            frames = np.round(np.asarray(downbeats) * frame_rate).astype(np.int64)
            targets[torch.from_numpy(frames[(frames >= 0) & (frames < n_frames)])] = 2
        return targets
    intervals, labels = reference
    times = np.arange(n_frames) / frame_rate
    classes = np.array([majmin_class(label) for label in labels], dtype=np.int64)
    inside = (times[:, None] >= intervals[None, :, 0]) & (times[:, None] < intervals[None, :, 1])
    segment = np.where(inside.any(axis=1), inside.argmax(axis=1), -1)
    return torch.from_numpy(np.where(segment >= 0, classes[segment], 0))


def encode_references(
    task: Mapping, rows: Sequence[Mapping[str, str]], csv_path: str | Path
) -> list:
    """The reference annotation of every row (errors name ``csv_path:line``).

    Example
    -------
    >>> rows = [{"ID": "a", "chords": '[[0, 2, "C:maj"]]'}, {"ID": "b"}]
    >>> encode_references({"type": "chords", "target": "chords"}, rows, "x.csv")
    Traceback (most recent call last):
    ...
    muselq_sb.downstream.targets.TargetError: x.csv:3: row lacks the annotation column 'chords'
    """
    column = task["target"]
    references = []
    for i, row in enumerate(rows):
        if not row.get(column):
            raise TargetError(f"{csv_path}:{i + 2}: row lacks the annotation "
                              f"column {column!r}")
        references.append(parse_annotation(task["type"], row[column], csv_path, i + 2))
    return references
