"""Non-finite losses and gradients: skipped, counted, and a clean stop."""
import logging

import pytest
import torch

from muselq_sb.utils.checkpoints import latest_checkpoint
from muselq_sb.pretrain.brain import NonFiniteTrainingError
from muselq_sb.pretrain.report import read_metrics
from tests.recipe_utils import tiny_brain, write_songs


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    return write_songs(tmp_path_factory.mktemp("songs"))


class NaNInjector:
    """Makes the mel head return NaN on chosen training forwards (1-based)
    and snapshots the parameters before every training forward."""

    def __init__(self, brain, calls):
        self.brain, self.calls, self.count = brain, set(calls), 0
        self.before = []
        head = brain.modules.ssl_model.mel_head
        head.register_forward_pre_hook(self.pre)
        head.register_forward_hook(self.post)

    def params(self):
        return [p.detach().clone() for p in self.brain.modules.parameters()]

    def pre(self, module, args):
        if module.training:
            self.count += 1
            self.before.append(self.params())

    def post(self, module, args, output):
        if module.training and self.count in self.calls:
            return output * float("nan")
        return output


def same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


def test_nonfinite_steps_are_skipped_counted_and_harmless(songs, tmp_path, caplog):
    # 3 training songs of 2 s, one per batch here: 3 forwards per epoch
    brain, hp, fit = tiny_brain(tmp_path / "run", songs, total_steps=4,
                                max_batch_seconds=4.0, ckpt_interval_steps=0)
    nan = NaNInjector(brain, calls={2, 4})
    with caplog.at_level(logging.WARNING):
        fit()
    # every requested optimizer step happened, on top of the 2 skipped ones
    assert brain.optimizer_step == 4 and nan.count == 6
    assert brain.nonfinite_total == 2
    after = nan.before[1:] + [nan.params()]
    for call, (before, then) in enumerate(zip(nan.before, after), start=1):
        # a NaN step leaves every parameter untouched, a good one moves them
        assert same(before, then) == (call in {2, 4}), call
    assert all(torch.isfinite(p).all() for p in brain.modules.parameters())
    assert all(torch.isfinite(b).all() for b in brain.modules.buffers())
    assert sum("step skipped" in r.getMessage() for r in caplog.records) == 2
    valid = [r for r in read_metrics(hp["metrics_file"]) if r["stage"] == "valid"]
    assert [v["skipped_steps"] for v in valid] == [1, 2]
    assert all(torch.isfinite(torch.tensor(v["loss"])) for v in valid)


def test_patience_exhausted_stops_with_a_loadable_finite_checkpoint(songs, tmp_path):
    brain, hp, fit = tiny_brain(tmp_path / "run", songs, total_steps=20,
                                max_batch_seconds=4.0, ckpt_interval_steps=0,
                                run_opts={"nonfinite_patience": 3})
    nan = NaNInjector(brain, calls={3, 4, 5, 6})
    with pytest.raises(NonFiniteTrainingError) as info:
        fit()
    message = str(info.value)
    assert message.startswith("3 consecutive optimizer steps had a non-finite")
    assert str(hp["save_folder"]) in message and "--nonfinite_patience" in message
    assert nan.count == 5 and brain.optimizer_step == 2
    good = nan.before[2]  # the state before the first NaN step
    ckpt = latest_checkpoint(hp["save_folder"])
    state = torch.load(ckpt / "ssl_model.ckpt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in state.values())
    # the checkpoint holds the last good weights; a new Brain resumes from it
    brain2, _, _ = tiny_brain(tmp_path / "run", songs, total_steps=20,
                              max_batch_seconds=4.0)
    brain2.checkpointer.recover_if_possible()
    assert same(list(brain2.modules.parameters()), good)


class FakeOverflow:
    """fp16 on a CPU: the Brain gets an enabled ``GradScaler`` (SpeechBrain
    enables one only for fp16 on CUDA) and the scaled gradient of one
    parameter turns infinite while the loss scale is above ``limit``, as an
    fp16 backward overflows while the scale is too high."""

    def __init__(self, brain, init_scale, limit):
        brain.scaler = torch.GradScaler("cpu", init_scale=init_scale)
        self.overflows = 0

        def hook(grad):
            if brain.scaler.get_scale() > limit:
                self.overflows += 1
                return torch.full_like(grad, float("inf"))
            return grad

        next(brain.modules.ssl_model.mel_head.parameters()).register_hook(hook)


def test_fp16_overflow_lowers_the_scale_and_training_recovers(songs, tmp_path):
    brain, hp, fit = tiny_brain(tmp_path / "run", songs, total_steps=4,
                                max_batch_seconds=4.0, ckpt_interval_steps=0,
                                run_opts={"nonfinite_patience": 3})
    # 3 overflows in a row (scales 256, 128, 64): as many as the patience
    fake = FakeOverflow(brain, init_scale=256.0, limit=32.0)
    fit()
    assert fake.overflows == 3 and brain.nonfinite_total == 3
    assert brain.scaler.get_scale() == 32.0  # halved by each update()
    assert brain.optimizer_step == 4
    assert all(torch.isfinite(p).all() for p in brain.modules.parameters())


def test_fp16_overflow_that_scaling_cannot_cure_stops_the_run(songs, tmp_path):
    brain, hp, fit = tiny_brain(tmp_path / "run", songs, total_steps=50,
                                max_batch_seconds=4.0, ckpt_interval_steps=0,
                                run_opts={"nonfinite_patience": 3})
    fake = FakeOverflow(brain, init_scale=8.0, limit=0.0)  # always overflows
    with pytest.raises(NonFiniteTrainingError):
        fit()
    # 8 -> 1 in 3 halvings, then 3 skips at a scale <= 1 use up the patience
    assert brain.scaler.get_scale() < 1.0 and brain.optimizer_step == 0
    assert fake.overflows == brain.nonfinite_total == 6
