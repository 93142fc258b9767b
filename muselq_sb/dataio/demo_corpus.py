"""A built-in, seeded corpus of synthetic labelled music for demos and tests.

Three families of clips are synthesised (24 kHz mono, 16-bit wav):

* music clips: a chord progression in one of 24 keys, a bass line, a melody
  on the scale, drums, in one of six styles (tempo range, drum pattern,
  instrumentation, progression); labels: key, style, lead instrument, tags
  (instruments present, drums, mood), tempo, arousal and valence;
* single notes like NSynth: one instrument, one MIDI pitch, 3 s held + 1 s
  release;
* sung vowels like VocalSet: a glottal pulse train through formant filters,
  with a singer identity (fixed voice parameters) and a technique.

``build_demo_corpus`` writes the audio, a pre-training task folder and one
task folder per downstream task; a second call with the same configuration
does nothing. Every clip has its own random generator seeded by
``(seed, family, index)``, so the same seed gives byte-identical files
whatever the number of worker processes.

Authors
 * muselq_sb team
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import soundfile as sf
from scipy.signal import lfilter
from tqdm import tqdm

from muselq_sb.dataio.manifest import read_task, write_task

SAMPLE_RATE = 24000
DEMO_VERSION = 1
TABLE_SIZE = 4096
NOTE_SECONDS = 4.0
NOTE_HOLD_SECONDS = 3.0
VOICE_SECONDS = 4.0
TONICS = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")
MODES = ("major", "minor")
KEYS = tuple(f"{t} {m}" for m in MODES for t in TONICS)
#: Default train / valid / test shares of the downstream tasks: a large test
#: share, so that each test split has 100 items (enough to tell encoders apart).
SPLIT_SHARES = (5, 1, 4)
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
NOTE_PITCHES = (36, 84)
FAMILIES = ("music", "note", "voice")


# --------------------------------------------------------------------------
# Instruments: wavetables with a bright and a mellow table, or Karplus-Strong
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class Instrument:
    """How one instrument family sounds.

    ``bright``/``mellow`` map harmonic numbers to amplitudes; the note
    crossfades from the bright to the mellow table at ``bright_decay`` (1/s)
    (a negative value fades the other way, as brass does). ``pluck`` uses
    Karplus-Strong instead of the tables.
    """

    bright: Mapping[int, float]
    mellow: Mapping[int, float]
    attack: float
    decay: float
    release: float
    bright_decay: float = 0.0
    vibrato: tuple[float, float, float] = (0.0, 0.0, 0.0)  # rate, depth, delay
    noise: float = 0.0
    detune: float = 0.0
    pluck: bool = False
    pitch_range: tuple[int, int] = (36, 84)


def _harmonics(n: int, power: float) -> dict[int, float]:
    return {k: k ** -power for k in range(1, n + 1)}


INSTRUMENTS: dict[str, Instrument] = {
    "piano": Instrument(_harmonics(12, 0.8), _harmonics(6, 2.0), 0.004, 1.0,
                        0.15, bright_decay=6.0, noise=0.03, pitch_range=(48, 84)),
    "organ": Instrument({1: 1.0, 2: 0.8, 3: 0.5, 4: 0.5, 6: 0.3, 8: 0.25},
                        {1: 1.0, 2: 0.8, 3: 0.5, 4: 0.5, 6: 0.3, 8: 0.25},
                        0.01, 0.0, 0.05, vibrato=(6.5, 0.003, 0.0),
                        pitch_range=(48, 79)),
    "guitar": Instrument({}, {}, 0.0, 0.0, 0.08, pluck=True,
                         pitch_range=(45, 79)),
    "bass": Instrument(_harmonics(8, 1.2), {1: 1.0, 2: 0.3, 3: 0.1}, 0.005,
                       1.2, 0.06, bright_decay=8.0, pitch_range=(28, 52)),
    "strings": Instrument(_harmonics(16, 1.0), _harmonics(10, 1.3), 0.25, 0.0,
                          0.4, bright_decay=1.0, vibrato=(5.5, 0.004, 0.2),
                          detune=0.004, pitch_range=(55, 84)),
    "brass": Instrument(_harmonics(14, 1.0), _harmonics(5, 1.5), 0.03, 0.2,
                        0.08, bright_decay=-20.0, vibrato=(5.0, 0.004, 0.3),
                        pitch_range=(52, 76)),
    "flute": Instrument({1: 1.0, 2: 0.25, 3: 0.08, 4: 0.03},
                        {1: 1.0, 2: 0.25, 3: 0.08, 4: 0.03}, 0.06, 0.0, 0.1,
                        vibrato=(5.0, 0.006, 0.15), noise=0.05,
                        pitch_range=(60, 88)),
}


def midi_to_hz(midi: float) -> float:
    """Frequency of a MIDI note number.

    Example
    -------
    >>> midi_to_hz(69)
    440.0
    """
    return 440.0 * 2.0 ** ((midi - 69) / 12.0)


_TABLES: dict[tuple, np.ndarray] = {}


def _table(amps: Mapping[int, float]) -> np.ndarray:
    """One period of a harmonic waveform (cached)."""
    key = tuple(sorted(amps.items()))
    if key not in _TABLES:
        x = np.arange(TABLE_SIZE) / TABLE_SIZE
        wave = sum(a * np.sin(2 * np.pi * k * x) for k, a in amps.items())
        _TABLES[key] = wave / np.abs(wave).max()
    return _TABLES[key]


def _phase(freq: float, n: int, vibrato: tuple[float, float, float]) -> np.ndarray:
    """Phase in cycles of a tone with optional delayed vibrato."""
    t = np.arange(n) / SAMPLE_RATE
    rate, depth, delay = vibrato
    if depth == 0.0:
        return freq * t
    ramp = np.clip((t - delay) / 0.2, 0.0, 1.0)
    inst = freq * (1.0 + depth * ramp * np.sin(2 * np.pi * rate * t))
    return np.cumsum(inst) / SAMPLE_RATE


def _envelope(n_on: int, n: int, attack: float, decay: float,
              release: float) -> np.ndarray:
    t = np.arange(n) / SAMPLE_RATE
    env = np.minimum(1.0, t / max(attack, 1e-4)) * np.exp(-decay * t)
    t_off = n_on / SAMPLE_RATE
    return env * np.where(t < t_off, 1.0, np.exp(-4.0 * (t - t_off) / release))


def _karplus_strong(freq: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """Plucked string: a noise period fed back through a two-tap average."""
    period = max(2, int(round(SAMPLE_RATE / freq - 0.5)))
    loss = 0.996 if freq < 300 else 0.992
    y = np.zeros(n + period + 1)
    y[: period + 1] = np.convolve(rng.uniform(-1, 1, period + 1), [0.5, 0.5], "same")
    for start in range(period + 1, y.size, period):
        stop = min(start + period, y.size)
        y[start:stop] = loss * 0.5 * (
            y[start - period : stop - period] + y[start - period - 1 : stop - period - 1]
        )
    return y[:n]


def render_note(name: str, midi: float, seconds: float, velocity: float,
                rng: np.random.Generator) -> np.ndarray:
    """One note of an instrument: ``seconds`` held plus its release.

    Arguments
    ---------
    name : str
        A key of ``INSTRUMENTS``.
    midi : float
        MIDI pitch.
    seconds : float
        Held duration.
    velocity : float
        Amplitude scale (the peak is close to it).
    rng : numpy.random.Generator
        Randomness (noise, pluck excitation).

    Returns
    -------
    numpy.ndarray
        float64 samples at ``SAMPLE_RATE``.

    Example
    -------
    >>> note = render_note("piano", 60, 0.5, 0.8, np.random.default_rng(0))
    >>> note.shape  # 0.5 s held + 0.15 s release
    (15600,)
    >>> bool(np.abs(note[:2400]).max() > 4 * np.abs(note[-2400:]).max())  # decays
    True
    """
    if name not in INSTRUMENTS:
        raise ValueError(f"unknown instrument {name!r}; expected one of {list(INSTRUMENTS)}")
    inst = INSTRUMENTS[name]
    n_on = int(seconds * SAMPLE_RATE)
    n = n_on + int(inst.release * SAMPLE_RATE)
    freq = midi_to_hz(midi)
    env = _envelope(n_on, n, inst.attack, inst.decay, inst.release)
    if inst.pluck:
        return velocity * env * _karplus_strong(freq, n, rng)
    t = np.arange(n) / SAMPLE_RATE
    weight = np.exp(-abs(inst.bright_decay) * t)
    if inst.bright_decay < 0:
        weight = 1.0 - weight
    wave = np.zeros(n)
    for detune in {0.0, inst.detune}:
        phase = _phase(freq * (1.0 + detune), n, inst.vibrato) % 1.0
        idx = (phase * TABLE_SIZE).astype(np.int64)
        wave += weight * _table(inst.bright)[idx] + (1 - weight) * _table(inst.mellow)[idx]
    wave /= 2 if inst.detune else 1
    if inst.noise:
        wave += inst.noise * np.diff(rng.standard_normal(n + 1)) * np.exp(-8 * t)
    return velocity * env * wave


# --------------------------------------------------------------------------
# Drums
# --------------------------------------------------------------------------
def _drum_kit(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Kick (pitch sweep), snare (tone + noise) and hat (high-passed noise)."""
    t = np.arange(int(0.35 * SAMPLE_RATE)) / SAMPLE_RATE
    f_kick = 45 + 80 * np.exp(-t * 30) * rng.uniform(0.9, 1.1)
    kick = np.sin(2 * np.pi * np.cumsum(f_kick) / SAMPLE_RATE) * np.exp(-t * 9)
    noise = rng.standard_normal(t.size)
    snare = (0.4 * np.sin(2 * np.pi * 185 * t) + 0.7 * np.diff(noise, prepend=0)) * np.exp(-t * 22)
    hat = np.diff(np.diff(noise, prepend=0), prepend=0) * np.exp(-t * 70) * 0.25
    return {"kick": kick, "snare": snare, "hat": hat}


