"""The recommended recipe's training step: token head on every frame vs on
the masked frames only.

``hparams/brn_sum_unmasked.yaml`` trains the mel reconstruction on every
frame and the token loss on the masked frames only (``unmasked_terms:
[mse, pitch]``). Until stop 30 its 8192-way token head ran on the unmasked
frames too (their loss logged, not trained); since then a head whose term
is not in ``unmasked_terms`` skips them. One training step (features,
targets, masking, encoder, heads, loss, backward, Adam) is timed both ways,
interleaved, on a batch of the size's crops, and the two gradients are
compared (they must agree). Target: the step >= 1.2x faster.

Usage::

    .venv/bin/python benchmarks/unmasked_heads.py [--size tiny] [--quick]

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

TARGET = 1.2
SIDES = {"every frame (before stop 30)": ("ce", "mse", "pitch"),
         "masked frames (since)": ("mse", "pitch")}


def make_step(ssl, hp: dict, head_terms: tuple[str, ...], wavs: torch.Tensor,
              lens: torch.Tensor) -> Callable[[], torch.Tensor]:
    """One training step with the heads of ``head_terms`` on every frame;
    returns the gradient as one vector (the loss is the recipe's either way).

    Example
    -------
    >>> hp = load_hparams("tiny", {"num_layers": 1}, "brn_sum_unmasked")
    >>> step = make_step(hp["ssl_model"], hp, ("mse",), torch.randn(1, 24000),
    ...                  torch.ones(1))
    >>> step().ndim
    1
    """
    optimizer = torch.optim.Adam(ssl.parameters(), lr=1e-5)

    def step() -> torch.Tensor:
        ssl.train()
        ssl.unmasked_terms = head_terms
        torch.manual_seed(0)  # the same masks on both sides
        out = ssl(wavs, lens)
        loss = masked_ssl_loss(
            out["logits"], out["tokens"], out["mel_pred"], out["mel_target"],
            out["mask"], ce_weight=hp["ce_weight"], mse_weight=hp["mse_weight"],
            predicted=out["predicted"], unmasked_weight=hp["unmasked_weight"],
            unmasked_terms=tuple(hp["unmasked_terms"]))["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad = torch.cat([p.grad.flatten() for p in ssl.parameters()
                          if p.grad is not None])
        optimizer.zero_grad(set_to_none=True)  # no update: both sides see the same weights
        return grad

    return step


def main(argv: list[str] | None = None) -> dict:
    """Runs the benchmark, prints a table and writes JSON."""
    p = parser("unmasked_heads", __doc__.split("\n")[0])
    p.add_argument("--size", default="tiny", choices=["large", "small", "tiny"])
    p.add_argument("--batch", type=int, default=8, help="crops per batch")
    args = p.parse_args(argv)
    override, seconds = None, size_values(args.size)["segment_seconds"]
    if args.quick:
        args.batch, seconds, args.repeats, override = 1, 2.0, 1, {"num_layers": 1}
    set_threads(args.threads)
    torch.manual_seed(0)
    hp = load_hparams(args.size, override, "brn_sum_unmasked")
    wavs = torch.randn(args.batch, int(seconds * 24000)).mul(0.1)
    lens = torch.ones(args.batch)
    steps = {name: make_step(hp["ssl_model"], hp, terms, wavs, lens)
             for name, terms in SIDES.items()}
    every, masked = (step() for step in steps.values())
    grad_rel_diff = float((every - masked).norm() / every.norm())
    times = interleaved_times(steps, args.repeats, warmup=1)
    rows = [{"heads": name, **summary(t),
             "audio_hours_per_hour": round(args.batch * seconds / summary(t)["median_s"], 1)}
            for name, t in times.items()]
    speedup = ratio(*(summary(t)["median_s"] for t in times.values()))
    config = {"size": args.size, "batch": args.batch, "seconds": seconds,
              "repeats": args.repeats, "quick": args.quick}
    result = benchmark_result(
        "unmasked_heads", args.threads, config, rows, speedup=speedup,
        target=TARGET, met=bool(speedup and speedup >= TARGET),
        grad_rel_diff=grad_rel_diff)
    return report(result, ["heads", "median_s", "min_s", "max_s", "audio_hours_per_hour"],
                  args.out, [f"speedup {speedup} (target >= {TARGET}), gradient "
                             f"relative difference {grad_rel_diff:.1e}"])


if __name__ == "__main__":
    main()
