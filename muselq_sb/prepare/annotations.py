"""Beat and chord annotation files, read and checked line by line.

Layouts read:

* ``.beats`` (GTZAN-Rhythm, Ballroom, Hainsworth style): one beat a line,
  ``time [position]`` separated by spaces or tabs (position: the beat's
  place in its bar, 1 = downbeat; either every line has one or none does);
* ``.lab`` (Isophonics, Billboard style): ``start end label`` a line,
  Harte labels as ``mir_eval.chord`` reads them;
* ``.jams``: the first annotation of namespace ``beat`` (value: position
  or null) or ``chord`` / ``chord_harte`` (value: label). JAMS files are
  JSON; they are parsed with :mod:`json` (the ``jams`` package is not a
  dependency), keeping each observation's line for the errors.

Every reader returns plain tuples or raises ``PrepareError`` naming
``file:line:`` and what was expected. Blank lines and ``#`` comments of the
text layouts are skipped.

Authors
 * muselq_sb team
"""
from __future__ import annotations

import bisect
import json
import json.decoder
import json.scanner
import math
import os
from pathlib import Path

import mir_eval

from muselq_sb.prepare.common import PrepareError, open_text

BEAT_SUFFIXES = (".beats", ".jams")
CHORD_SUFFIXES = (".lab", ".jams")
JAMS_NAMESPACES = {"beats": ("beat",), "chords": ("chord", "chord_harte")}


def _lines(path: str | os.PathLike):
    """``(line number, fields)`` of the non-blank, non-comment lines."""
    with open_text(path) as f:
        for line_no, line in enumerate(f, start=1):
            text = line.split("#", 1)[0].strip()
            if text:
                yield line_no, text.split()


def _time(text: str, path, line: int, what: str = "time") -> float:
    try:
        value = float(text)
    except ValueError:
        raise PrepareError(f"{what} {text!r} is not a number", path, line) from None
    if not math.isfinite(value) or value < 0:
        raise PrepareError(f"{what} {text!r}: expected a time >= 0 s", path, line)
    return value


def _position(value, path, line: int) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not (number >= 1 and number == int(number)):
        raise PrepareError(f"beat position {value!r}: expected an integer >= 1 "
                           "(1 = downbeat)", path, line)
    return int(number)


def _check_beats(beats: list[tuple[float, int | None, int]], path) -> list:
    """Increasing times, positions on every beat or none."""
    if not beats:
        raise PrepareError("no beats: expected at least one", path)
    for (t0, _, _), (t1, _, line) in zip(beats, beats[1:]):
        if t1 <= t0:
            raise PrepareError(f"beat at {t1} s after one at {t0} s: expected "
                               "increasing times", path, line)
    with_position = [p is not None for _, p, _ in beats]
    if any(with_position) and not all(with_position):
        line = beats[with_position.index(not with_position[0])][2]
        raise PrepareError("some beats have a position and some do not: expected "
                           "all or none", path, line)
    return [(t, p) for t, p, _ in beats]


def read_beats_file(path: str | os.PathLike) -> list[tuple[float, int | None]]:
    """The beats of a ``.beats`` text file: ``[(time, position or None)]``.

    Example
    -------
    >>> import tempfile
    >>> f = Path(tempfile.mkdtemp()) / "a.beats"
    >>> _ = f.write_text("0.50 1\\n1.00\\t2\\n\\n1.5 3\\n")
    >>> read_beats_file(f)
    [(0.5, 1), (1.0, 2), (1.5, 3)]
    >>> _ = f.write_text("0.5 1\\n0.4 2\\n")
    >>> read_beats_file(f)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    muselq_sb.prepare.common.PrepareError: ...a.beats:2: beat at 0.4 s after one at 0.5 s: expected increasing times
    """
    beats = []
    for line, fields in _lines(path):
        if len(fields) > 2:
            raise PrepareError(f"{len(fields)} fields: expected 'time [position]'",
                               path, line)
        position = _position(fields[1], path, line) if len(fields) == 2 else None
        beats.append((_time(fields[0], path, line), position, line))
    return _check_beats(beats, path)


def _check_chords(segments: list[tuple[float, float, str, int]], path) -> list:
    """start < end, no overlap, labels mir_eval reads."""
    if not segments:
        raise PrepareError("no chord segments: expected at least one", path)
    previous_end = 0.0
    for start, end, label, line in segments:
        if end <= start:
            raise PrepareError(f"segment {start} - {end} s: expected start < end",
                               path, line)
        if start < previous_end - 1e-6:
            raise PrepareError(f"segment starts at {start} s, before the previous "
                               f"one ends ({previous_end} s): expected sorted, "
                               "non-overlapping segments", path, line)
        try:
            mir_eval.chord.encode(label)
        except mir_eval.chord.InvalidChordException as err:
            raise PrepareError(f"chord label {label!r} is not a Harte label "
                               f"mir_eval reads ({err})", path, line) from None
        previous_end = end
    return [(s, e, label) for s, e, label, _ in segments]


