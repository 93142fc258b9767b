#!/usr/bin/env python3
"""Parameter counts of the four configurations at the paper's two sizes.

Run: ``.venv/bin/python benchmarks/param_counts.py`` (builds eight models,
about a minute on a CPU). Prints a markdown table: encoder + front-end (the
part kept after pre-training) and the heads, and the reduction SummaryMixing
gives on each backbone.

Authors
 * muselq_sb team
"""
from common import load_hparams


def count(name: str, size: str) -> tuple[float, float]:
    """Millions of parameters: (encoder + front-end, pre-training heads)."""
    ssl = load_hparams(size, name=name)["ssl_model"]
    n = lambda m: sum(p.numel() for p in m.parameters()) / 1e6  # noqa: E731
    return n(ssl.model), n(ssl.token_head) + n(ssl.mel_head)


def main() -> None:
    print("| model | size | encoder + front-end | heads | vs attention |")
    print("|---|---|---|---|---|")
    for backbone in ("brn", "cnf"):
        for size in ("large", "small"):
            att, heads = count(f"{backbone}_att", size)
            summ, _ = count(f"{backbone}_sum", size)
            print(f"| {backbone}_att | {size} | {att:.1f}M | {heads:.1f}M | |")
            print(f"| {backbone}_sum | {size} | {summ:.1f}M | {heads:.1f}M "
                  f"| {100 * (summ / att - 1):+.1f}% |")


if __name__ == "__main__":
    main()
