"""Embedding cost of our encoders vs the MERT architectures, waveform in.

``brn_sum`` large and small (``MusicModel`` built from
``hparams/brn_sum.yaml``: log-mel, 25 Hz, Branchformer + SummaryMixing) vs
MERT-v1-330M and MERT-v1-95M (``transformers`` ``HubertModel`` with random
weights and the configurations of docs/peers.md section 4.2: 7-layer
waveform CNN at 75 Hz, 24 x 1024 pre-LN / 12 x 768 post-LN, SDPA attention).
All return every layer's hidden states for a 24 kHz clip of 30 s and a
5-minute track, batch 1, no grad, same threads and dtype.

FLOPs are counted with ``FlopCounterMode``: ours on the first, untimed
call; MERT's on the meta device (no compute), where attention runs as
matrix products that the counter sees (the CPU flash-attention kernel of a
real call is not counted).
Clips are timed interleaved (``--repeats``) and each configuration's
peak memory is measured in a fresh child process. A 5-minute pass of a MERT
architecture takes minutes, so each is run once, in its memory child, whose
time is reported (``--skip-long-peers`` leaves them out).

Targets: brn_sum large >= 10x faster than MERT-330M on 30 s, >= 30x faster
and >= 5x lighter on 5 minutes; brn_sum small >= 5x faster than MERT-95M.

Usage::

    .venv/bin/python benchmarks/encoders_vs_peers.py [--skip-long-peers] [--quick]

Authors
 * muselq_sb team
"""
from __future__ import annotations

from typing import Callable

import torch

from common import (
    benchmark_result, cast_model, count_flops, dtype_of, format_table,
    interleaved_times, load_hparams, parser, peak_memory, precision, ratio, report,
    set_threads, start_memory_server, summary,
)
from muselq_sb.inference.embedding import hidden_states

SAMPLE_RATE = 24000
#: MERT configurations (docs/peers.md section 4.2), as HubertConfig keywords.
MERT = {
    "mert_330m": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                      intermediate_size=4096, do_stable_layer_norm=True),
    "mert_95m": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                     intermediate_size=3072, do_stable_layer_norm=False),
}
#: Ours -> its peer, and the speed-up targets at (short, long).
PAIRS = {"brn_sum_large": "mert_330m", "brn_sum_small": "mert_95m"}
SPEED_TARGETS = {"brn_sum_large": (10.0, 30.0), "brn_sum_small": (5.0, None)}
MEMORY_TARGET_LONG = 5.0


def build_model(name: str, size_override: dict | None = None) -> torch.nn.Module:
    """An eval-mode encoder: ``brn_sum_<size>`` or a ``MERT`` key.

    ``size_override`` replaces preset values (tiny test models).

    Example
    -------
    >>> m = build_model("mert_95m", dict(hidden_size=32, num_hidden_layers=1,
    ...     num_attention_heads=2, intermediate_size=64, conv_dim=[8] * 7,
    ...     num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2))
    >>> embed(m, torch.rand(1, 24000))[-1].shape
    torch.Size([1, 74, 32])
    """
    if name in MERT:
        from transformers import HubertConfig, HubertModel

        settings = dict(MERT[name], feat_extract_norm="group", conv_bias=False,
                        hidden_act="gelu", num_conv_pos_embeddings=128,
                        num_conv_pos_embedding_groups=16)
        config = HubertConfig(**{**settings, **(size_override or {})})
        config._attn_implementation = "sdpa"
        return HubertModel(config).eval()
    return load_hparams(name.rsplit("_", 1)[1], size_override)["model"].eval()


def embed(model: torch.nn.Module, wav: torch.Tensor) -> list[torch.Tensor]:
    """Every layer's hidden states of ``wav`` [1, N] (no grad): ours through
    the package's one embedding path, in one pass.

    A bf16 model (see ``common.cast_model``) runs under bf16 autocast.
    """
    dtype = next(model.parameters()).dtype
    if hasattr(model, "frontend"):
        bf16 = dtype == torch.bfloat16
        return hidden_states(model, wav, mode="full", precision="bf16" if bf16 else "fp32")[0]
    with torch.no_grad(), precision(dtype):
        return list(model(wav, output_hidden_states=True).hidden_states)


def build(name: str, seconds: float, dtype: str,
          size_override: dict | None = None) -> Callable[[], list]:
    """Model and clip of one configuration, warmed up on a 1 s clip."""
    dt = dtype_of(dtype)
    model = cast_model(build_model(name, size_override), dt)
    wav = torch.randn(1, int(seconds * SAMPLE_RATE),
                      generator=torch.Generator().manual_seed(0)).mul(0.1)
    embed(model, wav[:, :SAMPLE_RATE])
    return lambda: embed(model, wav)


