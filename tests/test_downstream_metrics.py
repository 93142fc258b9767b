"""Probe metrics against hand-computed values."""
import numpy as np
import pytest
import torch

from muselq_sb.downstream.metrics import (
    LogitAccumulator,
    accuracy,
    compute_metrics,
    key_weighted_score,
    main_metric,
    multilabel_scores,
    r2_per_target,
    retrieval_precision_at_1,
)


@pytest.mark.parametrize(
    "ref, est, credit",
    [
        ("C major", "C major", 1.0),  # same key
        ("C# major", "Db major", 1.0),  # enharmonic spelling
        ("C major", "G major", 0.5),  # fifth above
        ("A minor", "E minor", 0.5),  # fifth above, minor
        ("C major", "F major", 0.0),  # fifth below: no credit in mir_eval 0.8
        ("C major", "A minor", 0.3),  # relative minor
        ("A minor", "C major", 0.3),  # relative major
        ("C major", "C minor", 0.2),  # parallel
        ("C major", "D major", 0.0),  # unrelated
    ],
)
def test_key_weighted_credit_cases(ref, est, credit):
    assert key_weighted_score([ref], [est]) == pytest.approx(credit)


def test_key_weighted_is_the_mean_over_items():
    refs = ["C major", "C major", "A minor", "Eb major"]
    ests = ["C major", "G major", "C major", "B minor"]
    assert key_weighted_score(refs, ests) == pytest.approx((1 + 0.5 + 0.3 + 0) / 4)


def test_accuracy():
    assert accuracy([0, 1, 2, 1, 0], [0, 2, 2, 1, 1]) == pytest.approx(0.6)


def test_multilabel_roc_ap_by_hand_and_excluded_labels():
    # label 0: positives score 0.9, 0.7 > negative 0.1 -> AUC 1, AP 1
    # label 1: positives 0.8, 0.3 vs negative 0.5 -> AUC 1/2;
    #          ranking pos, neg, pos -> AP = 1/2 * 1 + 1/2 * 2/3
    # label 2: all positive -> excluded; label 3: all negative -> excluded
    targets = np.array([[1, 0, 1, 0], [0, 1, 1, 0], [1, 1, 1, 0]])
    scores = np.array([[0.9, 0.5, 0.2, 0.1], [0.1, 0.8, 0.3, 0.2], [0.7, 0.3, 0.9, 0.3]])
    result = multilabel_scores(targets, scores)
    assert result["excluded_labels"] == 2
    assert result["roc_auc"] == pytest.approx((1.0 + 0.5) / 2)
    assert result["ap"] == pytest.approx((1.0 + (0.5 + 0.5 * 2 / 3)) / 2)


def test_multilabel_without_any_scorable_label_raises():
    with pytest.raises(ValueError, match="no label"):
        multilabel_scores(np.ones((3, 2)), np.zeros((3, 2)))


def test_r2_per_target_by_hand():
    # target a: mean 2, SS_tot 2, residuals (0, 0, -1) -> 1 - 1/2
    # target v: perfect -> 1
    targets = np.array([[1.0, 5.0], [2.0, 6.0], [3.0, 7.0]])
    preds = np.array([[1.0, 5.0], [2.0, 6.0], [4.0, 7.0]])
    result = r2_per_target(targets, preds, ["arousal", "valence"])
    assert result["r2_arousal"] == pytest.approx(0.5)
    assert result["r2_valence"] == pytest.approx(1.0)
    assert result["r2"] == pytest.approx(0.75)


