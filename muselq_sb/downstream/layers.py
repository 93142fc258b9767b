"""Which layer holds what: a linear probe per layer on a suite's caches.

The suite's probe learns one weighted sum of all layers, which says how
well an encoder does, not where the information lives. This reads the
embedding caches a suite run left behind (``<suite>/<variant>/<task>/
embeddings/``; random weights: the first weight seed's) and fits, for each
multiclass task, variant and hidden state (0 = the front-end's output), a
standardised multinomial logistic regression (scikit-learn) on the train
split's item embeddings, scored by test accuracy. No encoder runs.

    python -m muselq_sb.downstream.layers results/downstream_suite \
        --tasks demo_key,demo_nsynth_pitch

writes ``layers.md`` (a table per task) and ``layers.png`` (accuracy
against layer, one line per variant) into the suite folder.

Authors
 * muselq_sb team
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
import yaml
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from muselq_sb.dataio.manifest import atomic_write_text, read_task
from muselq_sb.downstream.report import save_figure
from muselq_sb.downstream.retrieval import pooled_items, split_keys


def layer_accuracies(
    train: torch.Tensor, train_labels: Sequence[str],
    test: torch.Tensor, test_labels: Sequence[str], max_iter: int = 2000,
) -> list[float]:
    """Test accuracy of a linear probe on each layer of [N, L, d] embeddings.

    Example
    -------
    >>> g = torch.Generator().manual_seed(0)
    >>> labels = ["a", "b"] * 20
    >>> x = torch.randn(40, 2, 4, generator=g)
    >>> x[:, 1, 0] += torch.tensor([3.0 if y == "a" else -3.0 for y in labels])
    >>> acc = layer_accuracies(x[:30], labels[:30], x[30:], labels[30:])
    >>> acc[1] == 1.0 and acc[0] < 1.0
    True
    """
    scores = []
    for layer in range(train.shape[1]):
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter))
        probe.fit(train[:, layer].numpy(), list(train_labels))
        scores.append(float(probe.score(test[:, layer].numpy(), list(test_labels))))
    return scores


def _cache(suite: Path, variant: str, task: str) -> Path | None:
    folder = suite / variant / task
    found = sorted(folder.glob("embeddings")) or sorted(folder.glob("seed*/embeddings"))
    return found[0] if found and (found[0] / "test.pt").is_file() else None


def suite_layer_table(
    suite: str | Path, tasks: Sequence[str] | None = None
) -> dict[str, dict[str, list[float]]]:
    """``{task: {variant: [accuracy per layer]}}`` for the multiclass tasks
    (all, or ``tasks``) whose caches the suite folder holds.

    The task folder of each task is the one the suite recorded in its
    per-seed ``hyperparams.yaml`` (``task_folder``). Raises ``ValueError``
    naming the suite folder when no cache is found.
    """
    suite = Path(suite)
    table: dict[str, dict[str, list[float]]] = {}
    for variant_dir in sorted(p for p in suite.iterdir() if p.is_dir()):
        for task_dir in sorted(p for p in variant_dir.iterdir() if p.is_dir()):
            task, variant = task_dir.name, variant_dir.name
            cache = _cache(suite, variant, task)
            if cache is None or (tasks and task not in tasks):
                continue
            task_folder = _task_folder(task_dir)
            spec = read_task(task_folder)
            if spec["type"] != "multiclass" or variant == "logmel":
                continue
            splits = {s: torch.load(cache / f"{s}.pt", map_location="cpu",
                                    weights_only=True) for s in ("train", "test")}
            labels = {s: split_keys(task_folder, s, splits[s], spec["target"])
                      for s in splits}
            table.setdefault(task, {})[variant] = layer_accuracies(
                pooled_items(splits["train"]), labels["train"],
                pooled_items(splits["test"]), labels["test"],
            )
    if not table:
        raise ValueError(f"{suite}: no multiclass task cache of an encoder found "
                         f"(expected <variant>/<task>/embeddings/test.pt)")
    return table


def _task_folder(task_dir: Path) -> Path:
    for hparams in sorted(task_dir.glob("seed*/hyperparams.yaml")):
        for line in hparams.read_text().splitlines():
            if line.startswith("task_folder:"):
                return Path(yaml.safe_load(line.split(":", 1)[1]))
    raise ValueError(f"{task_dir}: no seed*/hyperparams.yaml with a task_folder")


def markdown(table: Mapping[str, Mapping[str, Sequence[float]]]) -> str:
    """One table per task: a row per variant, a column per hidden state.

    Example
    -------
    >>> print(markdown({"demo_key": {"paper": [0.5, 0.25]}}))
    ### demo_key (test accuracy, linear probe per layer)
    <BLANKLINE>
    | variant | 0 | 1 |
    |---|---|---|
    | paper | 0.500 | 0.250 |
    """
    out = []
    for task, rows in table.items():
        n = max(len(v) for v in rows.values())
        out += [f"### {task} (test accuracy, linear probe per layer)", "",
                "| variant | " + " | ".join(str(i) for i in range(n)) + " |",
                "|---|" + "---|" * n]
        out += [f"| {name} | " + " | ".join(f"{a:.3f}" for a in accs) + " |"
                for name, accs in rows.items()]
        out.append("")
    return "\n".join(out).rstrip("\n")


def plot(table: Mapping[str, Mapping[str, Sequence[float]]], path: str | Path) -> None:
    """Accuracy against layer, one panel per task, one line per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(table), figsize=(4 * len(table), 3.2), squeeze=False)
    for ax, (task, rows) in zip(axes[0], table.items()):
        for name, accs in rows.items():
            ax.plot(np.arange(len(accs)), accs, marker="o", label=name)
        ax.set(title=task, xlabel="hidden state (0 = front-end)", ylabel="test accuracy")
        ax.grid(alpha=0.3)
    # beside the last panel: inside one it hides that panel's lines
    axes[0][-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    save_figure(fig, path)


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("suite", help="a run_suite.py output folder")
    parser.add_argument("--tasks", default="", help="comma-separated task names")
    args = parser.parse_args(argv)
    table = suite_layer_table(args.suite, [t for t in args.tasks.split(",") if t])
    text = markdown(table)
    atomic_write_text(Path(args.suite) / "layers.md", text + "\n")
    plot(table, Path(args.suite) / "layers.png")
    print(text)


if __name__ == "__main__":
    main()
