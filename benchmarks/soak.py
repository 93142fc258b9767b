#!/usr/bin/env python3
"""Soak test: a long tiny pre-training run, watching its resident memory.

Runs ``recipes/pretrain/train.py`` (tiny model, small batches, the demo
corpus, no DataLoader workers) for ``--steps`` optimizer steps in a child
process and samples the child's resident set size (``VmRSS``) every time it
logs a training step (every ``--every`` steps). A leak shows as RSS that
keeps growing after the warm-up; the report gives the growth between the
first sample after ``--warmup`` steps and the last one, also per 1,000 steps.

::

    python benchmarks/soak.py --steps 10000 --every 50

Authors
 * muselq_sb team
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import write_json  # noqa: E402
from tests.recipe_utils import TRAIN, args_for, env  # noqa: E402


def rss_mib(pid: int) -> float | None:
    """Resident set size of process ``pid`` in MiB (None once it is gone).

    Example
    -------
    >>> import os
    >>> rss_mib(os.getpid()) > 10
    True
    """
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            found = re.search(r"^VmRSS:\s+(\d+)", f.read(), re.M)
    except OSError:
        return None
    return None if found is None else int(found.group(1)) / 1024


def last_train_step(metrics_file: Path) -> int:
    """The step of the last ``train_step`` record of a metrics file (0: none).

    Example
    -------
    >>> f = Path(tempfile.mkdtemp()) / "metrics.jsonl"
    >>> last_train_step(f)
    0
    >>> _ = f.write_text('{"step": 5, "stage": "train_step"}\\n{"step": 5, "stage": "valid"}\\n')
    >>> last_train_step(f)
    5
    """
    if not metrics_file.is_file():
        return 0
    step = 0
    for line in metrics_file.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line being written
            continue
        if record.get("stage") == "train_step":
            step = int(record["step"])
    return step


def summarize(samples: list[dict[str, float]], warmup: int) -> dict[str, Any]:
    """RSS growth after the warm-up: end to end (MiB) and the least-squares
    slope (MiB per 1,000 steps).

    Example
    -------
    >>> s = [{"step": 50, "rss_mib": 300.0}, {"step": 100, "rss_mib": 320.0},
    ...      {"step": 600, "rss_mib": 321.0}, {"step": 1100, "rss_mib": 322.0}]
    >>> r = summarize(s, warmup=100)
    >>> r["growth_mib"], r["slope_mib_per_1000_steps"]
    (2.0, 2.0)
    """
    after = [s for s in samples if s["step"] >= warmup] or samples
    steps = [s["step"] for s in after]
    rss = [s["rss_mib"] for s in after]
    mean_step, mean_rss = sum(steps) / len(steps), sum(rss) / len(rss)
    spread = sum((x - mean_step) ** 2 for x in steps) or 1.0
    slope = sum((x - mean_step) * (y - mean_rss) for x, y in zip(steps, rss)) / spread
    return {
        "rss_first_after_warmup_mib": round(rss[0], 1),
        "rss_last_mib": round(rss[-1], 1),
        "rss_max_mib": round(max(s["rss_mib"] for s in samples), 1),
        "growth_mib": round(rss[-1] - rss[0], 1),
        "slope_mib_per_1000_steps": round(1000 * slope, 2),
    }


def valid_steps(metrics_file: Path) -> list[int]:
    """The steps at which the run validated (one per epoch end)."""
    steps = []
    for line in metrics_file.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record.get("stage") == "valid":
            steps.append(int(record["step"]))
    return steps


def split_by_epoch(
    samples: list[dict[str, float]], boundaries: list[int]
) -> dict[str, Any]:
    """RSS change inside epochs vs across epoch ends (validation, the
    end-of-epoch checkpoint), from consecutive samples.

    Example
    -------
    >>> s = [{"step": 50, "rss_mib": 300.0}, {"step": 100, "rss_mib": 301.0},
    ...      {"step": 150, "rss_mib": 320.0}, {"step": 200, "rss_mib": 320.0}]
    >>> split_by_epoch(s, [120])
    {'growth_within_epochs_mib': 1.0, 'epoch_end_jumps_mib': [19.0]}
    """
    within, jumps = 0.0, []
    for a, b in zip(samples, samples[1:]):
        delta = b["rss_mib"] - a["rss_mib"]
        if any(a["step"] < v <= b["step"] for v in boundaries):
            jumps.append(round(delta, 1))
        else:
            within += delta
    return {"growth_within_epochs_mib": round(within, 1),
            "epoch_end_jumps_mib": jumps}


def soak(steps: int, every: int, warmup: int, out: Path, extra: list[str]) -> dict:
    """Runs the recipe for ``steps`` steps, sampling RSS; returns the report."""
    args = args_for("brn_sum", None, out, steps, [
        f"--log_interval={every}", "--max_batch_seconds=4.0",
        "--valid_fraction=0.02", f"--ckpt_interval_steps={10 * every}",
        *extra,
    ])
    proc = subprocess.Popen([sys.executable, str(TRAIN), *args], env=env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    samples: list[dict[str, float]] = []
    start, seen = time.time(), 0
    while proc.poll() is None:
        step = last_train_step(out / "metrics.jsonl")
        rss = rss_mib(proc.pid)
        if step > seen and rss is not None:
            if not samples:
                start = time.time()
            seen = step
            samples.append({"step": step, "rss_mib": round(rss, 1),
                            "seconds": round(time.time() - start, 1)})
            print(f"step {step:5d}  rss {rss:7.1f} MiB", flush=True)
        time.sleep(0.2)
    stderr = proc.stderr.read()
    # the last step is followed by validation, a checkpoint and the report:
    # not steady-state training, so it is left out
    samples = [s for s in samples if s["step"] < steps]
    if proc.returncode != 0 or not samples:
        raise SystemExit(f"soak run failed ({proc.returncode}):\n{stderr[-3000:]}")
    steps_done = samples[-1]["step"] - samples[0]["step"]
    return {
        "steps": steps,
        "every": every,
        "warmup_steps": warmup,
        "steps_per_second": round(steps_done / max(1e-9, samples[-1]["seconds"]), 2),
        **summarize(samples, warmup),
        **split_by_epoch([x for x in samples if x["step"] >= warmup],
                         valid_steps(out / "metrics.jsonl")),
        # a leak keeps growing; a one-off jump (allocator, a larger batch)
        # does not: the slope of the second half tells them apart
        "slope_second_half_mib_per_1000_steps": summarize(
            samples, (warmup + samples[-1]["step"]) // 2
        )["slope_mib_per_1000_steps"],
        "samples": samples,
    }


def main() -> None:
    """Command line entry point."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=10000)
    p.add_argument("--every", type=int, default=50, help="steps between samples")
    p.add_argument("--warmup", type=int, default=200, help="steps before the baseline")
    p.add_argument("--output-folder", default=None, help="run folder (default: temp)")
    p.add_argument("--out", default="results/bench/soak.json")
    args, extra = p.parse_known_args()
    out = Path(args.output_folder or tempfile.mkdtemp(prefix="soak_"))
    report = soak(args.steps, args.every, args.warmup, out, extra)
    write_json(args.out, report)
    print(json.dumps({k: v for k, v in report.items() if k != "samples"}, indent=2))


if __name__ == "__main__":
    main()
