"""``precision: auto``: bf16 only where it measures faster, on the run's device."""
import pytest
import torch

from muselq_sb.pretrain.checks import check_hparams
from muselq_sb.utils import hardware
from muselq_sb.utils.hardware import bf16_speedup_on_cpu, resolve_precision
from muselq_sb.utils.hparams import ConfigError
from tests.recipe_utils import tiny_brain, write_songs


@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_explicit_precision_is_kept(precision):
    assert resolve_precision(precision, "cpu") == precision


@pytest.mark.parametrize("speedup,chosen", [(2.5, "bf16"), (1.0, "fp32"), (0.11, "fp32")])
def test_auto_on_cpu_follows_the_measured_speedup(monkeypatch, speedup, chosen):
    monkeypatch.setattr(hardware, "bf16_speedup_on_cpu", lambda: speedup)
    assert resolve_precision("auto", "cpu") == chosen


def test_the_measurement_compares_the_two_precisions():
    speedup = bf16_speedup_on_cpu(rows=256, width=128, repeats=3)
    assert 0.001 < speedup < 1000
    assert bf16_speedup_on_cpu(rows=256, width=128, repeats=3) == speedup  # once per process


def test_the_measurement_runs_on_one_thread_interleaved(monkeypatch):
    calls, linear = [], torch.nn.functional.linear

    def recorded(x, w):
        calls.append((torch.get_num_threads(), torch.is_autocast_enabled("cpu")))
        return linear(x, w)

    monkeypatch.setattr(torch.nn.functional, "linear", recorded)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        bf16_speedup_on_cpu.__wrapped__(rows=64, width=32, repeats=3)
        assert torch.get_num_threads() == 2  # the caller's threads come back
    finally:
        torch.set_num_threads(before)
    assert calls == [(1, False), (1, True)] * 4  # a warm-up pair, then 3 pairs


def test_the_measurement_keeps_the_fastest_call_of_each(monkeypatch):
    # warm-up pair, then (fp32, bf16) pairs: a slow outlier on either side
    # (another job on the core) must not decide
    times = iter([9.0, 9.0, 1.0, 0.5, 7.0, 6.0, 8.0, 0.6])
    monkeypatch.setattr(hardware, "_linear_seconds", lambda x, w, bf16: next(times))
    assert bf16_speedup_on_cpu.__wrapped__(rows=8, width=8, repeats=3) == 2.0


def test_unknown_precision_is_named():
    with pytest.raises(ValueError, match="precision.*'fp8'"):
        resolve_precision("fp8", "cpu")
    with pytest.raises(ConfigError, match="eval_precision"):
        check_hparams({"eval_precision": "half"})


def test_brain_resolves_auto_before_speechbrain_sees_it(tmp_path, monkeypatch):
    monkeypatch.setattr(hardware, "bf16_speedup_on_cpu", lambda: 0.5)
    brain, hp, _ = tiny_brain(tmp_path / "run", write_songs(tmp_path / "songs"),
                              precision="auto", eval_precision="auto")
    assert hp["precision"] == "auto"
    assert (brain.precision, brain.eval_precision) == ("fp32", "fp32")
