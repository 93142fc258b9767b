"""Same-key retrieval: precision@1, layer choice on valid, several encoders."""
import numpy as np
import pytest
import torch

from muselq_sb.dataio.manifest import write_task
from muselq_sb.downstream.metrics import retrieval_precision_at_1, same_key_hits
from muselq_sb.downstream.retrieval import evaluate_retrieval, retrieval_key


def test_precision_at_1_by_hand():
    x = np.array([[1.0, 0.0], [0.8, 0.2], [0.0, 1.0], [0.1, 0.9], [0.0, 1.0]])
    # track c is unique: not a query, but a candidate that can be nearest
    keys = ["a", "a", "b", "b", "c"]
    assert same_key_hits(x, keys).tolist() == [True, True, False, True]
    assert retrieval_precision_at_1(x, keys) == (0.75, 4)
    # cosine, not Euclidean: a longer vector in the same direction is nearest
    assert retrieval_precision_at_1(np.array([[1.0, 0.1], [9.0, 1.0], [1.0, 1.0]]),
                                    ["a", "a", "b"]) == (1.0, 2)
    with pytest.raises(ValueError, match="no item shares its key"):
        retrieval_precision_at_1(x[:3], ["a", "b", "c"])
    with pytest.raises(ValueError, match="one key per row"):
        same_key_hits(x, keys[:2])


def make_task(tmp_path, n_tracks=4):
    rows = {s: [{"ID": f"{s}{i}", "path": "/x.wav", "duration": 1.0, "label": "x",
                 "track": f"{s}t{i // 2}"} for i in range(2 * n_tracks)]
            for s in ("valid", "test")}
    return write_task(tmp_path / "task", "toy", "multiclass", "label", rows,
                      classes=["x"], metrics=["accuracy"], columns=["track"],
                      extra={"retrieval": {"key": "track"}})


def split(items_by_layer, n_windows=2):
    """Cached split: items [N, L, d], each repeated over ``n_windows`` windows."""
    x = torch.as_tensor(items_by_layer, dtype=torch.float32)
    ids = [f"{i}" for i in range(len(x))]
    return {"ids": ids, "embeddings": [e.expand(n_windows, *e.shape).half() for e in x]}


def tracks_apart(n_tracks, generator):
    """Item vectors: the two items of a track close to each other."""
    centres = torch.randn(n_tracks, 8, generator=generator)
    jitter = 0.05 * torch.randn(2 * n_tracks, 8, generator=generator)
    return centres.repeat_interleave(2, 0) + jitter


def noise(n, generator):
    return torch.randn(n, 8, generator=generator)


def named(cache, prefix):
    return cache | {"ids": [f"{prefix}{i}" for i in cache["ids"]]}


def test_layer_is_chosen_on_valid_and_test_is_read_there(tmp_path):
    task = make_task(tmp_path)
    g = torch.Generator().manual_seed(0)
    # valid: layer 0 groups the tracks; test: layer 1 does (valid must decide)
    valid = split(torch.stack([tracks_apart(4, g), noise(8, g)], 1))
    test = split(torch.stack([noise(8, g), tracks_apart(4, g)], 1))
    result = evaluate_retrieval(task, "track", [{"valid": named(valid, "valid"),
                                                 "test": named(test, "test")}], n_boot=200)
    assert result["layer"] == [0]
    assert result["valid"][0][0] == 1.0
    assert result["test"][0][1] == 1.0  # the better test layer is reported, not chosen
    assert result["p_at_1"]["mean"] == result["test"][0][0] < 1.0
    assert result["queries"] == [8]


def test_several_encoders_each_choose_their_layer(tmp_path):
    task = make_task(tmp_path)
    g = torch.Generator().manual_seed(1)
    good = split(torch.stack([noise(8, g), tracks_apart(4, g)], 1))
    bad = split(torch.stack([noise(8, g), noise(8, g)], 1))
    encoders = [{"valid": named(good, "valid"), "test": named(good, "test")},
                {"valid": named(bad, "valid"), "test": named(bad, "test")}]
    result = evaluate_retrieval(task, "track", encoders, n_boot=200)
    assert result["layer"][0] == 1 and result["p_at_1"]["n"] == 2
    assert result["p_at_1"]["values"][0] == 1.0
    assert result["p_at_1"]["mean"] == pytest.approx(np.mean(result["p_at_1"]["values"]))
    # resampling the encoders: the interval spans the disagreement
    low, high = result["p_at_1"]["ci95"]
    assert low <= result["p_at_1"]["values"][1] + 0.2 and high == pytest.approx(1.0)


def test_retrieval_spec_is_validated():
    assert retrieval_key({"name": "t"}) is None
    with pytest.raises(ValueError, match="expected"):
        retrieval_key({"name": "t", "retrieval": "track"})
