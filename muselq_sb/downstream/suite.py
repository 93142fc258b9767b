"""The downstream suite: every prepared task, for a checkpoint and baselines.

For each task folder under a root (those with a probe-able ``task.json``) and
each encoder variant (the pre-trained checkpoint, the same architecture with
random weights, the pooled log-mel), one probe experiment runs with
``hparams/downstream/<task>.yaml``; a failed run is logged and reported, the
others go on. The results are written as a table (see
:mod:`muselq_sb.downstream.report`).

Authors
 * muselq_sb team
"""
from __future__ import annotations

import json
import logging
import traceback
from pathlib import Path
from typing import Mapping, Sequence

import yaml

from muselq_sb.dataio.manifest import atomic_write_text
from muselq_sb.downstream.experiment import run_probe_experiment
from muselq_sb.downstream.report import write_report
from muselq_sb.downstream.targets import PROBE_TYPES

logger = logging.getLogger(__name__)

VARIANTS = ("checkpoint", "random", "logmel")


def discover_tasks(
    tasks_root: str | Path, names: Sequence[str] | None = None
) -> dict[str, Path]:
    """Prepared, probe-able task folders under ``tasks_root`` by task name.

    A folder counts when it (or a sub-folder, at any depth) holds a
    ``task.json`` whose type is multiclass, multilabel or regression.

    Arguments
    ---------
    tasks_root : path-like
        Folder searched for ``task.json`` files.
    names : sequence of str, optional
        Keep only these tasks; an absent one raises ``ValueError``.

    Returns
    -------
    dict
        ``{name: folder}`` sorted by name.

    Example
    -------
    >>> import tempfile
    >>> from muselq_sb.dataio.manifest import write_task
    >>> root = Path(tempfile.mkdtemp())
    >>> rows = [{"ID": "a", "path": "/a.wav", "duration": 1.0, "label": "x"}]
    >>> _ = write_task(root / "toy", "toy", "multiclass", "label",
    ...                {"train": rows}, classes=["x"], metrics=["accuracy"])
    >>> list(discover_tasks(root))
    ['toy']
    """
    found: dict[str, Path] = {}
    for task_json in sorted(Path(tasks_root).rglob("task.json")):
        info = json.loads(task_json.read_text(encoding="utf-8"))
        if info.get("type") not in PROBE_TYPES:
            continue
        if info["name"] in found:
            raise ValueError(
                f"task {info['name']!r} found twice: {found[info['name']]} and "
                f"{task_json.parent}"
            )
        found[info["name"]] = task_json.parent
    if names:
        missing = [n for n in names if n not in found]
        if missing:
            raise ValueError(
                f"tasks {missing} not prepared under {tasks_root}; found "
                f"{sorted(found)}"
            )
        found = {n: found[n] for n in names}
    return dict(sorted(found.items()))


def encoder_variants(encoder: str | Path, baselines: bool = True) -> dict[str, str]:
    """Encoder specs to compare: the checkpoint and (optionally) baselines.

    Example
    -------
    >>> encoder_variants("/runs/brn")
    {'checkpoint': '/runs/brn', 'random': 'random:/runs/brn', 'logmel': 'logmel:/runs/brn'}
    """
    specs = {"checkpoint": str(encoder)}
    if baselines:
        specs.update({v: f"{v}:{encoder}" for v in VARIANTS[1:]})
    return specs


def run_suite(
    encoder: str | Path,
    tasks_root: str | Path,
    output_folder: str | Path,
    hparams_dir: str | Path = "hparams/downstream",
    tasks: Sequence[str] | None = None,
    baselines: bool = True,
    run_opts: Mapping | None = None,
    overrides: str = "",
) -> dict[str, dict[str, dict]]:
    """Runs every task for every encoder variant and writes the report.

    Arguments
    ---------
    encoder : path-like
        A pre-training output folder.
    tasks_root : path-like
        Where prepared task folders are searched (:func:`discover_tasks`).
    output_folder : path-like
        Receives ``<variant>/<task>/`` experiment folders and the report
        (``results.md``, ``results.csv``, ``results.png``, ``results.json``).
    hparams_dir : path-like
        Holds ``<task>.yaml`` for every task.
    tasks : sequence of str, optional
        Only these tasks.
    baselines : bool
        Also run the random-weights and pooled log-mel baselines.
    run_opts : mapping, optional
        SpeechBrain run options (``device``, ``debug``, ``noprogressbar``).
    overrides : str
        yaml text overriding every task's settings (e.g.
        ``"number_of_epochs: 20"``); tags such as ``!name:`` are allowed.

    Returns
    -------
    dict
        ``{variant: {task: results}}``; a failed run has ``{"error": ...}``.

    Example
    -------
    Too slow for a doctest (it trains probes); see
    ``tests/test_downstream_suite.py`` and ``recipes/downstream/run_suite.py``.
    """
    output_folder = Path(output_folder)
    found = discover_tasks(tasks_root, tasks)
    if not found:
        raise ValueError(f"no prepared probe task under {tasks_root}")
    results: dict[str, dict[str, dict]] = {}
    for variant, spec in encoder_variants(encoder, baselines).items():
        results[variant] = {}
        for name, folder in found.items():
            task_overrides = yaml.safe_dump({
                "task_folder": str(folder),
                "encoder": spec,
                "output_folder": str(output_folder / variant / name),
            }) + overrides
            results[variant][name] = _run_one(
                Path(hparams_dir) / f"{name}.yaml", dict(run_opts or {}),
                task_overrides, spec,
            )
    atomic_write_text(
        output_folder / "results.json", json.dumps(results, indent=2) + "\n"
    )
    write_report(results, output_folder, run_name=Path(encoder).name)
    return results


def _run_one(hparams_file: Path, run_opts: dict, overrides: str, spec: str) -> dict:
    """One experiment; failures are logged and returned, not raised."""
    if not hparams_file.is_file():
        message = f"{hparams_file} not found: no probe settings for this task"
        logger.error(message)
        return {"error": message}
    try:
        return run_probe_experiment(hparams_file, run_opts, overrides)
    except Exception as err:  # one broken task must not stop the suite
        logger.error(
            "probe %s with %s failed:\n%s", hparams_file, spec,
            traceback.format_exc(),
        )
        return {"error": f"{type(err).__name__}: {err}"}
