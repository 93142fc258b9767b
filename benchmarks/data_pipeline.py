"""Per-core throughput of the audio pipeline, and the loader cores one GPU
needs at the paper's batch.

1. Stages, on 30 s 44.1 kHz stereo mp3 files: decode (soundfile +
   down-mix), decode + resample to 24 kHz (``load_audio``), and + log-mel
   (the model's ``MelFrontend``: 2048-point STFT, hop 240, 128 mels, log).
   Target: a 30 s clip in under 0.6 s per core for the whole chain.
2. Loaders, as training reads: the ``--crop`` s segments of longer tracks
   (``--track-seconds``), batched, through (a) the file path
   (``DynamicItemDataset`` + ``audio_pipeline``), (b) shards of the
   original mp3 bytes, (c) shards of the audio decoded once, mono int16 at
   24 kHz, in WAV (``prepare shards --pcm_rate 24000``) and (d) in FLAC
   (``--pcm_format flac``), each iterated in this process; also the bytes
   per audio-second each stores.
   The log-mel is not the loader's: it runs in the model, on the device.
3. Demand: the FLOPs of one brn_sum training step on one crop (forward,
   backward; ``FlopCounterMode``) at ``--size``, the clips per second one
   GPU eats at ``--mfu`` of ``--peak-tflops`` (default: H100/H200 dense
   bf16), and the loader cores that takes for each loader.

Usage::

    .venv/bin/python benchmarks/data_pipeline.py [--threads 1] [--quick]

Authors
 * muselq_sb team
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import soundfile as sf
import torch

from common import (
    benchmark_result, count_flops, interleaved_times, load_hparams, parser, report,
    set_threads, summary,
)
from muselq_sb.dataio.audio import load_audio
from muselq_sb.lobes.frontend import MelFrontend
from muselq_sb.nnet.heads import masked_ssl_loss

SOURCE_RATE = 44100
TARGET = 0.6  # seconds per 30 s clip and core
H200_BF16_DENSE_TFLOPS = 989.0  # H100 / H200 SXM, dense bf16 tensor cores


def music_like(seconds: float, seed: int, rate: int = SOURCE_RATE) -> np.ndarray:
    """A chord plus noise (a music-like spectrum), stereo float32
    [samples, 2] at ``rate``."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    freqs = 110 * 2 ** (rng.integers(0, 24, 4) / 12)
    y = sum(np.sin(2 * np.pi * f * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 0.5 * t))
            for f in freqs) / 6
    y = y + 0.02 * rng.standard_normal(t.size)
    return np.stack([y, np.roll(y, 100)], axis=1).astype(np.float32)


