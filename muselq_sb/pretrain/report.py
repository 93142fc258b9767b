"""End-of-run report of a pre-training run: curves and final numbers.

Reads ``metrics.jsonl`` (written by ``BestRQBrain``) and writes
``report.png`` (losses, masked accuracy against its baselines) and
``report.md`` in the run folder.

Authors
 * muselq_sb team
"""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_metrics(path: str | Path) -> list[dict]:
    """Records of ``metrics.jsonl``; a resumed run's repeats keep the last.

    Example
    -------
    >>> import tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "m.jsonl")
    >>> _ = open(f, "w").write('{"step": 1, "stage": "valid", "acc": 0.1}\\n'
    ...                        '{"step": 1, "stage": "valid", "acc": 0.2}\\n')
    >>> [r["acc"] for r in read_metrics(f)]
    [0.2]
    """
    records: dict[tuple, dict] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a kill: ignore it
            records[(rec.get("stage"), rec.get("step"))] = rec
    return sorted(records.values(), key=lambda r: (r["stage"], r["step"]))


def write_report(output_folder: str | Path, cb_vocab: int = 8192) -> Path:
    """Writes ``report.png`` and ``report.md`` of a run; returns the md path."""
    folder = Path(output_folder)
    records = read_metrics(folder / "metrics.jsonl")
    train = [r for r in records if r["stage"] == "train_step"]
    valid = [r for r in records if r["stage"] == "valid"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for rows, style, name in ((train, "-", "train"), (valid, "o-", "valid")):
        if not rows:
            continue
        steps = [r["step"] for r in rows]
        axes[0].plot(steps, [r["ce"] for r in rows], style, label=f"{name} CE")
        axes[1].plot(steps, [r["mse"] for r in rows], style, label=f"{name} MSE")
        axes[2].plot(steps, [r["acc"] for r in rows], style,
                     label=f"{name} masked acc")
    if valid:
        steps = [r["step"] for r in valid]
        axes[1].plot(steps, [r.get("mean_mse", float("nan")) for r in valid],
                     "k--", label="predict the mean")
        axes[2].plot(steps, [r["majority_acc"] for r in valid], "k--",
                     label="most frequent token")
    for ax, title in zip(axes, ("token cross-entropy", "mel MSE (masked)",
                                "masked-token accuracy")):
        ax.set_title(title)
        ax.set_xlabel("optimizer step")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(folder / "report.png", dpi=100)
    plt.close(fig)
    lines = [f"# Pre-training report: {folder}", "", "![curves](report.png)", ""]
    if valid:
        last = valid[-1]
        lines += [
            "| metric | value |", "|---|---|",
            f"| optimizer steps | {last['step']} |",
            f"| valid masked-token accuracy | {last['acc']:.4f} |",
            f"| most-frequent-token baseline | {last['majority_acc']:.4f} |",
            f"| chance (1 / codebook) | {1 / cb_vocab:.6f} |",
            f"| valid CE | {last['ce']:.4f} |",
            f"| valid mel MSE (masked) | {last['mse']:.4f} |",
            f"| predict-the-mean MSE | {last.get('mean_mse', float('nan')):.4f} |",
            f"| codebook used / perplexity | {last.get('codebook_used', 0):.3f} / "
            f"{last.get('codebook_perplexity', 0):.1f} |",
        ]
    if train:
        speed = [r["audio_hours_per_hour"] for r in train[-10:]]
        lines.append(
            f"| train throughput (audio h / h) | {sum(speed) / len(speed):.1f} |"
        )
    out = folder / "report.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out
