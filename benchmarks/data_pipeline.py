"""Per-core throughput of the audio pipeline on 30 s, 44.1 kHz stereo mp3 files.

Measures, with ``torch.set_num_threads(1)``: decode (soundfile + down-mix),
decode + resample to 24 kHz (``muselq_sb.dataio.audio.load_audio``), and
decode + resample + log-mel (``MelSpectrogram(24000, n_fft=2048,
hop_length=240, n_mels=128)`` + log). Target: a 30 s clip in under 0.6 s per
core for the whole chain.

Usage::

    python benchmarks/data_pipeline.py --out results/bench/data_pipeline.json

Authors
 * muselq_sb team
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf
import torch
import torchaudio

from muselq_sb.dataio.audio import load_audio

SOURCE_RATE = 44100
TARGET = 0.6  # seconds per 30 s clip and core


def write_clips(folder: Path, n: int, seconds: float) -> list[Path]:
    """``n`` stereo mp3 files of chords plus noise (music-like spectra)."""
    paths = []
    t = np.arange(int(seconds * SOURCE_RATE)) / SOURCE_RATE
    for i in range(n):
        rng = np.random.default_rng(i)
        freqs = 110 * 2 ** (rng.integers(0, 24, 4) / 12)
        y = sum(np.sin(2 * np.pi * f * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 0.5 * t))
                for f in freqs) / 6
        y = y + 0.02 * rng.standard_normal(t.size)
        stereo = np.stack([y, np.roll(y, 100)], axis=1).astype(np.float32)
        path = folder / f"clip{i}.mp3"
        sf.write(str(path), stereo, SOURCE_RATE, format="MP3")
        paths.append(path)
    return paths


def decode(path: Path) -> torch.Tensor:
    """Decode and down-mix only (native rate)."""
    data, _ = sf.read(str(path), dtype="float32", always_2d=True)
    return torch.from_numpy(data.mean(axis=1))


def time_stage(fn: Callable[[Path], object], paths: list[Path], repeats: int) -> float:
    """Mean seconds per clip of ``fn`` over ``repeats`` passes (one warm-up)."""
    fn(paths[0])
    started = time.perf_counter()
    for _ in range(repeats):
        for path in paths:
            fn(path)
    return (time.perf_counter() - started) / (repeats * len(paths))


def main(argv: list[str] | None = None) -> dict:
    """Runs the benchmark, prints a table and writes JSON to ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=None, help="JSON file for the results")
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    mel = torchaudio.transforms.MelSpectrogram(24000, n_fft=2048, hop_length=240, n_mels=128)

    def features(path: Path) -> torch.Tensor:
        with torch.no_grad():
            return torch.log(mel(load_audio(path, sample_rate=24000)) + 1e-6)

    stages = {
        "decode": decode,
        "decode+resample": lambda p: load_audio(p, sample_rate=24000),
        "decode+resample+logmel": features,
    }
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_clips(Path(tmp), args.clips, args.seconds)
        results = {name: time_stage(fn, paths, args.repeats) for name, fn in stages.items()}
    scale = 30.0 / args.seconds
    print(f"{'stage':<26}{'s/clip':>10}{'clips/s':>10}   (per core, {args.seconds:g} s clips)")
    for name, seconds in results.items():
        print(f"{name:<26}{seconds:>10.4f}{1 / seconds:>10.2f}")
    total = results["decode+resample+logmel"] * scale
    verdict = "meets" if total < TARGET else "MISSES"
    print(f"full chain: {total:.3f} s per 30 s clip per core ({verdict} the {TARGET} s target)")
    report = {"clip_seconds": args.seconds, "clips": args.clips, "repeats": args.repeats,
              "threads": torch.get_num_threads(), "target_seconds_per_30s_clip": TARGET,
              "stages": {k: {"seconds_per_clip": v, "clips_per_second": 1 / v}
                         for k, v in results.items()},
              "meets_target": total < TARGET}
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
