"""Frame-level MIR: decoding frame posteriors into beats and chords, and scoring them.

Frame ``i`` of an encoder at ``frame_rate`` Hz stands for the time
``i / frame_rate`` (its centre: the mel frames are centred on their hop).

* Beats: a softmax over ``none / beat / downbeat`` per frame. The decoder
  (:func:`decode_beats`) is peak picking: the beat activation
  ``p(beat) + p(downbeat)`` is smoothed over three frames, local maxima above
  ``threshold`` that are at least ``min_interval`` seconds after the
  previous kept peak (the higher peak wins) are beats, and a beat is a
  downbeat when ``p(downbeat) > p(beat)`` at its frame. Scores come from
  ``mir_eval.beat``: F-measure (70 ms), CMLt and AMLt, and the downbeat
  F-measure (70 ms) on downbeats, each averaged over tracks
  (:func:`beat_scores`).
* Chords: 25 classes (``N`` and the major and minor triads on 12 roots,
  :data:`MAJMIN_CLASSES`). A reference label maps to its class the way
  ``mir_eval.chord.majmin`` compares chords (root and the first 8
  semitones of its bitmap); other qualities (dim, aug, sus...) are out of
  the vocabulary: not trained on, and left out of the majmin score by
  mir_eval. Frames are decoded by argmax into segments
  (:func:`frames_to_segments`); the scores are ``mir_eval``'s weighted
  chord symbol recall, ``majmin`` and ``root``, pooled over all tracks
  (every second of every track weighs the same, MIREX-style;
  :func:`chord_scores`).

Authors
 * muselq_sb team
"""
from __future__ import annotations

import warnings
from typing import Mapping, Sequence

import mir_eval
import numpy as np

from muselq_sb.dataio.frame_labels import CHORD_METRICS, FRAME_TASK_TYPES, MAJMIN_CLASSES

#: Target of a frame that no class fits (an out-of-vocabulary chord).
IGNORE = -100


def majmin_class(label: str) -> int:
    """The class index (into :data:`MAJMIN_CLASSES`) of a chord label.

    ``N`` is 0; a chord whose first 8 semitones are a major (minor) triad is
    ``<root>:maj`` (``<root>:min``), inversions and extensions included, as
    ``mir_eval.chord.majmin`` reads it; anything else (``X``, dim, aug,
    sus, power chords) is :data:`IGNORE`.

    Example
    -------
    >>> [MAJMIN_CLASSES[majmin_class(c)] for c in ("N", "G:7", "C#:min7/b3", "A")]
    ['N', 'G:maj', 'Db:min', 'A:maj']
    >>> majmin_class("B:dim"), majmin_class("X")
    (-100, -100)
    """
    root, bitmap, _ = mir_eval.chord.encode(label)
    if root < 0:
        return 0 if label.strip() == mir_eval.chord.NO_CHORD else IGNORE
    for offset, quality in ((1, "maj"), (13, "min")):
        if np.array_equal(bitmap[:8], mir_eval.chord.QUALITIES[quality][:8]):
            return offset + int(root) % 12
    return IGNORE


def _smooth(x: np.ndarray) -> np.ndarray:
    return np.convolve(np.pad(x, 1, mode="edge"), [0.25, 0.5, 0.25], "valid")


def decode_beats(
    posteriors: np.ndarray,
    frame_rate: float,
    threshold: float = 0.3,
    min_interval: float = 0.25,
) -> tuple[np.ndarray, np.ndarray]:
    """Beat and downbeat times of one track from its frame posteriors.

    Arguments
    ---------
    posteriors : np.ndarray
        [T, 3] probabilities of none, beat, downbeat.
    frame_rate : float
        Frames per second.
    threshold : float
        Least (smoothed) beat activation of a beat.
    min_interval : float
        Least time between two beats, in seconds (0.25: at most 240 BPM).

    Returns
    -------
    (beats, downbeats)
        Times in seconds (downbeats are a subset of beats).

    Example
    -------
    >>> p = np.tile([0.9, 0.05, 0.05], (20, 1))
    >>> p[[2, 10]], p[6], p[7] = [0.1, 0.1, 0.8], [0.1, 0.8, 0.1], [0.4, 0.5, 0.1]
    >>> decode_beats(p, frame_rate=10.0)
    (array([0.2, 0.6, 1. ]), array([0.2, 1. ]))
    """
    activation = _smooth(posteriors[:, 1] + posteriors[:, 2])
    padded = np.r_[-np.inf, activation, -np.inf]  # the first and last frames can peak
    peaks = np.flatnonzero((activation >= padded[:-2]) & (activation > padded[2:])
                           & (activation >= threshold))
    gap = min_interval * frame_rate
    kept: list[int] = []
    for frame in sorted(peaks, key=lambda f: -activation[f]):
        if all(abs(frame - k) >= gap for k in kept):
            kept.append(int(frame))
    frames = np.array(sorted(kept), dtype=np.int64)
    down = frames[posteriors[frames, 2] > posteriors[frames, 1]]
    return frames / frame_rate, down / frame_rate


