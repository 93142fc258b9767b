"""Same-key retrieval on cached embeddings (e.g. two excerpts of one track).

A task whose ``task.json`` has ``"retrieval": {"key": "<column>"}`` is also
scored without a probe: each test item (its windows' pooled embeddings
averaged) queries the other test items by cosine similarity, and precision@1
counts the queries whose nearest item has the same key
(:func:`~muselq_sb.downstream.metrics.same_key_hits`). Every hidden state is
scored; the layer is chosen on the valid split and the test value is read
at that layer (the test split never chooses anything).

Authors
 * muselq_sb team
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from muselq_sb.dataio.manifest import read_manifest
from muselq_sb.downstream.intervals import bootstrap_summary
from muselq_sb.downstream.metrics import same_key_hits

logger = logging.getLogger(__name__)


def retrieval_key(task: Mapping) -> str | None:
    """The manifest column named by ``task["retrieval"]["key"]``, if any.

    Example
    -------
    >>> retrieval_key({"retrieval": {"key": "track"}}), retrieval_key({})
    ('track', None)
    """
    spec = task.get("retrieval")
    if spec is None:
        return None
    if not isinstance(spec, Mapping) or not isinstance(spec.get("key"), str):
        raise ValueError(
            f"task {task.get('name')!r}: 'retrieval' is {spec!r}; expected "
            '{"key": "<manifest column>"}'
        )
    return spec["key"]


def pooled_items(split: Mapping) -> torch.Tensor:
    """Items of a cached split as [N, L, d]: the mean over each item's windows.

    Example
    -------
    >>> pooled_items({"embeddings": [torch.ones(2, 1, 3), torch.zeros(1, 1, 3)]}).shape
    torch.Size([2, 1, 3])
    """
    return torch.stack([e.float().mean(0) for e in split["embeddings"]])


def split_keys(task_folder: str | Path, split_name: str, split: Mapping, key: str) -> list[str]:
    """The ``key`` column of the cached items of a split (manifest order)."""
    csv = Path(task_folder) / f"{split_name}.csv"
    rows = {row["ID"]: row for row in read_manifest(csv)}
    missing = [i for i in split["ids"] if not rows[i].get(key)]
    if missing:
        raise ValueError(f"{csv}: column {key!r} empty or absent for items {missing[:5]}")
    return [rows[i][key] for i in split["ids"]]


def layer_hits(embeddings: torch.Tensor, keys: Sequence[str]) -> list[np.ndarray]:
    """Per layer of ``embeddings`` [N, L, d], the hits of every query.

    Example
    -------
    >>> x = torch.tensor([[[1., 0.]], [[.9, .1]], [[0., 1.]], [[.8, .6]]])
    >>> [h.tolist() for h in layer_hits(x, ["a", "a", "b", "b"])]
    [[True, True, True, False]]
    """
    return [same_key_hits(embeddings[:, layer], keys) for layer in range(embeddings.shape[1])]


def evaluate_retrieval(
    task_folder: str | Path,
    key: str,
    encoders: Sequence[Mapping[str, Mapping]],
    n_boot: int = 2000,
) -> dict:
    """Same-key precision@1 of one or several encoders (e.g. weight seeds).

    Arguments
    ---------
    task_folder : path-like
        The task (its ``valid.csv`` and ``test.csv`` give the keys).
    key : str
        The manifest column items are matched on.
    encoders : sequence of mappings
        Per encoder, its cached ``valid`` and ``test`` splits
        (:func:`~muselq_sb.downstream.cache.load_or_extract`).
    n_boot : int
        Bootstrap replicates of the interval.

    Returns
    -------
    dict
        ``key``; ``layer`` (chosen on valid, per encoder); ``valid`` and
        ``test`` (precision@1 of every layer, per encoder); ``queries``
        (test queries per encoder) and ``p_at_1``: the test value at the
        chosen layer, a bootstrap summary over queries (and encoders).

    Example
    -------
    >>> import tempfile
    >>> from muselq_sb.dataio.manifest import write_task
    >>> rows = [{"ID": str(i), "path": "/a.wav", "duration": 1.0, "label": "x",
    ...          "track": "t" + str(i // 2)} for i in range(4)]
    >>> d = write_task(tempfile.mkdtemp(), "toy", "multiclass", "label",
    ...                {"valid": rows, "test": rows}, classes=["x"],
    ...                metrics=["accuracy"], columns=["track"])
    >>> # layer 0 is noise, layer 1 separates the tracks
    >>> x = [torch.tensor([[[1., 0.], [1., 0.]]]), torch.tensor([[[0., 1.], [.9, .1]]]),
    ...      torch.tensor([[[1., 0.], [0., 1.]]]), torch.tensor([[[0., 1.], [.1, .9]]])]
    >>> split = {"ids": ["0", "1", "2", "3"], "embeddings": x}
    >>> r = evaluate_retrieval(d, "track", [{"valid": split, "test": split}], n_boot=10)
    >>> r["layer"], r["test"], r["p_at_1"]["mean"]
    ([1], [[0.0, 1.0]], 1.0)
    """
    chosen, valid_scores, test_scores, hits = [], [], [], []
    for cache in encoders:
        per_split = {}
        for name in ("valid", "test"):
            keys = split_keys(task_folder, name, cache[name], key)
            per_split[name] = layer_hits(pooled_items(cache[name]), keys)
        valid = [float(h.mean()) if h.size else None for h in per_split["valid"]]
        if any(v is None for v in valid):
            layer = len(valid) - 1
            logger.warning("%s: no valid item shares its %r: layer %d used",
                           task_folder, key, layer)
        else:
            layer = int(np.argmax(valid))
        test = per_split["test"]
        if not test[layer].size:
            raise ValueError(f"{task_folder}: no test item shares its {key!r} with another")
        chosen.append(layer)
        valid_scores.append(valid)
        test_scores.append([float(h.mean()) for h in test])
        hits.append(test[layer])
    return {
        "key": key,
        "layer": chosen,
        "valid": valid_scores,
        "test": test_scores,
        "queries": [int(h.size) for h in hits],
        "p_at_1": bootstrap_summary(hits, n_boot=n_boot),
    }
