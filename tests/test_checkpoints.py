"""Checkpoints appear atomically; crafted pickles are refused on resume."""
import os
import pickle

import pytest
import torch
from speechbrain.utils.checkpoints import register_checkpoint_hooks, mark_as_saver, mark_as_loader

from muselq_sb.utils.checkpoints import latest_checkpoint
from muselq_sb.utils.checkpoints import STAGING_PREFIX, AtomicCheckpointer


@register_checkpoint_hooks
class Exploding:
    """A recoverable whose save dies half-way (like a kill during a save)."""

    def __init__(self):
        self.armed = False

    @mark_as_saver
    def save(self, path):
        with open(path, "w") as f:
            f.write("partial")
        if self.armed:
            raise KeyboardInterrupt("killed during the checkpoint write")

    @mark_as_loader
    def load(self, path, end_of_epoch=False):
        assert open(path).read() == "partial"


def test_interrupted_save_leaves_previous_checkpoint(tmp_path):
    lin, bomb = torch.nn.Linear(2, 2), Exploding()
    ckpter = AtomicCheckpointer(tmp_path, {"lin": lin, "z_bomb": bomb})
    first = ckpter.save_checkpoint(meta={"step": 1})
    bomb.armed = True
    with torch.no_grad():
        lin.weight.add_(1.0)
    with pytest.raises(KeyboardInterrupt):
        ckpter.save_checkpoint(meta={"step": 2})
    # the half-written checkpoint is invisible to every reader
    assert [c.path for c in ckpter.list_checkpoints()] == [first.path]
    assert latest_checkpoint(tmp_path) == first.path
    assert any(p.name.startswith(STAGING_PREFIX) for p in tmp_path.iterdir())
    recovered = ckpter.recover_if_possible()
    assert recovered.meta["step"] == 1
    # the next good save removes the debris
    bomb.armed = False
    ckpter.save_checkpoint(meta={"step": 3})
    assert not any(p.name.startswith(STAGING_PREFIX) for p in tmp_path.iterdir())
    assert len(ckpter.list_checkpoints()) == 2


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_crafted_pickle_checkpoint_is_refused(tmp_path):
    lin = torch.nn.Linear(2, 2)
    ckpter = AtomicCheckpointer(tmp_path / "save", {"lin": lin})
    ckpt = ckpter.save_checkpoint()
    marker = tmp_path / "pwned"
    with open(ckpt.paramfiles["lin"], "wb") as f:
        pickle.dump({"weight": Payload(str(marker))}, f)
    with pytest.raises(pickle.UnpicklingError):
        ckpter.recover_if_possible()
    assert not os.path.exists(marker)
