"""Metrics of the MIR probes and the clip-level averaging of window logits.

The metrics follow MARBLE: macro ROC-AUC and average precision over tags
(multilabel), plain accuracy (multiclass), the ``mir_eval`` weighted key score
(GiantSteps) and R2 per regression target; same-key retrieval precision@1 of
embeddings (:func:`retrieval_precision_at_1`, e.g. excerpts of one track). Predictions of the windows of one
item, and of the items of one ``group``, are averaged as logits first
(:class:`LogitAccumulator`, :func:`group_mean`).

Authors
 * muselq_sb team
"""
from __future__ import annotations

import logging
from typing import Hashable, Mapping, Sequence

import mir_eval
import numpy as np
import torch
from sklearn.metrics import average_precision_score, r2_score, roc_auc_score

logger = logging.getLogger(__name__)

CLASSIFICATION_METRICS = ("accuracy", "key_weighted")
MULTILABEL_METRICS = ("roc_auc", "ap")
R2_PREFIX = "r2_"


def accuracy(targets: Sequence[int], predictions: Sequence[int]) -> float:
    """Fraction of predictions equal to their target.

    Arguments
    ---------
    targets : sequence of int
        Class indices.
    predictions : sequence of int
        Predicted class indices.

    Returns
    -------
    float

    Example
    -------
    >>> accuracy([0, 1, 2, 2], [0, 1, 1, 2])
    0.75
    """
    targets, predictions = np.asarray(targets), np.asarray(predictions)
    return float((targets == predictions).mean())


def key_weighted_score(references: Sequence[str], estimates: Sequence[str]) -> float:
    """Mean ``mir_eval.key.weighted_score`` over items.

    Credits (mir_eval 0.8): same key 1.0, estimate a fifth above 0.5,
    relative major/minor 0.3, parallel major/minor 0.2, anything else 0.

    Arguments
    ---------
    references : sequence of str
        Reference keys such as ``"C major"``, ``"Bb minor"``.
    estimates : sequence of str
        Estimated keys, same format.

    Returns
    -------
    float

    Example
    -------
    >>> key_weighted_score(["C major", "C major"], ["G major", "A minor"])
    0.4
    """
    if len(references) == 0:
        raise ValueError("key_weighted_score of an empty set")
    scores = [
        mir_eval.key.weighted_score(ref, est)
        for ref, est in zip(references, estimates)
    ]
    return float(np.mean(scores))


