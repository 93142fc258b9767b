"""Random-projection quantizer: ours vs SpeechBrain's, same buffers.

Tokenises a batch of stacked-mel frames (default 16 x 30 s = 16 x 750
frames x 512) with ``muselq_sb.nnet.quantizer.RandomProjectionQuantizer``
and ``speechbrain.nnet.quantisers.RandomProjectionQuantizer`` loaded with
the same projection and codebook; reports the median time of interleaved
calls, the peak memory of one call (fresh child process each), and whether
the tokens are identical. Targets: >= 10x faster and >= 10x less memory.

Usage::

    .venv/bin/python benchmarks/quantizer.py [--quick]

Authors
 * muselq_sb team
"""
from __future__ import annotations

from typing import Callable

import torch
from speechbrain.nnet.quantisers import RandomProjectionQuantizer as SBQuantizer

from common import (
    benchmark_result, interleaved_times, parser, peak_memory, ratio, report,
    set_threads, start_memory_server, summary,
)
from muselq_sb.nnet.quantizer import RandomProjectionQuantizer

TARGET_SPEEDUP = 10.0
TARGET_MEMORY = 10.0


def make_pair(
    dim: int, vocab: int, seed: int = 0
) -> tuple[RandomProjectionQuantizer, SBQuantizer]:
    """Our quantizer and SpeechBrain's, sharing projection and codebook.

    Example
    -------
    >>> ours, sb = make_pair(8, 16)
    >>> x = torch.randn(2, 5, 8)
    >>> torch.equal(ours(x)[..., 0], sb(x))
    True
    """
    ours = RandomProjectionQuantizer(input_dim=dim, cb_vocab=vocab, seed=seed)
    sb = SBQuantizer(input_dim=dim, cb_dim=ours.codebook.shape[-1], cb_vocab=vocab)
    sb.P.copy_(ours.projection[0])
    sb.CB.copy_(ours.codebook[0])
    return ours, sb


def frames(batch: int, length: int, dim: int) -> torch.Tensor:
    """Standard-normal frames (what normalised stacked mels look like)."""
    return torch.randn(batch, length, dim, generator=torch.Generator().manual_seed(1))


def build(side: str, batch: int, length: int, dim: int,
          vocab: int) -> Callable[[], torch.Tensor]:
    """The call to measure for ``side`` ``"ours"`` or ``"speechbrain"``."""
    ours, sb = make_pair(dim, vocab)
    quantizer = ours if side == "ours" else sb
    x = frames(batch, length, dim)

    def call() -> torch.Tensor:
        with torch.no_grad():
            return quantizer(x)

    return call


def main(argv: list[str] | None = None) -> dict:
    """Runs the benchmark, prints a table and writes JSON."""
    p = parser("quantizer", __doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--frames", type=int, default=750, help="25 Hz frames per item")
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--vocab", type=int, default=8192)
    args = p.parse_args(argv)
    if args.quick:
        args.batch, args.frames, args.vocab, args.repeats = 2, 50, 1024, 1
    set_threads(args.threads)
    start_memory_server()
    shape = dict(batch=args.batch, length=args.frames, dim=args.dim, vocab=args.vocab)

    ours, sb = make_pair(args.dim, args.vocab)
    x = frames(args.batch, args.frames, args.dim)
    with torch.no_grad():
        tok_ours, tok_sb = ours(x)[..., 0], sb(x)
    mismatches = int((tok_ours != tok_sb).sum())

    times = interleaved_times(
        {"ours": lambda: ours(x), "speechbrain": lambda: sb(x)},
        repeats=args.repeats,
    )
    del ours, sb, x
    rows = []
    for side in ("ours", "speechbrain"):
        mem = peak_memory(build, dict(side=side, **shape), args.threads)
        rows.append({"side": side, **summary(times[side]),
                     "peak_mib": mem.get("peak_mib"), "memory": mem})
    speedup = ratio(rows[1]["median_s"], rows[0]["median_s"])
    memory_ratio = ratio(rows[1]["peak_mib"], max(rows[0]["peak_mib"] or 0, 0.1))
    result = benchmark_result(
        "quantizer", args.threads, {**shape, "repeats": args.repeats, "quick": args.quick},
        rows,
        tokens_identical=mismatches == 0,
        token_mismatches=mismatches,
        n_tokens=int(tok_ours.numel()),
        speedup=speedup,
        memory_ratio=memory_ratio,
        targets={
            "speedup": {"target": TARGET_SPEEDUP,
                        "met": bool(speedup and speedup >= TARGET_SPEEDUP)},
            "memory_ratio": {"target": TARGET_MEMORY,
                             "met": bool(memory_ratio and memory_ratio >= TARGET_MEMORY)},
        },
    )
    return report(result, ["side", "median_s", "min_s", "max_s", "n", "peak_mib"],
                  args.out, [f"speed-up {speedup}x, memory {memory_ratio}x less, "
                             f"tokens identical: {mismatches == 0} ({mismatches} mismatches)"])


if __name__ == "__main__":
    main()