def write_clips(folder: Path, n: int, seconds: float) -> list[Path]:
    """``n`` stereo mp3 files of ``music_like`` audio."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"clip{i}.mp3"
        sf.write(str(path), music_like(seconds, i), SOURCE_RATE, format="MP3")
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


def stage_rows(paths: list[Path], repeats: int, seconds: float) -> list[dict]:
    """Section 1: seconds and clips/s per core of each decoding stage."""
    frontend = MelFrontend()

    def features(path: Path) -> torch.Tensor:
        with torch.no_grad():
            return frontend(load_audio(path, sample_rate=24000)[None], torch.ones(1))[0]

    stages = {
        "decode": decode,
        "decode+resample": lambda p: load_audio(p, sample_rate=24000),
        "decode+resample+logmel": features,
    }
    scale = 30.0 / seconds
    return [{"stage": name, "s_per_30s_clip": t * scale, "clips_per_s": 1 / (t * scale)}
            for name, t in ((n, time_stage(fn, paths, repeats)) for n, fn in stages.items())]


def loaders(folder: Path, crop: float, batch_seconds: float,
            tracks: int) -> dict[str, Callable[[], Iterable]]:
    """Section 2: one epoch of each loader over the training tracks in
    ``folder/music`` (one is held out for validation)."""
    from muselq_sb.dataio.batching import DurationBatcher
    from muselq_sb.dataio.shards import ShardLoader, ShardStream, find_shards
    from muselq_sb.prepare.shards import write_shards
    from muselq_sb.pretrain.data import dataio_prepare

    source = [{"type": "folder", "path": str(folder / "music")}]
    for name, rate, fmt in (("mp3", 0, "wav"), ("pcm", 24000, "wav"),
                            ("flac", 24000, "flac")):
        write_shards(source, folder / name, shard_mb=64, segment_seconds=crop,
                     valid_fraction=1 / tracks, pcm_rate=rate, pcm_format=fmt)
    hparams = {"sample_rate": 24000, "segment_seconds": crop, "seed": 0,
               "max_batch_seconds": batch_seconds, "num_buckets": 10,
               "num_workers": 0, "valid_batch_size": 1}
    task = folder / "mp3" / "pretrain"
    # the file path: the same clips (segments of crop seconds)
    train, _, kwargs, _ = dataio_prepare(hparams, task)

    def files() -> Iterable:
        return torch.utils.data.DataLoader(train, **kwargs)

    def shards(name: str) -> Callable[[], Iterable]:
        def epoch() -> Iterable:
            found = find_shards(str(folder / name / "train-*.tar"))
            return ShardLoader(ShardStream(found, DurationBatcher(batch_seconds, 10),
                                           24000, crop, shuffle_buffer=16))
        return epoch

    return {"files (mp3)": files, "shards (mp3 bytes)": shards("mp3"),
            "shards (int16 PCM, 24 kHz)": shards("pcm"),
            "shards (FLAC, 24 kHz)": shards("flac")}


def stored_kb_per_second(folder: Path) -> dict[str, float]:
    """KB of stored audio per second of audio, for each kind of shards."""
    import json

    sizes = {}
    for name, label in (("mp3", "shards (mp3 bytes)"), ("pcm", "shards (int16 PCM, 24 kHz)"),
                        ("flac", "shards (FLAC, 24 kHz)")):
        index = json.loads((folder / name / "index.json").read_text())
        split = index["splits"]["train"]
        sizes[label] = split["bytes"] / 1000 / (split["hours"] * 3600)
    return sizes


def loader_rates(epochs: dict[str, Callable[[], Iterable]],
                 repeats: int) -> dict[str, tuple[float, int]]:
    """Clips per second (median epoch) and clips of each loader; the
    epochs of the loaders are timed interleaved."""
    clips = {name: sum(len(b.id) for b in epoch()) for name, epoch in epochs.items()}

    def run(epoch: Callable[[], Iterable]) -> Callable[[], None]:
        def call() -> None:
            for batch in epoch():
                assert batch.n_skipped == 0
        return call

    times = interleaved_times({n: run(e) for n, e in epochs.items()}, repeats, warmup=0)
    return {name: (clips[name] / summary(t)["median_s"], clips[name])
            for name, t in times.items()}


def step_flops(size: str, seconds: float) -> int:
    """FLOPs of one training step (forward + backward) on one crop."""
    ssl = load_hparams(size)["ssl_model"].train()
    wavs = 0.1 * torch.randn(1, int(seconds * 24000))

    def step() -> None:
        out = ssl(wavs, torch.ones(1))
        masked_ssl_loss(out["logits"], out["tokens"], out["mel_pred"],
                        out["mel_target"], out["mask"])["loss"].backward()

    return count_flops(step)


def main(argv: list[str] | None = None) -> dict:
    """Runs the benchmark, prints the tables and writes JSON."""
    p = parser("data_pipeline", __doc__.split("\n")[0])
    p.add_argument("--clips", type=int, default=4, help="files of section 1")
    p.add_argument("--seconds", type=float, default=30.0, help="their length")
    p.add_argument("--tracks", type=int, default=8, help="tracks of section 2")
    p.add_argument("--track-seconds", type=float, default=90.0)
    p.add_argument("--crop", type=float, default=30.0, help="crop (segment_seconds)")
    p.add_argument("--size", default="large", choices=["large", "small", "tiny"])
    p.add_argument("--peak-tflops", type=float, default=H200_BF16_DENSE_TFLOPS)
    p.add_argument("--mfu", type=float, default=0.4, help="fraction of the peak reached")
    p.set_defaults(threads=1)
    args = p.parse_args(argv)
    if args.quick:
        args.clips, args.seconds, args.tracks, args.repeats = 2, 4.0, 3, 1
        args.track_seconds, args.crop, args.size = 6.0, 2.0, "tiny"
    set_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        stages = stage_rows(write_clips(tmp / "clips", args.clips, args.seconds),
                            args.repeats, args.seconds)
        write_clips(tmp / "music", args.tracks, args.track_seconds)
        rates = loader_rates(loaders(tmp, args.crop, 16 * args.crop, args.tracks),
                             args.repeats)
        sizes = stored_kb_per_second(tmp)
    flops = step_flops(args.size, args.crop)
    demand = args.mfu * args.peak_tflops * 1e12 / flops  # clips/s one GPU eats
    rows = [{"loader": name, "clips_per_s_per_core": rate, "clips": n,
             "cores_per_gpu": demand / rate, "kb_per_audio_s": sizes.get(name)}
            for name, (rate, n) in rates.items()]
    files_rate = rates["files (mp3)"][0]
    ratios = {name: round(rate / files_rate, 2) for name, (rate, _) in rates.items()}
    full = next(r for r in stages if r["stage"] == "decode+resample+logmel")
    config = {"clips": args.clips, "seconds": args.seconds, "tracks": args.tracks,
              "track_seconds": args.track_seconds, "crop": args.crop, "size": args.size,
              "peak_tflops": args.peak_tflops, "mfu": args.mfu,
              "repeats": args.repeats, "quick": args.quick}
    result = benchmark_result(
        "data_pipeline", args.threads, config, rows, stages=stages,
        vs_files=ratios,
        demand={"train_step_tflop_per_clip": flops / 1e12, "gpu_clips_per_s": demand},
        meets_target=full["s_per_30s_clip"] < TARGET)
    print("| stage | s per 30 s clip | clips/s |\n|---|---|---|")
    for r in stages:
        print(f"| {r['stage']} | {r['s_per_30s_clip']:.3f} | {r['clips_per_s']:.1f} |")
    return report(result, ["loader", "clips_per_s_per_core", "cores_per_gpu",
                           "kb_per_audio_s"], args.out, [
        f"speed vs files: {ratios}",
        f"{args.size} training step: {flops / 1e12:.3f} TFLOP per {args.crop:g} s clip;"
        f" one GPU at {args.mfu:.0%} of {args.peak_tflops:g} TFLOP/s eats"
        f" {demand:.0f} clips/s",
        f"full chain {full['s_per_30s_clip']:.3f} s per 30 s clip and core"
        f" ({'meets' if full['s_per_30s_clip'] < TARGET else 'MISSES'} the {TARGET} s target)",
    ])


if __name__ == "__main__":
    main()