def multilabel_scores(targets: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """Macro ROC-AUC and AP over the labels that can be scored.

    A label with no positive or no negative example in ``targets`` has no
    ROC-AUC; it is left out of both averages and counted.

    Arguments
    ---------
    targets : np.ndarray
        Multi-hot [N, C] (0/1).
    scores : np.ndarray
        Scores [N, C] (logits or probabilities: both metrics use ranks only).

    Returns
    -------
    dict
        ``roc_auc``, ``ap`` and ``excluded_labels`` (how many were left out).

    Example
    -------
    >>> t = np.array([[1, 0, 1], [0, 1, 1], [1, 1, 1]])
    >>> s = np.array([[0.9, 0.5, 0.5], [0.1, 0.8, 0.5], [0.7, 0.3, 0.5]])
    >>> r = multilabel_scores(t, s)
    >>> r["roc_auc"], r["excluded_labels"]
    (0.75, 1)
    """
    targets, scores = np.asarray(targets), np.asarray(scores, dtype=np.float64)
    positives = targets.sum(axis=0)
    usable = (positives > 0) & (positives < targets.shape[0])
    excluded = int((~usable).sum())
    if excluded:
        logger.info("%d labels without both classes excluded from metrics", excluded)
    if not usable.any():
        raise ValueError("no label has both positive and negative examples")
    t, s = targets[:, usable], scores[:, usable]
    return {
        "roc_auc": float(roc_auc_score(t, s, average="macro")),
        "ap": float(average_precision_score(t, s, average="macro")),
        "excluded_labels": excluded,
    }


def r2_per_target(
    targets: np.ndarray, predictions: np.ndarray, names: Sequence[str]
) -> dict[str, float]:
    """Coefficient of determination of each regression target.

    Arguments
    ---------
    targets : np.ndarray
        [N, K] true values.
    predictions : np.ndarray
        [N, K] predicted values.
    names : sequence of str
        The K target names; the keys are ``r2_<name>``.

    Returns
    -------
    dict
        ``r2_<name>`` per target and ``r2`` (their mean, MARBLE's
        uniform average).

    Example
    -------
    >>> r = r2_per_target(np.array([[1., 0.], [2., 1.], [3., 2.]]),
    ...                   np.array([[1., 0.], [2., 1.], [4., 1.]]), ["a", "v"])
    >>> r["r2_a"], r["r2_v"], r["r2"]
    (0.5, 0.5, 0.5)
    """
    targets, predictions = np.asarray(targets), np.asarray(predictions)
    result = {
        f"{R2_PREFIX}{name}": float(r2_score(targets[:, k], predictions[:, k]))
        for k, name in enumerate(names)
    }
    result["r2"] = float(np.mean(list(result.values())))
    return result


def compute_metrics(
    task: Mapping, logits: torch.Tensor, targets: torch.Tensor
) -> dict[str, float]:
    """All metrics a task asks for, from clip-level logits.

    Arguments
    ---------
    task : mapping
        The task description (``type``, ``classes``, ``metrics``, ``target``).
    logits : torch.Tensor
        [N, C] clip-level outputs (for regression: the predictions).
    targets : torch.Tensor
        Class indices [N] (multiclass), multi-hot [N, C] (multilabel) or
        values [N, K] (regression).

    Returns
    -------
    dict
        One value per metric of ``task["metrics"]`` (plus ``r2`` and
        ``excluded_labels`` where they apply).

    Example
    -------
    >>> task = {"type": "multiclass", "classes": ["C major", "G major"],
    ...         "metrics": ["key_weighted", "accuracy"]}
    >>> compute_metrics(task, torch.tensor([[0., 1.], [0., 1.]]),
    ...                 torch.tensor([0, 1]))
    {'key_weighted': 0.75, 'accuracy': 0.5}
    """
    kind = task["type"]
    names = list(task["metrics"])
    logits, targets = logits.float().numpy(), targets.numpy()
    if kind == "multiclass":
        return _classification(task, names, logits.argmax(axis=1), targets)
    if kind == "multilabel":
        unknown = [n for n in names if n not in MULTILABEL_METRICS]
        _reject(unknown, MULTILABEL_METRICS, task)
        scores = multilabel_scores(targets, logits)
        return {n: scores[n] for n in names} | {
            "excluded_labels": scores["excluded_labels"]
        }
    if kind == "regression":
        columns = [task["target"]] if isinstance(task["target"], str) else task["target"]
        scores = r2_per_target(targets, logits, columns)
        _reject([n for n in names if n not in scores], list(scores), task)
        return {n: scores[n] for n in names} | {"r2": scores["r2"]}
    raise ValueError(
        f"task {task.get('name')!r}: type {kind!r} cannot be probed; expected "
        "multiclass, multilabel or regression"
    )


def _classification(
    task: Mapping, names: list[str], predicted: np.ndarray, targets: np.ndarray
) -> dict[str, float]:
    _reject([n for n in names if n not in CLASSIFICATION_METRICS],
            CLASSIFICATION_METRICS, task)
    classes = task["classes"]
    result = {}
    for name in names:
        if name == "accuracy":
            result[name] = accuracy(targets, predicted)
        else:
            result[name] = key_weighted_score(
                [classes[i] for i in targets], [classes[i] for i in predicted]
            )
    return result


def _reject(unknown: list[str], valid: Sequence[str], task: Mapping) -> None:
    if unknown:
        raise ValueError(
            f"task {task.get('name')!r} ({task['type']}): unknown metrics "
            f"{unknown}; valid ones are {list(valid)}"
        )


def main_metric(task: Mapping, requested: str | None = None) -> str:
    """The metric that selects the best checkpoint (higher is better).

    ``requested`` wins when given; otherwise the mean R2 (``r2``) for
    regression and the first metric of the task for the others.

    Example
    -------
    >>> main_metric({"type": "multilabel", "metrics": ["roc_auc", "ap"]})
    'roc_auc'
    >>> main_metric({"type": "regression", "metrics": ["r2_arousal"]})
    'r2'
    """
    if requested:
        return requested
    if task["type"] == "regression":
        return "r2"
    if not task.get("metrics"):
        raise ValueError(f"task {task.get('name')!r} lists no metrics")
    return task["metrics"][0]


class LogitAccumulator:
    """Collects window logits and averages them per item, then per group.

    Each window comes with its item index, the item's target and the
    item's group index (the recording whose items are averaged together;
    an item alone is its own group).

    Example
    -------
    >>> acc = LogitAccumulator()
    >>> acc.append(items=torch.tensor([0, 0, 1, 2]),
    ...            logits=torch.tensor([[1.], [3.], [5.], [7.]]),
    ...            targets=torch.tensor([0, 0, 1, 1]),
    ...            groups=torch.tensor([0, 0, 1, 1]))
    >>> logits, targets = acc.clip_level()
    >>> logits.tolist(), targets.tolist()
    ([[2.0], [6.0]], [0, 1])
    """

    def __init__(self) -> None:
        self.parts: dict[str, list[torch.Tensor]] = {
            "items": [], "logits": [], "targets": [], "groups": []
        }

    def append(
        self,
        items: torch.Tensor,
        logits: torch.Tensor,
        targets: torch.Tensor,
        groups: torch.Tensor,
    ) -> None:
        """Adds a batch of windows (all tensors have B rows)."""
        for name, value in zip(self.parts, (items, logits, targets, groups)):
            self.parts[name].append(value.detach().cpu())

    def clip_level(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean logits [G, C] and targets of every group (item order)."""
        items, logits, targets, groups = (torch.cat(v) for v in self.parts.values())
        _, item_logits, first = group_mean(items.tolist(), logits.float())
        order = torch.tensor(first)
        _, group_logits, group_first = group_mean(groups[order].tolist(), item_logits)
        return group_logits, targets[order][torch.tensor(group_first)]


def group_mean(
    keys: Sequence[Hashable], values: torch.Tensor
) -> tuple[list[Hashable], torch.Tensor, list[int]]:
    """Averages rows of ``values`` that share a key (first-seen key order).

    Arguments
    ---------
    keys : sequence
        One key per row (e.g. a recording id).
    values : torch.Tensor
        [N, C] rows to average.

    Returns
    -------
    (keys, means, first_rows)
        The distinct keys, the mean row of each [G, C], and the index of
        the first row of each key (to fetch its target).

    Example
    -------
    >>> k, m, first = group_mean(["a", "b", "a"], torch.tensor([[1.], [2.], [3.]]))
    >>> k, m.tolist(), first
    (['a', 'b'], [[2.0], [2.0]], [0, 1])
    """
    order: dict[Hashable, int] = {}
    first: list[int] = []
    index = []
    for row, key in enumerate(keys):
        if key not in order:
            order[key] = len(order)
            first.append(row)
        index.append(order[key])
    inverse = torch.tensor(index, dtype=torch.long)
    sums = torch.zeros(len(order), values.shape[1]).index_add_(0, inverse, values.float())
    counts = torch.bincount(inverse, minlength=len(order)).unsqueeze(1)
    return list(order), sums / counts, first


def same_key_hits(embeddings: torch.Tensor | np.ndarray, keys: Sequence[Hashable]) -> np.ndarray:
    """For each query, whether its nearest other item shares its key.

    Nearness is cosine similarity; a query's candidates are all the other
    items (those with a unique key included); items whose key is unique are
    not queries. Ties go to the first candidate.

    Arguments
    ---------
    embeddings : tensor or array
        [N, d], one row per item.
    keys : sequence
        One key per item (e.g. its track).

    Returns
    -------
    np.ndarray
        Booleans, one per query (items in order, unique keys skipped).

    Example
    -------
    >>> x = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.8, 0.6], [1, 1]])
    >>> same_key_hits(x, ["a", "a", "b", "b", "c"]).tolist()
    [True, True, False, False]
    """
    x = torch.as_tensor(np.asarray(embeddings), dtype=torch.float64)
    if x.ndim != 2 or len(x) != len(keys):
        raise ValueError(
            f"embeddings of shape {tuple(x.shape)} for {len(keys)} keys: "
            "expected [N, d] with one key per row"
        )
    x = torch.nn.functional.normalize(x, dim=1)
    similarity = x @ x.T
    similarity.fill_diagonal_(-float("inf"))
    nearest = similarity.argmax(dim=1).tolist()
    counts: dict[Hashable, int] = {}
    for key in keys:
        counts[key] = counts.get(key, 0) + 1
    return np.array([keys[nearest[i]] == key for i, key in enumerate(keys)
                     if counts[key] > 1], dtype=bool)


def retrieval_precision_at_1(
    embeddings: torch.Tensor | np.ndarray, keys: Sequence[Hashable]
) -> tuple[float, int]:
    """Precision@1 of retrieving an item of the same key (e.g. same track).

    Every item that shares its key with at least one other item is a query;
    its nearest other item by cosine similarity (itself excluded; the first
    one on a tie) is a hit when it has the same key (:func:`same_key_hits`).
    Items alone with their key are not queries but can still be retrieved
    (as misses).

    Returns
    -------
    (float, int)
        The fraction of queries whose nearest item is a hit, and the number
        of queries.

    Example
    -------
    >>> e = np.array([[1., 0.], [4., 3.], [0., 1.], [-1., 0.], [3., -4.]])
    >>> retrieval_precision_at_1(e, ["x", "x", "y", "y", "z"])
    (0.75, 4)

    Items 0 and 1 (cosine 0.8) find each other; item 2 finds item 1 (0.6),
    a miss; item 3 finds item 2 (0 > -0.6); item 4 is alone with "z".
    """
    hits = same_key_hits(embeddings, keys)
    if not hits.size:
        raise ValueError("no item shares its key with another: nothing to retrieve")
    return float(hits.mean()), int(hits.size)
