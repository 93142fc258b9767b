"""GPU check in one command: the pre-training step of brn_sum large at the
paper's batch, bf16 and fp16, through the recipe's own ``BestRQBrain``, and
a 10-minute track embedded in one pass.

For each precision: ``--warmup`` then ``--steps`` timed ``fit_batch`` calls
on ``--batch`` x ``--seconds`` s of audio (forward, loss, backward with
SpeechBrain's autocast and, for fp16, its ``GradScaler``, clipping, Adam,
the lr schedule), synchronised; reported as the median step time, the peak
memory allocated, audio-hours per GPU-hour, the FLOP/s reached (FLOPs of
one step counted with ``torch.utils.flop_counter``) as a fraction of the
GPU's dense bf16 peak (``--peak-tflops``, else from the device name) and of
a measured bf16 ``torch.mm``, and the steps the non-finite guard skipped.
Then ``MusicEncoder`` embeds ``--track-minutes`` of audio in one pass
(bf16): time and peak memory. Writes ``gpu_check.json`` and
``gpu_check.md`` (a table) into ``--out``.

On one H100 / H200 it should take 2-4 minutes, most of it start-up
(docs/gpu_check.md: how to run it there). ``--device cpu --tiny`` runs the
same code on a CPU with a tiny model in seconds (the test suite does); fp16
is then reported as skipped, as SpeechBrain trains fp16 on CUDA only.

Usage::

    python benchmarks/gpu_check.py [--out results/gpu_check]
    python benchmarks/gpu_check.py --device cpu --tiny

Authors
 * muselq_sb team
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch

from common import count_flops, format_table, load_hparams, machine_info, write_json

#: Dense bf16 tensor-core TFLOP/s by device name (first match wins).
BF16_PEAK_TFLOPS = (("H100 PCIe", 756.0), ("H100", 989.0), ("H200", 989.0),
                    ("GH200", 989.0), ("A100", 312.0), ("L40S", 362.0))
TINY = {"num_layers": 2, "d_model": 64, "nhead": 2, "csgu_linear_units": 128,
        "kernel_size": 5, "subsampling_channels": 32, "cb_vocab": 256}


def bf16_peak(device: str, given: float | None) -> float | None:
    """The dense bf16 peak in TFLOP/s: ``given``, else from the name.

    Example
    -------
    >>> bf16_peak("cpu", 1.5), bf16_peak("cpu", None)
    (1.5, None)
    """
    if given or device != "cuda":
        return given
    name = torch.cuda.get_device_name(0)
    return next((peak for key, peak in BF16_PEAK_TFLOPS if key in name), None)


def synchronize(device: str) -> None:
    """Waits for the device's queued work."""
    if device == "cuda":
        torch.cuda.synchronize()


def reset_peak(device: str) -> None:
    """Starts a new peak-memory window."""
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_gib(device: str) -> float | None:
    """Peak memory allocated since ``reset_peak`` (None on a CPU)."""
    if device != "cuda":
        return None
    return torch.cuda.max_memory_allocated() / 2**30


def timed(fn: Callable[[], Any], device: str) -> float:
    """Seconds of one synchronised call."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def mm_tflops(device: str, n: int) -> float:
    """TFLOP/s of a bf16 ``n x n`` matrix product (best of 5)."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    torch.mm(a, b)
    return 2 * n**3 / min(timed(lambda: torch.mm(a, b), device) for _ in range(5)) / 1e12


def build_brain(size: str, overrides: dict, device: str, precision: str, folder: str,
                batch: Any):
    """The recipe's ``BestRQBrain`` ready for ``fit_batch`` (optimizer built,
    input statistics computed from ``batch``)."""
    import speechbrain as sb

    from muselq_sb.pretrain.brain import BestRQBrain

    hp = load_hparams(size, {"output_folder": folder, "tensorboard_folder": None,
                             **overrides})
    brain = BestRQBrain(modules=hp["modules"], opt_class=hp["optimizer"], hparams=hp,
                        run_opts={"device": device, "precision": precision,
                                  "noprogressbar": True})
    brain.train_loader = [batch]  # what the statistics pass reads
    brain.on_fit_start()
    brain.on_stage_start(sb.Stage.TRAIN, 1)
    brain.modules.train()
    return brain


