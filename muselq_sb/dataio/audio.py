"""Audio loading for music: decode, down-mix, resample, crop and segment.

Everything is decoded with ``soundfile`` (wav, flac, ogg, mp3, au), reading
only the frames that are needed, so one 30 s segment of a long track costs a
30 s decode. ``audio_pipeline`` wraps the loader as a SpeechBrain dynamic item
that never raises on a bad file: it logs the path once and yields an empty
signal, which ``muselq_sb.dataio.batching.SkipEmptyCollate`` drops.

Authors
 * muselq_sb team
"""
from __future__ import annotations

import functools
import itertools
import logging
import os
from typing import BinaryIO, Callable, Iterator

import numpy as np
import soundfile as sf
import torch
import torchaudio
from speechbrain.utils.data_pipeline import provides, takes

logger = logging.getLogger(__name__)

DEFAULT_SAMPLE_RATE = 24000
_WARNED_PATHS: set[str] = set()


class AudioError(RuntimeError):
    """An audio file cannot be used; the message names the path and why.

    Example
    -------
    >>> str(AudioError("/d/a.mp3", "no samples"))
    '/d/a.mp3: no samples'
    """

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


@functools.lru_cache(maxsize=16)
def _resampler(orig_freq: int, new_freq: int) -> torchaudio.transforms.Resample:
    """One resampler (with its precomputed kernel) per pair of rates."""
    return torchaudio.transforms.Resample(orig_freq, new_freq)


def resample(wav: torch.Tensor, orig_freq: int, new_freq: int) -> torch.Tensor:
    """Resamples ``wav`` [..., N], reusing the kernel of each pair of rates.

    Arguments
    ---------
    wav : torch.Tensor
        Float signal, time last.
    orig_freq : int
        Its sample rate.
    new_freq : int
        The wanted sample rate.

    Returns
    -------
    torch.Tensor
        The resampled signal (``wav`` itself when the rates are equal).

    Example
    -------
    >>> resample(torch.zeros(44100), 44100, 24000).shape
    torch.Size([24000])
    """
    if orig_freq == new_freq:
        return wav
    with torch.no_grad():
        return _resampler(int(orig_freq), int(new_freq))(wav)


def _frame_range(
    path: str, total: int, sample_rate: int,
    start: float | None, stop: float | None,
) -> tuple[int, int]:
    first = 0 if start is None else int(round(start * sample_rate))
    last = total if stop is None else min(total, int(round(stop * sample_rate)))
    if first < 0 or (stop is not None and stop < (start or 0.0)):
        raise AudioError(path, f"bad range start={start} stop={stop}")
    return first, last


def load_audio(
    path: str | os.PathLike,
    start: float | None = None,
    stop: float | None = None,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
) -> torch.Tensor:
    """Decodes ``[start, stop)`` seconds of a file as mono float32 at a rate.

    Only the needed frames are read (seek + read). Channels are averaged and
    the result is resampled to ``sample_rate``.

    Arguments
    ---------
    path : path-like
        An audio file libsndfile decodes (wav, flac, ogg, mp3, au).
    start : float, optional
        First second to read (file start when None).
    stop : float, optional
        Second to stop at (file end when None; clipped to the file end).
    sample_rate : int
        Output sample rate.

    Returns
    -------
    torch.Tensor
        float32, shape [N].

    Raises
    ------
    AudioError
        Missing, unreadable or undecodable file, a directory, no samples in
        the range, or NaN/inf samples.

    Example
    -------
    >>> import tempfile, os, numpy as np, soundfile as sf
    >>> f = os.path.join(tempfile.mkdtemp(), "a.wav")
    >>> sf.write(f, np.zeros((48000, 2), "float32"), 48000)
    >>> load_audio(f, start=0.25, stop=0.75, sample_rate=24000).shape
    torch.Size([12000])
    """
    path = str(path)
    if os.path.isdir(path):
        raise AudioError(path, "is a directory, expected an audio file")
    return decode_audio(path, path, start, stop, sample_rate)


