"""Embedding cache: windowing, shapes, reuse, re-extraction, bad audio."""
import os
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from muselq_sb.dataio.manifest import read_manifest, write_task
from muselq_sb.downstream.cache import (
    ItemStore,
    WindowConfig,
    encoder_identity,
    extract_split,
    load_embedder,
    load_or_extract,
    parse_encoder,
)
from muselq_sb.inference.embedding import embed, hidden_states, load_model, pool_time
from tests.fixtures.audio import write_audio
from tests.recipe_utils import write_run_folder

SR = 24000


class MeanPooler(nn.Module):
    """Two "layers": the window mean and its number of samples (for checks)."""

    def __init__(self):
        super().__init__()
        self.windows_seen = 0
        self.anchor = nn.Parameter(torch.zeros(()))

    def forward(self, wavs, wav_lens):
        self.windows_seen += len(wavs)
        n = torch.round(wav_lens * wavs.shape[1])
        mean = wavs.sum(1) / n
        return torch.stack([torch.stack([mean, n / SR], 1)] * 2, 1)


def make_task(root: Path) -> Path:
    audio = root / "audio"
    rows = [
        {"ID": "long", "path": str(write_audio(audio / "long.wav", 2.5, SR, 220)),
         "duration": 2.5, "label": "a"},
        {"ID": "range", "path": str(write_audio(audio / "range.flac", 3.0, SR, 330, seed=1)),
         "duration": 1.0, "start": 1.0, "stop": 2.0, "label": "b"},
        {"ID": "short", "path": str(write_audio(audio / "short.wav", 0.5, SR, 440)),
         "duration": 0.5, "label": "a"},
    ]
    corrupt = audio / "corrupt.wav"
    corrupt.write_bytes(b"RIFF....not audio at all")
    bad = [
        {"ID": "corrupt", "path": str(corrupt), "duration": 1.0, "label": "a"},
        {"ID": "missing", "path": str(audio / "gone.wav"), "duration": 1.0, "label": "b"},
    ]
    return write_task(root / "task", "toy", "multiclass", "label",
                      {"train": rows + bad, "valid": rows, "test": rows},
                      classes=["a", "b"], metrics=["accuracy"])


def make_encoder_folder(root: Path) -> Path:
    ckpt = root / "run" / "save" / "CKPT+2024-01-01+00-00-00+00"
    ckpt.mkdir(parents=True)
    (root / "run" / "hyperparams.yaml").write_text("d_model: 2\n")
    (ckpt / "model.ckpt").write_bytes(b"weights v1")
    (ckpt / "CKPT.yaml").write_text("unixtime: 100\n")
    return root / "run"


@pytest.mark.parametrize("seconds, config, expected", [
    (70.0, WindowConfig(30.0), 3),
    (60.5, WindowConfig(30.0), 2),  # last 0.5 s < 1 s dropped
    (0.5, WindowConfig(30.0), 1),  # shorter than 1 s: the whole item
    (95.0, WindowConfig(None), 1),
    (10.0, WindowConfig(5.0, min_last_seconds=1.0), 2),
])
def test_window_counts(seconds, config, expected):
    windows = config.windows(int(seconds * SR), SR)
    assert len(windows) == expected
    assert windows[0][0] == 0 and windows[-1][1] <= int(seconds * SR)


def test_mean_std_pooling_ignores_padding():
    x = torch.tensor([[[1.0], [3.0], [50.0]], [[2.0], [4.0], [6.0]]])
    out = pool_time(x, torch.tensor([2, 3]), "mean_std")
    assert out[0].tolist() == [2.0, 1.0]
    assert out[1, 0] == pytest.approx(4.0)


def test_extraction_shapes_ranges_and_bad_audio(tmp_path, caplog):
    task = make_task(tmp_path)
    pooler = MeanPooler()
    config = WindowConfig(window_seconds=1.0, min_last_seconds=1.0)
    identity = {"kind": "test"}
    with caplog.at_level("WARNING"):
        data = load_or_extract(task, "train", tmp_path / "cache", lambda: pooler,
                               identity, config, batch_size=2)
    assert data["ids"] == ["long", "range", "short"]
    assert sorted(data["skipped"]) == ["corrupt", "missing"]
    assert "corrupt.wav" in caplog.text and "gone.wav" in caplog.text
    shapes = [tuple(e.shape) for e in data["embeddings"]]
    assert shapes == [(2, 2, 2), (1, 2, 2), (1, 2, 2)]  # 2.5 s -> 2 windows
    assert all(e.dtype == torch.float16 for e in data["embeddings"])
    # window lengths (padding excluded) and the stop/start range respected
    assert data["embeddings"][0][:, 0, 1].tolist() == [1.0, 1.0]
    assert data["embeddings"][2][0, 0, 1].item() == pytest.approx(0.5)
    from muselq_sb.dataio.audio import load_audio
    expected = load_audio(tmp_path / "audio" / "range.flac", 1.0, 2.0).mean()
    assert data["embeddings"][1][0, 0, 0].item() == pytest.approx(expected.item(), abs=1e-3)