def read_lab_file(path: str | os.PathLike) -> list[tuple[float, float, str]]:
    """The chord segments of a ``.lab`` file: ``[(start, end, label)]``.

    Example
    -------
    >>> import tempfile
    >>> f = Path(tempfile.mkdtemp()) / "a.lab"
    >>> _ = f.write_text("0.0 0.4 N\\n0.4\\t2.1\\tE:min7\\n")
    >>> read_lab_file(f)
    [(0.0, 0.4, 'N'), (0.4, 2.1, 'E:min7')]
    >>> _ = f.write_text("0.0 0.4 N\\n0.4 2.1 E:mni\\n")
    >>> read_lab_file(f)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    muselq_sb.prepare.common.PrepareError: ...a.lab:2: chord label 'E:mni' is not a Harte label mir_eval reads (...)
    """
    segments = []
    for line, fields in _lines(path):
        if len(fields) != 3:
            raise PrepareError(f"{len(fields)} fields: expected 'start end label'",
                               path, line)
        segments.append((_time(fields[0], path, line, "start"),
                         _time(fields[1], path, line, "end"), fields[2], line))
    return _check_chords(segments, path)


class _Lined(dict):
    """A JSON object that knows the line it starts on."""

    line = 0


def _load_json_with_lines(path: str | os.PathLike):
    """JSON whose objects are ``_Lined`` dicts (errors name file:line)."""
    with open_text(path) as f:
        text = f.read()
    starts = [0] + [i + 1 for i, c in enumerate(text) if c == "\n"]
    decoder = json.JSONDecoder()

    def parse_object(s_and_end, *args):
        obj, end = json.decoder.JSONObject(s_and_end, *args)
        lined = _Lined(obj)
        lined.line = bisect.bisect_right(starts, s_and_end[1] - 1)
        return lined, end

    decoder.parse_object = parse_object
    decoder.scan_once = json.scanner.py_make_scanner(decoder)
    try:
        return decoder.decode(text)
    except json.JSONDecodeError as err:
        raise PrepareError(f"not valid JSON ({err.msg})", path, err.lineno) from None


def read_jams(path: str | os.PathLike, kind: str) -> list[tuple]:
    """Beats or chord segments of the first matching annotation of a JAMS file.

    Arguments
    ---------
    path : path-like
        The ``.jams`` file.
    kind : str
        ``beats`` (namespace ``beat``) or ``chords`` (``chord``,
        ``chord_harte``).

    Returns
    -------
    list
        As :func:`read_beats_file` or :func:`read_lab_file`.

    Example
    -------
    >>> import tempfile
    >>> f = Path(tempfile.mkdtemp()) / "a.jams"
    >>> _ = f.write_text(json.dumps({"annotations": [{"namespace": "beat", "data": [
    ...     {"time": 0.5, "duration": 0.0, "value": 1, "confidence": None},
    ...     {"time": 1.0, "duration": 0.0, "value": 2, "confidence": None}]}]},
    ...     indent=1))
    >>> read_jams(f, "beats")
    [(0.5, 1), (1.0, 2)]
    >>> read_jams(f, "chords")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    muselq_sb.prepare.common.PrepareError: ...a.jams: no annotation of namespace chord or chord_harte (found: beat)
    """
    namespaces = JAMS_NAMESPACES[kind]
    doc = _load_json_with_lines(path)
    annotations = doc.get("annotations") if isinstance(doc, dict) else None
    if not isinstance(annotations, list):
        raise PrepareError("no 'annotations' list: expected a JAMS file", path)
    found = [a.get("namespace") for a in annotations if isinstance(a, dict)]
    match = next((a for a in annotations if isinstance(a, dict)
                  and a.get("namespace") in namespaces), None)
    if match is None:
        raise PrepareError(f"no annotation of namespace {' or '.join(namespaces)} "
                           f"(found: {', '.join(map(str, found)) or 'none'})", path)
    data = match.get("data")
    if not isinstance(data, list):
        raise PrepareError("the annotation's 'data' is not a list of observations "
                           "(expected JAMS 0.3 layout)", path, match.line)
    rows = []
    for obs in data:
        line = getattr(obs, "line", match.line)
        if not isinstance(obs, dict) or "time" not in obs or "value" not in obs:
            raise PrepareError("expected an observation with 'time' and 'value'",
                               path, line)
        start = _time(str(obs["time"]), path, line)
        if kind == "beats":
            value = obs["value"]
            rows.append((start, None if value is None else _position(value, path, line),
                         line))
        else:
            duration = _time(str(obs.get("duration", "")), path, line, "duration")
            if not isinstance(obs["value"], str):
                raise PrepareError(f"chord value {obs['value']!r}: expected a label",
                                   path, line)
            rows.append((start, start + duration, obs["value"], line))
    return _check_beats(rows, path) if kind == "beats" else _check_chords(rows, path)


def read_annotation(path: str | os.PathLike, kind: str) -> list[tuple]:
    """Beats or chords of an annotation file, by its suffix.

    Example
    -------
    >>> read_annotation("/d/song.txt", "beats")
    Traceback (most recent call last):
    ...
    muselq_sb.prepare.common.PrepareError: /d/song.txt: unknown beats annotation suffix '.txt'; expected one of ['.beats', '.jams']
    """
    suffix = Path(path).suffix.lower()
    suffixes = BEAT_SUFFIXES if kind == "beats" else CHORD_SUFFIXES
    if suffix not in suffixes:
        raise PrepareError(f"unknown {kind} annotation suffix {suffix!r}; expected "
                           f"one of {list(suffixes)}", path)
    if suffix == ".jams":
        return read_jams(path, kind)
    return read_beats_file(path) if kind == "beats" else read_lab_file(path)
