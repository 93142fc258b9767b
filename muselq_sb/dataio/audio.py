"""Audio loading for music: decode, down-mix, resample, crop and segment.

Two decoders, tried in this order on every file:

* ``soundfile`` (libsndfile): wav, flac, ogg/oga (Vorbis), opus (Ogg
  Opus), mp3, au, aiff. It seeks to the first frame of a range and reads
  only the frames that are needed, so one 30 s segment of a long track
  costs a 30 s decode. On the same files (``benchmarks/decoders.py``) it
  decodes mp3 1.4x and flac 1.7x as fast as PyAV, a 10 s crop of an mp3 3x
  (PyAV cannot seek in a bare mp3 stream), Ogg Vorbis as fast; only Ogg Opus
  is faster through FFmpeg (1.6x). Both give the same samples (to 2e-6).
* PyAV (FFmpeg, inside the ``av`` wheel), for what libsndfile cannot read:
  m4a/mp4/aac (AAC, ALAC), wma (ASF), mkv/mka/webm and mov, i.e. any
  container with an audio stream, the first audio stream being used. A
  range is read after a seek (plus ``PYAV_PREROLL_SECONDS`` decoded and
  dropped, so the decoder starts from a full history) where the container
  times samples exactly (mp4/m4a/mov, Ogg); elsewhere (mkv/webm, wma, raw
  .aac) decoding starts at the file start and stops at the range end.

Either way the samples are averaged over the channels and resampled with
``resample`` (torchaudio), so both paths give the same kind of signal.
``AUDIO_EXTENSIONS`` is the one list of file extensions every folder search
uses (command line, folder and data-set preparation).

``audio_pipeline`` wraps the loader as a SpeechBrain dynamic item that never
raises on a bad file: it logs the path once and yields an empty signal, which
``muselq_sb.dataio.batching.SkipEmptyCollate`` drops.

Authors
 * muselq_sb team
"""
from __future__ import annotations

import functools
import itertools
import logging
import os
from fractions import Fraction
from typing import BinaryIO, Callable, Iterator

import av
import numpy as np
import soundfile as sf
import torch
import torchaudio
from speechbrain.utils.data_pipeline import provides, takes

logger = logging.getLogger(__name__)

DEFAULT_SAMPLE_RATE = 24000
_WARNED_PATHS: set[str] = set()

#: File extensions (lower case) searched for as audio: libsndfile's first,
#: then those only PyAV decodes.
AUDIO_EXTENSIONS = (
    ".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".au", ".aiff", ".aif",
    ".m4a", ".mp4", ".aac", ".wma", ".mka", ".mkv", ".webm", ".mov",
)
#: Seconds decoded and dropped before a PyAV seek target (AAC needs one
#: 1024-sample frame of history, Opus 80 ms).
PYAV_PREROLL_SECONDS = 0.2
# Demuxers of bare codec streams: no index and no length in a header, so
# FFmpeg estimates both from the bit rate; never seek in them, and count
# their length by decoding.
_HEADERLESS_DEMUXERS = frozenset({"aac", "ac3", "eac3", "mp3"})
_SOUNDFILE_ERRORS = (sf.SoundFileError, RuntimeError, OSError, ValueError)
_PYAV_ERRORS = (av.FFmpegError, OSError, ValueError, RuntimeError)


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


def has_audio_extension(path: str | os.PathLike) -> bool:
    """True when the file name ends with one of ``AUDIO_EXTENSIONS`` (any case).

    Example
    -------
    >>> [has_audio_extension(p) for p in ("a/x.M4A", "y.opus", "notes.txt")]
    [True, True, False]
    """
    return os.path.splitext(str(path))[1].lower() in AUDIO_EXTENSIONS


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
    path: str, total: int | None, sample_rate: int,
    start: float | None, stop: float | None,
) -> tuple[int, int | None]:
    """First and end frame of ``[start, stop)`` s; end None: the file end
    (``total`` frames, when known)."""
    first = 0 if start is None else int(round(start * sample_rate))
    last = total if stop is None else int(round(stop * sample_rate))
    if total is not None and last is not None:
        last = min(total, last)
    if first < 0 or (stop is not None and stop < (start or 0.0)):
        raise AudioError(path, f"bad range start={start} stop={stop}")
    if last is not None and last <= first:
        raise AudioError(path, f"no samples in [{start}, {stop}) s")
    return first, last


