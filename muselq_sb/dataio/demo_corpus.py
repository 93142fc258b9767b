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

``plan_clips`` fixes what every clip is (balanced styles, keys,
instruments, singers and techniques) and ``render_clip`` synthesises one
clip with its own random generator seeded by ``(seed, family, index)``, so
the same seed gives the same samples whatever the number of worker
processes. Writing the corpus (audio files, task folders, cache) is the
preparation step ``muselq_sb.prepare.demo``.

Authors
 * muselq_sb team
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from scipy.signal import lfilter

SAMPLE_RATE = 24000
TABLE_SIZE = 4096
NOTE_SECONDS = 4.0
NOTE_HOLD_SECONDS = 3.0
VOICE_SECONDS = 4.0
TONICS = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")
MODES = ("major", "minor")
KEYS = tuple(f"{t} {m}" for m in MODES for t in TONICS)
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
                  rng: np.random.Generator
                  ) -> tuple[list[tuple[float, float, float, float, str]], tuple[int, ...]]:
    """Note events ``(onset, duration, midi, velocity, instrument)`` and the
    chord progression (scale degrees, one per ``bars_per_chord`` bars)."""
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
    return events, progression


def chord_label(tonic: int, mode: str, degree: int) -> str:
    """The Harte label of the triad on scale ``degree`` of a key.

    Example
    -------
    >>> [chord_label(0, "major", d) for d in (0, 1, 4, 6)]
    ['C:maj', 'D:min', 'G:maj', 'B:dim']
    >>> chord_label(TONICS.index("A"), "minor", 2)
    'C:maj'
    """
    scale = SCALES[mode]
    root, third, fifth = (scale[(degree + k) % 7] + 12 * ((degree + k) // 7)
                          for k in (0, 2, 4))
    quality = {(4, 7): "maj", (3, 7): "min", (3, 6): "dim"}[(third - root, fifth - root)]
    return f"{TONICS[(tonic + root) % 12]}:{quality}"


def beat_grid(tempo: float, seconds: float) -> list[tuple[float, int]]:
    """Beats of a clip: ``(time, position in the 4/4 bar)`` from 0 s.

    Every style plays 16 sixteenths a bar from time 0; swing delays only
    odd sixteenths, never a beat.

    Example
    -------
    >>> beat_grid(120.0, 2.6)
    [(0.0, 1), (0.5, 2), (1.0, 3), (1.5, 4), (2.0, 1), (2.5, 2)]
    """
    period = 60.0 / tempo
    return [(k * period, k % 4 + 1) for k in range(int(np.ceil(seconds / period)))
            if k * period < seconds]


def chord_segments(progression: Sequence[int], bars_per_chord: int, tonic: int,
                   mode: str, tempo: float, seconds: float) -> list[tuple[float, float, str]]:
    """The chord of each ``bars_per_chord`` bars of a clip, as time segments.

    Example
    -------
    >>> chord_segments((0, 4), 1, 0, "major", 120.0, 5.0)
    [(0.0, 2.0, 'C:maj'), (2.0, 4.0, 'G:maj'), (4.0, 5.0, 'C:maj')]
    """
    span = bars_per_chord * 4 * 60.0 / tempo
    n = int(np.ceil(seconds / span))
    return [(k * span, min((k + 1) * span, seconds),
             chord_label(tonic, mode, progression[k % len(progression)]))
            for k in range(n)]


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
        ``tempo``, ``tags`` (list), ``arousal``, ``valence``, ``beats``
        (:func:`beat_grid`) and ``chords`` (:func:`chord_segments`).

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
    events, progression = _music_events(style, tonic, mode, tempo, lead, register,
                                        seconds, rng)
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
              "tags": tags, "arousal": arousal, "valence": valence,
              "beats": beat_grid(tempo, seconds),
              "chords": chord_segments(progression, style.bars_per_chord, tonic, mode,
                                       tempo, seconds)}
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
# The corpus: one job per clip
# --------------------------------------------------------------------------
def _balanced(values: Sequence, n: int, rng: np.random.Generator) -> list:
    """``n`` values cycling through ``values`` in a random order."""
    return [values[i] for i in rng.permutation(np.resize(np.arange(len(values)), n))]


def plan_clips(config: Mapping) -> list[dict]:
    """One job per clip (``family``, ``index`` and its fixed labels).

    Arguments
    ---------
    config : mapping
        ``seed``, ``n_music``, ``n_notes``, ``n_voice`` and ``n_singers``.

    Returns
    -------
    list of dict
        Music clips (``style``, ``key``), then notes (``instrument``), then
        voices (``singer``, ``technique``).

    Example
    -------
    >>> jobs = plan_clips({"seed": 0, "n_music": 2, "n_notes": 1,
    ...                    "n_voice": 1, "n_singers": 1})
    >>> [(j["family"], j["index"]) for j in jobs]
    [('music', 0), ('music', 1), ('note', 0), ('voice', 0)]
    """
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


def render_clip(job: Mapping, config: Mapping) -> tuple[np.ndarray, dict]:
    """The samples and labels of one job of :func:`plan_clips`.

    Arguments
    ---------
    job : mapping
        One job.
    config : mapping
        ``seed``, ``clip_seconds`` (music) and ``n_singers`` (voices).

    Returns
    -------
    (numpy.ndarray, dict)
        float32 samples at ``SAMPLE_RATE`` and the clip's labels.

    Example
    -------
    >>> config = {"seed": 0, "n_music": 1, "n_notes": 0, "n_voice": 0,
    ...           "n_singers": 1, "clip_seconds": 0.5}
    >>> y, labels = render_clip(plan_clips(config)[0], config)
    >>> y.shape, sorted(labels)[:4]
    ((12000,), ['arousal', 'beats', 'chords', 'genre'])
    """
    family, index = job["family"], job["index"]
    rng = np.random.default_rng([config["seed"], FAMILIES.index(family), index])
    if family == "music":
        return render_music(job["style"], job["key"], config["clip_seconds"], rng)
    if family == "note":
        return render_single_note(job["instrument"], rng)
    singer = make_singers(config["seed"], config["n_singers"])[job["singer"]]
    y, labels = render_voice(singer, job["technique"], rng)
    return y, {**labels, "singer": f"singer{job['singer']}"}