def meta_gflop(name: str, seconds: float, size_override: dict | None = None) -> float:
    """GFLOP of one MERT embedding, counted on the meta device (no compute).

    Attention is counted too: on the meta device SDPA decomposes into
    matrix products, while a real CPU call's flash kernel is not counted.

    Example
    -------
    >>> meta_gflop("mert_95m", 30.0) > 800
    True
    """
    with torch.device("meta"):
        model = build_model(name, size_override)
        wav = torch.zeros(1, int(seconds * SAMPLE_RATE))
    return round(count_flops(lambda: embed(model, wav)) / 1e9, 1)


def main(argv: list[str] | None = None) -> dict:
    """Runs the benchmark, prints a table and writes JSON."""
    p = parser("encoders_vs_peers", __doc__.split("\n")[0])
    p.add_argument("--short", type=float, default=30.0, help="short clip, seconds")
    p.add_argument("--long", type=float, default=300.0, help="long track, seconds")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--skip-long-peers", action="store_true",
                   help="no 5-minute pass of the MERT architectures")
    args = p.parse_args(argv)
    override: dict = {}
    models = ["brn_sum_large", "mert_330m", "brn_sum_small", "mert_95m"]
    if args.quick:
        args.short, args.long, args.repeats = 1.0, 2.0, 1
        override = {"brn_sum": {"num_layers": 1}, "mert": {"num_hidden_layers": 1}}
    set_threads(args.threads)
    start_memory_server()

    def kwargs(name: str, seconds: float) -> dict:
        family = "mert" if name in MERT else "brn_sum"
        return dict(name=name, seconds=seconds, dtype=args.dtype,
                    size_override=override.get(family))

    rows = []
    for label, seconds in (("short", args.short), ("long", args.long)):
        once = [m for m in models if label == "long" and m in MERT]
        calls = {m: build(**kwargs(m, seconds)) for m in models if m not in once}
        gflop = {m: meta_gflop(m, seconds, override.get("mert")) if m in MERT
                 else round(count_flops(calls[m]) / 1e9, 1) for m in models}
        times = interleaved_times(calls, args.repeats, warmup=0)
        del calls
        for name in models:
            if name in once and args.skip_long_peers:
                rows.append({"model": name, "clip": label, "seconds": seconds,
                             "gflop": gflop[name], "skipped": "--skip-long-peers"})
                continue
            mem = peak_memory(build, kwargs(name, seconds), args.threads)
            row = {"model": name, "clip": label, "seconds": seconds,
                   "gflop": gflop[name], "peak_mib": mem.get("peak_mib"), "memory": mem}
            row.update(summary(times[name]) if name in times
                       else summary([mem["seconds"]]) if "seconds" in mem else {})
            rows.append(row)
            print(format_table([row], ["model", "clip", "median_s", "peak_mib"]
                               ).splitlines()[-1], flush=True)
    comparisons = {}
    for ours, peer in PAIRS.items():
        for i, label in enumerate(("short", "long")):
            a = next(r for r in rows if (r["model"], r["clip"]) == (ours, label))
            b = next(r for r in rows if (r["model"], r["clip"]) == (peer, label))
            speed = ratio(b.get("median_s"), a.get("median_s"))
            mem = ratio(b.get("peak_mib"), a.get("peak_mib"))
            target = SPEED_TARGETS[ours][i]
            entry = {"peer": peer, "speedup": speed, "memory_ratio": mem,
                     "flop_ratio": ratio(b["gflop"], a["gflop"]),
                     "speed_target": target,
                     "speed_met": None if target is None else bool(speed and speed >= target)}
            if (ours, label) == ("brn_sum_large", "long"):
                entry["memory_target"] = MEMORY_TARGET_LONG
                entry["memory_met"] = bool(mem and mem >= MEMORY_TARGET_LONG)
            comparisons[f"{ours}/{label}"] = entry
    config = {"short_s": args.short, "long_s": args.long, "dtype": args.dtype,
              "repeats": args.repeats, "skip_long_peers": args.skip_long_peers,
              "quick": args.quick}
    result = benchmark_result("encoders_vs_peers", args.threads, config, rows,
                              comparisons=comparisons)
    return report(result, ["model", "clip", "gflop", "median_s", "min_s", "max_s",
                           "n", "peak_mib", "skipped"], args.out,
                  [f"{key} {c}" for key, c in comparisons.items()])


if __name__ == "__main__":
    main()
