"""The downstream suite: every prepared task, for a checkpoint and baselines.

For each task folder under a root (those with a probe-able ``task.json``) and
each encoder variant (the pre-trained checkpoint, the same architecture with
random weights, the pooled log-mel), the probe experiment of
``hparams/downstream/<task>.yaml`` runs once per probe seed (default 5); a
failed run is logged and reported, the others go on. Random weights pair
weight seed i with probe seed i: five seeds are five random encoders.

Embeddings are extracted once per encoder and reused by every probe seed
(one split cache per task and encoder), and an item shared by several tasks
(the demo corpus's music clips) is extracted once per encoder
(:class:`~muselq_sb.downstream.cache.ItemStore`). A task whose
``task.json`` has ``"retrieval": {"key": ...}`` is also scored by same-key
retrieval (:mod:`muselq_sb.downstream.retrieval`). Every score is
summarised over seeds with its 95 % interval and written as tables and a
plot (:mod:`muselq_sb.downstream.report`).

Authors
 * muselq_sb team
"""
from __future__ import annotations

import json
import logging
import time
import traceback
from numbers import Number
from pathlib import Path
from typing import Mapping, Sequence

import torch
import yaml
from speechbrain.utils import logger as sb_logger

from muselq_sb.dataio.manifest import atomic_write_text, read_task
from muselq_sb.downstream.experiment import run_probe_experiment
from muselq_sb.downstream.intervals import seed_summary
from muselq_sb.downstream.report import RETRIEVAL_METRIC, write_report
from muselq_sb.downstream.retrieval import evaluate_retrieval, retrieval_key
from muselq_sb.downstream.frame_metrics import FRAME_TASK_TYPES
from muselq_sb.downstream.targets import PROBE_TYPES

logger = logging.getLogger(__name__)

VARIANTS = ("checkpoint", "random", "logmel")