def _read_soundfile(
    source: str | BinaryIO, name: str, start: float | None, stop: float | None,
) -> tuple[np.ndarray, int]:
    """Frames [N, channels] (float32) of ``[start, stop)`` and the native
    rate, through libsndfile (seek, then read the range only)."""
    with sf.SoundFile(source) as f:
        first, last = _frame_range(name, f.frames, f.samplerate, start, stop)
        if first:
            f.seek(first)
        return f.read(last - first, dtype="float32", always_2d=True), f.samplerate


def _audio_stream(container: av.container.InputContainer) -> av.audio.AudioStream:
    """The first audio stream of a container (ValueError when none)."""
    if not container.streams.audio:
        raise ValueError(f"no audio stream in the {container.format.name} container")
    stream = container.streams.audio[0]
    if not stream.codec_context.sample_rate:
        raise ValueError("audio stream without a sample rate")
    return stream


def _times_samples(container: av.container.InputContainer,
                   stream: av.audio.AudioStream) -> bool:
    """True when the container times this stream to the sample (so its
    header length is exact and a seek lands where its timestamps say)."""
    return (container.format.name not in _HEADERLESS_DEMUXERS
            and stream.time_base is not None
            and stream.time_base * stream.codec_context.sample_rate <= 1)


def _header_frames(container: av.container.InputContainer,
                   stream: av.audio.AudioStream, exact: bool) -> int | None:
    """The stream's length in samples from the container header, or None.

    ``exact``: only a length timed to the sample (mp4, Ogg); else also a
    container length (mkv, wma: to the millisecond). Bare codec streams
    have no length in a header (FFmpeg's is a bit-rate estimate): None.
    """
    rate = stream.codec_context.sample_rate
    if container.format.name in _HEADERLESS_DEMUXERS:
        return None
    if stream.duration and stream.time_base is not None and (
            not exact or _times_samples(container, stream)):
        return round(stream.duration * stream.time_base * rate)
    if not exact and container.duration:
        return round(Fraction(container.duration, av.time_base) * rate)
    return None


def _decode_pyav(
    source: str | BinaryIO, name: str, start: float | None, stop: float | None,
    seek: bool,
) -> tuple[np.ndarray, int] | None:
    """``_read_soundfile`` through PyAV (first audio stream).

    With ``seek`` and a container that times samples, decoding starts
    ``PYAV_PREROLL_SECONDS`` before the range after a seek and the samples
    are placed by the timestamp of the first frame; otherwise they are
    counted from the file start. Returns None when the seek landed after the
    range start (the caller decodes again without seeking).
    """
    with av.open(source, metadata_errors="ignore") as container:
        stream = _audio_stream(container)
        rate = stream.codec_context.sample_rate
        first, last = _frame_range(
            name, _header_frames(container, stream, exact=True), rate, start, stop)
        preroll = int(PYAV_PREROLL_SECONDS * rate)
        origin = stream.start_time or 0
        position: int | None = 0
        if seek and first > preroll and _times_samples(container, stream):
            target = Fraction(first - preroll, rate) / stream.time_base
            container.seek(origin + int(target), stream=stream, backward=True)
            position = None
        to_float = av.AudioResampler(format="fltp")  # keeps layout and rate
        chunks = []
        for frame in container.decode(stream):
            if position is None:
                if frame.pts is None:
                    return None
                position = round((frame.pts - origin) * stream.time_base * rate)
                if position > first:
                    return None
            for out in to_float.resample(frame):
                samples = out.to_ndarray()  # [channels, n]
                n = samples.shape[1]
                lo = max(first - position, 0)
                hi = n if last is None else min(last - position, n)
                if hi > lo:
                    chunks.append(samples[:, lo:hi])
                position += n
            if last is not None and position >= last:
                break
    if not chunks:
        if first:
            raise AudioError(name, f"no samples in [{start}, {stop}) s")
        return np.zeros((0, 1), np.float32), rate
    return np.ascontiguousarray(np.concatenate(chunks, axis=1).T), rate


def _rewind(source: str | BinaryIO) -> None:
    if not isinstance(source, str):
        source.seek(0)


def _why(err: Exception) -> str:
    """A decoder's reason without the path it repeats (libsndfile's
    ``error_string``, FFmpeg's and the OS's ``strerror``)."""
    return getattr(err, "error_string", None) or getattr(err, "strerror", None) or str(err)


