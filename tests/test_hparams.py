"""Every hparams file loads and builds, at every size; how files compose."""
import shutil
from pathlib import Path

import pytest
import torch

from muselq_sb.lobes.mixers import ATTENTION_TYPES
from muselq_sb.utils.hparams import (
    ConfigError, load_hparams, load_plain_hparams, resolve_hparams,
)

HPARAMS = Path(__file__).resolve().parents[1] / "hparams"
FILES = ["brn_sum", "brn_att", "cnf_sum", "cnf_att"]


def load(name, overrides=""):
    return load_hparams(HPARAMS / f"{name}.yaml", overrides)


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
    assert h["max_grad_norm"] == 1.0


@pytest.mark.parametrize("backbone", ["brn", "cnf"])
def test_summary_mixing_saves_parameters_at_small_size(backbone):
    att = n_params(load(f"{backbone}_att", "size: small")["model"])
    summ = n_params(load(f"{backbone}_sum", "size: small")["model"])
    assert 0.04 < 1 - summ / att < 0.25


def test_size_override_and_unknown_size():
    small = load_plain_hparams(HPARAMS / "pretrain" / "sizes" / "small.yaml")
    h = load("brn_sum", "size: small\nd_model: 384\nnhead: 6")
    assert h["model"].d_model == 384 and h["num_layers"] == small["num_layers"]
    assert h["model"].num_layers == small["num_layers"]
    with pytest.raises(ConfigError, match="size: unknown size 'medium'; valid: "
                                          r"\['large', 'small', 'tiny'\]"):
        load("brn_sum", "size: medium")


def test_unknown_attention_type_names_valid_ones():
    with pytest.raises(ValueError, match="unknown attention_type 'flash'"):
        load("cnf_sum", "size: tiny\nattention_type: flash")


def test_variants_differ_from_their_base_only_where_they_say():
    """brn_att is brn_sum with attention: every value the same but the
    attention type and the experiment name (and the paths made of it)."""
    plain = {name: load_plain_hparams(HPARAMS / f"{name}.yaml", "size: tiny")
             for name in FILES}
    for summ, att in (("brn_sum", "brn_att"), ("cnf_sum", "cnf_att")):
        assert set(plain[summ]) == set(plain[att])
        differ = {k for k in plain[summ]
                  if repr(plain[summ][k]) != repr(plain[att][k]).replace(att, summ)}
        assert differ == {"attention_type", "encoder", "model", "ssl_model",
                          "modules", "checkpointer"}  # the objects holding it
    assert plain["cnf_sum"]["encoder"].target.endswith("ConformerEncoder")
    assert "csgu_linear_units" not in plain["cnf_sum"]["encoder"].kwargs


def test_composition_replaces_whole_keys_and_refuses_bad_files(tmp_path):
    (tmp_path / "base.yaml").write_text(
        "size: a\nx: 1\nobj: !new:torch.nn.Linear\n    in_features: 2\n"
        "    out_features: !ref <x>\n")
    (tmp_path / "sizes").mkdir()
    (tmp_path / "sizes" / "a.yaml").write_text("x: 3\n")
    (tmp_path / "v.yaml").write_text(
        "base: base.yaml\nobj: !new:torch.nn.Identity\n    unused: !ref <x>\n")
    h = load_hparams(tmp_path / "v.yaml")
    assert isinstance(h["obj"], torch.nn.Identity) and h["x"] == 3
    assert "in_features" not in resolve_hparams(tmp_path / "v.yaml")
    with pytest.raises(KeyError, match="Override 'y' not found"):  # no such key
        resolve_hparams(tmp_path / "v.yaml", "y: 1")
    (tmp_path / "loop.yaml").write_text("base: loop.yaml\n")
    with pytest.raises(ConfigError, match="its own base"):
        resolve_hparams(tmp_path / "loop.yaml")
    with pytest.raises(FileNotFoundError, match="gone.yaml"):
        (tmp_path / "w.yaml").write_text("base: gone.yaml\n")
        resolve_hparams(tmp_path / "w.yaml")


def test_a_copied_hparams_tree_composes_the_same(tmp_path):
    shutil.copytree(HPARAMS, tmp_path / "hparams")
    for name in FILES:
        assert resolve_hparams(tmp_path / "hparams" / f"{name}.yaml", "size: tiny") \
            == resolve_hparams(HPARAMS / f"{name}.yaml", "size: tiny")


def test_recommended_recipe_is_the_paper_recipe_plus_the_unmasked_loss():
    """``brn_sum_unmasked.yaml`` is the paper's ``brn_sum.yaml`` with a
    positive ``unmasked_weight`` for the reconstruction losses only and a
    heavier mel loss: every other value the same but the name (and the
    paths made of it); the paper's file keeps masked frames only, at the
    paper's weights."""
    paper = load_plain_hparams(HPARAMS / "brn_sum.yaml", "size: tiny")
    ours = load_plain_hparams(HPARAMS / "brn_sum_unmasked.yaml", "size: tiny")
    assert paper["unmasked_weight"] == 0.0 and ours["unmasked_weight"] > 0.0
    assert paper["mse_weight"] == paper["ce_weight"] == ours["ce_weight"] < ours["mse_weight"]
    assert "ce" in paper["unmasked_terms"] and "ce" not in ours["unmasked_terms"]
    assert "mse" in ours["unmasked_terms"]
    assert set(paper) == set(ours)
    differ = {k for k in paper
              if repr(paper[k]) != repr(ours[k]).replace("brn_sum_unmasked", "brn_sum")}
    assert differ == {"unmasked_weight", "unmasked_terms", "mse_weight", "ssl_model", "modules",
                      "checkpointer"}
