"""Input statistics: computed once before the first optimizer step, frozen
for the whole run, saved in the checkpoint and resumed bit for bit, so the
quantizer's targets for a given input never change."""
import pytest
import torch

from muselq_sb.lobes.frontend import FeatureNormalizer
from muselq_sb.utils.checkpoints import latest_checkpoint
from tests.fixtures.audio import tone
from tests.recipe_utils import tiny_brain, write_songs

STEPS, MORE = 12, 6
PROBE = torch.from_numpy(tone(3.0, freq=261.6, seed=5)[:, 0])[None]


def targets(ssl):
    """The quantizer's tokens and the stacked targets of the fixed PROBE."""
    with torch.no_grad():
        mel, _ = ssl.model.features(PROBE, torch.ones(1))
        stacked = ssl.model.targets(mel)
        return ssl.quantizer(stacked), stacked


def snapshot(brain):
    ssl = brain.hparams.ssl_model
    tokens, stacked = targets(ssl)
    return {"step": brain.optimizer_step, "tokens": tokens, "stacked": stacked,
            "stats": {k: v.clone() for k, v in ssl.model.normalizer.state_dict().items()}}


def train(out, songs, steps, updates):
    """Trains a tiny brain to ``steps``; returns snapshots taken before its
    first training batch and after the run. ``updates`` counts calls of
    ``FeatureNormalizer.update``."""
    brain, _, fit = tiny_brain(out, songs, total_steps=steps, max_batch_seconds=4.0)
    first = []
    fit_batch = brain.fit_batch

    def recording(batch):
        if not first:
            first.append(snapshot(brain))
        return fit_batch(batch)

    brain.fit_batch = recording
    fit()
    return first[0], snapshot(brain), updates.copy()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A 12-step run, then the same command resumed to 18 steps."""
    songs = write_songs(tmp_path_factory.mktemp("songs"), count=12)
    out = tmp_path_factory.mktemp("run")
    updates = []
    real = FeatureNormalizer.update

    def counted(self, x, lens):
        updates.append(int(x.shape[0]))
        real(self, x, lens)

    FeatureNormalizer.update = counted
    try:
        first = train(out, songs, STEPS, updates)
        saved = torch.load(latest_checkpoint(out / "save") / "ssl_model.ckpt",
                           weights_only=True)
        updates.clear()
        resumed = train(out, songs, STEPS + MORE, updates)
    finally:
        FeatureNormalizer.update = real
    return first, saved, resumed


def assert_same(a, b):
    assert torch.equal(a["tokens"], b["tokens"])
    assert torch.equal(a["stacked"], b["stacked"])
    for key, value in a["stats"].items():
        assert torch.equal(value, b["stats"][key]), key


def test_targets_identical_before_and_after_many_steps(runs):
    (before, after, updates), _, _ = runs
    assert before["step"] == 0 and after["step"] == STEPS
    assert updates, "the statistics pass ran before the first step"
    assert before["stats"]["count"] > 0
    assert_same(before, after)


def test_resumed_run_keeps_the_saved_statistics_and_targets(runs):
    (_, first_end, _), saved, (before, after, updates) = runs
    assert before["step"] == STEPS and after["step"] == STEPS + MORE
    assert updates == []  # never recomputed, in the pass or in training
    for key, value in before["stats"].items():
        assert torch.equal(saved[f"model.normalizer.{key}"], value), key
    assert_same(first_end, before)
    assert_same(before, after)
