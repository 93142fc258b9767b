"""SummaryMixing: padding never enters the summary; cost linear in T."""
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from muselq_sb.nnet.summary_mixing import GroupedLinear, SummaryMixing


def make(mode="SummaryMixing", nhead=2):
    torch.manual_seed(0)
    return SummaryMixing(
        enc_dim=16, nhead=nhead, local_proj_hid_dim=[32],
        local_proj_out_dim=16, summary_hid_dim=[32], summary_out_dim=24,
        global_dropout=0.0, mode=mode,
    ).eval()


@pytest.mark.parametrize("mode", ["SummaryMixing", "SummaryMixing-lite"])
def test_padding_invariance(mode):
    mixer = make(mode)
    x = torch.randn(3, 20, 16)
    lens = [20, 13, 7]
    pad = torch.arange(20)[None] >= torch.tensor(lens)[:, None]
    # garbage in the padding must not change the valid frames
    noisy = x.clone()
    noisy[pad] = 1e3 * torch.randn(int(pad.sum()), 16)
    batched, _ = mixer(noisy, noisy, noisy, key_padding_mask=pad)
    for i, n in enumerate(lens):
        alone, _ = mixer(x[i:i + 1, :n], None, None)
        assert torch.allclose(batched[i, :n], alone[0], atol=1e-5)


def test_summary_is_masked_mean():
    mixer = make()
    s = torch.randn(2, 5, 4)
    pad = torch.tensor([[False] * 5, [False, False, True, True, True]])
    got = mixer.summary(s, pad)
    assert torch.allclose(got[0, 0], s[0].mean(0), atol=1e-6)
    assert torch.allclose(got[1, 0], s[1, :2].mean(0), atol=1e-6)


def test_attn_mask_all_allowed_equals_no_mask():
    mixer = make()
    x = torch.randn(2, 9, 16)
    pad = torch.zeros(2, 9, dtype=torch.bool)
    pad[1, 6:] = True
    a, _ = mixer(x, key_padding_mask=pad)
    b, _ = mixer(x, key_padding_mask=pad,
                 attn_mask=torch.zeros(9, 9, dtype=torch.bool))
    assert torch.allclose(a[0], b[0], atol=1e-5)
    assert torch.allclose(a[1, :6], b[1, :6], atol=1e-5)


def test_chunked_attn_mask_restricts_summary():
    mixer = make()
    s = torch.randn(1, 4, 3)
    blocked = torch.tensor([[False, False, True, True]] * 2
                           + [[True, True, False, False]] * 2)
    got = mixer.summary(s, None, blocked)
    assert torch.allclose(got[0, 0], s[0, :2].mean(0), atol=1e-6)
    assert torch.allclose(got[0, 3], s[0, 2:].mean(0), atol=1e-6)


def test_lite_output_constant_over_time():
    out, _ = make("SummaryMixing-lite")(torch.randn(2, 11, 16))
    assert torch.allclose(out, out[:, :1].expand_as(out))


def test_bf16_autocast_runs_and_sums_in_fp32():
    mixer = make()
    x = torch.randn(2, 10, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = mixer(x)
    ref, _ = mixer(x)
    assert out.dtype == torch.bfloat16
    assert torch.allclose(out.float(), ref, atol=0.1)


def _flops(module, T):
    x = torch.randn(1, T, 16)
    with FlopCounterMode(display=False) as counter:
        module(x, x, x)
    return counter.get_total_flops()


def test_cost_linear_in_length():
    for mode in ("SummaryMixing", "SummaryMixing-lite"):
        mixer = make(mode)
        base = _flops(mixer, 1000)
        assert base > 0
        for factor in (2, 5, 10):
            assert _flops(mixer, 1000 * factor) / base == pytest.approx(
                factor, rel=0.01
            )


def test_grouped_linear_is_block_diagonal():
    lin = GroupedLinear(4, 4, groups=2, bias=False)
    x = torch.zeros(1, 4)
    x[0, 0] = 1.0  # only group 0 sees this input
    y = lin(x)
    assert torch.all(y[0, 2:] == 0) and torch.any(y[0, :2] != 0)


def test_unknown_mode_lists_valid():
    with pytest.raises(ValueError, match="SummaryMixing-lite"):
        SummaryMixing(16, mode="fast")


def test_split_combiner_equals_concatenation_and_survives_int8():
    mixer = make()
    x = torch.randn(2, 9, 16)
    out, _ = mixer(x)
    s_bar = mixer.summary(mixer.summary_proj(x)).expand(-1, 9, -1)
    ref = mixer.combiner(torch.cat([mixer.local_proj(x), s_bar], dim=-1))
    assert torch.allclose(out, ref, atol=1e-5)
    q = torch.ao.quantization.quantize_dynamic(mixer, {torch.nn.Linear})
    q_out, _ = q(x)
    assert torch.allclose(q_out, out, atol=0.1)
