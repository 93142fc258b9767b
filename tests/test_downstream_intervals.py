"""Spread over seeds (Student t), bootstrap intervals and the win rule."""
import numpy as np
import pytest

from muselq_sb.downstream.intervals import bootstrap_summary, interval_winner, seed_summary


def test_seed_interval_uses_student_t():
    s = seed_summary([0.0, 1.0])
    # two seeds: t(0.975, 1 dof) = 12.706 (tables), std = 1/sqrt(2)
    assert s["std"] == pytest.approx(2 ** -0.5)
    assert s["ci95"] == pytest.approx([0.5 - 6.353, 0.5 + 6.353], abs=1e-3)
    one = seed_summary([0.3])
    assert one["mean"] == 0.3 and one["std"] is None and one["ci95"] is None


def test_seed_interval_covers_the_true_mean_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    covered = [lo <= 0.7 <= hi for lo, hi in
               (seed_summary(rng.normal(0.7, 0.05, 5))["ci95"] for _ in range(2000))]
    assert np.mean(covered) == pytest.approx(0.95, abs=0.015)


def test_bootstrap_interval_over_queries_and_over_encoders():
    rng = np.random.default_rng(1)
    one = bootstrap_summary([rng.random(400) < 0.7])
    width = one["ci95"][1] - one["ci95"][0]
    # binomial standard error sqrt(p(1-p)/n) = 0.0229: width about 2 x 1.96 x it
    assert width == pytest.approx(2 * 1.96 * 0.0229, rel=0.2)
    assert one["std"] == pytest.approx(0.0229, rel=0.2)
    # encoders that disagree widen the interval (the encoders are resampled too)
    spread = bootstrap_summary([rng.random(400) < p for p in (0.5, 0.9, 0.7)])
    assert spread["n"] == 3 and spread["mean"] == pytest.approx(np.mean(spread["values"]))
    assert spread["ci95"][1] - spread["ci95"][0] > 2 * width
    hits = [rng.random(50) < 0.6]
    assert bootstrap_summary(hits, seed=3) == bootstrap_summary(hits, seed=3)


@pytest.mark.parametrize("cells, winner", [
    ({"a": {"mean": 0.9, "ci95": [0.85, 0.95]}, "b": {"mean": 0.7, "ci95": [0.6, 0.8]}}, "a"),
    ({"a": {"mean": 0.9, "ci95": [0.75, 0.95]}, "b": {"mean": 0.7, "ci95": [0.6, 0.8]}}, None),
    ({"a": {"mean": 0.9, "ci95": [0.85, 0.95]}, "b": {"mean": 0.7, "ci95": None}}, None),
    ({"a": {"mean": 0.9, "ci95": [0.85, 0.95]}, "b": None}, None),
    ({"a": {"mean": 0.1, "ci95": [0.0, 0.2]}, "b": {"mean": 0.3, "ci95": [0.25, 0.35]},
      "c": {"mean": 0.5, "ci95": [0.4, 0.6]}}, "c"),
])
def test_a_win_needs_intervals_that_do_not_overlap(cells, winner):
    assert interval_winner(cells) == winner
