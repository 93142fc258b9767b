#!/usr/bin/env python3
"""Dynamic int8 (CPU) vs float32 encoder: speed, file size, output change.

::

    python benchmarks/export_int8.py                  # random 'small' model
    python benchmarks/export_int8.py --model <packaged model or run folder>

Times TorchScript exports of the float32 and int8 (``quantize_dynamic`` of
the ``nn.Linear`` layers) encoders on the same input, and reports their file
sizes and the max / mean abs difference and cosine similarity of the last
hidden state. The probe-result change on the demo tasks is not measured
here (see docs/inference.md).

Authors
 * muselq_sb team
"""
import argparse
import tempfile
import time
from pathlib import Path

import torch

from common import load_hparams
from muselq_sb.inference.encoder import MusicEncoder
from muselq_sb.inference.export import export_torchscript, quantize_int8
from muselq_sb.lobes.model import MusicModel


def random_model(size: str) -> MusicModel:
    """brn_sum architecture of a size with random weights."""
    return load_hparams(size)["model"].eval()


def best_time(fn, x: torch.Tensor, repeats: int) -> float:
    """Best wall time of ``repeats`` calls (after one warm-up)."""
    with torch.no_grad():
        fn(x)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn(x)
            times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, help="packaged model or run folder")
    p.add_argument("--size", default="small", choices=["tiny", "small", "large"])
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = (MusicEncoder.from_path(args.model).model if args.model
             else random_model(args.size))
    x = 0.1 * torch.randn(1, round(args.seconds * 24000),
                          generator=torch.Generator().manual_seed(0))
    out = Path(tempfile.mkdtemp())
    fp32 = torch.jit.load(str(export_torchscript(model, out / "fp32.pt")))
    int8 = torch.jit.load(str(export_torchscript(quantize_int8(model), out / "int8.pt")))
    t32, t8 = best_time(fp32, x, args.repeats), best_time(int8, x, args.repeats)
    with torch.no_grad():
        a, b = fp32(x), int8(x)
    cos = torch.nn.functional.cosine_similarity(a, b, dim=-1).mean()
    mb = {k: (out / f"{k}.pt").stat().st_size / 2**20 for k in ("fp32", "int8")}
    n_params = sum(q.numel() for q in model.parameters())
    print(f"model: {args.model or 'random ' + args.size} ({n_params / 1e6:.1f} M "
          f"params), input {args.seconds:g} s, {args.threads} threads")
    print("| | float32 | int8 |\n|---|---|---|")
    print(f"| time (s) | {t32:.3f} | {t8:.3f} (x{t32 / t8:.2f}) |")
    print(f"| TorchScript file (MB) | {mb['fp32']:.1f} | {mb['int8']:.1f} |")
    print(f"| last layer: max / mean abs diff | - | {(a - b).abs().max():.3g} / "
          f"{(a - b).abs().mean():.3g} |")
    print(f"| last layer: mean cosine similarity | - | {cos:.4f} |")


if __name__ == "__main__":
    main()
