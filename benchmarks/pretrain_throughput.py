"""Pre-training and inference throughput, fp32 vs bf16 autocast.

One training step is the whole BEST-RQ step of ``hparams/brn_sum.yaml``'s
``ssl_model`` (features, quantizer targets, masking, encoder, heads),
``muselq_sb.nnet.heads.masked_ssl_loss``, backward and an Adam step; one
inference call is ``MusicModel`` (waveform -> hidden states) without grad.
Each is timed in fp32 and under bf16 autocast, the four interleaved, on a
batch of the size's ``segment_seconds`` crops, and reported as audio-hours
processed per hour. Targets (bf16 vs fp32): >= 2x for a training step,
>= 2.5x for inference. ``--device cuda`` runs the same on a GPU.

Usage::

    .venv/bin/python benchmarks/pretrain_throughput.py [--sizes small tiny]
        [--device cuda] [--profile] [--quick]

Authors
 * muselq_sb team
"""
from __future__ import annotations

from typing import Callable

import torch

from common import (
    benchmark_result, interleaved_times, load_hparams, parser, ratio, report,
    set_threads, size_values, summary,
)
from muselq_sb.nnet.heads import masked_ssl_loss

TARGETS = {"train": 2.0, "infer": 2.5}
PRECISIONS = ("fp32", "bf16")


def build_ssl(size: str, device: str, override: dict | None = None):
    """The ``ssl_model`` of ``hparams/brn_sum.yaml`` at ``size`` on ``device``."""
    return load_hparams(size, override)["ssl_model"].to(device)


def autocast(device: str, name: str):
    """bf16 autocast on ``device`` (disabled for fp32)."""
    return torch.autocast(device, dtype=torch.bfloat16, enabled=name == "bf16")


def make_steps(ssl, wavs: torch.Tensor, lens: torch.Tensor,
               device: str) -> dict[tuple[str, str], Callable[[], None]]:
    """Training-step and inference calls for each precision.

    Example
    -------
    >>> ssl = build_ssl("tiny", "cpu", {"num_layers": 1})
    >>> steps = make_steps(ssl, torch.randn(1, 24000), torch.ones(1), "cpu")
    >>> sorted(steps)[:2]
    [('infer', 'bf16'), ('infer', 'fp32')]
    >>> steps[("train", "bf16")]()
    """
    optimizer = torch.optim.Adam(ssl.parameters(), lr=1e-5)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def train(name: str) -> Callable[[], None]:
        def step() -> None:
            ssl.train()
            with autocast(device, name):
                out = ssl(wavs, lens)
                loss = masked_ssl_loss(out["logits"], out["tokens"], out["mel_pred"],
                                       out["mel_target"], out["mask"])["loss"]
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            sync()
        return step

    def infer(name: str) -> Callable[[], None]:
        def call() -> None:
            ssl.model.eval()
            with torch.no_grad(), autocast(device, name):
                ssl.model(wavs, lens)
            sync()
        return call

    return {(kind, name): make(name) for kind, make in (("train", train), ("infer", infer))
            for name in PRECISIONS}


def profile_top(fn: Callable[[], None], rows: int = 8) -> list[dict]:
    """The ``rows`` ops of one call with the most self CPU time (profiler)."""
    from torch.profiler import profile

    with profile() as prof:
        fn()
    ops = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    return [{"op": e.key, "self_cpu_ms": round(e.self_cpu_time_total / 1e3, 1),
             "calls": e.count} for e in ops[:rows]]


def main(argv: list[str] | None = None) -> dict:
    """Runs the benchmark, prints a table and writes JSON."""
    p = parser("pretrain_throughput", __doc__.split("\n")[0])
    p.add_argument("--sizes", nargs="+", default=["small", "tiny"],
                   choices=["large", "small", "tiny"])
    p.add_argument("--batch", type=int, default=2, help="crops per batch")
    p.add_argument("--seconds", type=float, default=None,
                   help="crop length (default: the size's segment_seconds)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--profile", action="store_true",
                   help="add the top ops of one call per precision to the JSON")
    args = p.parse_args(argv)
    override = None
    if args.quick:
        args.sizes, args.batch, args.seconds, args.repeats = ["tiny"], 1, 2.0, 1
        override = {"num_layers": 1}
    set_threads(args.threads)
    rows, ratios, profiles = [], {}, {}
    for size in args.sizes:
        seconds = args.seconds or size_values(size)["segment_seconds"]
        torch.manual_seed(0)
        ssl = build_ssl(size, args.device, override)
        wavs = torch.randn(args.batch, int(seconds * 24000), device=args.device).mul(0.1)
        lens = torch.ones(args.batch, device=args.device)
        steps = make_steps(ssl, wavs, lens, args.device)
        times = interleaved_times(steps, args.repeats, warmup=1)
        for (kind, name), t in times.items():
            stats = summary(t)
            rows.append({"size": size, "kind": kind, "precision": name, **stats,
                         "audio_hours_per_hour":
                             round(args.batch * seconds / stats["median_s"], 1)})
        for kind in TARGETS:
            r = ratio(summary(times[(kind, "fp32")])["median_s"],
                      summary(times[(kind, "bf16")])["median_s"])
            ratios[f"{size}/{kind}"] = {"bf16_speedup": r, "target": TARGETS[kind],
                                        "met": bool(r and r >= TARGETS[kind])}
        if args.profile:
            profiles[size] = {f"{k}/{n}": profile_top(fn) for (k, n), fn in steps.items()}
        del ssl, steps
    config = {"sizes": args.sizes, "batch": args.batch, "seconds": args.seconds,
              "device": args.device, "repeats": args.repeats, "quick": args.quick}
    result = benchmark_result("pretrain_throughput", args.threads, config, rows,
                              bf16_vs_fp32=ratios)
    if profiles:
        result["profiles"] = profiles
    return report(result, ["size", "kind", "precision", "median_s", "min_s", "max_s",
                           "audio_hours_per_hour"], args.out,
                  [f"{key} {r}" for key, r in ratios.items()])


if __name__ == "__main__":
    main()
