"""Token-mixer scaling inside a large Branchformer: SummaryMixing vs RoPE
attention vs regular attention, forward time and peak memory vs length.

Encoder inputs [1, T, 1024] are fed straight to a
``muselq_sb.lobes.branchformer.BranchformerEncoder`` with the ``large``
preset's layer sizes (d_model 1024, 16 heads, CSGU 6144, kernel 31), no
grad (SummaryMixing layers in their default 1024-frame inference chunks,
``--chunk-frames 0`` for the whole sequence at once), at 30 s, 2, 5 and 10
minutes of 25 Hz frames (750, 3000, 7500, 15000). The three mixers are timed interleaved at each length; memory is
measured once per configuration in a fresh child process. Regular attention
materialises its [heads, T, T] weights twice (``nn.MultiheadAttention`` with
``need_weights=True``, as SpeechBrain calls it), so configurations whose
estimate exceeds ``--attention-max-gib`` are skipped and the estimate is
reported instead of crashing a shared machine.

Targets: SummaryMixing time linear in T (10 min / 30 s ratio within 1.3x of
20), and at 10 minutes >= 3x faster and >= 5x less memory than attention.

Usage::

    .venv/bin/python benchmarks/mixer_scaling.py [--layers 1] [--quick]

Authors
 * muselq_sb team
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import torch

from common import (
    IMG_DIR, benchmark_result, dtype_of, format_table, interleaved_times,
    parser, peak_memory, ratio, report, set_threads, size_values,
    start_memory_server, summary,
)
from muselq_sb.lobes.branchformer import BranchformerEncoder

MIXERS = ("SummaryMixing", "RoPEMHA", "regularMHA")
FRAMES = (750, 3000, 7500, 15000)
LINEARITY_TOLERANCE = 1.3
TARGET_SPEEDUP = 3.0
TARGET_MEMORY = 5.0


def build_encoder(mixer: str, layers: int, size: str = "large",
                  chunk_frames: int = 1024) -> BranchformerEncoder:
    """An eval-mode Branchformer with the ``size`` preset's layer sizes
    (SummaryMixing layers run ``chunk_frames`` at a time; 0 = whole).

    Example
    -------
    >>> enc = build_encoder("SummaryMixing", 1, "tiny")
    >>> enc(torch.rand(1, 8, 192))[0].shape
    torch.Size([1, 8, 192])
    """
    h = size_values(size)
    return BranchformerEncoder(
        layers, d_model=h["d_model"], nhead=h["nhead"], kernel_size=h["kernel_size"],
        csgu_linear_units=h["csgu_linear_units"],
        attention_type=mixer, inference_chunk_frames=chunk_frames,
    ).eval()


def attention_gib(mixer: str, frames: int, nhead: int, dtype: str) -> float:
    """Estimated GiB of the attention weights a mixer materialises.

    Only regular attention builds [heads, T, T] scores and their softmax
    (two live copies); SDPA-based RoPE attention and SummaryMixing do not.

    Example
    -------
    >>> attention_gib("regularMHA", 15000, 16, "fp32")
    26.822
    >>> attention_gib("RoPEMHA", 15000, 16, "fp32")
    0.0
    """
    if mixer != "regularMHA":
        return 0.0
    size = torch.finfo(dtype_of(dtype)).bits // 8
    return round(2 * nhead * frames**2 * size / 2**30, 3)


def build(mixer: str, layers: int, frames: int, dtype: str,
          size: str = "large", chunk_frames: int = 1024) -> Callable[[], torch.Tensor]:
    """Encoder and input of one configuration, warmed up on a short input."""
    dt = dtype_of(dtype)
    enc = build_encoder(mixer, layers, size, chunk_frames).to(dt)
    x = torch.randn(1, frames, size_values(size)["d_model"], dtype=dt)

    def call() -> torch.Tensor:
        with torch.no_grad():
            return enc(x)[0]

    with torch.no_grad():
        enc(x[:, :64])
    return call


def plot(rows: list[dict], path: Path) -> None:
    """Log-log time and memory vs minutes of audio, one line per mixer."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for (mixer, dtype) in sorted({(r["mixer"], r["dtype"]) for r in rows}):
        mine = [r for r in rows if (r["mixer"], r["dtype"]) == (mixer, dtype)
                and r.get("median_s") is not None]
        minutes = [r["frames"] / 25 / 60 for r in mine]
        label = f"{mixer} ({dtype})"
        axes[0].loglog(minutes, [r["median_s"] for r in mine], "o-", label=label)
        mem = [(m, r["peak_mib"]) for m, r in zip(minutes, mine) if r.get("peak_mib")]
        if mem:
            axes[1].loglog(*zip(*mem), "o-", label=label)
    for ax, title in zip(axes, ("forward time (s)", "peak memory increase (MiB)")):
        ax.set_xlabel("audio length (minutes, 25 Hz frames)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def find(rows: list[dict], mixer: str, frames: int, dtype: str) -> Optional[dict]:
    """The row of one configuration, None if absent."""
    for r in rows:
        if (r["mixer"], r["frames"], r["dtype"]) == (mixer, frames, dtype):
            return r
    return None


def checks(rows: list[dict], frames: list[int], dtype: str) -> dict:
    """Linearity of SummaryMixing and its ratios to attention at the longest.

    The growth of the median time decides ``linear``; the growth of the
    fastest call (less sensitive to a loaded machine) is given beside it.
    """
    short, long = frames[0], frames[-1]
    sm_short, sm_long = find(rows, MIXERS[0], short, dtype), find(rows, MIXERS[0], long, dtype)
    growth = ratio(sm_long["median_s"], sm_short["median_s"])
    ideal = long / short
    out = {
        "summary_time_growth": growth,
        "summary_time_growth_of_min": ratio(sm_long["min_s"], sm_short["min_s"]),
        "ideal_growth": ideal,
        "linear": bool(growth and ideal / LINEARITY_TOLERANCE <= growth
                       <= ideal * LINEARITY_TOLERANCE),
    }
    for mixer in MIXERS[1:]:
        att = find(rows, mixer, long, dtype)
        speed = ratio(att.get("median_s"), sm_long["median_s"])
        mem = ratio(att.get("peak_mib"), sm_long.get("peak_mib"))
        out[mixer] = {
            "speedup": speed, "memory_ratio": mem,
            "speedup_met": bool(speed and speed >= TARGET_SPEEDUP),
            "memory_met": bool(mem and mem >= TARGET_MEMORY),
            "skipped": att.get("skipped"),
        }
    return out


def main(argv: list[str] | None = None) -> dict:
    """Runs the benchmark, prints a table, writes JSON and the plot."""
    p = parser("mixer_scaling", __doc__.split("\n")[0])
    p.add_argument("--layers", type=int, default=1,
                   help="encoder layers (12 in the large model; the per-layer "
                        "ratios are what matters)")
    p.add_argument("--frames", type=int, nargs="+", default=list(FRAMES))
    p.add_argument("--dtypes", nargs="+", default=["fp32"], choices=["fp32", "bf16"])
    p.add_argument("--size", default="large", choices=["large", "small", "tiny"])
    p.add_argument("--attention-max-gib", type=float, default=10.0,
                   help="skip regular attention above this estimated size")
    p.add_argument("--chunk-frames", type=int, default=1024,
                   help="inference_chunk_frames of the SummaryMixing layers "
                        "(0 = whole sequence at once)")
    p.add_argument("--plot", default=str(IMG_DIR / "bench_mixer_scaling.png"))
    p.set_defaults(repeats=2)
    args = p.parse_args(argv)
    if args.quick:
        args.frames, args.layers, args.repeats, args.size = [50, 200], 1, 1, "tiny"
    set_threads(args.threads)
    start_memory_server()
    nhead = size_values(args.size)["nhead"]
    rows = []
    for dtype in args.dtypes:
        for frames in args.frames:
            calls, skipped = {}, {}
            for mixer in MIXERS:
                need = attention_gib(mixer, frames, nhead, dtype)
                if need > args.attention_max_gib:
                    skipped[mixer] = f"estimated {need} GiB of attention weights"
                else:
                    calls[mixer] = build(mixer, args.layers, frames, dtype,
                                         args.size, args.chunk_frames)
            times = interleaved_times(calls, args.repeats, warmup=1)
            del calls
            for mixer in MIXERS:
                row = {"mixer": mixer, "frames": frames, "dtype": dtype,
                       "minutes": round(frames / 25 / 60, 2)}
                if mixer in skipped:
                    row["skipped"] = skipped[mixer]
                else:
                    mem = peak_memory(build, dict(mixer=mixer, layers=args.layers,
                                                  frames=frames, dtype=dtype,
                                                  size=args.size,
                                                  chunk_frames=args.chunk_frames),
                                        args.threads)
                    row.update(summary(times[mixer]), peak_mib=mem.get("peak_mib"),
                               memory=mem)
                rows.append(row)
                print(format_table([row], ["mixer", "frames", "dtype", "median_s",
                                           "peak_mib", "skipped"]).splitlines()[-1],
                      flush=True)
    config = {"layers": args.layers, "size": args.size, "frames": args.frames,
              "dtypes": args.dtypes, "repeats": args.repeats,
              "attention_max_gib": args.attention_max_gib, "quick": args.quick,
              "chunk_frames": args.chunk_frames}
    result = benchmark_result(
        "mixer_scaling", args.threads, config, rows,
        checks={dtype: checks(rows, args.frames, dtype) for dtype in args.dtypes})
    if args.plot and not args.quick:
        plot(rows, Path(args.plot))
        result["plot"] = args.plot
    return report(result, ["mixer", "frames", "dtype", "median_s", "min_s",
                           "max_s", "peak_mib", "skipped"], args.out,
                  [str(result["checks"])])


if __name__ == "__main__":
    main()
