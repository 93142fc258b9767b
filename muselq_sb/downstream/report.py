"""Result tables (Markdown, CSV) and a bar plot, laid out like Table 3.

The first table has the paper's columns (plus MTG mood/theme) with the
paper's rows above ours; every other task (the demo tasks, the frame-level
beat and chord tasks) goes to a second table with one column per metric (and ``<task> P@1`` for a task with
same-key retrieval). Our cells are summaries over seeds (mean ± standard
deviation, 95 % interval); a cell is marked as a win only when its interval
lies above the intervals of every other row of ours
(:func:`~muselq_sb.downstream.intervals.interval_winner`).

Authors
 * muselq_sb team
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Mapping, Sequence

from muselq_sb.dataio.manifest import atomic_write_text
from muselq_sb.downstream.intervals import interval_winner
from muselq_sb.downstream.paper_results import (
    MAIN_COLUMNS,
    TABLE3_COLUMNS,
    Column,
    paper_rows,
)

VARIANT_LABELS = {"random": "random init", "logmel": "pooled log-mel"}
MISSING, FAILED = "—", "failed"
RETRIEVAL_METRIC = "P@1"
WIN = "★"
#: A cell: a paper value, a summary of ours (``mean``, ``std``, ``ci95``...),
#: or MISSING / FAILED.
Cell = float | Mapping | str


def read_suite_results(folder: str | Path) -> dict:
    """A suite's ``results.json`` (``{variant: {task: summary}}``), read back
    by the tools that compare its rows without running a probe.

    Example
    -------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     read_suite_results(d)
    Traceback (most recent call last):
    ...
    FileNotFoundError: ...results.json: no results.json (run the suite first)
    """
    path = Path(folder) / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no results.json (run the suite first)")
    return json.loads(path.read_text(encoding="utf-8"))


def save_figure(fig, path: str | Path, dpi: int = 110) -> None:
    """Write a matplotlib figure (tight, its folder created) and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)


def variant_label(variant: str, run_name: str) -> str:
    """Row name of one of our encoder variants (the checkpoint is named
    ``run_name``; a named encoder of several keeps its name).

    Example
    -------
    >>> variant_label("random", "brn_sum"), variant_label("checkpoint", "brn_sum")
    ('ours: random init', 'ours: brn_sum')
    >>> variant_label("unm05", "")
    'ours: unm05'
    """
    if variant == "checkpoint":
        return f"ours: {run_name}"
    return f"ours: {VARIANT_LABELS.get(variant, variant)}"


def table_columns(
    results: Mapping[str, Mapping[str, Mapping]],
) -> tuple[list[Column], list[Column]]:
    """The main columns (Table 3, plus extras that were run) and the others.

    Example
    -------
    >>> main, other = table_columns({"checkpoint": {
    ...     "demo_key": {"metrics": ["key_weighted", "accuracy"]}}})
    >>> len(main), [c.label for c in other]
    (16, ['demo_key key_weighted', 'demo_key accuracy'])
    """
    ran = {task: r for runs in results.values() for task, r in runs.items()}
    main = list(TABLE3_COLUMNS) + [
        c for c in MAIN_COLUMNS[len(TABLE3_COLUMNS):] if c.task in ran
    ]
    main_tasks = {c.task for c in MAIN_COLUMNS}
    other = []
    for task in sorted(t for t in ran if t not in main_tasks):
        metrics = next(
            (r["metrics"] for runs in results.values()
             if "metrics" in (r := runs.get(task, {}))), [],
        )
        other += [Column(f"{task} {m}", task, m) for m in metrics] or [
            Column(task, task, "")
        ]
    return main, other


def _cell(run: Mapping | None, metric: str) -> Cell:
    if run is None:
        return MISSING
    if "error" in run:
        return FAILED
    if metric == RETRIEVAL_METRIC:
        retrieval = run.get("retrieval", {})
        return FAILED if "error" in retrieval else retrieval.get("p_at_1", MISSING)
    return run["test"].get(metric, MISSING)