DRUM_PATTERNS: dict[str, dict[str, str]] = {
    "rock": {"kick": "x.......x.x.....", "snare": "....x.......x...",
             "hat": "x.x.x.x.x.x.x.x."},
    "ballad": {"kick": "x.........x.....", "snare": "........x.......",
               "hat": "x...x...x...x..."},
    "four": {"kick": "x...x...x...x...", "snare": "....x.......x...",
             "hat": "..x...x...x...x."},
    "boombap": {"kick": "x......x..x.....", "snare": "....x.......x...",
                "hat": "x.x.x.x.x.x.x.x."},
    "light": {"kick": "x.......x.......", "snare": "", "hat": "x...x...x...x..."},
}


# --------------------------------------------------------------------------
# Styles and music clips
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class Style:
    """A style: tempo range, drums, instrumentation, harmony and melody."""

    tempo: tuple[float, float]
    drums: str | None
    drum_prob: float
    leads: tuple[str, ...]
    comp: str
    comp_mode: str  # pad | block | eighths | arpeggio
    bass: bool
    progressions: tuple[tuple[int, ...], ...]
    melody_step: int  # in 16th notes
    gain: tuple[float, float]
    swing: float = 0.0
    bars_per_chord: int = 1


STYLES: dict[str, Style] = {
    "rock": Style((110, 140), "rock", 1.0, ("brass", "organ"), "guitar",
                  "eighths", True, ((0, 4, 5, 3), (0, 3, 4, 3)), 2, (0.8, 1.0)),
    "ballad": Style((60, 80), "ballad", 0.7, ("piano", "strings"), "strings",
                    "pad", True, ((5, 3, 0, 4), (0, 5, 3, 4)), 4, (0.4, 0.6)),
    "electronic": Style((120, 135), "four", 1.0, ("brass", "piano"), "organ",
                        "block", True, ((0, 5, 2, 6), (5, 3, 0, 4)), 2, (0.8, 1.0)),
    "ambient": Style((60, 90), None, 0.0, ("flute", "strings"), "organ", "pad",
                     False, ((0, 3), (0, 5, 3, 4)), 8, (0.3, 0.5),
                     bars_per_chord=2),
    "hiphop": Style((85, 100), "boombap", 1.0, ("organ", "guitar"), "piano",
                    "block", True, ((0, 3, 4, 0), (5, 3, 4, 4)), 2, (0.6, 0.85),
                    swing=0.3),
    "folk": Style((90, 120), "light", 0.5, ("flute", "guitar"), "guitar",
                  "arpeggio", False, ((0, 3, 0, 4), (0, 4, 5, 3)), 2, (0.5, 0.75)),
}
STYLES_INDEX = {name: i for i, name in enumerate(sorted(STYLES))}
MOODS = ("happy", "sad", "calm", "energetic")
TAGS = tuple(sorted(INSTRUMENTS)) + ("drums",) + MOODS


