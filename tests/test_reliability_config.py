"""Configuration errors are caught before training starts, naming the key."""
import shutil
import subprocess
import sys
import time

import pytest
import speechbrain as sb

from muselq_sb.pretrain.checks import check_hparams
from muselq_sb.utils.hparams import ConfigError, load_plain_hparams
from tests.recipe_utils import (
    ROOT, TRAIN, args_for, env, optimizer_steps, tiny_brain, write_songs,
)

BRN_SUM = ROOT / "hparams" / "brn_sum.yaml"


@pytest.mark.parametrize("hparams", ["brn_sum", "brn_att", "cnf_sum", "cnf_att"])
@pytest.mark.parametrize("size", ["tiny", "small", "large"])
def test_shipped_configs_pass(hparams, size):
    check_hparams(load_plain_hparams(ROOT / "hparams" / f"{hparams}.yaml",
                                     f"size: {size}"))


@pytest.mark.parametrize("overrides, key, error", [
    ("size: tiny\nd_model: 32\nnhead: 3", "nhead", ConfigError),
    ("size: tiny\nattention_type: flash", "attention_type", ConfigError),
    ("size: huge", "size", ConfigError),
    ("size: tiny\nsegment_seconds: 0", "segment_seconds", ConfigError),
    ("size: tiny\nmax_batch_seconds: 1.0\nsegment_seconds: 2.0",
     "max_batch_seconds", ConfigError),
    ("size: tiny\nnum_layers: 2.5", "num_layers", ConfigError),
    ("size: tiny\ntotal_steps: 5\nwarmup_steps: 5", "warmup_steps", ConfigError),
    ("size: tiny\nprecision: fp8", "precision", ConfigError),
    ("size: tiny\nstack: 3", "stack", ConfigError),
    ("size: tiny\ndata_folder: /nonexistent", "data_folder", FileNotFoundError),
    ("size: tiny\ndata_sources: [{type: fma, path: /nonexistent}]",
     "data_sources[0].path", FileNotFoundError),
    ("size: tiny\ndata_sources: [{type: mp3s, path: /tmp}]",
     "data_sources[0]", ValueError),
])
def test_bad_value_names_its_key(overrides, key, error):
    with pytest.raises(error) as info:
        check_hparams(load_plain_hparams(BRN_SUM, overrides))
    assert str(info.value).startswith(key + ":"), str(info.value)


def test_quantizer_input_dim_must_match_stacked_mels(tmp_path):
    shutil.copytree(ROOT / "hparams", tmp_path / "hparams")
    base = tmp_path / "hparams" / "pretrain" / "base.yaml"
    text = base.read_text()
    edited = text.replace("input_dim: !ref <n_mels> * <stack>", "input_dim: 500")
    assert edited != text
    base.write_text(edited)
    with pytest.raises(ConfigError, match=r"^ssl_model\.quantizer\.input_dim: "
                       r"500 must equal n_mels \* stack = 128 \* 4 = 512"):
        check_hparams(load_plain_hparams(tmp_path / "hparams" / "brn_sum.yaml",
                                         "size: tiny"))
    # the stack override changes both sides consistently: still valid
    check_hparams(load_plain_hparams(BRN_SUM, "size: tiny\nstack: 2"))


def test_values_computed_at_load_time_are_not_guessed():
    # d_model comes from a function the checks do not run: nothing to check
    hparams = load_plain_hparams(BRN_SUM, "size: tiny\nd_model: !apply:builtins.abs [-30]")
    assert hparams["d_model"].target == "builtins.abs"
    check_hparams(hparams)


def test_plain_reading_builds_nothing(tmp_path):
    marker = tmp_path / "built"
    (tmp_path / "h.yaml").write_text(
        f"x: !apply:pathlib.Path.touch [!new:pathlib.Path [{marker}]]\n")
    hparams = load_plain_hparams(tmp_path / "h.yaml")
    assert hparams["x"].target == "pathlib.Path.touch"
    assert not marker.exists()


def test_recipe_exits_before_training(tmp_path):
    out = tmp_path / "run"
    args = args_for("brn_sum", tmp_path, out, 3, ["--nhead=3"])
    start = time.time()
    proc = subprocess.run([sys.executable, str(TRAIN), *args], env=env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("muselq_sb.utils.hparams.ConfigError: nhead: "), last
    assert not out.exists()  # nothing written: no experiment folder, no step
    assert time.time() - start < 60


def test_stack_2_trains(tmp_path):
    """A stack the check accepts builds and trains: 50 Hz encoder frames,
    targets of 2 stacked mel frames, masks of hop x 2 samples."""
    out = tmp_path / "run"
    brain, hp, fit = tiny_brain(out, write_songs(tmp_path / "songs"), total_steps=2,
                                stack=2, mask_domain="waveform")
    fit()
    model = hp["model"]
    assert optimizer_steps(out) == 2
    assert (model.stack, model.frame_rate, model.target_dim) == (2, 50.0, 256)


def test_step_limit_from_the_command_line(tmp_path):
    """``--optimizer_step_limit=N`` (SpeechBrain hands it on as text) stops
    training after N steps, with the schedule of ``total_steps``; a value
    that is not a number names the option."""
    songs = write_songs(tmp_path / "songs")
    _, run_opts, _ = sb.parse_arguments([str(BRN_SUM), "--optimizer_step_limit=2"])
    brain, _, fit = tiny_brain(tmp_path / "run", songs, total_steps=6,
                               run_opts=dict(run_opts.items()))
    fit()
    assert brain.optimizer_step == 2 == optimizer_steps(tmp_path / "run")
    with pytest.raises(ValueError, match="optimizer_step_limit: .*'two'"):
        tiny_brain(tmp_path / "bad", songs, run_opts={"optimizer_step_limit": "two"})