def table_rows(
    results: Mapping[str, Mapping[str, Mapping]],
    columns: Sequence[Column],
    run_name: str,
    with_paper: bool,
) -> dict[str, list[Cell]]:
    """``{row name: [value per column]}``: paper rows (optional), then ours.

    Example
    -------
    >>> cols = [Column("GTZAN", "gtzan", "accuracy"), Column("GS", "giantsteps_key",
    ...                                                      "key_weighted")]
    >>> results = {"checkpoint": {"gtzan": {"test": {"accuracy": {"mean": 0.5}}},
    ...                           "giantsteps_key": {"error": "boom"}}}
    >>> rows = table_rows(results, cols, "brn", with_paper=True)
    >>> rows["paper: MERT-330M"], rows["ours: brn"]
    ([0.689, 0.856], [{'mean': 0.5}, 'failed'])
    """
    rows: dict[str, list[Cell]] = {}
    if with_paper:
        for model, values in paper_rows().items():
            rows[f"paper: {model}"] = [values.get(c.label, MISSING) for c in columns]
    for variant, runs in results.items():
        rows[variant_label(variant, run_name)] = [
            _cell(runs.get(c.task), c.metric) for c in columns
        ]
    return rows


def column_winners(
    columns: Sequence[Column], rows: Mapping[str, Sequence[Cell]]
) -> list[str | None]:
    """Per column, the row of ours whose interval beats all others' (or None).

    Example
    -------
    >>> rows = {"paper: x": [0.99], "ours: a": [{"mean": 0.9, "ci95": [0.85, 0.95]}],
    ...         "ours: b": [{"mean": 0.7, "ci95": [0.6, 0.8]}]}
    >>> column_winners([Column("GTZAN", "gtzan", "accuracy")], rows)
    ['ours: a']
    """
    return [
        interval_winner({name: values[i] for name, values in rows.items()
                         if isinstance(values[i], Mapping)})
        for i in range(len(columns))
    ]


def _fmt(value: Cell, win: bool = False) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    if not isinstance(value, Mapping):
        return str(value)
    text = f"{value['mean']:.3f}"
    if value.get("std") is not None:
        text += f" ± {value['std']:.3f}"
    return f"**{text}** {WIN}" if win else text


def _interval(value: Cell) -> str:
    if isinstance(value, Mapping) and value.get("ci95") is not None:
        low, high = value["ci95"]
        return f"[{low:.3f}, {high:.3f}]"
    return _fmt(value) if not isinstance(value, Mapping) else MISSING