def _scale_midi(tonic: int, mode: str, index: int) -> int:
    """MIDI note of scale step ``index`` (step 0 = tonic at MIDI 48+tonic)."""
    octave, step = divmod(index, 7)
    return 48 + tonic + 12 * octave + SCALES[mode][step]


def _music_events(style: Style, tonic: int, mode: str, tempo: float,
                  lead: str, register: int, seconds: float,
                  rng: np.random.Generator) -> list[tuple[float, float, float, float, str]]:
    """Note events ``(onset, duration, midi, velocity, instrument)``."""
    sixteenth = 60.0 / tempo / 4
    progression = style.progressions[rng.integers(len(style.progressions))]
    bar_steps = 16 * style.bars_per_chord
    n_steps = int(seconds / sixteenth) + 1
    events = []

    def onset(step: int) -> float:
        return (step + (style.swing if step % 2 else 0.0)) * sixteenth

    def chord_at(step: int) -> int:
        return progression[(step // bar_steps) % len(progression)]

    for bar_start in range(0, n_steps, bar_steps):
        degree = chord_at(bar_start)
        triad = [_scale_midi(tonic, mode, degree + k) for k in (0, 2, 4)]
        if style.comp_mode == "pad":
            hits = [(0, bar_steps, triad)]
        elif style.comp_mode == "block":
            hits = [(s, 3, triad) for s in range(0, bar_steps, 4)]
        elif style.comp_mode == "eighths":
            hits = [(s, 2, triad) for s in range(0, bar_steps, 2)]
        elif style.comp_mode == "arpeggio":
            hits = [(s, 4, [triad[(s // 2) % 3]]) for s in range(0, bar_steps, 2)]
        else:
            raise ValueError(f"unknown comp_mode {style.comp_mode!r}")
        for step, length, notes in hits:
            for midi in notes:
                events.append((onset(bar_start + step), length * sixteenth * 0.95,
                               midi, 0.18 * rng.uniform(0.8, 1.0), style.comp))
        if style.bass:
            for step in range(0, bar_steps, 8):
                events.append((onset(bar_start + step), 7 * sixteenth,
                               triad[0] - 24, 0.35, "bass"))
    lo, hi = INSTRUMENTS[lead].pitch_range
    position = 7 + register  # scale steps above MIDI 48 + tonic
    for step in range(0, n_steps, style.melody_step):
        if rng.random() < 0.15:
            continue
        if step % bar_steps == 0:  # chord change: land on a chord tone
            chord_tones = [chord_at(step) + 7 * o + k for o in range(-1, 4) for k in (0, 2, 4)]
            position = min(chord_tones, key=lambda c: abs(c - position))
        else:
            position += int(rng.choice([-2, -1, -1, 0, 1, 1, 2]))
        while _scale_midi(tonic, mode, position) > hi:
            position -= 7
        while _scale_midi(tonic, mode, position) < lo:
            position += 7
        events.append((onset(step), style.melody_step * sixteenth * 0.9,
                       _scale_midi(tonic, mode, position), 0.35 * rng.uniform(0.8, 1.0), lead))
    return events


def _mix(events: Sequence[tuple[float, float, float, float, str]], n: int,
         rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(n + SAMPLE_RATE)
    for start, length, midi, velocity, name in events:
        first = int(start * SAMPLE_RATE)
        if first >= n:
            continue
        note = render_note(name, midi, length, velocity, rng)
        out[first : first + note.size] += note[: out.size - first]
    return out[:n]


def _add_drums(out: np.ndarray, pattern: Mapping[str, str], tempo: float,
               swing: float, rng: np.random.Generator) -> None:
    kit = _drum_kit(rng)
    sixteenth = 60.0 / tempo / 4
    levels = {"kick": 0.6, "snare": 0.35, "hat": 0.5}
    for part, grid in pattern.items():
        for step in range(int(out.size / SAMPLE_RATE / sixteenth) + 1):
            if grid and grid[step % len(grid)] == "x":
                first = int((step + (swing if step % 2 else 0.0)) * sixteenth * SAMPLE_RATE)
                hit = kit[part][: max(0, out.size - first)]
                out[first : first + hit.size] += levels[part] * rng.uniform(0.85, 1.0) * hit


def render_music(style_name: str, key: str, seconds: float,
                 rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """A music clip and its labels.

    Arguments
    ---------
    style_name : str
        A key of ``STYLES``.
    key : str
        One of ``KEYS`` (e.g. ``"Eb minor"``).
    seconds : float
        Clip length.
    rng : numpy.random.Generator
        All the other choices (tempo, lead, drums, melody, loudness).

    Returns
    -------
    (numpy.ndarray, dict)
        float32 samples and the labels: ``key``, ``genre``, ``lead``,
        ``tempo``, ``tags`` (list), ``arousal``, ``valence``.

    Example
    -------
    >>> y, labels = render_music("rock", "A minor", 1.0, np.random.default_rng(0))
    >>> y.shape, labels["genre"], labels["key"]
    ((24000,), 'rock', 'A minor')
    """
    style = STYLES[style_name]
    tonic_name, mode = key.split()
    tonic = TONICS.index(tonic_name)
    tempo = float(np.round(rng.uniform(*style.tempo), 1))
    lead = str(rng.choice(style.leads))
    register = int(rng.integers(-2, 5))
    gain = float(rng.uniform(*style.gain))
    drums = style.drums is not None and rng.random() < style.drum_prob
    n = int(seconds * SAMPLE_RATE)
    events = _music_events(style, tonic, mode, tempo, lead, register, seconds, rng)
    y = _mix(events, n, rng)
    if drums:
        _add_drums(y, DRUM_PATTERNS[style.drums], tempo, style.swing, rng)
    y *= 0.9 * gain / max(np.abs(y).max(), 1e-9)
    density = sum(1 for e in events if e[0] < seconds) / seconds
    arousal = np.tanh(0.45 * (tempo - 100) / 40 + 0.35 * (gain - 0.65) / 0.35
                      + 0.1 * (density - 6) / 4 + (0.1 if drums else -0.1))
    valence = np.tanh((0.5 if mode == "major" else -0.5) + 0.08 * register
                      + 0.15 * (tempo - 100) / 40)
    arousal = float(np.round(arousal + rng.normal(0, 0.05), 4))
    valence = float(np.round(valence + rng.normal(0, 0.05), 4))
    moods = [m for m, on in zip(MOODS, (valence > 0.3, valence < -0.3,
                                        arousal < -0.3, arousal > 0.3)) if on]
    present = {lead, style.comp} | ({"bass"} if style.bass else set())
    tags = sorted(present) + (["drums"] if drums else []) + moods
    labels = {"key": key, "genre": style_name, "lead": lead, "tempo": tempo,
              "tags": tags, "arousal": arousal, "valence": valence}
    return y.astype(np.float32), labels


# --------------------------------------------------------------------------
# Single notes (NSynth-like)
# --------------------------------------------------------------------------
def render_single_note(instrument: str, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """A 4 s note (3 s held) at a random pitch in the instrument's range.

    Example
    -------
    >>> y, labels = render_single_note("flute", np.random.default_rng(0))
    >>> y.shape, labels["instrument"], 60 <= labels["pitch"] <= 84
    ((96000,), 'flute', True)
    """
    lo, hi = INSTRUMENTS[instrument].pitch_range
    lo, hi = max(lo, NOTE_PITCHES[0]), min(hi, NOTE_PITCHES[1])
    pitch = int(rng.integers(lo, hi + 1))
    n = int(NOTE_SECONDS * SAMPLE_RATE)
    note = render_note(instrument, pitch, NOTE_HOLD_SECONDS, 1.0, rng)[:n]
    y = np.zeros(n)
    y[: note.size] = note
    y *= 0.8 * rng.uniform(0.5, 1.0) / max(np.abs(y).max(), 1e-9)
    return y.astype(np.float32), {"instrument": instrument, "pitch": pitch}


# --------------------------------------------------------------------------
# Sung vowels (VocalSet-like)
# --------------------------------------------------------------------------
VOWELS = {"a": (730, 1090, 2440, 3400), "e": (530, 1840, 2480, 3500),
          "i": (270, 2290, 3010, 3700), "o": (570, 840, 2410, 3300),
          "u": (300, 870, 2240, 3300)}
TECHNIQUES = ("straight", "vibrato", "breathy", "vocal_fry", "trill", "belt")


@dataclass(frozen=True)
class Singer:
    """The fixed voice parameters that make up a singer's identity."""

    f0: float
    formant_scale: float
    breathiness: float
    vibrato_rate: float
    vibrato_depth: float
    open_quotient: float


def make_singers(seed: int, n: int) -> list[Singer]:
    """``n`` singers, alternately low and high voices, from ``seed``.

    Example
    -------
    >>> [round(s.f0) > 150 for s in make_singers(0, 2)]
    [False, True]
    """
    singers = []
    for i in range(n):
        rng = np.random.default_rng([seed, 99, i])
        high = i % 2 == 1
        singers.append(Singer(
            f0=float(rng.uniform(190, 270) if high else rng.uniform(95, 145)),
            formant_scale=float(rng.uniform(1.08, 1.22) if high else rng.uniform(0.88, 1.0)),
            breathiness=float(rng.uniform(0.01, 0.08)),
            vibrato_rate=float(rng.uniform(4.5, 6.8)),
            vibrato_depth=float(rng.uniform(0.02, 0.04)),
            open_quotient=float(rng.uniform(0.45, 0.7)),
        ))
    return singers


def _resonator(x: np.ndarray, freq: float, bandwidth: float) -> np.ndarray:
    r = np.exp(-np.pi * bandwidth / SAMPLE_RATE)
    theta = 2 * np.pi * freq / SAMPLE_RATE
    a = [1.0, -2 * r * np.cos(theta), r * r]
    return lfilter([1.0 - r], a, x)


def render_voice(singer: Singer, technique: str,
                 rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """A sung vowel of ``VOICE_SECONDS`` by ``singer`` with ``technique``.

    Example
    -------
    >>> s = make_singers(0, 1)[0]
    >>> y, labels = render_voice(s, "trill", np.random.default_rng(0))
    >>> y.shape, labels["technique"]
    ((96000,), 'trill')
    """
    if technique not in TECHNIQUES:
        raise ValueError(f"unknown technique {technique!r}; expected one of {TECHNIQUES}")
    n = int(VOICE_SECONDS * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    f0 = singer.f0 * 2 ** (rng.uniform(-3, 4) / 12)
    oq, breath, level = singer.open_quotient, singer.breathiness, 0.7
    bend = np.zeros(n)  # in semitones
    if technique == "vibrato":
        bend = 1.5 * 12 * singer.vibrato_depth * np.sin(2 * np.pi * singer.vibrato_rate * t)
    elif technique == "breathy":
        oq, breath, level = 0.85, breath * 8 + 0.2, 0.45
    elif technique == "vocal_fry":
        f0 = singer.f0 * 0.45
    elif technique == "trill":
        bend = 1.0 + np.tanh(4 * np.sin(2 * np.pi * 6.5 * t))
    elif technique == "belt":
        f0, oq, level = f0 * 2 ** (3 / 12), 0.35, 1.0
        bend = np.clip(t - 2.5, 0, None) * 12 * singer.vibrato_depth * np.sin(
            2 * np.pi * singer.vibrato_rate * t)
    freq = f0 * 2 ** (bend / 12) * (1 + 0.003 * rng.standard_normal(n).cumsum() / np.sqrt(n))
    phase = np.cumsum(freq) / SAMPLE_RATE
    frac = phase % 1.0
    opening = 0.6 * oq
    pulse = np.where(frac < opening, 0.5 * (1 - np.cos(np.pi * frac / opening)),
                     np.where(frac < oq, np.cos(0.5 * np.pi * (frac - opening) / (oq - opening)), 0.0))
    if technique == "vocal_fry":
        pulse *= rng.uniform(0.3, 1.0, int(phase[-1]) + 2)[phase.astype(np.int64)]
    source = np.diff(pulse, prepend=0.0) * 20
    source += breath * rng.standard_normal(n) * (0.5 + pulse)
    vowel = str(rng.choice(sorted(VOWELS)))
    y = np.zeros(n)
    for k, formant in enumerate(VOWELS[vowel]):
        y += _resonator(source, formant * singer.formant_scale, 60 + 40 * k) / (k + 1)
    envelope = np.minimum(1, t / 0.1) * np.minimum(1, (VOICE_SECONDS - t) / 0.2)
    y *= envelope * 0.9 * level / max(np.abs(y).max(), 1e-9)
    return y.astype(np.float32), {"technique": technique, "vowel": vowel}


# --------------------------------------------------------------------------
# Corpus plan, rendering jobs, task folders
# --------------------------------------------------------------------------
def _balanced(values: Sequence, n: int, rng: np.random.Generator) -> list:
    """``n`` values cycling through ``values`` in a random order."""
    return [values[i] for i in rng.permutation(np.resize(np.arange(len(values)), n))]


def _plan(config: Mapping) -> list[dict]:
    """One job per clip, with the labels fixed by the parent process."""
    rng = np.random.default_rng([config["seed"], 7])
    styles = _balanced(sorted(STYLES), config["n_music"], rng)
    keys = _balanced(KEYS, config["n_music"], rng)
    instruments = _balanced(sorted(INSTRUMENTS), config["n_notes"], rng)
    jobs = [{"family": "music", "index": i, "style": s, "key": k}
            for i, (s, k) in enumerate(zip(styles, keys))]
    jobs += [{"family": "note", "index": i, "instrument": inst}
             for i, inst in enumerate(instruments)]
    n_singers, n_tech = config["n_singers"], len(TECHNIQUES)
    jobs += [{"family": "voice", "index": i, "singer": i % n_singers,
              "technique": TECHNIQUES[(i // n_singers) % n_tech]}
             for i in range(config["n_voice"])]
    return jobs


def _render_job(args: tuple[dict, dict, str]) -> dict:
    """Renders and writes one clip; returns its manifest fields."""
    job, config, audio_root = args
    family, index = job["family"], job["index"]
    rng = np.random.default_rng([config["seed"], FAMILIES.index(family), index])
    if family == "music":
        y, labels = render_music(job["style"], job["key"], config["clip_seconds"], rng)
    elif family == "note":
        y, labels = render_single_note(job["instrument"], rng)
    else:
        singer = make_singers(config["seed"], config["n_singers"])[job["singer"]]
        y, labels = render_voice(singer, job["technique"], rng)
        labels["singer"] = f"singer{job['singer']}"
    item_id = f"{family}_{index:04d}"
    path = Path(audio_root) / family / f"{item_id}.wav"
    sf.write(str(path), y, SAMPLE_RATE, subtype="PCM_16")
    return {"ID": item_id, "family": family, "path": str(path),
            "duration": y.size / SAMPLE_RATE, "start": "", "stop": "", **labels}


def _split(rows: Sequence[dict], strata: str | None, seed: int, name: str,
           shares: Sequence[int] = SPLIT_SHARES) -> dict[str, list[dict]]:
    """Seeded train/valid/test split in ``shares``; stratified by ``strata``.

    Items are ordered by stratum (randomly within it) and dealt in cycles of
    ``sum(shares)`` (by default 10: 5 train, 1 valid, 4 test), so each class
    of a full cycle of items or more reaches every split.

    Example
    -------
    >>> rows = [{"ID": str(i), "label": "ab"[i % 2]} for i in range(20)]
    >>> parts = _split(rows, "label", 0, "toy", shares=(5, 1, 4))
    >>> [len(parts[s]) for s in ("train", "valid", "test")]
    [10, 2, 8]
    """
    if len(shares) != 3 or min(shares) < 1:
        raise ValueError(f"split shares {tuple(shares)}: expected three positive "
                         "integers (train, valid, test)")
    rng = np.random.default_rng([seed, sum(map(ord, name))])
    noise = rng.random(len(rows))
    order = sorted(range(len(rows)), key=lambda i: (
        str(rows[i][strata]) if strata else "", noise[i]))
    n_train, n_valid, _ = shares
    splits: dict[str, list[dict]] = {"train": [], "valid": [], "test": []}
    for position, i in enumerate(order):
        cycle = position % sum(shares)
        split = ("train" if cycle < n_train else
                 "valid" if cycle < n_train + n_valid else "test")
        splits[split].append(rows[i])
    return splits


@dataclass(frozen=True)
class _TaskSpec:
    family: str
    task_type: str
    target: str | tuple[str, ...]
    source: str  # label field of the rendered clip
    classes: Callable[[list[dict]], list[str]] | None
    metrics: tuple[str, ...]


def _present(field: str, sort_key: Callable = str) -> Callable[[list[dict]], list[str]]:
    return lambda rows: sorted({str(r[field]) for r in rows}, key=sort_key)


TASKS: dict[str, _TaskSpec] = {
    "demo_key": _TaskSpec("music", "multiclass", "label", "key", lambda rows: list(KEYS),
                          ("key_weighted", "accuracy")),
    "demo_genre": _TaskSpec("music", "multiclass", "label", "genre",
                            lambda rows: sorted(STYLES), ("accuracy",)),
    "demo_instrument": _TaskSpec("music", "multiclass", "label", "lead",
                                 _present("lead"), ("accuracy",)),
    "demo_tags": _TaskSpec("music", "multilabel", "tags", "tags", lambda rows: list(TAGS),
                           ("roc_auc", "ap")),
    "demo_emotion": _TaskSpec("music", "regression", ("arousal", "valence"), "",
                              None, ("r2",)),
    "demo_tempo": _TaskSpec("music", "regression", ("tempo",), "", None, ("r2",)),
    "demo_nsynth_instrument": _TaskSpec("note", "multiclass", "label", "instrument",
                                        _present("instrument"), ("accuracy",)),
    "demo_nsynth_pitch": _TaskSpec("note", "multiclass", "pitch", "pitch",
                                   _present("pitch", int), ("accuracy",)),
    "demo_vocal_technique": _TaskSpec("voice", "multiclass", "label", "technique",
                                      _present("technique"), ("accuracy",)),
    "demo_vocal_singer": _TaskSpec("voice", "multiclass", "label", "singer",
                                   _present("singer", lambda s: int(s[6:])), ("accuracy",)),
}


def _task_rows(items: list[dict], spec: _TaskSpec) -> list[dict]:
    base = ("ID", "path", "duration", "start", "stop")
    rows = []
    for item in items:
        row = {k: item[k] for k in base}
        if spec.task_type == "regression":
            row.update({t: item[t] for t in spec.target})
        else:
            row[spec.target] = item[spec.source]
        rows.append(row)
    return rows


def _write_tasks(root: Path, items: list[dict], config: Mapping) -> None:
    for name, spec in TASKS.items():
        family_items = [it for it in items if it["family"] == spec.family]
        rows = _task_rows(family_items, spec)
        strata = spec.target if spec.task_type == "multiclass" else None
        write_task(root / "tasks" / name, name, spec.task_type,
                   spec.target if isinstance(spec.target, str) else list(spec.target),
                   _split(rows, strata, config["seed"], name, config["split_shares"]),
                   classes=spec.classes(family_items) if spec.classes else None,
                   metrics=spec.metrics, extra={"demo_config": dict(config)})


def _is_built(root: Path, config: Mapping) -> bool:
    try:
        info = read_task(root / "pretrain")
        tasks = [read_task(root / "tasks" / name) for name in TASKS]
    except (ValueError, OSError):  # absent or unreadable: build again
        return False
    return all(t.get("demo_config") == dict(config) for t in [info, *tasks])


def _map(fn: Callable, jobs: list, workers: int, done: Callable[[], object]):
    """``fn`` over ``jobs`` in order, in ``workers`` processes if > 1."""
    if workers > 1:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            for result in pool.imap(fn, jobs, chunksize=4):
                done()
                yield result
    else:
        for job in jobs:
            yield fn(job)
            done()


def default_demo_root() -> Path:
    """``$MUSELQ_SB_DATA/demo_corpus``, else ``~/.cache/muselq_sb/demo_corpus``.

    Example
    -------
    >>> default_demo_root().name
    'demo_corpus'
    """
    base = os.environ.get("MUSELQ_SB_DATA")
    return Path(base or Path.home() / ".cache" / "muselq_sb") / "demo_corpus"


def build_demo_corpus(
    root: str | os.PathLike | None = None,
    seed: int = 0,
    n_music: int = 250,
    n_notes: int = 250,
    n_voice: int = 250,
    clip_seconds: float = 10.0,
    n_singers: int = 6,
    split_shares: Sequence[int] = SPLIT_SHARES,
    workers: int | None = None,
    progress: bool = True,
) -> Path:
    """Builds (or finds already built) the demo corpus under ``root``.

    Arguments
    ---------
    root : path-like, optional
        Output folder (``default_demo_root()`` when None).
    seed : int
        Everything is derived from it; same seed, same bytes.
    n_music, n_notes, n_voice : int
        Clips per family.
    clip_seconds : float
        Length of the music clips (notes and voices last 4 s).
    n_singers : int
        Singer identities of the voice clips.
    split_shares : three ints
        Train / valid / test shares of every downstream task (default
        5 / 1 / 4: 100 test items per task with the default counts).
    workers : int, optional
        Processes rendering clips (default: up to 2).
    progress : bool
        Show a progress bar and print a summary.

    Returns
    -------
    pathlib.Path
        The corpus root, holding ``audio/``, ``pretrain/`` and ``tasks/``.

    Example
    -------
    >>> import tempfile
    >>> root = build_demo_corpus(tempfile.mkdtemp(), n_music=3, n_notes=2,
    ...                          n_voice=2, clip_seconds=1.0, workers=1,
    ...                          progress=False)
    >>> sorted(p.name for p in (root / "tasks").iterdir())[:2]
    ['demo_emotion', 'demo_genre']
    """
    from muselq_sb.prepare.pretrain import write_pretrain_task

    root = Path(root) if root is not None else default_demo_root()
    config = {"version": DEMO_VERSION, "seed": seed, "n_music": n_music,
              "n_notes": n_notes, "n_voice": n_voice, "clip_seconds": clip_seconds,
              "n_singers": n_singers, "split_shares": list(split_shares),
              "sample_rate": SAMPLE_RATE}
    if _is_built(root, config):
        return root
    started = time.time()
    for sub in ("audio", "pretrain", "tasks"):
        shutil.rmtree(root / sub, ignore_errors=True)
    for family in FAMILIES:
        (root / "audio" / family).mkdir(parents=True, exist_ok=True)
    jobs = [(job, config, str(root / "audio")) for job in _plan(config)]
    workers = workers or min(2, os.cpu_count() or 1)
    with tqdm(total=len(jobs), desc="demo corpus", unit="clip",
              disable=not progress) as bar:
        items = list(_map(_render_job, jobs, workers, bar.update))
    _write_tasks(root, items, config)
    rows = [{**{k: it[k] for k in ("ID", "path", "duration", "start", "stop")},
             "group": it["ID"]} for it in items]
    write_pretrain_task(root / "pretrain", rows, valid_fraction=0.05, seed=seed,
                        name="demo_pretrain", extra={"demo_config": config})
    if progress:
        hours = sum(it["duration"] for it in items) / 3600
        print(f"demo corpus: {len(items)} clips, {hours * 60:.1f} min of audio, "
              f"{len(TASKS)} tasks, built in {time.time() - started:.1f} s -> {root}")
    return root


# --------------------------------------------------------------------------
# Pictures for docs/demo_corpus.md
# --------------------------------------------------------------------------
def plot_demo_corpus(root: str | os.PathLike, out_dir: str | os.PathLike) -> list[Path]:
    """Draws ``demo_spectrograms.png`` and ``demo_labels.png`` into ``out_dir``.

    Arguments
    ---------
    root : path-like
        A built demo corpus.
    out_dir : path-like
        Where the pictures go.

    Returns
    -------
    list of pathlib.Path
        The two picture files.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch
    import torchaudio

    from muselq_sb.dataio.manifest import read_manifest

    root, out_dir = Path(root), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    def rows(task: str) -> list[dict]:
        return [r for s in ("train", "valid", "test")
                for r in read_manifest(root / "tasks" / task / f"{s}.csv")]

    genre, key, lead = rows("demo_genre"), rows("demo_key"), rows("demo_instrument")
    key_of = {r["ID"]: r["label"] for r in key}
    lead_of = {r["ID"]: r["label"] for r in lead}
    first_of_genre = {r["label"]: r for r in sorted(genre, key=lambda r: r["ID"])}
    picks = [(f"{g} / {key_of[r['ID']]} / lead {lead_of[r['ID']]}", r["path"])
             for g, r in sorted(first_of_genre.items())][:4]
    picks += [(f"note: {rows('demo_nsynth_instrument')[0]['label']}",
               rows("demo_nsynth_instrument")[0]["path"]),
              (f"voice: {rows('demo_vocal_technique')[0]['label']}",
               rows("demo_vocal_technique")[0]["path"])]
    mel = torchaudio.transforms.MelSpectrogram(SAMPLE_RATE, n_fft=2048, hop_length=240, n_mels=128)
    fig, axes = plt.subplots(len(picks), 1, figsize=(10, 2.2 * len(picks)))
    for ax, (title, path) in zip(axes, picks):
        y, _ = sf.read(path, dtype="float32")
        spec = torch.log(mel(torch.from_numpy(y)) + 1e-6).numpy()
        ax.imshow(spec, origin="lower", aspect="auto", cmap="magma",
                  extent=(0, y.size / SAMPLE_RATE, 0, 128))
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("mel bin")
    axes[-1].set_xlabel("seconds")
    fig.tight_layout()
    spectrograms = out_dir / "demo_spectrograms.png"
    fig.savefig(spectrograms, dpi=55)
    plt.close(fig)

    emotion, tempo = rows("demo_emotion"), rows("demo_tempo")
    counts = {
        "genre": [r["label"] for r in genre], "lead instrument": [r["label"] for r in lead],
        "key": [r["label"] for r in key],
        "tags": [t for r in rows("demo_tags") for t in r["tags"].split(";")],
        "vocal technique": [r["label"] for r in rows("demo_vocal_technique")],
    }
    fig, axes = plt.subplots(2, 4, figsize=(16, 7))
    for ax, (title, values) in zip(axes.flat, counts.items()):
        names, n = np.unique(values, return_counts=True)
        ax.bar(range(len(names)), n)
        ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
        ax.set_title(title)
    axes.flat[5].hist([float(r["tempo"]) for r in tempo], bins=20)
    axes.flat[5].set_title("tempo (BPM)")
    axes.flat[6].hist([int(r["pitch"]) for r in rows("demo_nsynth_pitch")], bins=49)
    axes.flat[6].set_title("note pitch (MIDI)")
    a = [float(r["arousal"]) for r in emotion]
    v = [float(r["valence"]) for r in emotion]
    genre_of = {r["ID"]: r["label"] for r in genre}
    colours = [STYLES_INDEX[genre_of[r["ID"]]] for r in emotion]
    axes.flat[7].scatter(v, a, s=8, c=colours, cmap="tab10")
    axes.flat[7].set_xlabel("valence")
    axes.flat[7].set_ylabel("arousal")
    axes.flat[7].set_title("emotion (colour = genre)")
    fig.tight_layout()
    labels = out_dir / "demo_labels.png"
    fig.savefig(labels, dpi=70)
    plt.close(fig)
    return [spectrograms, labels]



def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``python -m muselq_sb.dataio.demo_corpus --root DIR``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default=None, help="output folder (default: %(default)s -> "
                        "$MUSELQ_SB_DATA/demo_corpus or ~/.cache/muselq_sb/demo_corpus)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-music", type=int, default=250)
    parser.add_argument("--n-notes", type=int, default=250)
    parser.add_argument("--n-voice", type=int, default=250)
    parser.add_argument("--split-shares", default="5,1,4", metavar="TRAIN,VALID,TEST",
                        help="shares of the downstream splits (default: %(default)s)")
    parser.add_argument("--clip-seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--plots", default=None, metavar="DIR",
                        help="also draw the documentation pictures into DIR")
    args = parser.parse_args(argv)
    root = build_demo_corpus(args.root, seed=args.seed, n_music=args.n_music,
                             n_notes=args.n_notes, n_voice=args.n_voice,
                             clip_seconds=args.clip_seconds, workers=args.workers,
                             split_shares=[int(x) for x in args.split_shares.split(",")])
    print(json.dumps({name: read_task(root / "tasks" / name)["splits"] for name in TASKS}))
    if args.plots:
        for path in plot_demo_corpus(root, args.plots):
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