def test_crop_keeps_only_the_first_seconds(tmp_path):
    task = make_task(tmp_path)
    config = WindowConfig(window_seconds=1.0, crop_seconds=1.0)
    data = load_or_extract(task, "valid", tmp_path / "cache", MeanPooler,
                           {"kind": "test"}, config)
    assert [len(e) for e in data["embeddings"]] == [1, 1, 1]


def test_cache_reused_then_reextracted_when_checkpoint_changes(tmp_path):
    task = make_task(tmp_path)
    run = make_encoder_folder(tmp_path)
    config = WindowConfig(window_seconds=1.0)
    calls = []

    def factory():
        calls.append(1)
        return MeanPooler()

    def extract():
        return load_or_extract(task, "test", tmp_path / "cache", factory,
                               encoder_identity(str(run)), config)

    first = extract()
    assert not first["reused"] and len(calls) == 1
    second = extract()
    assert second["reused"] and len(calls) == 1
    assert torch.equal(second["embeddings"][0], first["embeddings"][0])
    ckpt = next((run / "save").glob("CKPT+*")) / "model.ckpt"
    ckpt.write_bytes(b"weights v2, retrained")
    os.utime(ckpt, (time.time() + 10,) * 2)
    third = extract()
    assert not third["reused"] and len(calls) == 2
    # a new checkpoint folder also counts
    newer = run / "save" / "CKPT+2024-02-01+00-00-00+00"
    newer.mkdir()
    (newer / "model.ckpt").write_bytes(b"weights v3")
    assert extract()["reused"]  # incomplete (no CKPT.yaml): not the latest
    (newer / "CKPT.yaml").write_text("unixtime: 200\n")
    assert not extract()["reused"]
    # another window setting is another cache content
    assert not load_or_extract(task, "test", tmp_path / "cache", factory,
                               encoder_identity(str(run)), WindowConfig(2.0))["reused"]


def test_item_store_extracts_items_shared_by_tasks_once(tmp_path):
    first = make_task(tmp_path / "a")
    rows = {s: [dict(r) for r in read_manifest(first / f"{s}.csv")] for s in ("test",)}
    for r in rows["test"]:
        r["label"] = "x"
    second = write_task(tmp_path / "b", "other", "multiclass", "label", rows,
                        classes=["x"], metrics=["accuracy"])  # same clips, other labels
    config = WindowConfig(window_seconds=1.0)
    identity = {"kind": "test"}
    store = ItemStore(tmp_path / "items", identity, config)
    poolers = []

    def factory():
        poolers.append(MeanPooler())
        return poolers[-1]

    a = load_or_extract(first, "test", tmp_path / "a_cache", factory, identity, config, store)
    b = load_or_extract(second, "test", tmp_path / "b_cache", factory, identity, config, store)
    assert len(poolers) == 1 and not b["reused"]  # every item came from the store
    assert b["ids"] == a["ids"]
    for x, y in zip(a["embeddings"], b["embeddings"]):
        assert torch.equal(x, y)
    # another encoder misses; a rewritten file misses
    other = ItemStore(tmp_path / "items", {"kind": "other"}, config)
    assert all(other.get(r) is None for r in rows["test"])
    long = Path(rows["test"][0]["path"])
    write_audio(long, 2.5, SR, 440)
    os.utime(long, (time.time() + 10,) * 2)
    assert store.get(rows["test"][0]) is None and store.get(rows["test"][1]) is not None
    c = load_or_extract(second, "test", tmp_path / "c_cache", factory, identity, config, store)
    assert len(poolers) == 2 and poolers[-1].windows_seen == 2  # only the changed item
    assert not torch.equal(c["embeddings"][0], a["embeddings"][0])


def test_random_baseline_identity_depends_on_seed(tmp_path):
    run = make_encoder_folder(tmp_path)
    assert encoder_identity(f"random:{run}", 1) != encoder_identity(f"random:{run}", 2)
    assert encoder_identity(str(run), 1) == encoder_identity(str(run), 2)
    with pytest.raises(ValueError, match="unknown kind"):
        parse_encoder(f"mert:{run}")
    with pytest.raises(FileNotFoundError, match="hyperparams.yaml"):
        encoder_identity(str(tmp_path / "nowhere"))