def markdown_table(columns: Sequence[Column], rows: Mapping[str, Sequence[Cell]]) -> str:
    """A Markdown table with one row per model, wins in bold with a star.

    Example
    -------
    >>> print(markdown_table([Column("GTZAN", "gtzan", "accuracy")],
    ...                      {"ours: x": [{"mean": 0.5, "std": 0.01}], "paper: y": [0.6]}))
    | model | GTZAN |
    |---|---|
    | ours: x | 0.500 ± 0.010 |
    | paper: y | 0.600 |
    """
    winners = column_winners(columns, rows)
    lines = [
        "| model | " + " | ".join(c.label for c in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    lines += [
        f"| {name} | " + " | ".join(
            _fmt(v, winners[i] == name) for i, v in enumerate(values)) + " |"
        for name, values in rows.items()
    ]
    return "\n".join(lines)


def interval_table(columns: Sequence[Column], rows: Mapping[str, Sequence[Cell]]) -> str:
    """The 95 % intervals of our rows: one line per column.

    Example
    -------
    >>> print(interval_table([Column("GTZAN", "gtzan", "accuracy")],
    ...                      {"ours: x": [{"mean": 0.5, "ci95": [0.4, 0.6]}]}))
    | column | ours: x |
    |---|---|
    | GTZAN | [0.400, 0.600] |
    """
    ours = [name for name in rows if name.startswith("ours")]
    lines = ["| column | " + " | ".join(ours) + " |", "|---|" + "---|" * len(ours)]
    lines += [
        f"| {c.label} | " + " | ".join(_interval(rows[n][i]) for n in ours) + " |"
        for i, c in enumerate(columns)
    ]
    return "\n".join(lines)


def versus(value: Cell, reference: Cell) -> str:
    """``▲`` when the 95 % interval of ``value`` lies entirely above that of
    ``reference``, ``▼`` when entirely below, ``=`` when they overlap,
    MISSING when either has no interval.

    Example
    -------
    >>> a, b = {"ci95": [0.6, 0.7]}, {"ci95": [0.4, 0.5]}
    >>> versus(a, b), versus(b, a), versus(a, {"ci95": [0.65, 0.9]}), versus(a, "failed")
    ('▲', '▼', '=', '—')
    """
    if not all(isinstance(v, Mapping) and v.get("ci95") for v in (value, reference)):
        return MISSING
    (low, high), (ref_low, ref_high) = value["ci95"], reference["ci95"]
    return "▲" if low > ref_high else "▼" if high < ref_low else "="


def versus_table(
    columns: Sequence[Column], rows: Mapping[str, Sequence[Cell]], reference: str
) -> str:
    """Each row of ours against the ``reference`` row, column by column
    (:func:`versus`), with the counts of clear wins and losses.

    Example
    -------
    >>> rows = {"ours: a": [{"ci95": [0.6, 0.7]}, {"ci95": [0.1, 0.2]}],
    ...         "ours: random init": [{"ci95": [0.4, 0.5]}, {"ci95": [0.3, 0.4]}]}
    >>> print(versus_table([Column("A", "a", "m"), Column("B", "b", "m")], rows,
    ...                    "ours: random init"))
    | model | A | B | above / below / overlap |
    |---|---|---|---|
    | ours: a | ▲ | ▼ | 1 / 1 / 0 |
    """
    lines = ["| model | " + " | ".join(c.label for c in columns)
             + " | above / below / overlap |", "|---|" + "---|" * (len(columns) + 1)]
    for name, values in rows.items():
        if not name.startswith("ours") or name == reference:
            continue
        marks = [versus(v, rows[reference][i]) for i, v in enumerate(values)]
        counts = " / ".join(str(marks.count(m)) for m in ("▲", "▼", "="))
        lines.append(f"| {name} | " + " | ".join(marks) + f" | {counts} |")
    return "\n".join(lines)


def legend(results: Mapping[str, Mapping[str, Mapping]]) -> str:
    """What the cells mean: seeds, intervals and the win rule."""
    seeds = sorted({len(r.get("seeds", [])) for runs in results.values()
                    for r in runs.values() if "seeds" in r})
    n = "/".join(str(k) for k in seeds) or "?"
    return (
        f"Ours: mean ± standard deviation over {n} probe seeds (random init: "
        "weight seed i with probe seed i, so each seed is another random "
        "encoder). 95 % intervals (Student t over seeds) are listed below the "
        f"tables. **Bold {WIN}**: a win, the only row of ours whose 95 % "
        "interval lies entirely above the intervals of every other row of "
        f"ours; where intervals overlap no row is marked. `<task> {RETRIEVAL_METRIC}`: "
        "same-key retrieval precision@1 on the test split's pooled embeddings "
        "(cosine), at the layer chosen on the valid split; ± is the bootstrap "
        "standard error and the interval a bootstrap over test queries (and "
        "over weight seeds for random init)."
    )


def chosen_layer_table(results: Mapping[str, Mapping[str, Mapping]], run_name: str) -> str:
    """The layer each seed's probe chose on valid (``layer: best``), per task.

    Empty text when no run chose a layer (the other layer options).

    Example
    -------
    >>> runs = [{"chosen_layer": c} for c in (4, 3, 4)]
    >>> print(chosen_layer_table({"checkpoint": {"key": {"runs": runs}}}, "brn"))
    | model | key |
    |---|---|
    | ours: brn | 4 3 4 |
    >>> chosen_layer_table({"checkpoint": {"key": {"runs": [{"layer_weights": None}]}}}, "brn")
    ''
    """
    tasks = sorted({task for runs in results.values() for task, run in runs.items()
                    if any("chosen_layer" in r for r in run.get("runs", []))})
    if not tasks:
        return ""
    lines = ["| model | " + " | ".join(tasks) + " |", "|---" * (len(tasks) + 1) + "|"]
    for variant, runs in results.items():
        cells = [" ".join(str(r["chosen_layer"]) for r in runs.get(task, {}).get("runs", [])
                          if "chosen_layer" in r) or "—" for task in tasks]
        lines.append(f"| {variant_label(variant, run_name)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _notes(results: Mapping[str, Mapping[str, Mapping]], run_name: str) -> list[str]:
    notes = []
    for variant, runs in results.items():
        for task, run in sorted(runs.items()):
            who = f"{variant_label(variant, run_name)} / {task}"
            if "error" in run:
                notes.append(f"- {who}: failed: {run['error']}")
                continue
            skipped = sum(run.get("skipped", {}).values())
            excluded = run["test"].get("excluded_labels", {}).get("mean")
            failed = [r for r in run.get("runs", []) if "error" in r]
            if failed:
                notes.append(f"- {who}: {len(failed)} seed(s) failed: {failed[0]['error']}")
            retrieval = run.get("retrieval", {})
            if "error" in retrieval:
                notes.append(f"- {who}: retrieval failed: {retrieval['error']}")
            if skipped:
                notes.append(f"- {who}: {skipped} unreadable items skipped")
            if excluded:
                notes.append(f"- {who}: {excluded:g} labels without positives "
                             "or negatives in test excluded from ROC/AP")
    return notes


def write_report(
    results: Mapping[str, Mapping[str, Mapping]],
    output_folder: str | Path,
    run_name: str,
) -> list[Path]:
    """Writes ``results.md``, ``results.csv`` and ``results.png``.

    Arguments
    ---------
    results : mapping
        ``{variant: {task: summary over seeds or {"error": ...}}}`` as
        :func:`muselq_sb.downstream.suite.run_suite` returns it (``test``
        maps each metric to a summary with ``mean``, ``std`` and ``ci95``).
    output_folder : path-like
        Where the files go.
    run_name : str
        Name of the pre-trained encoder (its row label).

    Returns
    -------
    list of Path
        The files written.

    Example
    -------
    >>> import tempfile
    >>> from muselq_sb.downstream.intervals import seed_summary
    >>> results = {
    ...     "checkpoint": {"gtzan": {"test": {"accuracy": seed_summary([.50, .52, .51])}}},
    ...     "random": {"gtzan": {"test": {"accuracy": seed_summary([.25, .30, .20])}}}}
    >>> files = write_report(results, tempfile.mkdtemp(), run_name="brn")
    >>> [f.name for f in files]
    ['results.md', 'results.csv', 'results.png']
    >>> "| ours: brn | " in (md := files[0].read_text()), "**0.510 ± 0.010** ★" in md
    (True, True)
    """
    out = Path(output_folder)
    main, other = table_columns(results)
    main_rows = table_rows(results, main, run_name, with_paper=True)
    other_rows = table_rows(results, other, run_name, with_paper=False)
    text = [
        "# Downstream results (frozen encoder, probe; test split)",
        "",
        "Paper rows: Table 3 of the paper. Ours: probe on our encoder and "
        "baselines. GS = mir_eval weighted key score; EMO = R2. Frame-level "
        "tasks: beat_f / downbeat_f = mir_eval beat F-measure (70 ms), cmlt / "
        "amlt = continuity, majmin / root = weighted chord symbol recall.",
        "",
        legend(results),
        "",
        markdown_table(main, main_rows),
    ]
    if other:
        text += ["", "## Other tasks (demo corpus, frame-level tasks)", "",
                 markdown_table(other, other_rows)]
    ran = [i for i, c in enumerate(main)
           if any(isinstance(v[i], Mapping) for v in main_rows.values())]
    text += ["", "## 95 % intervals", "",
             interval_table([main[i] for i in ran] + other,
                            {n: [v[i] for i in ran] + other_rows.get(n, [])
                             for n, v in main_rows.items()})]
    reference = variant_label("random", run_name)
    if reference in main_rows:
        text += ["", "## Against random weights", "",
                 "Each row of ours against the same architecture with random "
                 "weights: ▲ its 95 % interval lies entirely above random "
                 "weights', ▼ entirely below, = they overlap (no claim either way).",
                 "", versus_table([main[i] for i in ran] + other,
                                  {n: [v[i] for i in ran] + other_rows.get(n, [])
                                   for n, v in main_rows.items()}, reference)]
    chosen = chosen_layer_table(results, run_name)
    if chosen:
        text += ["", "## Layers chosen on valid (`layer: best`)", "",
                 "The hidden state each probe seed's valid score chose "
                 "(0 = front-end output), seed by seed.", "", chosen]
    notes = _notes(results, run_name)
    if notes:
        text += ["", "## Notes", "", *notes]
    atomic_write_text(out / "results.md", "\n".join(text) + "\n")
    all_rows = {
        name: [*values, *other_rows.get(name, [MISSING] * len(other))]
        for name, values in main_rows.items()
    }
    atomic_write_text(out / "results.csv", _csv(main + other, all_rows))
    _plot(main + other, all_rows, out / "results.png")
    return [out / "results.md", out / "results.csv", out / "results.png"]


def _csv(columns: Sequence[Column], rows: Mapping[str, Sequence[Cell]]) -> str:
    """Per column: the value (mean), then the std and 95 % interval of ours."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["model"] + [f"{c.label}{part}" for c in columns
                                 for part in ("", " std", " ci95_low", " ci95_high")])

    def fields(value: Cell) -> list[str]:
        if isinstance(value, float):
            return [f"{value:.4f}", "", "", ""]
        if not isinstance(value, Mapping):
            return [""] * 4
        low, high = value.get("ci95") or (None, None)
        return [f"{v:.4f}" if v is not None else ""
                for v in (value["mean"], value.get("std"), low, high)]

    for name, values in rows.items():
        writer.writerow([name] + [f for v in values for f in fields(v)])
    return buf.getvalue()


def _plot(columns: Sequence[Column], rows: Mapping[str, Sequence[Cell]], path: Path) -> None:
    """Bars (ours: mean with its 95 % interval); a star above a win."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def mean(value: Cell) -> float | None:
        if isinstance(value, float):
            return value
        return value["mean"] if isinstance(value, Mapping) else None

    ours = [n for n in rows if n.startswith("ours")]
    shown = [i for i in range(len(columns))
             if any(isinstance(rows[n][i], Mapping) for n in ours)]
    models = [n for n in rows if any(mean(rows[n][i]) is not None for i in shown)]
    winners = column_winners(columns, rows)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(shown) + 3), 4.8))
    width = 0.8 / max(1, len(models))
    for k, name in enumerate(models):
        cells = [rows[name][i] for i in shown]
        xs = [j + k * width for j in range(len(shown))]
        heights = [mean(c) or 0.0 for c in cells]
        errors = [[0.0] * len(cells), [0.0] * len(cells)]
        for j, c in enumerate(cells):
            if isinstance(c, Mapping) and c.get("ci95") is not None:
                errors[0][j] = c["mean"] - c["ci95"][0]
                errors[1][j] = c["ci95"][1] - c["mean"]
        ax.bar(xs, heights, width, label=name, yerr=errors, capsize=2,
               error_kw={"linewidth": 0.8})
        for j, i in enumerate(shown):
            if winners[i] == name:
                ax.annotate(WIN, (xs[j], heights[j] + errors[1][j]), ha="center",
                            va="bottom", fontsize=11)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(shown))])
    ax.set_xticklabels([columns[i].label for i in shown], rotation=45, ha="right")
    ax.set_ylabel("test score")
    ax.set_title(f"error bars: 95 % intervals; {WIN}: a win (interval above every "
                 "other row of ours, no overlap)", fontsize="small")
    ax.axhline(0.0, color="black", linewidth=0.5)
    # outside the axes: with many rows an inside legend hides bars
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    save_figure(fig, path, dpi=120)
