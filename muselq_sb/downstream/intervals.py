"""Spread of a score: over probe seeds (Student t) or by bootstrap, and wins.

A score measured with several seeds is summarised as its mean, standard
deviation and 95 % interval for the mean (Student t with n - 1 degrees of
freedom). A score with no seeds to vary (same-key retrieval of one encoder)
gets a bootstrap interval over its queries, and over the encoders when
there are several (random weights). A row "wins" a column only when its
interval lies entirely above every other row's.

Authors
 * muselq_sb team
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


def seed_summary(values: Sequence[float], confidence: float = CONFIDENCE) -> dict:
    """Mean, standard deviation and Student-t interval of per-seed scores.

    Arguments
    ---------
    values : sequence of float
        One score per seed.
    confidence : float
        Coverage of the interval.

    Returns
    -------
    dict
        ``mean``, ``std`` (n - 1 in the denominator), ``ci95`` ([low, high]),
        ``n`` and ``values``; ``std`` and ``ci95`` are None with one seed.

    Example
    -------
    >>> s = seed_summary([0.5, 0.7, 0.6])
    >>> round(s["mean"], 3), round(s["std"], 3), [round(v, 3) for v in s["ci95"]]
    (0.6, 0.1, [0.352, 0.848])
    """
    x = np.asarray(values, dtype=np.float64)
    if not x.size:
        raise ValueError("no value to summarise")
    summary = {"mean": float(x.mean()), "std": None, "ci95": None,
               "n": int(x.size), "values": x.tolist()}
    if x.size > 1:
        std = float(x.std(ddof=1))
        half = float(stats.t.ppf(0.5 + confidence / 2, x.size - 1)) * std / math.sqrt(x.size)
        summary.update(std=std, ci95=[summary["mean"] - half, summary["mean"] + half])
    return summary


def bootstrap_summary(
    hits: Sequence[np.ndarray],
    n_boot: int = 2000,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> dict:
    """Mean hit rate over encoders with a bootstrap interval.

    Each replicate draws the encoders with replacement (when there are
    several, e.g. random-weight seeds), then each drawn encoder's queries
    with replacement, and averages the encoders' hit rates.

    Arguments
    ---------
    hits : sequence of np.ndarray
        Per encoder, one 0/1 outcome per query.
    n_boot : int
        Bootstrap replicates.
    seed : int
        Seed of the resampling (the interval is reproducible).
    confidence : float
        Coverage of the percentile interval.

    Returns
    -------
    dict
        ``mean`` (mean over encoders of their hit rates), ``std`` (the
        bootstrap standard error), ``ci95``, ``n`` (encoders) and
        ``values`` (each encoder's hit rate).

    Example
    -------
    >>> s = bootstrap_summary([np.array([1, 1, 0, 1] * 25)])
    >>> s["mean"], 0.65 < s["ci95"][0] < 0.75 < s["ci95"][1] < 0.85
    (0.75, True)
    """
    arrays = [np.asarray(h, dtype=np.float64) for h in hits]
    if not arrays or any(a.size == 0 for a in arrays):
        raise ValueError("bootstrap needs at least one query per encoder")
    rng = np.random.default_rng(seed)
    rates = np.array([a.mean() for a in arrays])
    replicates = np.empty(n_boot)
    for b in range(n_boot):
        drawn = rng.integers(len(arrays), size=len(arrays)) if len(arrays) > 1 else [0]
        replicates[b] = np.mean([
            arrays[k][rng.integers(arrays[k].size, size=arrays[k].size)].mean()
            for k in drawn
        ])
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(replicates, [tail, 100 - tail])
    return {"mean": float(rates.mean()), "std": float(replicates.std(ddof=1)),
            "ci95": [float(low), float(high)], "n": len(arrays),
            "values": rates.tolist()}


def interval_winner(cells: Mapping[str, Mapping | None]) -> str | None:
    """The row whose interval lies above every other row's, if any.

    Every score here is higher-is-better. Rows without a summary (missing,
    failed) are left out; a row without an interval (one seed) can neither
    win nor be beaten, so then there is no winner.

    Arguments
    ---------
    cells : mapping
        ``{row: summary (seed_summary / bootstrap_summary) or None}``.

    Returns
    -------
    str or None

    Example
    -------
    >>> a = {"mean": 0.9, "ci95": [0.85, 0.95]}
    >>> b = {"mean": 0.7, "ci95": [0.6, 0.8]}
    >>> c = {"mean": 0.8, "ci95": [0.7, 0.9]}
    >>> interval_winner({"a": a, "b": b}), interval_winner({"a": a, "c": c})
    ('a', None)
    """
    present = {row: s for row, s in cells.items() if s}
    if len(present) < 2 or any(s.get("ci95") is None for s in present.values()):
        return None
    best = max(present, key=lambda row: present[row]["mean"])
    low = present[best]["ci95"][0]
    if all(low > s["ci95"][1] for row, s in present.items() if row != best):
        return best
    return None
