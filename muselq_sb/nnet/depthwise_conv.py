"""Depthwise "same" convolution over time-major frames, without layout copies.

SpeechBrain's ``Conv1d`` takes ``[B, T, C]`` frames, transposes them to
``[B, C, T]``, pads them and runs ``nn.Conv1d``; its output goes back through
a transpose, so the next element-wise op (the CSGU gate) reads a strided
tensor. On a CPU those copies and the strided multiply cost more than the
convolution itself. Here the ``[B, T, C]`` tensor is handed to ``conv2d`` as
a channels-last ``[B, C, 1, T]`` view with zero padding built in: no copy on
the way in, and a contiguous ``[B, T, C]`` result on the way out.

When gradients are needed the backward is our own: PyTorch's depthwise
weight gradient is slow on CPU (tens of times the forward), so the input
gradient is the same channels-last convolution with the flipped kernel and
the weight gradient is one multiply-and-sum over ``(batch, time)`` per kernel
tap, in float32 (or float64 for float64 inputs). Without gradients (inference), and under
tracing or export, the plain convolution runs, so TorchScript and ONNX
export see standard ops.

Authors
 * muselq_sb team
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from muselq_sb.utils.tracing import is_tracing


def _conv(x: torch.Tensor, weight: torch.Tensor,
          bias: Optional[torch.Tensor], left: int) -> torch.Tensor:
    """Channels-last depthwise convolution of ``x`` [B, T, C] (odd kernel)."""
    y = F.conv2d(
        x.transpose(1, 2).unsqueeze(2), weight.unsqueeze(2), bias,
        padding=(0, left), groups=x.shape[-1],
    )
    return y.squeeze(2).transpose(1, 2)


class _DepthwiseConv(torch.autograd.Function):
    """``y = depthwise_conv(x, w) + b`` with a cheap weight gradient."""

    @staticmethod
    def forward(ctx, x, weight, bias):  # type: ignore[override]
        """Runs in ``x``'s dtype (weights cast to it)."""
        weight = weight.to(x.dtype)
        bias = bias.to(x.dtype) if bias is not None else None
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return _conv(x, weight, bias, weight.shape[-1] // 2)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        """Input gradient by the flipped kernel; weight gradient tap by tap."""
        x, weight = ctx.saved_tensors
        k = weight.shape[-1]
        left = k // 2
        grad = grad.contiguous()
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = _conv(grad.to(weight.dtype), weight.flip(-1), None,
                           k - 1 - left)
        acc = torch.promote_types(x.dtype, torch.float32)
        if ctx.needs_input_grad[1]:
            g_acc = grad.to(acc)
            xp = F.pad(x.to(acc), (0, 0, left, k - 1 - left))
            steps = x.shape[1]
            buf = torch.empty_like(g_acc)
            grad_w = torch.empty(weight.shape[0], k, dtype=acc,
                                 device=x.device)
            for tap in range(k):
                torch.mul(xp[:, tap:tap + steps], g_acc, out=buf)
                grad_w[:, tap] = buf.sum((0, 1))
            grad_w = grad_w.unsqueeze(1)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.to(acc).sum((0, 1))
        return grad_x, grad_w, grad_b


def depthwise_conv1d(x: torch.Tensor, weight: torch.Tensor,
                     bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Depthwise convolution of ``x`` [B, T, C] with zero "same" padding.

    Arguments
    ---------
    x : torch.Tensor
        Frames, ``[batch, time, channels]``.
    weight : torch.Tensor
        ``[channels, 1, kernel]``, odd kernel (``nn.Conv1d``'s layout).
    bias : torch.Tensor, optional
        ``[channels]``.

    Returns
    -------
    torch.Tensor
        ``[batch, time, channels]``, contiguous. Under autocast it is
        computed in the autocast dtype; otherwise in ``x``'s dtype.

    Example
    -------
    >>> x, w = torch.randn(2, 9, 4), torch.randn(4, 1, 3)
    >>> ref = F.conv1d(x.transpose(1, 2), w, padding=1, groups=4)
    >>> torch.allclose(depthwise_conv1d(x, w), ref.transpose(1, 2), atol=1e-6)
    True
    """
    if weight.shape[-1] % 2 == 0:
        raise ValueError(
            f"depthwise_conv1d: kernel size must be odd, got {weight.shape[-1]}"
        )
    if x.shape[-1] != weight.shape[0]:
        raise ValueError(
            f"depthwise_conv1d: x has {x.shape[-1]} channels, weight "
            f"{weight.shape[0]}"
        )
    device = x.device.type
    if torch.is_autocast_enabled(device):
        x = x.to(torch.get_autocast_dtype(device))
    training = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (x, weight, bias))
    if not training or is_tracing():
        # plain ops: nothing to save for backward, and exportable
        bias = bias.to(x.dtype) if bias is not None else None
        with torch.autocast(device, enabled=False):
            return _conv(x, weight.to(x.dtype), bias, weight.shape[-1] // 2)
    with torch.autocast(device, enabled=False):
        return _DepthwiseConv.apply(x, weight, bias)


class TimeMajorDepthwiseConv(nn.Module):
    """Drop-in for SpeechBrain's depthwise ``Conv1d`` (``padding="same"``,
    zero padding, odd kernel) on ``[B, T, C]`` frames.

    Keeps the wrapped ``nn.Conv1d`` as ``conv`` (so parameter names and
    checkpoints are SpeechBrain's) and runs ``depthwise_conv1d`` with its
    weights.

    Arguments
    ---------
    conv : nn.Conv1d
        A depthwise convolution (``groups == in_channels == out_channels``,
        stride and dilation 1, odd kernel).

    Example
    -------
    >>> from speechbrain.nnet.CNN import Conv1d
    >>> sb = Conv1d(out_channels=4, kernel_size=5, input_shape=(1, 9, 4),
    ...     groups=4, padding="same", padding_mode="constant")
    >>> x = torch.randn(1, 9, 4)
    >>> torch.allclose(TimeMajorDepthwiseConv(sb.conv)(x), sb(x), atol=1e-6)
    True
    """

    def __init__(self, conv: nn.Conv1d) -> None:
        super().__init__()
        channels = conv.in_channels
        if not (conv.groups == channels == conv.out_channels
                and conv.stride == (1,) and conv.dilation == (1,)
                and conv.kernel_size[0] % 2 == 1):
            raise ValueError(
                "TimeMajorDepthwiseConv: expected a depthwise Conv1d with "
                f"stride 1, dilation 1 and an odd kernel, got {conv}"
            )
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` [B, T, C] -> [B, T, C]."""
        return depthwise_conv1d(x, self.conv.weight, self.conv.bias)