def _read_pyav(
    source: str | BinaryIO, name: str, start: float | None, stop: float | None,
) -> tuple[np.ndarray, int]:
    """``_decode_pyav`` with a seek, or again from the start if the seek
    overshot the range."""
    _rewind(source)
    result = _decode_pyav(source, name, start, stop, seek=True)
    if result is None:
        _rewind(source)
        result = _decode_pyav(source, name, start, stop, seek=False)
    return result


def load_audio(
    path: str | os.PathLike,
    start: float | None = None,
    stop: float | None = None,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
) -> torch.Tensor:
    """Decodes ``[start, stop)`` seconds of a file as mono float32 at a rate.

    soundfile first, PyAV for what it cannot read (module docstring); only
    the needed frames are decoded where the format allows a seek. Channels
    are averaged and the result is resampled to ``sample_rate``.

    Arguments
    ---------
    path : path-like
        An audio file (``AUDIO_EXTENSIONS``; the format is found from the
        content, not the name).
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
        What libsndfile or PyAV reads (a binary file must be seekable).
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
    muselq_sb.dataio.audio.AudioError: b.mp3: cannot decode (soundfile: ...; PyAV: ...)
    """
    try:
        data, native_rate = _read_soundfile(source, name, start, stop)
    except AudioError:
        raise
    except _SOUNDFILE_ERRORS as sf_err:
        try:
            data, native_rate = _read_pyav(source, name, start, stop)
        except AudioError:
            raise
        except _PYAV_ERRORS as err:
            raise AudioError(
                name, f"cannot decode (soundfile: {_why(sf_err)}; PyAV: {_why(err)})",
            ) from err
    if data.shape[0] == 0:
        raise AudioError(name, "decoded zero samples")
    if not np.isfinite(data).all():
        raise AudioError(name, "contains NaN or infinite samples")
    wav = torch.from_numpy(data.mean(axis=1) if data.shape[1] > 1 else data[:, 0])
    return resample(wav.contiguous(), native_rate, sample_rate)


def _count_pyav_frames(source: str | BinaryIO) -> tuple[int, int]:
    """Samples and rate of the first audio stream: from the header where
    there is a length, else by decoding it all."""
    with av.open(source, metadata_errors="ignore") as container:
        stream = _audio_stream(container)
        frames = _header_frames(container, stream, exact=False)
        if frames is None:
            frames = sum(frame.samples for frame in container.decode(stream))
        return frames, stream.codec_context.sample_rate


def probe_duration(source: str | os.PathLike | BinaryIO, name: str | None = None) -> float:
    """Seconds of audio in a file, from its header where it has a length.

    soundfile's header first; else PyAV's: the stream's length (mp4, Ogg,
    wma), or the container's (mkv/webm, to the millisecond); a bare codec
    stream (.aac), whose header has none, is decoded and its samples counted.

    Arguments
    ---------
    source : path-like or binary file
        The audio.
    name : str, optional
        Names it in an ``AudioError`` (default: ``source`` as text).

    Returns
    -------
    float
        Seconds (> 0).

    Raises
    ------
    AudioError
        Neither decoder reads the file, or it holds no samples.

    Example
    -------
    >>> import io, numpy as np, soundfile as sf
    >>> buf = io.BytesIO()
    >>> sf.write(buf, np.zeros(12000, "float32"), 8000, format="WAV")
    >>> probe_duration(io.BytesIO(buf.getvalue()), "a.wav")
    1.5
    """
    if isinstance(source, os.PathLike):
        source = str(source)
    name = str(source) if name is None else name
    try:
        info = sf.info(source)
        frames, rate = info.frames, info.samplerate
    except _SOUNDFILE_ERRORS as sf_err:
        try:
            _rewind(source)
            frames, rate = _count_pyav_frames(source)
        except _PYAV_ERRORS as err:
            raise AudioError(
                name, f"cannot read (soundfile: {_why(sf_err)}; PyAV: {_why(err)})",
            ) from err
    if frames <= 0 or rate <= 0:
        raise AudioError(name, "no samples")
    return frames / rate


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

    Uses the file header (``probe_duration``), so the decode covers the
    crop alone.
    """
    duration = probe_duration(path)
    end = duration if stop is None else min(stop, duration)
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