def beat_scores(
    references: Sequence[tuple[np.ndarray, np.ndarray | None]],
    estimates: Sequence[tuple[np.ndarray, np.ndarray]],
    trim_seconds: float = 5.0,
) -> dict[str, float]:
    """Beat and downbeat scores of ``mir_eval.beat``, averaged over tracks.

    Arguments
    ---------
    references : sequence of (beats, downbeats)
        Per track the reference beat times and its downbeat times (None
        when the annotation has no beat positions: the track is left out of
        ``downbeat_f``).
    estimates : sequence of (beats, downbeats)
        Per track the decoded times (:func:`decode_beats`).
    trim_seconds : float
        Beats before this time are ignored (``mir_eval.beat.trim_beats``;
        MIREX: 5 s).

    Returns
    -------
    dict
        ``beat_f`` (F-measure, 70 ms), ``cmlt``, ``amlt`` and ``downbeat_f``
        (F-measure, 70 ms, over the tracks with downbeats; absent when none
        has them).

    Example
    -------
    Hand-computed: reference beats every 0.5 s from 0 to 3.5 s (8 beats),
    downbeats every 2 s. The estimate finds the first 6 beats 20 ms late
    (within 70 ms) and adds one at 3.75 s: precision 6/7, recall 6/8, F =
    2 * (6/7) * (6/8) / (6/7 + 6/8) = 0.8. Its downbeats: 0.02 (hit) and
    2.5 (miss): F = 0.5.

    >>> ref = np.arange(8) * 0.5
    >>> est = np.r_[ref[:6] + 0.02, 3.75]
    >>> s = beat_scores([(ref, ref[::4])], [(est, np.array([0.02, 2.5]))], 0.0)
    >>> round(s["beat_f"], 6), s["downbeat_f"]
    (0.8, 0.5)
    """
    if len(references) != len(estimates) or not references:
        raise ValueError(f"{len(references)} references for {len(estimates)} "
                         "estimates: expected one of each per track, at least one")
    trim = lambda x: mir_eval.beat.trim_beats(np.asarray(x, float), trim_seconds)  # noqa: E731
    f, cmlt, amlt, down = [], [], [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mir_eval warns on empty or short lists
        for (ref, ref_down), (est, est_down) in zip(references, estimates):
            ref, est = trim(ref), trim(est)
            f.append(mir_eval.beat.f_measure(ref, est))
            _, cml_t, _, aml_t = mir_eval.beat.continuity(ref, est)
            cmlt.append(cml_t)
            amlt.append(aml_t)
            if ref_down is not None:
                down.append(mir_eval.beat.f_measure(trim(ref_down), trim(est_down)))
    scores = {"beat_f": float(np.mean(f)), "cmlt": float(np.mean(cmlt)),
              "amlt": float(np.mean(amlt))}
    if down:
        scores["downbeat_f"] = float(np.mean(down))
    return scores


def frames_to_segments(
    classes: Sequence[int], frame_rate: float
) -> tuple[np.ndarray, list[str]]:
    """Chord segments of a track from its per-frame classes.

    Frame ``i`` covers ``[(i - 0.5) / frame_rate, (i + 0.5) / frame_rate)``
    (the first starts at 0); consecutive frames of one class are merged.

    Example
    -------
    >>> intervals, labels = frames_to_segments([0, 1, 1, 13], frame_rate=2.0)
    >>> intervals.tolist(), labels
    ([[0.0, 0.25], [0.25, 1.25], [1.25, 1.75]], ['N', 'C:maj', 'C:min'])
    """
    classes = np.asarray(classes, dtype=np.int64)
    if classes.size == 0:
        return np.zeros((0, 2)), []
    change = np.flatnonzero(np.diff(classes)) + 1
    starts = np.r_[0, change]
    stops = np.r_[change, classes.size]
    intervals = np.stack([np.maximum(starts - 0.5, 0.0), stops - 0.5], axis=1) / frame_rate
    return intervals, [MAJMIN_CLASSES[c] for c in classes[starts]]


def chord_scores(
    references: Sequence[tuple[np.ndarray, Sequence[str]]],
    estimates: Sequence[tuple[np.ndarray, Sequence[str]]],
) -> dict[str, float]:
    """Weighted chord symbol recall (majmin and root), pooled over tracks.

    Per track, the estimate is fitted to the reference's time span
    (``mir_eval.util.adjust_intervals``, ``N`` outside), the two are merged
    into common segments, and each segment is compared with
    ``mir_eval.chord.majmin`` / ``root``; the score is the duration-weighted
    mean over the segments of every track together (segments that a
    comparison leaves out, such as dim chords for majmin, weigh nothing).

    Example
    -------
    Hand-computed: reference C (0-2 s), A:min7 (2-3 s), B:dim (3-4 s);
    estimate C:maj (0-1.5 s), A:maj (1.5-4 s). majmin: C right for 1.5 s,
    wrong for 0.5 s, A:min7 vs A:maj wrong for 1 s, B:dim left out:
    1.5 / 3 = 0.5. root: 1.5 s of C, 1 s of A: 2.5 / 4 = 0.625.

    >>> ref = (np.array([[0, 2], [2, 3], [3, 4.]]), ["C", "A:min7", "B:dim"])
    >>> est = (np.array([[0, 1.5], [1.5, 4.]]), ["C:maj", "A:maj"])
    >>> chord_scores([ref], [est])
    {'majmin': 0.5, 'root': 0.625}
    """
    if len(references) != len(estimates) or not references:
        raise ValueError(f"{len(references)} references for {len(estimates)} "
                         "estimates: expected one of each per track, at least one")
    totals = {name: [0.0, 0.0] for name in CHORD_METRICS}  # credit, weight
    for (ref_int, ref_lab), (est_int, est_lab) in zip(references, estimates):
        ref_int = np.asarray(ref_int, dtype=float)
        est_int, est_lab = mir_eval.util.adjust_intervals(
            np.asarray(est_int, dtype=float).reshape(-1, 2), list(est_lab),
            ref_int.min(), ref_int.max(), mir_eval.chord.NO_CHORD,
            mir_eval.chord.NO_CHORD)
        intervals, refs, ests = mir_eval.util.merge_labeled_intervals(
            ref_int, list(ref_lab), est_int, est_lab)
        durations = mir_eval.util.intervals_to_durations(intervals)
        for name in CHORD_METRICS:
            comparison = getattr(mir_eval.chord, name)(refs, ests)
            used = comparison >= 0
            totals[name][0] += float((comparison[used] * durations[used]).sum())
            totals[name][1] += float(durations[used].sum())
    return {name: credit / weight if weight > 0 else 0.0
            for name, (credit, weight) in totals.items()}


def frame_task_metrics(
    task: Mapping,
    posteriors: Sequence[np.ndarray],
    references: Sequence,
    frame_rate: float,
    options: Mapping,
) -> dict[str, float]:
    """Decodes every track of a frame-level task and scores the split.

    Arguments
    ---------
    task : mapping
        ``task.json`` (its ``type``: ``beats`` or ``chords``).
    posteriors : sequence of np.ndarray
        Per track [T, C] class probabilities of its valid frames.
    references : sequence
        Per track the reference annotation: ``(beats, downbeats or None)``
        for beats, ``(intervals, labels)`` for chords.
    frame_rate : float
        Frames per second.
    options : mapping
        ``beat_threshold``, ``min_beat_interval`` and ``beat_trim_seconds``
        (beats).

    Returns
    -------
    dict
        :func:`beat_scores` or :func:`chord_scores`.

    Example
    -------
    Six frames at 2 Hz, C:maj then C:min: the segments are
    [0, 1.25) and [1.25, 2.75) s against a reference change at 1.5 s and
    end at 3 s, so 0.5 s of 3 s are wrong: 2.5 / 3.

    >>> p = np.eye(25)[[1, 1, 1, 13, 13, 13]]
    >>> ref = (np.array([[0.0, 1.5], [1.5, 3.0]]), ["C:maj", "C:min"])
    >>> s = frame_task_metrics({"type": "chords"}, [p], [ref], 2.0, {})
    >>> round(s["majmin"], 4), round(s["root"], 4)
    (0.8333, 0.9167)
    """
    if task["type"] == "beats":
        estimates = [decode_beats(p, frame_rate, options["beat_threshold"],
                                  options["min_beat_interval"]) for p in posteriors]
        return beat_scores(references, estimates, options["beat_trim_seconds"])
    if task["type"] == "chords":
        estimates = [frames_to_segments(p.argmax(axis=1), frame_rate) for p in posteriors]
        return chord_scores(references, estimates)
    raise ValueError(f"task {task.get('name')!r}: type {task['type']!r} is not a "
                     f"frame-level task; expected one of {list(FRAME_TASK_TYPES)}")
