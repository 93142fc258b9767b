"""Which training precision is fast on this device, measured.

Whether bf16 beats fp32 on a CPU depends on the CPU: with AMX tiles bf16
matrix products run several times faster than fp32, with AVX512-BF16 alone
they ran at half the speed (docs/benchmarks.md, section 5), and on an
AVX2-only CPU oneDNN emulates them about 9x slower (a tiny pre-training
step: 4.3 s against 0.48 s). CPU flags do not tell these apart reliably,
so ``precision: auto`` times one matrix product in both.

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


def _median_seconds(x: torch.Tensor, w: torch.Tensor, bf16: bool, repeats: int) -> float:
    """Median wall time of ``x @ w.T`` (under bf16 autocast or not)."""
    times = []
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        torch.nn.functional.linear(x, w)  # warm-up: oneDNN picks its kernel
        for _ in range(repeats):
            start = time.perf_counter()
            torch.nn.functional.linear(x, w)
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


@lru_cache(maxsize=None)
def bf16_speedup_on_cpu(rows: int = 2048, width: int = 768, repeats: int = 5) -> float:
    """fp32 time over bf16-autocast time of a ``rows x width x width``
    linear layer on this CPU (above 1: bf16 is faster). Measured once per
    process, in well under a second.

    Example
    -------
    >>> bf16_speedup_on_cpu(rows=64, width=32, repeats=1) > 0
    True
    """
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(rows, width, generator=gen)
    w = torch.randn(width, width, generator=gen)
    fp32 = _median_seconds(x, w, bf16=False, repeats=repeats)
    bf16 = _median_seconds(x, w, bf16=True, repeats=repeats)
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
