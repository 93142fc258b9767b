"""Time-major depthwise convolution: same values and gradients as
SpeechBrain's / PyTorch's convolution, in fp32, fp64 and under autocast."""
import pytest
import torch
import torch.nn.functional as F
from speechbrain.nnet.CNN import Conv1d

from muselq_sb.lobes.branchformer import BranchformerEncoderLayer
from muselq_sb.nnet.depthwise_conv import (
    TimeMajorDepthwiseConv, depthwise_conv1d,
)


def reference(x, w, b):
    """PyTorch's depthwise conv on the transposed, zero-padded input."""
    k = w.shape[-1]
    y = F.conv1d(x.transpose(1, 2), w, b, padding=k // 2, groups=x.shape[-1])
    return y.transpose(1, 2)


@pytest.mark.parametrize("kernel", [1, 3, 7, 31])
@pytest.mark.parametrize("steps", [1, 5, 40])
def test_values_and_gradients_match_pytorch(kernel, steps):
    torch.manual_seed(kernel + steps)
    channels = 6
    x = torch.randn(3, steps, channels, requires_grad=True)
    w = torch.randn(channels, 1, kernel, requires_grad=True)
    b = torch.randn(channels, requires_grad=True)
    g = torch.randn(3, steps, channels)
    ours = depthwise_conv1d(x, w, b)
    ref = reference(x, w, b)
    assert ours.is_contiguous()
    assert torch.allclose(ours, ref, atol=1e-5)
    got = torch.autograd.grad(ours, (x, w, b), g)
    want = torch.autograd.grad(ref, (x, w, b), g)
    for a, e in zip(got, want):
        assert a.shape == e.shape
        assert torch.allclose(a, e, atol=1e-4, rtol=1e-4)


def test_gradcheck_float64():
    torch.manual_seed(0)
    x = torch.randn(2, 9, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 1, 5, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(depthwise_conv1d, (x, w, b))


def test_autocast_bf16_runs_in_bf16_with_fp32_weight_gradients():
    torch.manual_seed(0)
    x = torch.randn(2, 30, 8, requires_grad=True)
    w = torch.randn(8, 1, 5, requires_grad=True)
    b = torch.randn(8, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = depthwise_conv1d(x, w, b)
    assert y.dtype == torch.bfloat16
    y.float().sum().backward()
    assert x.grad.dtype == w.grad.dtype == b.grad.dtype == torch.float32
    ref = reference(x.detach(), w.detach(), b.detach())
    assert torch.allclose(y.float(), ref, atol=0.1, rtol=0.05)
    w_ref = torch.autograd.grad(
        reference(x.detach(), w, b).sum(), w)[0]
    assert torch.allclose(w.grad, w_ref, rtol=0.05, atol=0.5)


def test_drop_in_for_speechbrain_conv1d():
    sb = Conv1d(out_channels=5, kernel_size=7, input_shape=(1, 11, 5),
                groups=5, padding="same", padding_mode="constant")
    ours = TimeMajorDepthwiseConv(sb.conv)
    x = torch.randn(2, 11, 5)
    assert torch.allclose(ours(x), sb(x), atol=1e-6)
    assert set(dict(ours.named_parameters())) == {"conv.weight", "conv.bias"}


def test_bad_convolutions_are_refused():
    with pytest.raises(ValueError, match="odd"):
        depthwise_conv1d(torch.randn(1, 4, 2), torch.randn(2, 1, 4))
    with pytest.raises(ValueError, match="channels"):
        depthwise_conv1d(torch.randn(1, 4, 3), torch.randn(2, 1, 3))
    with pytest.raises(ValueError, match="depthwise Conv1d"):
        TimeMajorDepthwiseConv(torch.nn.Conv1d(4, 4, 3))


def test_branchformer_uses_it_and_keeps_speechbrain_parameter_names():
    layer = BranchformerEncoderLayer(d_model=16, nhead=2, kernel_size=5,
                                     csgu_linear_units=32)
    conv = layer.convolution_branch.csgu.conv
    assert isinstance(conv.inner, TimeMajorDepthwiseConv)
    names = set(dict(layer.named_parameters()))
    assert "convolution_branch.csgu.conv.inner.conv.weight" in names
    # even kernels are refused when the layer is built
    with pytest.raises(ValueError, match="odd"):
        BranchformerEncoderLayer(d_model=16, nhead=2, kernel_size=4,
                                 csgu_linear_units=32)