def decode_audio(
    source: str | BinaryIO,
    name: str,
    start: float | None = None,
    stop: float | None = None,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
) -> torch.Tensor:
    """``load_audio`` for a file name or an open binary file (e.g. the
    bytes of a shard member in a ``BytesIO``).

    Arguments
    ---------
    source : str or binary file
        What libsndfile reads.
    name : str
        Names the audio in an ``AudioError``.
    start, stop, sample_rate
        As ``load_audio``.

    Returns
    -------
    torch.Tensor
        float32, shape [N].

    Example
    -------
    >>> import io, numpy as np, soundfile as sf
    >>> buf = io.BytesIO()
    >>> sf.write(buf, np.zeros(16000, "float32"), 16000, format="FLAC")
    >>> decode_audio(io.BytesIO(buf.getvalue()), "a.flac", 0.5, None, 8000).shape
    torch.Size([4000])
    >>> decode_audio(io.BytesIO(b"junk"), "b.mp3")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    muselq_sb.dataio.audio.AudioError: b.mp3: cannot decode (...)
    """
    try:
        with sf.SoundFile(source) as f:
            native_rate = f.samplerate
            first, last = _frame_range(name, f.frames, native_rate, start, stop)
            if last <= first:
                raise AudioError(name, f"no samples in [{start}, {stop}) s")
            if first:
                f.seek(first)
            data = f.read(last - first, dtype="float32", always_2d=True)
    except AudioError:
        raise
    except (sf.SoundFileError, RuntimeError, OSError, ValueError) as err:
        raise AudioError(name, f"cannot decode ({err})") from err
    if data.shape[0] == 0:
        raise AudioError(name, "decoded zero samples")
    if not np.isfinite(data).all():
        raise AudioError(name, "contains NaN or infinite samples")
    wav = torch.from_numpy(data.mean(axis=1) if data.shape[1] > 1 else data[:, 0])
    return resample(wav.contiguous(), native_rate, sample_rate)


