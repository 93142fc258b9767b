"""One knob, several values: a suite's scores against the knob.

An ablation that varies one hyper-parameter (``unmasked_weight`` at 0.25,
0.5, 1 and 2, say) reads better as curves than as rows. This reads the
``results.json`` a suite run wrote and draws, for each task's main metric,
every variant's mean and 95 % interval against the knob's value, with
random weights' interval as a band. No probe runs.

    python -m muselq_sb.downstream.sweep runs/suite_ub --knob unmasked_weight \\
        --point 0.25=umse_uw025 --point 0.5=uw05 --point 1=umse --point 2=uw2

writes ``sweep_<knob>.md`` (a table) and ``sweep_<knob>.png`` into the suite
folder.

Authors
 * muselq_sb team
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Mapping, Sequence

from muselq_sb.dataio.manifest import atomic_write_text
from muselq_sb.downstream.report import read_suite_results, save_figure

BASELINE = "random"  # the suite's name for the random-weights variant


def parse_points(specs: Sequence[str]) -> list[tuple[float, list[str]]]:
    """``["2=uw2", "1=umse,umse_s2"]`` -> ``[(1.0, ["umse", "umse_s2"]),
    (2.0, ["uw2"])]``: each value with its variants (one per pre-training
    seed), sorted by value.

    Example
    -------
    >>> parse_points(["2=uw2", "0.5=uw05,uw05_s2"])
    [(0.5, ['uw05', 'uw05_s2']), (2.0, ['uw2'])]
    """
    points = []
    for spec in specs:
        value, _, names = spec.partition("=")
        variants = [v for v in names.split(",") if v]
        try:
            x = float(value)
        except ValueError:
            variants = []
        if not variants:
            raise ValueError(
                f"--point {spec!r}: expected VALUE=VARIANT[,VARIANT...], a "
                "number and variants of the suite (e.g. 0.5=uw05)")
        points.append((x, variants))
    return sorted(points)


def sweep_table(
    results: Mapping[str, Mapping[str, Mapping]],
    points: Sequence[tuple[float, Sequence[str]]],
) -> dict[str, dict]:
    """Each task's main metric across the points, and random weights'.

    Arguments
    ---------
    results : mapping
        A suite's ``results.json``: ``{variant: {task: summary}}``.
    points : sequence of (float, list of str)
        The knob's value and the variants trained with it (one per
        pre-training seed).

    Returns
    -------
    dict
        ``{"<task> <metric>": {"x", "runs", "baseline"}}`` for the tasks
        every variant scored: ``runs`` holds, per value, a ``(mean, ci95)``
        pair per variant; ``baseline`` is random weights' 95 % interval
        (None when the suite has none).

    Example
    -------
    >>> def run(m): return {"main_metric": "acc",
    ...     "test": {"acc": {"mean": m, "ci95": [m - 0.1, m + 0.1]}}}
    >>> res = {"a": {"t": run(0.5)}, "b": {"t": run(0.7)}, "b2": {"t": run(0.8)},
    ...        "random": {"t": run(0.6)}}
    >>> row = sweep_table(res, [(1.0, ["a"]), (2.0, ["b", "b2"])])["t acc"]
    >>> [[m for m, _ in runs] for runs in row["runs"]], row["baseline"]
    ([[0.5], [0.7, 0.8]], [0.5, 0.7])
    """
    names = [v for _, variants in points for v in variants]
    missing = [v for v in names if v not in results]
    if missing:
        raise KeyError(
            f"variant(s) {missing} not in the suite's results; it has "
            f"{sorted(results)}")
    table = {}
    for task in results[names[0]]:
        metric = results[names[0]][task].get("main_metric")
        tests = [results[v].get(task, {}).get("test", {}) for v in names]
        if metric is None or any(metric not in t for t in tests):
            continue  # a task that failed or is absent for some variant
        base = results.get(BASELINE, {}).get(task, {}).get("test", {}).get(metric)
        table[f"{task} {metric}"] = {
            "x": [x for x, _ in points],
            "runs": [[(results[v][task]["test"][metric]["mean"],
                       results[v][task]["test"][metric].get("ci95"))
                      for v in variants] for _, variants in points],
            "baseline": base.get("ci95") if base else None,
        }
    return table


def sweep_markdown(table: Mapping[str, dict], knob: str) -> str:
    """The table as markdown: a row per metric, a column per value (one
    ``mean [95 % interval]`` per variant, ``/`` between variants)."""
    xs = next(iter(table.values()))["x"] if table else []
    head = ["metric"] + [f"{knob} = {x:g}" for x in xs] + ["random weights"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, row in table.items():
        cells = [" / ".join(f"{m:.3f} [{c[0]:.3f}, {c[1]:.3f}]" if c else f"{m:.3f}"
                            for m, c in runs) for runs in row["runs"]]
        base = row["baseline"]
        cells.append(f"[{base[0]:.3f}, {base[1]:.3f}]" if base else "")
        lines.append("| " + " | ".join([label] + cells) + " |")
    return "\n".join(lines) + "\n"


def plot_sweep(table: Mapping[str, dict], knob: str, path: Path) -> None:
    """A panel per metric: each variant's mean and 95 % interval against the
    knob, a line through the values' means, random weights' interval as a
    grey band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(5, len(table))
    rows = -(-len(table) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.8 * rows), squeeze=False)
    for ax in axes.flat[len(table):]:
        ax.axis("off")
    for ax, (label, row) in zip(axes.flat, table.items()):
        xs = row["x"]
        log = min(xs) > 0 and max(xs) / min(xs) >= 4
        ax.plot(xs, [sum(m for m, _ in runs) / len(runs) for runs in row["runs"]],
                color="C0", label="mean over variants")
        for x, runs in zip(xs, row["runs"]):
            for k, (m, c) in enumerate(runs):  # seeds side by side, not on top
                shift = 0.08 * (k - (len(runs) - 1) / 2)
                xk = x * 2 ** shift if log else x + shift * (max(xs) - min(xs)) / 4
                err = [[m - c[0]], [c[1] - m]] if c else None
                ax.errorbar([xk], [m], yerr=err, marker="o", capsize=3, color="C0")
        if row["baseline"]:
            ax.axhspan(*row["baseline"], color="grey", alpha=0.25, label="random weights")
        if log:
            ax.set_xscale("log", base=2)
        ax.set_xticks(xs, [f"{x:g}" for x in xs])
        ax.set(title=label, xlabel=knob)
        ax.grid(alpha=0.3)
    # beside the last panel, as in the suite's and the per-layer figures
    axes.flat[len(table) - 1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    save_figure(fig, path)


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("suite", type=Path, help="a suite's output folder")
    parser.add_argument("--knob", required=True, help="the hyper-parameter's name")
    parser.add_argument("--point", action="append", required=True,
                        help="VALUE=VARIANT, once per value (at least two)")
    args = parser.parse_args(argv)
    try:
        results = read_suite_results(args.suite)
    except FileNotFoundError as err:
        parser.error(str(err))
    points = parse_points(args.point)
    if len(points) < 2:
        parser.error("a sweep needs at least two --point values")
    table = sweep_table(results, points)
    text = sweep_markdown(table, args.knob)
    atomic_write_text(args.suite / f"sweep_{args.knob}.md", text)
    plot_sweep(table, args.knob, args.suite / f"sweep_{args.knob}.png")
    print(text, end="")


if __name__ == "__main__":
    main()