def discover_tasks(
    tasks_root: str | Path, names: Sequence[str] | None = None
) -> dict[str, Path]:
    """Prepared, probe-able task folders under ``tasks_root`` by task name.

    A folder counts when it (or a sub-folder, at any depth) holds a
    ``task.json`` whose type is multiclass, multilabel, regression, or
    the frame-level beats or chords.

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
        if info.get("type") not in PROBE_TYPES + FRAME_TASK_TYPES:
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


def encoder_variants(
    encoder: str | Path | Sequence[str | Path], baselines: bool = True
) -> dict[str, str]:
    """Encoder specs to compare: the checkpoint(s) and (optionally) baselines.

    One unnamed encoder is the variant ``checkpoint`` (its table row takes
    the folder's name). Encoders given as ``NAME=PATH``, and several (e.g.
    the runs of an ablation) named so or by their folder's name, keep their
    names; the baselines are built from the first one (same architecture).

    Example
    -------
    >>> encoder_variants("/runs/brn")
    {'checkpoint': '/runs/brn', 'random': 'random:/runs/brn', 'logmel': 'logmel:/runs/brn'}
    >>> encoder_variants("demo=/runs/brn", baselines=False)
    {'demo': '/runs/brn'}
    >>> encoder_variants(["paper=/runs/a/1986", "/runs/unm05"], baselines=False)
    {'paper': '/runs/a/1986', 'unm05': '/runs/unm05'}
    """
    encoders = [str(encoder)] if isinstance(encoder, (str, Path)) else list(map(str, encoder))
    if not encoders:
        raise ValueError("no encoder given")
    if len(encoders) == 1 and "=" not in encoders[0]:
        specs = {"checkpoint": encoders[0]}
    else:
        specs = {}
        for item in encoders:
            name, sep, path = item.partition("=")
            name, path = (name, path) if sep else (Path(item).name, item)
            if name in specs or name in VARIANTS:
                raise ValueError(
                    f"encoder name {name!r} ({path}) is used twice or is reserved "
                    f"({', '.join(VARIANTS)}): name each one as NAME=PATH"
                )
            specs[name] = path
    first = next(iter(specs.values()))
    if baselines:
        specs.update({v: f"{v}:{first}" for v in VARIANTS[1:]})
    return specs


def summarise_runs(runs: Sequence[Mapping]) -> dict:
    """One task and encoder variant over its probe seeds.

    Arguments
    ---------
    runs : sequence of mappings
        The ``results.json`` of each seed's experiment, or ``{"error": ...}``.

    Returns
    -------
    dict
        ``task``, ``metrics``, ``main_metric``, ``seeds`` (those that ran),
        ``test`` (every numeric test value as a
        :func:`~muselq_sb.downstream.intervals.seed_summary`), the item
        counts of the first run, and ``runs`` (every run, per seed). When
        every seed failed: ``{"error": <first error>, "runs": runs}``.

    Example
    -------
    >>> runs = [{"task": "t", "metrics": ["accuracy"], "main_metric": "accuracy",
    ...          "seed": s, "test": {"accuracy": a}, "items": {}, "skipped": {}}
    ...         for s, a in ((1, 0.5), (2, 0.7))] + [{"error": "boom"}]
    >>> r = summarise_runs(runs)
    >>> r["seeds"], r["test"]["accuracy"]["mean"], r["test"]["accuracy"]["values"]
    ([1, 2], 0.6, [0.5, 0.7])
    """
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return {"error": runs[0]["error"], "runs": list(runs)}
    first = ok[0]
    keys = [k for k, v in first["test"].items() if isinstance(v, Number)
            and all(isinstance(r["test"].get(k), Number) for r in ok)]
    return {
        "task": first["task"],
        "metrics": list(first["metrics"]),
        "main_metric": first["main_metric"],
        "seeds": [r["seed"] for r in ok],
        "test": {k: seed_summary([r["test"][k] for r in ok]) for k in keys},
        **{k: first[k] for k in ("items", "skipped", "embedding_shape") if k in first},
        "runs": list(runs),
    }


def run_suite(
    encoder: str | Path | Sequence[str | Path],
    tasks_root: str | Path,
    output_folder: str | Path,
    hparams_dir: str | Path = "hparams/downstream",
    tasks: Sequence[str] | None = None,
    baselines: bool = True,
    run_opts: Mapping | None = None,
    overrides: str = "",
    n_seeds: int = 5,
    first_seed: int = 1234,
) -> dict[str, dict[str, dict]]:
    """Runs every task for every encoder variant and seed; writes the report.

    Arguments
    ---------
    encoder : path-like or sequence
        A pre-training output folder, or several (``NAME=PATH`` or paths
        with distinct folder names) compared in one table; the baselines
        use the first one's architecture.
    tasks_root : path-like
        Where prepared task folders are searched (:func:`discover_tasks`).
    output_folder : path-like
        Receives ``<variant>/<task>/seed<seed>/`` experiment folders, the
        embedding caches (``<variant>/<task>/embeddings/``; random weights:
        ``random/<task>/seed<seed>/embeddings/``), the item stores
        (``<variant>/items/``), ``env.log`` and the report
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
    n_seeds : int
        Probe seeds per task and variant (and random encoders).
    first_seed : int
        The seeds are ``first_seed, first_seed + 1, ...``.

    Returns
    -------
    dict
        ``{variant: {task: summarise_runs(...)}}`` (plus ``retrieval`` for
        a retrieval task); a task that failed for every seed has
        ``{"error": ...}``.

    Example
    -------
    Too slow for a doctest (it trains probes); see
    ``tests/test_downstream_suite.py`` and ``recipes/downstream/run_suite.py``.
    """
    if n_seeds < 1:
        raise ValueError(f"n_seeds={n_seeds}: expected at least one seed")
    started = time.time()
    output_folder = Path(output_folder)
    found = discover_tasks(tasks_root, tasks)
    if not found:
        raise ValueError(f"no prepared probe task under {tasks_root}")
    seeds = [first_seed + i for i in range(n_seeds)]
    output_folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(output_folder / "env.log", sb_logger.get_environment_description())
    results: dict[str, dict[str, dict]] = {}
    n_runs = 0
    variants = encoder_variants(encoder, baselines)
    for variant, spec in variants.items():
        results[variant] = {}
        for name, folder in found.items():
            results[variant][name] = _run_task(
                variant, spec, name, folder, seeds, output_folder,
                Path(hparams_dir) / f"{name}.yaml", dict(run_opts or {}), overrides,
            )
            n_runs += len(seeds)
    atomic_write_text(
        output_folder / "results.json", json.dumps(results, indent=2) + "\n"
    )
    write_report(results, output_folder, run_name=Path(variants["checkpoint"]).name
                 if "checkpoint" in variants else "")
    elapsed = time.time() - started
    logger.info("suite: %d tasks x %d variants x %d seeds = %d probe runs in %.0f s",
                len(found), len(results), len(seeds), n_runs, elapsed)
    return results


def _run_task(
    variant: str, spec: str, name: str, task_folder: Path, seeds: Sequence[int],
    output_folder: Path, hparams_file: Path, run_opts: dict, overrides: str,
) -> dict:
    """Every seed of one task and variant, then retrieval if the task has it."""
    folder = output_folder / variant / name
    caches = [folder / (f"seed{seed}" if variant == "random" else "") / "embeddings"
              for seed in seeds]
    runs = []
    for seed, cache in zip(seeds, caches):
        settings = yaml.safe_dump({
            "task_folder": str(task_folder),
            "encoder": spec,
            "seed": seed,
            "output_folder": str(folder / f"seed{seed}"),
            "cache_folder": str(cache),
            "embedding_store": str(output_folder / variant / "items"),
        })
        started = time.time()
        run = _run_one(hparams_file, run_opts, settings + overrides, spec)
        runs.append(run | {"seconds": round(time.time() - started, 2)})
        logger.info("%s / %s / seed %d: %.1f s", variant, name, seed, runs[-1]["seconds"])
    entry = summarise_runs(runs)
    key = retrieval_key(read_task(task_folder))
    if key is not None and "error" not in entry:
        entry["metrics"].append(RETRIEVAL_METRIC)
        entry["retrieval"] = _retrieval(task_folder, key, sorted(set(caches), key=caches.index))
    return entry


def _retrieval(task_folder: Path, key: str, caches: Sequence[Path]) -> dict:
    """Same-key retrieval on the cached splits; failures are reported."""
    try:
        encoders = [{split: torch.load(cache / f"{split}.pt", map_location="cpu",
                                       weights_only=True) for split in ("valid", "test")}
                    for cache in caches]
        return evaluate_retrieval(task_folder, key, encoders)
    except Exception as err:  # one broken task must not stop the suite
        logger.error("retrieval on %s failed:\n%s", task_folder, traceback.format_exc())
        return {"error": f"{type(err).__name__}: {err}"}
def _run_one(hparams_file: Path, run_opts: dict, overrides: str, spec: str) -> dict:
    """One experiment; failures are logged and returned, not raised."""
    if not hparams_file.is_file():
        message = f"{hparams_file} not found: no probe settings for this task"
        logger.error(message)
        return {"error": message}
    try:
        return run_probe_experiment(hparams_file, run_opts, overrides, save_env_desc=False)
    except Exception as err:  # one broken task must not stop the suite
        logger.error(
            "probe %s with %s failed:\n%s", hparams_file, spec,
            traceback.format_exc(),
        )
        return {"error": f"{type(err).__name__}: {err}"}
