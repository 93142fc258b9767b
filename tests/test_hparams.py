"""Every hparams file loads and builds, at every size preset."""
from pathlib import Path

import pytest
import torch
from hyperpyyaml import load_hyperpyyaml

from muselq_sb.lobes.mixers import ATTENTION_TYPES
from muselq_sb.utils.presets import SIZES

HPARAMS = Path(__file__).resolve().parents[1] / "hparams"
FILES = ["brn_sum", "brn_att", "cnf_sum", "cnf_att"]


def load(name, overrides=""):
    with open(HPARAMS / f"{name}.yaml", encoding="utf-8") as f:
        return load_hyperpyyaml(f, overrides)


def n_params(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("name", FILES)
def test_tiny_builds_and_runs(name, tmp_path):
    h = load(name, f"size: tiny\noutput_folder: {tmp_path}")
    ssl = h["ssl_model"].eval()
    out = ssl(torch.randn(2, 24000), torch.tensor([1.0, 0.6]))
    assert out["tokens"].shape[:2] == out["mask"].shape
    assert h["checkpointer"].recoverables.keys() >= {"ssl_model", "lr_scheduler", "counter"}
    assert h["attention_type"] in ATTENTION_TYPES
    assert h["max_grad_norm"] == 1.0 and h["precision"] == "bf16"


@pytest.mark.parametrize("backbone", ["brn", "cnf"])
def test_summary_mixing_saves_parameters_at_small_size(backbone):
    att = n_params(load(f"{backbone}_att", "size: small")["model"])
    summ = n_params(load(f"{backbone}_sum", "size: small")["model"])
    assert 0.04 < 1 - summ / att < 0.25


def test_size_override_and_unknown_size():
    h = load("brn_sum", "size: small\nd_model: 384\nnhead: 6")
    assert h["model"].d_model == 384 and h["num_layers"] == SIZES["small"]["num_layers"]
    with pytest.raises(KeyError, match="unknown size 'medium'"):
        load("brn_sum", "size: medium")


def test_unknown_attention_type_names_valid_ones():
    with pytest.raises(ValueError, match="unknown attention_type 'flash'"):
        load("cnf_sum", "size: tiny\nattention_type: flash")
