"""Result tables (Markdown, CSV) and a bar plot, laid out like Table 3.

The first table has the paper's columns (plus MTG mood/theme) with the
paper's rows above ours; every other task (the demo tasks) goes to a second
table with one column per metric.

Authors
 * muselq_sb team
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Mapping, Sequence

from muselq_sb.dataio.manifest import atomic_write_text
from muselq_sb.downstream.paper_results import (
    MAIN_COLUMNS,
    TABLE3_COLUMNS,
    Column,
    paper_rows,
)

VARIANT_LABELS = {"random": "random init", "logmel": "pooled log-mel"}
MISSING, FAILED = "—", "failed"


def variant_label(variant: str, run_name: str) -> str:
    """Row name of one of our encoder variants.

    Example
    -------
    >>> variant_label("random", "brn_sum"), variant_label("checkpoint", "brn_sum")
    ('ours: random init', 'ours: brn_sum')
    """
    return f"ours: {VARIANT_LABELS.get(variant, run_name)}"


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


def _cell(run: Mapping | None, metric: str) -> float | str:
    if run is None:
        return MISSING
    if "error" in run:
        return FAILED
    return run["test"].get(metric, MISSING)


def table_rows(
    results: Mapping[str, Mapping[str, Mapping]],
    columns: Sequence[Column],
    run_name: str,
    with_paper: bool,
) -> dict[str, list[float | str]]:
    """``{row name: [value per column]}``: paper rows (optional), then ours.

    Example
    -------
    >>> cols = [Column("GTZAN", "gtzan", "accuracy"), Column("GS", "giantsteps_key",
    ...                                                      "key_weighted")]
    >>> results = {"checkpoint": {"gtzan": {"test": {"accuracy": 0.5}},
    ...                           "giantsteps_key": {"error": "boom"}}}
    >>> rows = table_rows(results, cols, "brn", with_paper=True)
    >>> rows["paper: MERT-330M"], rows["ours: brn"]
    ([0.689, 0.856], [0.5, 'failed'])
    """
    rows: dict[str, list[float | str]] = {}
    if with_paper:
        for model, values in paper_rows().items():
            rows[f"paper: {model}"] = [values.get(c.label, MISSING) for c in columns]
    for variant, runs in results.items():
        rows[variant_label(variant, run_name)] = [
            _cell(runs.get(c.task), c.metric) for c in columns
        ]
    return rows


def _fmt(value: float | str) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def markdown_table(columns: Sequence[Column], rows: Mapping[str, Sequence]) -> str:
    """A Markdown table with one row per model.

    Example
    -------
    >>> print(markdown_table([Column("GTZAN", "gtzan", "accuracy")],
    ...                      {"ours: x": [0.5]}))
    | model | GTZAN |
    |---|---|
    | ours: x | 0.500 |
    """
    lines = [
        "| model | " + " | ".join(c.label for c in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    lines += [
        f"| {name} | " + " | ".join(_fmt(v) for v in values) + " |"
        for name, values in rows.items()
    ]
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
            excluded = run["test"].get("excluded_labels")
            if skipped:
                notes.append(f"- {who}: {skipped} unreadable items skipped")
            if excluded:
                notes.append(f"- {who}: {excluded} labels without positives "
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
        ``{variant: {task: results.json content or {"error": ...}}}``.
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
    >>> results = {"checkpoint": {"gtzan": {"test": {"accuracy": 0.5}}},
    ...            "random": {"gtzan": {"test": {"accuracy": 0.25}}}}
    >>> files = write_report(results, tempfile.mkdtemp(), run_name="brn")
    >>> [f.name for f in files]
    ['results.md', 'results.csv', 'results.png']
    >>> "| ours: random init |" in files[0].read_text()
    True
    """
    out = Path(output_folder)
    main, other = table_columns(results)
    main_rows = table_rows(results, main, run_name, with_paper=True)
    other_rows = table_rows(results, other, run_name, with_paper=False)
    text = [
        "# Downstream results (frozen encoder, probe; test split)",
        "",
        "Paper rows: Table 3 of the paper. Ours: probe on our encoder and "
        "baselines. GS = mir_eval weighted key score; EMO = R2.",
        "",
        markdown_table(main, main_rows),
    ]
    if other:
        text += ["", "## Other tasks (demo corpus)", "", markdown_table(other, other_rows)]
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


def _csv(columns: Sequence[Column], rows: Mapping[str, Sequence]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["model"] + [c.label for c in columns])
    for name, values in rows.items():
        writer.writerow(
            [name] + [f"{v:.4f}" if isinstance(v, float) else "" for v in values]
        )
    return buf.getvalue()


def _plot(columns: Sequence[Column], rows: Mapping[str, Sequence], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ours = [n for n in rows if n.startswith("ours")]
    shown = [i for i in range(len(columns))
             if any(isinstance(rows[n][i], float) for n in ours)]
    models = [n for n in rows if any(isinstance(rows[n][i], float) for i in shown)]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(shown) + 2), 4.5))
    width = 0.8 / max(1, len(models))
    for k, name in enumerate(models):
        values = [rows[name][i] if isinstance(rows[name][i], float) else 0.0
                  for i in shown]
        ax.bar([i + k * width for i in range(len(shown))], values, width, label=name)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(shown))])
    ax.set_xticklabels([columns[i].label for i in shown], rotation=45, ha="right")
    ax.set_ylabel("test score")
    ax.axhline(0.0, color="black", linewidth=0.5)
    ax.legend(fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
