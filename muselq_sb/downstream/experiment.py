"""One probe experiment: yaml -> embedding cache -> ProbeBrain -> results.json.

``recipes/downstream/train.py`` is a thin wrapper around
:func:`run_probe_experiment`; the suite calls it once per task and encoder.

Authors
 * muselq_sb team
"""
from __future__ import annotations

import functools
import json
import logging
from pathlib import Path
from typing import Mapping

import speechbrain as sb
import torch

from muselq_sb.dataio.manifest import SPLITS, atomic_write_text, read_manifest, read_task
from muselq_sb.downstream.brain import ProbeBrain, WindowDataset
from muselq_sb.downstream.cache import (
    ItemStore,
    WindowConfig,
    encoder_identity,
    load_embedder,
    load_or_extract,
)
from muselq_sb.downstream.frame_brain import FrameDataset, FrameProbeBrain
from muselq_sb.downstream.frame_metrics import FRAME_TASK_TYPES
from muselq_sb.downstream.frame_targets import encode_references, frame_targets
from muselq_sb.downstream.probe import Probe
from muselq_sb.downstream.targets import TaskTargets, item_groups
from muselq_sb.utils.hparams import load_hparams, overrides_mapping, save_hparams

logger = logging.getLogger(__name__)

# ``layer: best``: one probe per layer, the one best on the valid split wins
BEST_LAYER = "best"


def _extract_embeddings(
    hparams: Mapping, device: str, frame_level: bool = False
) -> dict[str, dict]:
    """Cached embeddings of every split of ``hparams["task_folder"]``.

    The encoder is loaded only if a split needs (re-)extraction, and freed
    before the probe trains. ``frame_level``: every frame of the hidden
    states instead of their time mean (the window settings of attention
    encoders and the frame rate go with the cache).
    """
    config = WindowConfig(
        window_seconds=hparams["window_seconds"],
        min_last_seconds=hparams["min_last_seconds"],
        crop_seconds=hparams["crop_seconds"],
        sample_rate=hparams["sample_rate"],
    )
    identity = encoder_identity(hparams["encoder"], hparams["seed"], hparams["pooling"])
    frames = None
    if frame_level:  # every frame: no pooling
        frames = {"window_seconds": hparams["frame_window_seconds"],
                  "overlap_seconds": hparams["frame_overlap_seconds"]}
        identity.pop("pooling", None)
        identity["frames"] = frames
    store = hparams["embedding_store"]
    store = ItemStore(store, identity, config) if store else None
    get_embedder = functools.cache(
        lambda: load_embedder(
            hparams["encoder"], device, hparams["seed"], hparams["model_loader"],
            precision="bf16" if hparams["extract_bf16"] else "fp32",
            pooling=hparams["pooling"], frames=frames,
        )
    )
    meta = (lambda: {"frame_rate": get_embedder().frame_rate}) if frame_level else None
    splits = {
        split: load_or_extract(
            hparams["task_folder"], split, hparams["cache_folder"], get_embedder,
            identity, config, store, meta,
            batch_size=hparams["extract_batch_size"],
            num_workers=hparams["extract_num_workers"],
            device=device,
        )
        for split in SPLITS
    }
    get_embedder.cache_clear()
    return splits


def build_datasets(
    task_folder: str | Path, task: Mapping, splits: Mapping[str, Mapping]
) -> tuple[dict[str, WindowDataset], dict]:
    """One :class:`WindowDataset` per split, regression targets standardised.

    Arguments
    ---------
    task_folder : path-like
        The prepared task folder (its ``<split>.csv`` give the targets).
    task : mapping
        Its ``task.json``.
    splits : mapping
        ``{split: cached embeddings}`` as :func:`load_or_extract` returns.

    Returns
    -------
    (datasets, standardisation)
        ``{split: WindowDataset}`` and the train mean/std of regression
        targets (empty otherwise; R2 is unchanged by standardising).

    Example
    -------
    >>> import tempfile, torch
    >>> from muselq_sb.dataio.manifest import write_task
    >>> rows = [{"ID": i, "path": "/a.wav", "duration": 1.0, "tempo": t}
    ...         for i, t in (("a", 90.0), ("b", 110.0), ("c", 0.0))]
    >>> d = write_task(tempfile.mkdtemp(), "toy", "regression", ["tempo"],
    ...                {"train": rows}, metrics=["r2"])
    >>> cache = {"train": {"ids": ["a", "b"], "embeddings": [torch.zeros(1, 2, 3)] * 2}}
    >>> sets, stats = build_datasets(d, {"type": "regression", "target": ["tempo"]}, cache)
    >>> sets["train"].targets.squeeze(1).tolist(), stats["mean"]
    ([-0.7071067690849304, 0.7071067690849304], [100.0])
    """
    targets = TaskTargets(task)
    encoded = {}
    for split, data in splits.items():
        csv = Path(task_folder) / f"{split}.csv"
        rows = read_manifest(csv)
        values = targets.encode(rows, csv)  # validates every row
        position = {row["ID"]: i for i, row in enumerate(rows)}
        kept = [position[i] for i in data["ids"]]
        encoded[split] = (values[kept], item_groups([rows[i] for i in kept]))
    stats: dict = {}
    if task["type"] == "regression":
        train = encoded["train"][0]
        mean, std = train.mean(0), train.std(0).clamp(min=1e-8)
        stats = {"mean": mean.tolist(), "std": std.tolist()}
        encoded = {s: ((t - mean) / std, g) for s, (t, g) in encoded.items()}
    datasets = {
        split: WindowDataset(splits[split]["embeddings"], *encoded[split])
        for split in splits
    }
    return datasets, stats