def test_random_baseline_weights_follow_their_seed(tmp_path):
    """Each weight seed its own encoder, the run's input statistics kept.

    The run's yaml holds ``seed_everything(1986)`` as SpeechBrain saves it:
    the baseline must not rebuild (and so re-seed from) the whole of it.
    """
    run = write_run_folder(tmp_path / "run")
    ckpt = next((run / "save").glob("CKPT+*")) / "ssl_model.ckpt"
    state = torch.load(ckpt, weights_only=True)
    stats = {k[len("model."):]: torch.rand_like(v) + 1.0 for k, v in state.items()
             if k.startswith("model.normalizer.") and v.is_floating_point()}
    state.update({f"model.{k}": v for k, v in stats.items()})
    torch.save(state, ckpt)

    def weights(model):
        return torch.cat([p.flatten() for p in model.encoder.parameters()])

    one, two, one_again = (load_model(run, random_seed=s) for s in (1, 2, 1))
    trained = load_model(run)
    assert not torch.equal(weights(one), weights(two))
    assert torch.equal(weights(one), weights(one_again))
    assert not torch.equal(weights(one), weights(trained))
    for model in (one, two, trained):
        saved = model.state_dict()
        for key, value in stats.items():
            assert torch.equal(saved[key], value), key
    wavs = torch.randn(2, SR, generator=torch.Generator().manual_seed(0))
    lens = torch.tensor([1.0, 0.6])
    emb = {name: load_embedder(f"random:{run}", seed=seed)(wavs, lens)
           for name, seed in (("one", 1), ("two", 2), ("again", 1))}
    assert not torch.allclose(emb["one"][:, 1:], emb["two"][:, 1:])
    assert torch.equal(emb["one"], emb["again"])


def test_embedders_on_the_music_model(tmp_path):
    run = write_run_folder(tmp_path / "run")
    wavs, lens = torch.randn(2, SR), torch.tensor([1.0, 0.5])
    hidden = load_embedder(str(run))(wavs, lens)
    logmel = load_embedder(f"logmel:{run}")(wavs, lens)
    assert hidden.shape == (2, 3, 32)  # L + 1 = 3 hidden states
    assert logmel.shape == (2, 1, 256)  # mean and std of 128 mel bins
    model = load_model(run)
    mel, frames = model.features(wavs, lens)
    assert torch.allclose(logmel[1, 0, :128], mel[1, :frames[1]].mean(0), atol=1e-5)
    assert torch.allclose(hidden, embed(model, wavs, lens, layers="all", pooling="mean"))
    # mean_std: the same means, then each layer's standard deviation over time
    stats = load_embedder(str(run), pooling="mean_std")(wavs, lens)
    assert stats.shape == (2, 3, 64) and torch.allclose(stats[..., :32], hidden, atol=1e-6)
    states, frames = hidden_states(model, wavs, lens, mode="full")
    last = states[-1][1, :frames[1]]
    assert torch.allclose(stats[1, -1, 32:], last.std(0, unbiased=False), atol=1e-5)
    assert encoder_identity(str(run), pooling="mean_std") != encoder_identity(str(run))


def test_extraction_does_not_depend_on_batching(tmp_path):
    from muselq_sb.lobes.branchformer import BranchformerEncoder
    from muselq_sb.lobes.model import MusicModel

    torch.manual_seed(0)
    encoder = BranchformerEncoder(1, d_model=8, nhead=2, kernel_size=3,
                                  csgu_linear_units=16)
    model = MusicModel(encoder, d_model=8, subsampling_channels=8).eval()

    def embedder(wavs, wav_lens):
        return embed(model, wavs, wav_lens, layers="all", pooling="mean")

    rows = [{"ID": "a", "path": str(write_audio(tmp_path / "a.wav", 2.5, SR, 220))},
            {"ID": "b", "path": str(write_audio(tmp_path / "b.wav", 1.5, SR, 330))}]
    config = WindowConfig(window_seconds=1.0, min_last_seconds=0.5)
    one = extract_split(rows, embedder, config, batch_size=1)
    many = extract_split(rows, embedder, config, batch_size=8)
    assert [len(e) for e in many["embeddings"]] == [3, 2]
    for x, y in zip(one["embeddings"], many["embeddings"]):
        assert torch.allclose(x.float(), y.float(), atol=2e-3)
