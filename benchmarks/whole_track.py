#!/usr/bin/env python3
"""Whole-track embedding: time and peak memory of one pass over a long track.

``MusicEncoder`` embeds a SummaryMixing model's input in a single pass; this
measures how time and peak RSS grow with the track length for brn_sum at
the paper's sizes (random weights: speed and memory do not depend on them).

Run: ``.venv/bin/python benchmarks/whole_track.py [--sizes small large]
[--minutes 1 5 10]``; prints a table, writes ``results/bench/whole_track.json``.

Authors
 * muselq_sb team
"""
from __future__ import annotations

from typing import Any, Callable

import torch

from common import (
    format_table,
    load_hparams,
    parser,
    peak_memory,
    set_threads,
    write_json,
)


def build(size: str, minutes: float, dtype: str) -> Callable[[], Any]:
    """The call to measure: embed ``minutes`` of audio in one pass."""
    from muselq_sb.inference.encoder import MusicEncoder

    model = load_hparams(size)["model"].eval()
    encoder = MusicEncoder(model, dtype=dtype)
    wav = torch.randn(1, int(minutes * 60 * 24000)) * 0.1
    return lambda: encoder.encode_batch(wav, mode="full")


def main(argv: list[str] | None = None) -> None:
    """Runs the measurements and prints the table."""
    p = parser("whole_track", __doc__)
    p.add_argument("--sizes", nargs="+", default=["small", "large"])
    p.add_argument("--minutes", nargs="+", type=float, default=[1.0, 5.0, 10.0])
    p.add_argument("--dtype", default="fp32")
    args = p.parse_args(argv)
    if args.quick:
        args.sizes, args.minutes = ["small"], [0.5]
    set_threads(args.threads)
    rows = []
    for size in args.sizes:
        for minutes in args.minutes:
            m = peak_memory(build, {"size": size, "minutes": minutes,
                                    "dtype": args.dtype}, args.threads)
            rows.append({"size": size, "minutes": minutes, **m})
    print(format_table(rows, ["size", "minutes", "seconds", "peak_mib"]))
    write_json(args.out, {"rows": rows, "dtype": args.dtype})


if __name__ == "__main__":
    main()