def random_crop(
    wav: torch.Tensor, n_samples: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A random window of ``n_samples`` (the whole signal when shorter).

    Arguments
    ---------
    wav : torch.Tensor
        Signal [N].
    n_samples : int
        Window length.
    generator : torch.Generator, optional
        Source of randomness, for reproducible crops.

    Returns
    -------
    torch.Tensor
        A view of ``wav`` with ``min(N, n_samples)`` samples.

    Example
    -------
    >>> random_crop(torch.arange(10.0), 4, torch.Generator().manual_seed(0)).shape
    torch.Size([4])
    >>> random_crop(torch.arange(3.0), 4).shape
    torch.Size([3])
    """
    extra = wav.shape[-1] - n_samples
    if extra <= 0:
        return wav
    offset = int(torch.randint(0, extra + 1, (1,), generator=generator))
    return wav[..., offset : offset + n_samples]


def window_bounds(
    length: float, window: float, hop: float | None = None, min_last: float = 0.0
) -> list[tuple[float, float]]:
    """Cuts ``[0, length)`` into windows: the one windowing of the package.

    Windows of ``window`` start every ``hop`` (default ``window``: no
    overlap), while the previous one ends before ``length``; the last one is
    cut at ``length`` and kept only when it is whole or lasts at least
    ``min_last`` (so a recording shorter than ``min_last`` yields none).
    Lengths are in any one unit: seconds (pre-training segments, probe
    windows) or samples (the windows of long tracks, :mod:`muselq_sb.inference.embedding`).

    Arguments
    ---------
    length : float
        Length of the recording.
    window : float
        Window length (> 0).
    hop : float, optional
        Distance between window starts, in ``(0, window]``.
    min_last : float
        Shortest last window kept.

    Returns
    -------
    list of (start, stop)
        Rounded to 6 decimals (integers stay integers).

    Example
    -------
    >>> window_bounds(70.0, 30.0, min_last=1.0)
    [(0.0, 30.0), (30.0, 60.0), (60.0, 70.0)]
    >>> window_bounds(60.5, 30.0, min_last=1.0)
    [(0.0, 30.0), (30.0, 60.0)]
    >>> window_bounds(100, 40, hop=30)
    [(0, 40), (30, 70), (60, 100)]
    """
    hop = window if hop is None else hop
    if window <= 0 or not 0 < hop <= window:
        raise ValueError(f"windows of {window} every {hop}: expected "
                         "0 < hop <= window")
    bounds = []
    for k in itertools.count():
        start = k * hop
        stop = min(length, start + window)
        size = stop - start
        if size > 1e-6 and (size >= window - 1e-9 or size >= min_last - 1e-9):
            bounds.append((round(start, 6), round(stop, 6)))
        if start + window >= length - 1e-9:
            return bounds


def _as_seconds(value: object) -> float | None:
    """A CSV ``start``/``stop`` cell as seconds; empty means None."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return float(value)


def warn_unreadable(path: str, err: Exception) -> None:
    """Logs that the audio at ``path`` is skipped, once per path and process.

    Example
    -------
    >>> warn_unreadable("/d/x.mp3", AudioError("/d/x.mp3", "no samples"))
    """
    if path not in _WARNED_PATHS:
        _WARNED_PATHS.add(path)
        logger.warning("skipping unreadable audio %s (%s)", path, err)


def crop_window(
    begin: float, end: float, crop_seconds: float,
    generator: torch.Generator | None,
) -> tuple[float, float]:
    """The seconds to read for a crop of ``crop_seconds`` in ``[begin, end)``.

    A random window when ``generator`` is given, else the first one; the
    whole range when it is not longer than the crop.

    Example
    -------
    >>> crop_window(10.0, 70.0, 30.0, None)
    (10.0, 40.0)
    >>> crop_window(0.0, 20.0, 30.0, torch.Generator())
    (0.0, 20.0)
    """
    slack = end - begin - crop_seconds
    if slack <= 0:
        return begin, end
    if generator is None:
        return begin, begin + crop_seconds
    offset = float(torch.rand((), generator=generator)) * slack
    return begin + offset, begin + offset + crop_seconds


def _file_crop_window(
    path: str, start: float | None, stop: float | None, crop_seconds: float,
    generator: torch.Generator | None,
) -> tuple[float, float]:
    """``crop_window`` of the ``[start, stop)`` range of a file.

    Uses only the file header, so the decode covers the crop alone.
    """
    try:
        info = sf.info(path)
    except (sf.SoundFileError, RuntimeError, OSError) as err:
        raise AudioError(path, f"cannot read header ({err})") from err
    end = info.duration if stop is None else min(stop, info.duration)
    return crop_window(start or 0.0, end, crop_seconds, generator)


class _CropGenerator:
    """A crop generator that is re-seeded in every DataLoader worker
    (``get()`` returns the ``torch.Generator`` of the current process).

    Forked workers would otherwise all start from the same generator state
    and draw identical crops; each worker mixes ``seed`` with the worker seed
    that PyTorch draws anew for every epoch.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.worker_seed: int | None = None
        self.generator = torch.Generator().manual_seed(seed)

    def get(self) -> torch.Generator:
        info = torch.utils.data.get_worker_info()
        worker_seed = None if info is None else info.seed
        if worker_seed != self.worker_seed:
            self.worker_seed = worker_seed
            mixed = self.seed if info is None else hash((self.seed, worker_seed))
            self.generator = torch.Generator().manual_seed(mixed % (2**63))
        return self.generator


def audio_pipeline(
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    crop_seconds: float | None = None,
    random: bool = True,
    seed: int = 0,
) -> Callable[..., Iterator[torch.Tensor]]:
    """A SpeechBrain dynamic item: ``path, start, stop -> sig``.

    Arguments
    ---------
    sample_rate : int
        Output sample rate.
    crop_seconds : float, optional
        If set, read only a window of this length from the item range: a
        random one when ``random`` is True, else the first one.
    random : bool
        Random (training) or deterministic (evaluation) crops.
    seed : int
        Seed of the random crops; in DataLoader workers it is mixed with
        the per-epoch worker seed, so workers draw different crops.

    Returns
    -------
    callable
        For ``DynamicItemDataset``; a bad file yields an empty tensor
        (``numel() == 0``) and a warning naming the path, once per process.

    Example
    -------
    >>> import tempfile, os, numpy as np, soundfile as sf
    >>> from speechbrain.dataio.dataset import DynamicItemDataset
    >>> f = os.path.join(tempfile.mkdtemp(), "a.wav")
    >>> sf.write(f, np.zeros(24000, "float32"), 24000)
    >>> data = {"a": {"path": f, "start": "", "stop": "0.5"},
    ...         "b": {"path": f + ".missing", "start": "", "stop": ""}}
    >>> ds = DynamicItemDataset(data, dynamic_items=[audio_pipeline()],
    ...                         output_keys=["id", "sig"])
    >>> ds[0]["sig"].shape, ds[1]["sig"].numel()
    (torch.Size([12000]), 0)
    """
    crops = _CropGenerator(seed) if random else None

    @takes("path", "start", "stop")
    @provides("sig")
    def pipeline(path: str, start: object, stop: object) -> Iterator[torch.Tensor]:
        begin, end = _as_seconds(start), _as_seconds(stop)
        try:
            if crop_seconds is not None:
                generator = None if crops is None else crops.get()
                begin, end = _file_crop_window(path, begin, end, crop_seconds, generator)
            yield load_audio(path, begin, end, sample_rate)
        except AudioError as err:
            warn_unreadable(path, err)
            yield torch.zeros(0)

    return pipeline
