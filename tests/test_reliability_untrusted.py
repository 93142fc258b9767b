"""Untrusted checkpoints: a crafted pickle in a run folder is refused by
every loader of pre-trained weights, before any of its code runs."""
import pickle

import pytest

from muselq_sb.inference.embedding import load_model
from muselq_sb.inference.encoder import MusicEncoder
from muselq_sb.utils.hparams import ModelFolderError
from tests.recipe_utils import write_run_folder


class Payload:
    """Unpickling it creates ``marker`` (stands for arbitrary code)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def run_folder(tmp_path):
    """A pre-training output folder with one genuine tiny checkpoint."""
    return write_run_folder(tmp_path / "run")


def craft(run, marker):
    ckpt = next((run / "save").glob("CKPT+*")) / "ssl_model.ckpt"
    with open(ckpt, "wb") as f:
        pickle.dump({"model.frontend.weight": Payload(str(marker))}, f)


def test_genuine_checkpoint_loads(run_folder):
    assert load_model(run_folder).d_model == 32
    assert MusicEncoder.from_run(run_folder).model.num_layers == 2


def test_load_model_refuses_crafted_pickle(run_folder, tmp_path):
    marker = tmp_path / "pwned"
    craft(run_folder, marker)
    with pytest.raises(ModelFolderError, match="ssl_model.ckpt: refused"):
        load_model(run_folder)
    assert not marker.exists()


def test_music_encoder_refuses_crafted_pickle(run_folder, tmp_path):
    marker = tmp_path / "pwned"
    craft(run_folder, marker)
    with pytest.raises(ModelFolderError, match="ssl_model.ckpt: refused"):
        MusicEncoder.from_run(run_folder)
    assert not marker.exists()