def build_frame_datasets(
    task_folder: str | Path, task: Mapping, splits: Mapping[str, Mapping]
) -> tuple[dict[str, FrameDataset], float]:
    """One :class:`FrameDataset` per split of a frame-level task.

    Arguments
    ---------
    task_folder : path-like
        The prepared task folder (its ``<split>.csv`` hold the annotations).
    task : mapping
        Its ``task.json`` (type ``beats`` or ``chords``).
    splits : mapping
        ``{split: cached frames}`` as :func:`load_or_extract` returns them
        (one whole-track window per item, and the ``frame_rate``).

    Returns
    -------
    (datasets, frame_rate)
        ``{split: FrameDataset}`` and the frames' rate (Hz).

    Example
    -------
    >>> import tempfile, torch
    >>> from muselq_sb.dataio.manifest import write_task
    >>> rows = [{"ID": "a", "path": "/a.wav", "duration": 1.0,
    ...          "beats": "[[0.0, 1], [0.5, 2]]"}]
    >>> d = write_task(tempfile.mkdtemp(), "toy", "beats", "beats", {"train": rows},
    ...                classes=["none", "beat", "downbeat"], metrics=["beat_f"])
    >>> cache = {"train": {"ids": ["a"], "embeddings": [torch.zeros(1, 2, 4, 3)],
    ...                    "frame_rate": 4.0}}
    >>> sets, rate = build_frame_datasets(d, {"type": "beats", "target": "beats"}, cache)
    >>> sets["train"].targets[0].tolist(), rate
    ([2, 0, 1, 0], 4.0)
    """
    rates = {split: data["frame_rate"] for split, data in splits.items()}
    if len(set(rates.values())) != 1:
        raise ValueError(f"the splits' frame rates differ: {rates}")
    frame_rate = next(iter(rates.values()))
    datasets = {}
    for split, data in splits.items():
        csv = Path(task_folder) / f"{split}.csv"
        rows = read_manifest(csv)
        references = encode_references(task, rows, csv)  # validates every row
        position = {row["ID"]: i for i, row in enumerate(rows)}
        kept = [references[position[i]] for i in data["ids"]]
        targets = [frame_targets(task["type"], ref, x.shape[2], frame_rate)
                   for ref, x in zip(kept, data["embeddings"])]
        datasets[split] = FrameDataset(data["embeddings"], targets, kept)
    return datasets, frame_rate


