"""Token mixers for SpeechBrain encoder layers, chosen by ``attention_type``.

SpeechBrain 1.1.2's layers build their ``mha_layer`` in an ``if/elif`` chain
without an ``else`` (an unknown type builds nothing and fails at the first
forward) and Branchformer has no RoPE. This module validates the type at
construction and builds the mixers SpeechBrain lacks.

Authors
 * muselq_sb team
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

import torch
from speechbrain.nnet.attention import RoPEMHA
from torch import nn

from muselq_sb.nnet.summary_mixing import SummaryMixing
from muselq_sb.utils.tracing import is_tracing

#: Mixers SpeechBrain's layers build themselves.
NATIVE_TYPES = ("regularMHA", "RelPosMHAXL", "hypermixing")
#: Every ``attention_type`` our encoders accept.
ATTENTION_TYPES = NATIVE_TYPES + (
    "RoPEMHA", "SummaryMixing", "SummaryMixing-lite"
)


def check_attention_type(attention_type: str) -> str:
    """Returns ``attention_type`` or raises ``ValueError`` listing the valid.

    Example
    -------
    >>> check_attention_type("SummaryMixing")
    'SummaryMixing'
    >>> check_attention_type("flash")
    Traceback (most recent call last):
    ...
    ValueError: unknown attention_type 'flash'; valid: ['regularMHA', 'RelPosMHAXL', 'hypermixing', 'RoPEMHA', 'SummaryMixing', 'SummaryMixing-lite']
    """
    if attention_type not in ATTENTION_TYPES:
        raise ValueError(
            f"unknown attention_type {attention_type!r}; valid: "
            f"{list(ATTENTION_TYPES)}"
        )
    return attention_type


def build_extra_mixer(
    attention_type: str,
    d_model: int,
    nhead: int,
    dropout: float,
    summary_mixing: Optional[Mapping[str, Any]] = None,
) -> Optional[nn.Module]:
    """Builds the mixers SpeechBrain's layers do not build themselves.

    Returns ``None`` for the native types (the SpeechBrain layer builds
    them), a ``RoPEMHA`` for ``"RoPEMHA"``, and a ``SummaryMixing`` (mode =
    the type) for the SummaryMixing types, configured by ``summary_mixing``
    (keyword arguments of ``SummaryMixing``; defaults size the hidden layers
    to ``d_model``).

    Example
    -------
    >>> build_extra_mixer("SummaryMixing-lite", 16, 2, 0.0).mode
    'SummaryMixing-lite'
    >>> build_extra_mixer("regularMHA", 16, 2, 0.0) is None
    True
    """
    check_attention_type(attention_type)
    if attention_type in NATIVE_TYPES:
        return None
    if attention_type == "RoPEMHA":
        return RoPEMHA(embed_dim=d_model, num_heads=nhead, dropout=dropout)
    kwargs = {
        "nhead": nhead,
        "local_proj_hid_dim": [d_model],
        "local_proj_out_dim": d_model,
        "summary_hid_dim": [d_model],
        "summary_out_dim": d_model,
        "global_dropout": dropout,
    }
    kwargs.update(summary_mixing or {})
    return SummaryMixing(enc_dim=d_model, mode=attention_type, **kwargs)


def drop_empty_mask(
    src_key_padding_mask: Optional[torch.Tensor],
) -> Optional[torch.Tensor]:
    """``None`` for a padding mask with no True entry (nothing padded), so
    that layers skip their masking; the mask itself otherwise, and always
    under tracing (no value-dependent branch in exported graphs).

    Example
    -------
    >>> drop_empty_mask(torch.zeros(2, 5, dtype=torch.bool)) is None
    True
    >>> drop_empty_mask(torch.tensor([[False, True]])).tolist()
    [[False, True]]
    """
    if (src_key_padding_mask is not None and not is_tracing()
            and not src_key_padding_mask.any()):
        return None
    return src_key_padding_mask


class PaddingZeroer(nn.Module):
    """Wraps a convolution so that padded frames enter it as zeros.

    SpeechBrain's convolution branches see padded frames (Branchformer's
    CSGU ignores masks; Conformer masks only the output), so a sequence's
    output changes with the padding around it in a batch. The owning layer
    sets ``pad_mask`` ([B, T] bool, True = padding) for the duration of its
    forward; with ``pad_mask`` None this is the wrapped module.

    Arguments
    ---------
    inner : nn.Module
        The convolution.
    time_dim : int
        Time axis of the convolution's input (1 for [B, T, C], 2 for
        [B, C, T]).

    Example
    -------
    >>> conv = PaddingZeroer(nn.Conv1d(2, 2, 3, padding=1), time_dim=2)
    >>> x = torch.rand(1, 2, 5)
    >>> conv.pad_mask = torch.tensor([[False, False, False, True, True]])
    >>> y = conv(x)
    >>> conv.pad_mask = None
    >>> torch.allclose(y[..., :3], conv(x[..., :3])[..., :3])
    True
    """

    def __init__(self, inner: nn.Module, time_dim: int) -> None:
        super().__init__()
        self.inner = inner
        self.time_dim = time_dim
        self.pad_mask: Optional[torch.Tensor] = None

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any):
        """Zeroes the padded frames of ``x``, then runs the convolution."""
        mask = self.pad_mask
        if mask is not None and mask.shape[1] == x.shape[self.time_dim]:
            m = mask[:, :, None] if self.time_dim == 1 else mask[:, None, :]
            x = x.masked_fill(m, 0.0)
        return self.inner(x, *args, **kwargs)


class PaddingAwareLayer:
    """Mixin for SpeechBrain encoder layers with a pluggable mixer.

    ``install`` replaces the layer's mixer where SpeechBrain does not build
    it and wraps its depthwise convolution in a ``PaddingZeroer``;
    ``forward`` sets the padding mask on the zeroers for the duration of the
    parent layer's ``forward`` and zeroes padded input frames, so that the
    valid frames of a sequence do not depend on the padding around them.
    """

    zeroers: list

    def install(
        self,
        attention_type: str,
        d_model: int,
        nhead: int,
        dropout: float,
        summary_mixing: Optional[Mapping[str, Any]],
        owner: nn.Module,
        time_dim: int,
    ) -> None:
        """Sets the mixer and wraps ``owner.conv`` (the depthwise conv)."""
        mixer = build_extra_mixer(
            attention_type, d_model, nhead, dropout, summary_mixing
        )
        if mixer is not None:
            self.mha_layer = mixer
        owner.conv = PaddingZeroer(owner.conv, time_dim=time_dim)
        self.zeroers = [owner.conv]

    def forward(self, x, src_mask=None, src_key_padding_mask=None,
                pos_embs=None, **kwargs):
        """Runs the SpeechBrain layer with padding kept out of every conv."""
        src_key_padding_mask = drop_empty_mask(src_key_padding_mask)
        if src_key_padding_mask is None:
            return super().forward(
                x, src_mask=src_mask, pos_embs=pos_embs, **kwargs
            )
        x = x.masked_fill(src_key_padding_mask[:, :, None], 0.0)
        for z in self.zeroers:
            z.pad_mask = src_key_padding_mask
        try:
            return super().forward(
                x, src_mask=src_mask,
                src_key_padding_mask=src_key_padding_mask,
                pos_embs=pos_embs, **kwargs,
            )
        finally:
            for z in self.zeroers:
                z.pad_mask = None
