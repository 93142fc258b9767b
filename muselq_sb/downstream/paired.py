"""Two recipes, paired by pre-training seed: is one better than the other?

A suite's intervals are over probe seeds: they say how well one
pre-trained encoder is measured, not how much another pre-training seed
would move it. To compare two recipes, pre-train each with the same seeds
(seed 1986 of recipe A beside seed 1986 of recipe B: the same valid split,
the same initialisation), score them in one suite, and take, per metric,
the difference of each pair's means. Its 95 % interval (Student t over the
pairs) is the answer: ▲ it lies above zero, ▼ below, = it holds zero.
No probe runs.

    python -m muselq_sb.downstream.paired runs/suite_ub --name steps7200 \\
        --a steps7200,steps7200_s2,steps7200_s3 --b umse,umse_s2,umse_s3

writes ``paired_<name>.md`` (a table) and ``paired_<name>.png`` (each
metric's difference and interval) into the suite folder.

Authors
 * muselq_sb team
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Mapping, Sequence

from muselq_sb.dataio.manifest import atomic_write_text
from muselq_sb.downstream.report import read_suite_results, save_figure
from muselq_sb.downstream.intervals import seed_summary


def paired_table(
    results: Mapping[str, Mapping[str, Mapping]],
    a: Sequence[str],
    b: Sequence[str],
) -> dict[str, dict]:
    """Per metric, recipe A's and B's seed means and their paired difference.

    Arguments
    ---------
    results : mapping
        A suite's ``results.json``: ``{variant: {task: summary}}``.
    a, b : sequence of str
        The two recipes' variants, one per pre-training seed, in the same
        seed order (``a[i]`` is paired with ``b[i]``).

    Returns
    -------
    dict
        ``{"<task> <metric>": {"a", "b", "diff"}}`` for every metric of a
        task (its ``metrics``) that all variants scored: ``a`` and ``b`` summarise each recipe's per-seed
        means, ``diff`` the per-pair differences A - B (``seed_summary``:
        mean, std, ci95, n, values).

    Example
    -------
    >>> def run(m): return {"metrics": ["acc"], "test": {"acc": {"mean": m}}}
    >>> res = {"a1": {"t": run(0.8)}, "a2": {"t": run(0.7)},
    ...        "b1": {"t": run(0.6)}, "b2": {"t": run(0.6)}}
    >>> row = paired_table(res, ["a1", "a2"], ["b1", "b2"])["t acc"]
    >>> round(row["diff"]["mean"], 3), [round(v, 3) for v in row["diff"]["values"]]
    (0.15, [0.2, 0.1])
    """
    if len(a) != len(b) or len(a) < 2:
        raise ValueError(
            f"--a and --b need the same number of variants, at least two (one "
            f"per pre-training seed, in the same order); got {len(a)} and {len(b)}")
    missing = [v for v in (*a, *b) if v not in results]
    if missing:
        raise KeyError(
            f"variant(s) {missing} not in the suite's results; it has "
            f"{sorted(results)}")
    table = {}
    for task, summary in results[a[0]].items():
        for metric in summary.get("metrics", []):
            means = [[results[v].get(task, {}).get("test", {}).get(metric, {}).get("mean")
                      for v in side] for side in (a, b)]
            if any(m is None for side in means for m in side):
                continue  # a task that failed or is absent for some variant
            table[f"{task} {metric}"] = {
                "a": seed_summary(means[0]),
                "b": seed_summary(means[1]),
                "diff": seed_summary([x - y for x, y in zip(*means)]),
            }
    return table


def verdict(diff: Mapping) -> str:
    """▲ when the difference's interval lies above zero, ▼ below, = otherwise.

    Example
    -------
    >>> verdict({"ci95": [0.01, 0.05]}), verdict({"ci95": [-0.02, 0.05]})
    ('▲', '=')
    """
    low, high = diff["ci95"]
    return "▲" if low > 0 else "▼" if high < 0 else "="


def paired_markdown(table: Mapping[str, dict], a: str, b: str) -> str:
    """The table as markdown: a row per metric, each recipe's mean ± std over
    seeds, the paired difference with its interval and verdict, and the
    counts of ▲ / ▼ / = in the last line."""
    lines = [f"| metric | {a} | {b} | {a} - {b} [95 % interval] | |",
             "|---|---|---|---|---|"]
    counts = {"▲": 0, "▼": 0, "=": 0}
    for label, row in table.items():
        d, mark = row["diff"], verdict(row["diff"])
        counts[mark] += 1
        lines.append(
            f"| {label} | {row['a']['mean']:.3f} ± {row['a']['std']:.3f} "
            f"| {row['b']['mean']:.3f} ± {row['b']['std']:.3f} "
            f"| {d['mean']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}] | {mark} |")
    n = next(iter(table.values()))["diff"]["n"] if table else 0
    lines.append("")
    lines.append(f"{n} pre-training seeds per recipe; {a} above / below / "
                 f"level with {b}: {counts['▲']} / {counts['▼']} / {counts['=']}")
    return "\n".join(lines) + "\n"


def plot_paired(table: Mapping[str, dict], a: str, b: str, path: Path) -> None:
    """A row per metric: the paired difference's mean and 95 % interval, each
    pair's difference as a dot, and zero as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(table)
    fig, ax = plt.subplots(figsize=(6.5, 0.4 * len(labels) + 1.2))
    for y, label in enumerate(labels):
        d = table[label]["diff"]
        color = {"▲": "C2", "▼": "C3", "=": "C0"}[verdict(d)]
        ax.errorbar([d["mean"]], [y], xerr=[[d["mean"] - d["ci95"][0]], [d["ci95"][1] - d["mean"]]],
                    marker="o", capsize=3, color=color)
        ax.scatter(d["values"], [y] * len(d["values"]), s=12, color="grey", zorder=3)
    ax.axvline(0.0, color="black", lw=0.8)
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set(xlabel=f"{a} - {b} (per-seed means; bar: 95 % interval over seed pairs)")
    ax.grid(axis="x", alpha=0.3)
    save_figure(fig, path)


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("suite", type=Path, help="a suite's output folder")
    parser.add_argument("--name", required=True, help="names the output files")
    parser.add_argument("--a", required=True, help="recipe A's variants, comma-separated, one per seed")
    parser.add_argument("--b", required=True, help="recipe B's variants, the same seeds in the same order")
    args = parser.parse_args(argv)
    try:
        results = read_suite_results(args.suite)
    except FileNotFoundError as err:
        parser.error(str(err))
    a = [v for v in args.a.split(",") if v]
    b = [v for v in args.b.split(",") if v]
    table = paired_table(results, a, b)
    name_a, name_b = a[0], b[0]
    text = paired_markdown(table, name_a, name_b)
    atomic_write_text(args.suite / f"paired_{args.name}.md", text)
    plot_paired(table, name_a, name_b, args.suite / f"paired_{args.name}.png")
    print(text, end="")


if __name__ == "__main__":
    main()