def train_row(args: argparse.Namespace, precision: str, folder: str,
              peak: float | None, mm: float) -> dict[str, Any]:
    """Times ``fit_batch`` at ``precision``; one row of the table."""
    from speechbrain.dataio.batch import PaddedBatch

    row: dict[str, Any] = {"part": "train step", "precision": precision}
    if precision == "fp16" and args.device != "cuda":
        return {**row, "skipped": "fp16 trains on CUDA only (SpeechBrain)"}
    torch.manual_seed(0)
    n = int(args.seconds * 24000)
    batch = PaddedBatch([{"id": str(i), "sig": 0.1 * torch.randn(n)}
                         for i in range(args.batch)])
    brain = build_brain(args.size, args.overrides, args.device, precision, folder,
                        batch)
    for _ in range(args.warmup):
        brain.fit_batch(batch)
    flops = count_flops(lambda: brain.fit_batch(batch))
    reset_peak(args.device)
    times = [timed(lambda: brain.fit_batch(batch), args.device) for _ in range(args.steps)]
    step = statistics.median(times)
    tflops = flops / step / 1e12
    row.update({
        "step_s": step, "peak_gib": peak_gib(args.device),
        "audio_h_per_gpu_h": args.batch * args.seconds / step,
        "tflop_per_step": flops / 1e12, "tflops": tflops,
        "frac_bf16_peak": tflops / peak if peak else None,
        "frac_bf16_mm": tflops / mm,
        "skipped_steps": brain.nonfinite_total,
        "loss_scale": brain.scaler.get_scale() if brain.scaler.is_enabled() else None,
        "last_loss": brain.last_losses["loss"].item(),
    })
    del brain
    return row


def track_row(args: argparse.Namespace) -> dict[str, Any]:
    """Embeds ``--track-minutes`` of audio in one pass (bf16)."""
    from muselq_sb.inference.encoder import MusicEncoder

    model = load_hparams(args.size, args.overrides)["model"].eval()
    encoder = MusicEncoder(model, device=args.device, dtype="bf16")
    wav = 0.1 * torch.randn(1, int(args.track_minutes * 60 * 24000))
    encoder.encode_batch(wav[:, :24000 * 10], mode="full")  # warm-up
    reset_peak(args.device)
    seconds = timed(lambda: encoder.encode_batch(wav, mode="full"), args.device)
    out = encoder.encode_batch(wav[:, :24000], mode="full")
    return {"part": f"{args.track_minutes * 60:.0f} s track, one pass", "precision": "bf16",
            "step_s": seconds, "peak_gib": peak_gib(args.device),
            "audio_h_per_gpu_h": args.track_minutes * 60 / seconds,
            "finite": bool(torch.isfinite(out).all())}


def markdown(result: dict[str, Any]) -> str:
    """The report as Markdown: the conditions, then the table."""
    m, c = result["machine"], result["config"]
    lines = [f"# GPU check ({result['date']})", "",
             f"Device: {m['cuda'] or m['cpu']}; torch {m['torch']}; "
             f"model brn_sum {c['size']}{' (tiny overrides)' if c['tiny'] else ''}, "
             f"batch {c['batch']} x {c['seconds']:g} s; bf16 peak "
             f"{result['bf16_peak_tflops']} TFLOP/s, measured bf16 mm "
             f"{result['bf16_mm_tflops']:.1f} TFLOP/s; wall time "
             f"{result['wall_s']:.0f} s.", "",
             format_table(result["rows"], [
                 "part", "precision", "step_s", "peak_gib", "audio_h_per_gpu_h",
                 "tflops", "frac_bf16_peak", "frac_bf16_mm", "skipped_steps",
                 "loss_scale", "skipped"]), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Runs the check; writes and returns the result."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--tiny", action="store_true",
                   help="tiny model, 2 x 2 s, 20 s track (a smoke test)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--track-minutes", type=float, default=10.0)
    p.add_argument("--precisions", nargs="+", default=["bf16", "fp16"])
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="dense bf16 peak (default: from the device name)")
    p.add_argument("--out", default="results/gpu_check")
    args = p.parse_args(argv)
    args.size, args.overrides = "large", {}
    if args.tiny:
        args.size, args.overrides = "tiny", dict(TINY)
        args.batch, args.seconds, args.steps, args.warmup = 2, 2.0, 2, 1
        args.track_minutes = 1 / 3
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device visible to torch "
                         f"{torch.__version__}; use --device cpu --tiny to try it")
    started = time.time()
    peak = bf16_peak(args.device, args.peak_tflops)
    mm = mm_tflops(args.device, 8192 if args.device == "cuda" else 512)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for precision in args.precisions:
            rows.append(train_row(args, precision, folder, peak, mm))
            print(format_table(rows[-1:], list(rows[-1])), flush=True)
    rows.append(track_row(args))
    result = {
        "benchmark": "gpu_check", "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine_info(torch.get_num_threads()),
        "config": {k: v for k, v in vars(args).items() if k != "out"},
        "bf16_peak_tflops": peak, "bf16_mm_tflops": mm, "rows": rows,
        "wall_s": time.time() - started,
    }
    out = Path(args.out)
    write_json(out / "gpu_check.json", result)
    text = markdown(result)
    (out / "gpu_check.md").write_text(text, encoding="utf-8")
    print(text)
    print(f"wrote {out / 'gpu_check.json'} and {out / 'gpu_check.md'}")
    return result


if __name__ == "__main__":
    main()