def run_probe_experiment(
    hparams_file: str | Path,
    run_opts: Mapping,
    overrides: str | Mapping = "",
    save_env_desc: bool = True,
) -> dict:
    """Trains and tests one probe; writes ``<output_folder>/results.json``.

    Arguments
    ---------
    hparams_file : path-like
        A ``hparams/downstream/<task>.yaml``.
    run_opts : mapping
        SpeechBrain run options (``device``, ``debug``, ...).
    overrides : str or mapping
        yaml overrides (``task_folder``, ``encoder``, ``output_folder`` ...).
    save_env_desc : bool
        Write ``env.log`` (``pip freeze``: about a second) into the output
        folder; the suite writes it once for all its runs.

    Returns
    -------
    dict
        The content of ``results.json``: task, encoder, seed, main metric,
        best valid score, test metrics, item counts, skipped items and
        whether the embedding cache was reused, per split. With
        ``layer: best`` (:func:`_best_layer_experiment`), the chosen layer's
        results and every layer's valid and test score.

    Example
    -------
    Too slow for a doctest (it trains); ``tests/test_downstream_suite.py``
    runs it through the suite and ``recipes/downstream/train.py``.
    """
    hparams = load_hparams(hparams_file, overrides)
    if hparams["layer"] == BEST_LAYER:
        return _best_layer_experiment(hparams_file, run_opts, overrides, hparams,
                                      save_env_desc)
    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"],
        overrides=overrides,
        save_env_desc=save_env_desc,
    )
    save_hparams(hparams["output_folder"], hparams_file, overrides)
    task = read_task(hparams["task_folder"])
    if task["name"] != hparams["task_name"]:
        logger.warning(
            "%s is for task %r but %s holds task %r", hparams_file,
            hparams["task_name"], hparams["task_folder"], task["name"],
        )
    device = run_opts.get("device", "cpu")
    frame_level = task["type"] in FRAME_TASK_TYPES
    splits = _extract_embeddings(hparams, device, frame_level)
    loader_opts = {k: dict(hparams[f"{k}_dataloader_opts"]) for k in ("train", "valid")}
    if frame_level:
        datasets, frame_rate = build_frame_datasets(hparams["task_folder"], task, splits)
        scaler, n_outputs, brain_class = {}, len(task["classes"]), FrameProbeBrain
        for opts in loader_opts.values():
            opts["collate_fn"] = FrameDataset.collate
    else:
        datasets, scaler = build_datasets(hparams["task_folder"], task, splits)
        frame_rate, n_outputs = None, TaskTargets(task).num_outputs
        brain_class = ProbeBrain
    train = datasets["train"]
    probe = hparams["probe"](
        num_layers=train.num_layers, input_dim=train.input_dim, n_outputs=n_outputs,
    )
    if isinstance(probe, Probe) and probe.standardize:
        probe.fit_standardizer(train.windows)
    hparams["checkpointer"].add_recoverable("probe", probe)
    brain = brain_class(
        modules={"probe": probe},
        opt_class=hparams["optimizer"],
        hparams=dict(hparams, task=task, frame_rate=frame_rate),
        run_opts=dict(run_opts),
        checkpointer=hparams["checkpointer"],
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(hparams["probe_num_threads"])
    try:
        brain.fit(
            brain.hparams.epoch_counter, train, datasets["valid"],
            train_loader_kwargs=loader_opts["train"],
            valid_loader_kwargs=loader_opts["valid"],
        )
        brain.evaluate(
            datasets["test"], max_key=brain.main_metric,
            test_loader_kwargs=loader_opts["valid"],
        )
    finally:
        torch.set_num_threads(threads)
    best = brain.checkpointer.find_checkpoint(max_key=brain.main_metric)
    results = {
        "task": task["name"],
        "encoder": hparams["encoder"],
        "seed": hparams["seed"],
        "layer": hparams["layer"],
        "task_family": hparams.get("task_family"),
        # of the best checkpoint (evaluate loaded it); None unless weighted
        "layer_weights": probe.select.weights(),
        "metrics": list(task["metrics"]),
        "main_metric": brain.main_metric,
        "valid": {brain.main_metric: best.meta[brain.main_metric]} if best else {},
        "best_epoch": best.meta.get("epoch") if best else None,
        "test": brain.test_stats,
        "items": {s: len(d["ids"]) for s, d in splits.items()},
        "windows": {s: len(datasets[s]) for s in splits},
        "skipped": {s: len(d["skipped"]) for s, d in splits.items()},
        "embeddings_reused": {s: d["reused"] for s, d in splits.items()},
        "embedding_shape": [train.num_layers, train.input_dim],
        "target_standardisation": scaler,
        **({"frame_rate": frame_rate} if frame_level else {}),
    }
    atomic_write_text(
        Path(hparams["output_folder"]) / "results.json",
        json.dumps(results, indent=2) + "\n",
    )
    return results


def _best_layer_experiment(
    hparams_file: str | Path, run_opts: Mapping, overrides: str | Mapping,
    hparams: Mapping, save_env_desc: bool,
) -> dict:
    """``layer: best`` (MARBLE's protocol): a probe on every layer, chosen on valid.

    Every layer gets its own experiment in ``<output_folder>/layer<i>``, all
    reading the one embedding cache of ``cache_folder``; the layer whose
    best checkpoint scores highest on the valid split's main metric (the
    first on ties) gives the test results. The test split chooses nothing.
    """
    folder = Path(hparams["output_folder"])
    sb.create_experiment_directory(
        experiment_directory=str(folder), overrides=overrides,
        save_env_desc=save_env_desc,
    )
    save_hparams(folder, hparams_file, overrides)
    per_layer = dict(overrides_mapping(overrides), cache_folder=str(hparams["cache_folder"]))
    runs: list[dict] = []
    num_layers = 1  # known once the first run has read the embeddings
    while len(runs) < num_layers:
        layer = len(runs)
        runs.append(run_probe_experiment(
            hparams_file, run_opts,
            dict(per_layer, layer=layer, output_folder=str(folder / f"layer{layer}")),
            save_env_desc=False,
        ))
        num_layers = runs[0]["embedding_shape"][0]
    main = runs[0]["main_metric"]
    valid = [r["valid"].get(main, float("-inf")) for r in runs]
    chosen = max(range(num_layers), key=valid.__getitem__)
    logger.info("%s: layer %d of %d is best on valid (%s %.4f)", hparams["task_name"],
                chosen, num_layers, main, valid[chosen])
    results = dict(
        runs[chosen], layer=BEST_LAYER, chosen_layer=chosen,
        layer_valid=valid, layer_test=[r["test"].get(main) for r in runs],
    )
    atomic_write_text(folder / "results.json", json.dumps(results, indent=2) + "\n")
    return results
