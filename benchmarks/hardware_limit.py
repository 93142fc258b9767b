"""Achieved FLOP/s of the encoder forward vs a plain matrix product's.

FLOPs of one forward are counted with ``torch.utils.flop_counter.
FlopCounterMode`` (matrix products and convolutions); the encoder's FLOP/s
is that count over the median forward time, and the hardware reference is a
large square ``torch.mm`` in the same dtype, timed interleaved with it.
Two forwards are measured: the ``brn_sum`` Branchformer encoder on 25 Hz
frames (the target) and the whole ``MusicModel`` from the waveform (its
log-mel front-end, kept in float32, is time the counter does not see;
bf16 runs cast the weights and autocast the inputs). Target: encoder
>= 70% of the matrix product, in fp32 and bf16.

Usage::

    .venv/bin/python benchmarks/hardware_limit.py [--size large] [--quick]

Authors
 * muselq_sb team
"""
from __future__ import annotations

from typing import Callable

import torch

from common import (
    benchmark_result, cast_model, count_flops, dtype_of, interleaved_times,
    load_hparams, parser, precision, ratio, report, set_threads, summary,
)

TARGET_FRACTION = 0.70


def build_model(size: str, override: dict | None = None) -> torch.nn.Module:
    """The eval-mode ``MusicModel`` of ``hparams/brn_sum.yaml`` at ``size``."""
    return load_hparams(size, override)["model"].eval()


def workloads(size: str, seconds: float, dtype: torch.dtype, mm_size: int,
              override: dict | None = None) -> dict[str, Callable[[], object]]:
    """The encoder, whole-model and reference matrix-product calls."""
    model = cast_model(build_model(size, override), dtype)
    wav = torch.randn(1, int(seconds * 24000)).mul(0.1)
    lens = torch.ones(1)
    with torch.no_grad():
        mel, mel_lens = model.features(wav, lens)
    mel = mel.to(dtype)
    a = torch.randn(mm_size, mm_size, dtype=dtype)
    b = torch.randn(mm_size, mm_size, dtype=dtype)

    def encoder() -> object:
        with torch.no_grad(), precision(dtype):
            return model.encode(mel, mel_lens)

    def whole() -> object:
        with torch.no_grad(), precision(dtype):
            return model(wav, lens)

    return {"encoder": encoder, "model": whole, "mm": lambda: torch.mm(a, b)}


def main(argv: list[str] | None = None) -> dict:
    """Runs the benchmark, prints a table and writes JSON."""
    p = parser("hardware_limit", __doc__.split("\n")[0])
    p.add_argument("--size", default="large", choices=["large", "small", "tiny"])
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--mm-size", type=int, default=4096)
    p.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"],
                   choices=["fp32", "bf16"])
    args = p.parse_args(argv)
    override = None
    if args.quick:
        args.seconds, args.mm_size, args.repeats = 2.0, 512, 1
        override = {"num_layers": 1}
    set_threads(args.threads)
    rows = []
    for name in args.dtypes:
        calls = workloads(args.size, args.seconds, dtype_of(name), args.mm_size, override)
        flops = {k: count_flops(fn) for k, fn in calls.items()}
        times = interleaved_times(calls, args.repeats, warmup=1)
        mm_rate = flops["mm"] / summary(times["mm"])["median_s"]
        for k in calls:
            stats = summary(times[k])
            rate = flops[k] / stats["median_s"]
            rows.append({"dtype": name, "workload": k, "gflop": round(flops[k] / 1e9, 3),
                         **stats, "gflops_per_s": round(rate / 1e9, 2),
                         "fraction_of_mm": ratio(rate, mm_rate)})
    fractions = {r["dtype"]: r["fraction_of_mm"] for r in rows if r["workload"] == "encoder"}
    config = {"size": args.size, "seconds": args.seconds, "mm_size": args.mm_size,
              "dtypes": args.dtypes, "repeats": args.repeats, "quick": args.quick}
    targets = {d: {"fraction": f, "target": TARGET_FRACTION,
                   "met": bool(f and f >= TARGET_FRACTION)}
               for d, f in fractions.items()}
    result = benchmark_result("hardware_limit", args.threads, config, rows,
                              targets=targets)
    return report(result, ["dtype", "workload", "gflop", "median_s",
                           "gflops_per_s", "fraction_of_mm"], args.out)


if __name__ == "__main__":
    main()
