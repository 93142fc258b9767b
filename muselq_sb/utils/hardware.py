"""Which training precision is fast on this device, measured.

Whether bf16 beats fp32 on a CPU depends on the CPU: with AMX tiles bf16
matrix products run several times faster than fp32, with AVX512-BF16 alone
they ran at half the speed (docs/benchmarks.md, section 5), and on an
AVX2-only CPU oneDNN emulates them about 9x slower (a tiny pre-training
step: 4.3 s against 0.48 s). CPU flags do not tell these apart reliably,
so ``precision: auto`` times one matrix product in both, on one core.

Authors
 * muselq_sb team
"""
from __future__ import annotations

import time
from functools import lru_cache

import torch
from speechbrain.utils.logger import get_logger

logger = get_logger(__name__)

#: The precisions SpeechBrain's ``Brain`` accepts; ``auto`` resolves to one.
PRECISIONS = ("fp32", "fp16", "bf16")
AUTO = "auto"
#: bf16 must be at least this much faster than fp32 to be picked.
MIN_SPEEDUP = 1.1


def _linear_seconds(x: torch.Tensor, w: torch.Tensor, bf16: bool) -> float:
    """Wall time of one ``x @ w.T`` (under bf16 autocast or not)."""
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        start = time.perf_counter()
        torch.nn.functional.linear(x, w)
        return time.perf_counter() - start


@lru_cache(maxsize=None)
def bf16_speedup_on_cpu(rows: int = 2048, width: int = 768, repeats: int = 15) -> float:
    """fp32 time over bf16-autocast time of a ``rows x width x width``
    linear layer on one core of this CPU (above 1: bf16 is faster).

    One thread, the two precisions interleaved, the fastest of ``repeats``
    calls each (after one warm-up call each, in which oneDNN picks its
    kernels): the ratio is a property of the core's instructions, and one
    thread's fastest call is what another job on the machine disturbs
    least. With a job beside it on a 2-core AMX machine, the median of five
    two-thread calls came out anywhere between 0.7x and 8x; this measure
    stayed between 3.8x and 5.1x (docs/benchmarks.md, section 5). Measured
    once per process, in about half a second.

    Example
    -------
    >>> bf16_speedup_on_cpu(rows=64, width=32, repeats=1) > 0
    True
    """
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(rows, width, generator=gen)
    w = torch.randn(width, width, generator=gen)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _linear_seconds(x, w, bf16=False)
        _linear_seconds(x, w, bf16=True)
        fp32 = bf16 = float("inf")
        for _ in range(repeats):
            fp32 = min(fp32, _linear_seconds(x, w, bf16=False))
            bf16 = min(bf16, _linear_seconds(x, w, bf16=True))
    finally:
        torch.set_num_threads(threads)
    return fp32 / max(bf16, 1e-9)


def resolve_precision(precision: str, device: str) -> str:
    """``precision`` as SpeechBrain takes it: ``fp32``, ``fp16`` and ``bf16``
    unchanged; ``auto`` -> ``bf16`` on a CUDA device that supports it and on
    a CPU where bf16 measured at least ``MIN_SPEEDUP`` times faster than
    fp32 (:func:`bf16_speedup_on_cpu`), else ``fp32``.

    Example
    -------
    >>> resolve_precision("fp32", "cpu")
    'fp32'
    >>> resolve_precision("auto", "cpu") in ("fp32", "bf16")
    True
    """
    if precision in PRECISIONS:
        return precision
    if precision != AUTO:
        raise ValueError(
            f"precision: expected one of {PRECISIONS + (AUTO,)}, got {precision!r}")
    kind = torch.device(device).type
    if kind == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if kind != "cpu":
        return "fp32"
    speedup = bf16_speedup_on_cpu()
    chosen = "bf16" if speedup >= MIN_SPEEDUP else "fp32"
    logger.info("precision: auto -> %s (bf16 matrix products measured %.2fx "
                "the speed of fp32 on this CPU)", chosen, speedup)
    return chosen
