"""soundfile vs PyAV on the same files: why ``load_audio`` tries soundfile
first and PyAV only for what libsndfile cannot read.

One ``--seconds`` long 44.1 kHz stereo music-like track (48 kHz for Opus)
per format, written by libsndfile (mp3, ogg Vorbis, opus, flac) or by PyAV
(m4a AAC, which libsndfile cannot read), is decoded by each decoder that
reads it, the two decoders of ``muselq_sb.dataio.audio`` called directly
(native rate, down-mixed as ``load_audio`` does, no resampling):

* whole file: seconds per minute of audio, and times real time;
* a ``--crop`` s window from the middle (what a training crop reads);
* samples decoded and the largest difference from soundfile's samples.

The ratios PyAV / soundfile are printed per format (above 1: soundfile is
faster).

Usage::

    .venv/bin/python benchmarks/decoders.py [--seconds 60] [--crop 10] [--repeats 5]

Authors
 * muselq_sb team
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf

from common import ROOT, benchmark_result, interleaved_times, parser, report, set_threads, summary
from data_pipeline import SOURCE_RATE, music_like

sys.path.insert(0, str(ROOT))
from muselq_sb.dataio.audio import _read_pyav, _read_soundfile  # noqa: E402
from tests.fixtures.audio import encode_with_pyav  # noqa: E402

# format -> (sample rate, libsndfile format and subtype or None: PyAV writes it)
FORMATS = {
    "mp3": (SOURCE_RATE, ("MP3", "MPEG_LAYER_III")),
    "ogg": (SOURCE_RATE, ("OGG", "VORBIS")),
    "opus": (48000, ("OGG", "OPUS")),
    "flac": (SOURCE_RATE, ("FLAC", "PCM_16")),
    "m4a": (SOURCE_RATE, None),
}
DECODERS = {"soundfile": _read_soundfile, "PyAV": _read_pyav}


def write_tracks(folder: Path, seconds: float) -> dict[str, Path]:
    """One track per format of ``FORMATS``, the same music in each."""
    paths = {}
    for fmt, (rate, libsndfile) in FORMATS.items():
        path = folder / f"track.{fmt}"
        audio = music_like(seconds, 0, rate)
        if libsndfile is None:
            encode_with_pyav(path, audio, rate)
        else:  # one second per call: libvorbis overflows its stack on a
            # long single write (libsndfile/libsndfile#1095)
            with sf.SoundFile(str(path), "w", rate, 2, libsndfile[1], format=libsndfile[0]) as f:
                for i in range(0, len(audio), rate):
                    f.write(audio[i:i + rate])
        paths[fmt] = path
    return paths


def decode(decoder: Callable, path: Path, start: float | None = None,
           stop: float | None = None) -> np.ndarray:
    """Mono samples at the native rate, as ``load_audio`` down-mixes them."""
    data, _ = decoder(str(path), path.name, start, stop)
    return data.mean(axis=1)


def readers(path: Path) -> list[str]:
    """The decoders that read ``path``."""
    names = []
    for name, decoder in DECODERS.items():
        try:
            decode(decoder, path, 0.0, 0.1)
            names.append(name)
        except (RuntimeError, ValueError, OSError):
            pass
    return names


def main(argv: list[str] | None = None) -> dict:
    """Runs the benchmark, prints the table and writes JSON."""
    p = parser("decoders", __doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=60.0, help="track length")
    p.add_argument("--crop", type=float, default=10.0, help="window read from the middle")
    p.set_defaults(threads=1, repeats=5)
    args = p.parse_args(argv)
    if args.quick:
        args.seconds, args.crop, args.repeats = 4.0, 1.0, 1
    set_threads(args.threads)
    start = (args.seconds - args.crop) / 2
    rows, ratios = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for fmt, path in write_tracks(Path(tmp), args.seconds).items():
            names = readers(path)
            calls = {}
            for name in names:
                decoder = DECODERS[name]
                calls[f"{name} full"] = lambda d=decoder: decode(d, path)
                calls[f"{name} crop"] = lambda d=decoder: decode(d, path, start, start + args.crop)
            times = {k: summary(v)["median_s"]
                     for k, v in interleaved_times(calls, args.repeats).items()}
            reference = decode(_read_soundfile, path) if "soundfile" in names else None
            for name in names:
                samples = decode(DECODERS[name], path)
                n = min(samples.size, reference.size) if reference is not None else 0
                rows.append({
                    "format": fmt, "decoder": name,
                    "s_per_min": times[f"{name} full"] * 60 / args.seconds,
                    "x_realtime": args.seconds / times[f"{name} full"],
                    "crop_s": times[f"{name} crop"],
                    "samples": samples.size,
                    "max_abs_diff": (float(np.abs(samples[:n] - reference[:n]).max())
                                     if n else None),
                })
            if len(names) == 2:
                ratios[fmt] = {
                    "full": round(times["PyAV full"] / times["soundfile full"], 2),
                    "crop": round(times["PyAV crop"] / times["soundfile crop"], 2)}
    config = {"seconds": args.seconds, "crop": args.crop, "repeats": args.repeats,
              "quick": args.quick}
    result = benchmark_result("decoders", args.threads, config, rows,
                              pyav_over_soundfile=ratios)
    return report(result, ["format", "decoder", "s_per_min", "x_realtime", "crop_s",
                           "samples", "max_abs_diff"], args.out, [
        f"time PyAV / time soundfile (whole file, {args.crop:g} s crop): {ratios}"])


if __name__ == "__main__":
    main()
