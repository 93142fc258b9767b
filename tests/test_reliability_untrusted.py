"""Untrusted checkpoints: a crafted pickle in a run folder is refused by
every loader of pre-trained weights, before any of its code runs."""
import pickle
import time

import pytest
import torch
import yaml
from hyperpyyaml import load_hyperpyyaml
from hyperpyyaml.core import resolve_references

from muselq_sb.inference.encoder import MusicEncoder
from muselq_sb.inference.package import ModelFolderError
from muselq_sb.lobes.model import load_music_model
from tests.recipe_utils import ROOT, tiny_overrides


class Payload:
    """Unpickling it creates ``marker`` (stands for arbitrary code)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def run_folder(tmp_path):
    """A pre-training output folder with one genuine tiny checkpoint."""
    run = tmp_path / "run"
    ckpt = run / "save" / "CKPT+2024-01-01+00-00-00+00"
    ckpt.mkdir(parents=True)
    with open(ROOT / "hparams" / "brn_sum.yaml", encoding="utf-8") as f:
        text = resolve_references(f, tiny_overrides(output_folder=str(run))).getvalue()
    (run / "hyperparams.yaml").write_text(text)
    hparams = load_hyperpyyaml(text)
    torch.save(hparams["ssl_model"].state_dict(), ckpt / "ssl_model.ckpt")
    (ckpt / "CKPT.yaml").write_text(yaml.safe_dump({"unixtime": time.time()}))
    return run


def craft(run, marker):
    ckpt = next((run / "save").glob("CKPT+*")) / "ssl_model.ckpt"
    with open(ckpt, "wb") as f:
        pickle.dump({"model.frontend.weight": Payload(str(marker))}, f)


def test_genuine_checkpoint_loads(run_folder):
    assert load_music_model(run_folder).d_model == 32
    assert MusicEncoder.from_run(run_folder).model.num_layers == 2


def test_load_music_model_refuses_crafted_pickle(run_folder, tmp_path):
    marker = tmp_path / "pwned"
    craft(run_folder, marker)
    with pytest.raises(pickle.UnpicklingError):
        load_music_model(run_folder)
    assert not marker.exists()


def test_music_encoder_refuses_crafted_pickle(run_folder, tmp_path):
    marker = tmp_path / "pwned"
    craft(run_folder, marker)
    with pytest.raises(ModelFolderError, match="ssl_model.ckpt: refused"):
        MusicEncoder.from_run(run_folder)
    assert not marker.exists()