def test_compute_metrics_per_task_type():
    key = {"name": "gs", "type": "multiclass", "classes": ["C major", "G major", "A minor"],
           "metrics": ["key_weighted", "accuracy"]}
    logits = torch.tensor([[5.0, 0, 0], [0, 5.0, 0], [5.0, 0, 0]])
    out = compute_metrics(key, logits, torch.tensor([0, 0, 2]))
    # C/C 1.0, C->G 0.5, Am->C 0.3
    assert out == pytest.approx({"key_weighted": 1.8 / 3, "accuracy": 1 / 3})

    emo = {"name": "emo", "type": "regression", "target": ["arousal", "valence"],
           "metrics": ["r2_arousal", "r2_valence"]}
    t = torch.tensor([[1.0, 5.0], [2.0, 6.0], [3.0, 7.0]])
    out = compute_metrics(emo, torch.tensor([[1.0, 5.0], [2.0, 6.0], [4.0, 7.0]]), t)
    assert out == pytest.approx({"r2_arousal": 0.5, "r2_valence": 1.0, "r2": 0.75})

    tags = {"name": "tags", "type": "multilabel", "classes": ["a", "b"],
            "metrics": ["roc_auc", "ap"]}
    out = compute_metrics(tags, torch.tensor([[2.0, -1.0], [-1.0, 2.0]]),
                          torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    assert out == {"roc_auc": 1.0, "ap": 1.0, "excluded_labels": 0}


@pytest.mark.parametrize("task", [
    {"name": "t", "type": "multilabel", "classes": ["a"], "metrics": ["average_precision"]},
    {"name": "t", "type": "multiclass", "classes": ["a"], "metrics": ["f1"]},
    {"name": "t", "type": "regression", "target": "tempo", "metrics": ["r2_bpm"]},
])
def test_unknown_metric_names_the_valid_ones(task):
    logits = torch.zeros(2, 1)
    targets = torch.tensor([[0.0], [1.0]]) if task["type"] != "multiclass" else torch.tensor([0, 0])
    with pytest.raises(ValueError, match="valid ones are"):
        compute_metrics(task, logits, targets)


def test_main_metric_defaults_and_override():
    key = {"type": "multiclass", "metrics": ["key_weighted", "accuracy"]}
    assert main_metric(key) == "key_weighted"
    assert main_metric({"type": "regression", "metrics": ["r2_arousal"]}) == "r2"
    assert main_metric({"type": "multilabel", "metrics": ["roc_auc", "ap"]}, "ap") == "ap"


def test_accumulator_averages_windows_then_group_items_as_logits():
    acc = LogitAccumulator()
    # item 0: two windows (mean [2, 0]); item 1: one window [0, 4];
    # items 0 and 1 are one group -> [1, 2]; item 2 alone -> [0, 1]
    acc.append(torch.tensor([0, 1]), torch.tensor([[1.0, 0.0], [0.0, 4.0]]),
               torch.tensor([1, 1]), torch.tensor([0, 0]))
    acc.append(torch.tensor([0, 2]), torch.tensor([[3.0, 0.0], [0.0, 1.0]]),
               torch.tensor([1, 0]), torch.tensor([0, 1]))
    logits, targets = acc.clip_level()
    assert logits.tolist() == [[1.0, 2.0], [0.0, 1.0]]
    assert targets.tolist() == [1, 0]


def test_retrieval_uses_cosine_and_excludes_the_query():
    # A's nearest by distance is C (other key), by angle B (same key); with
    # the query itself among the candidates every query would be a hit.
    e = torch.tensor([[1.0, 0.0], [10.0, 1.0], [0.9, 0.3], [0.3, 0.9]])
    # A -> B hit, B -> A hit, C -> B miss (0.975 > 0.949), D -> C hit
    assert retrieval_precision_at_1(e, ["k", "k", "m", "m"]) == (0.75, 4)


def test_retrieval_lone_keys_are_candidates_not_queries():
    e = np.array([[1.0, 0.0], [0.0, 1.0], [0.99, 0.1], [0.0, 0.0]])
    # item 2 (alone with "b") is nearest to both "a" items; the zero
    # embedding (alone with "c") has cosine 0 to all and no NaN
    assert retrieval_precision_at_1(e, ["a", "a", "b", "c"]) == (0.0, 2)
    with pytest.raises(ValueError, match="no item shares its key"):
        retrieval_precision_at_1(e, ["a", "b", "c", "d"])
    with pytest.raises(ValueError, match="for 3 keys: expected \\[N, d\\]"):
        retrieval_precision_at_1(e, ["a", "a", "b"])


def test_retrieval_matches_a_brute_force_search():
    rng = np.random.default_rng(0)
    keys = rng.integers(0, 12, size=60)
    e = rng.standard_normal((60, 8)) + 0.8 * rng.standard_normal((12, 8))[keys]
    hits = []
    for i in range(len(e)):
        if (keys == keys[i]).sum() < 2:
            continue
        cos = [e[i] @ e[j] / np.linalg.norm(e[i]) / np.linalg.norm(e[j])
               if j != i else -np.inf for j in range(len(e))]
        hits.append(keys[int(np.argmax(cos))] == keys[i])
    precision, queries = retrieval_precision_at_1(e, keys.tolist())
    assert queries == len(hits) and precision == pytest.approx(np.mean(hits))
    assert 0 < precision < 1  # the draw has both hits and misses
