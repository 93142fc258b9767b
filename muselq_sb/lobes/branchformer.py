"""Branchformer encoder whose global branch can be any mixer, SummaryMixing
and RoPE attention included, built on SpeechBrain 1.1.2's Branchformer.

Authors
 * muselq_sb team
"""
from __future__ import annotations

from typing import Any, Mapping, Optional, Type

import torch
from speechbrain.lobes.models.transformer import Branchformer as sb_brn
from torch import nn

from muselq_sb.lobes.mixers import (
    PaddingAwareLayer, check_attention_type, drop_empty_mask,
)
from muselq_sb.nnet.depthwise_conv import TimeMajorDepthwiseConv
from muselq_sb.nnet.summary_mixing import SummaryMixing
from muselq_sb.utils.tracing import is_tracing


class BranchformerEncoderLayer(PaddingAwareLayer, sb_brn.BranchformerEncoderLayer):
    """SpeechBrain's Branchformer layer with a validated, pluggable mixer.

    Same arguments as ``speechbrain...BranchformerEncoderLayer``, plus
    ``summary_mixing`` (keyword arguments of ``SummaryMixing``).
    ``attention_type`` is one of ``muselq_sb.lobes.mixers.ATTENTION_TYPES``.
    Padded frames are kept out of the convolutional branch.

    In inference (eval mode, no grad, no padding, no attention mask) a
    SummaryMixing layer runs ``inference_chunk_frames`` frames at a time:
    the output is the same, but activation memory stays bounded by the chunk
    and the time per frame stays that of a short input (large
    intermediate tensors no longer fall out of the CPU caches). 0 turns it
    off; attention layers always run whole.

    Example
    -------
    >>> import torch
    >>> layer = BranchformerEncoderLayer(d_model=16, nhead=2,
    ...     attention_type="RoPEMHA", csgu_linear_units=32, kernel_size=3)
    >>> layer(torch.rand(2, 7, 16))[0].shape
    torch.Size([2, 7, 16])
    """

    def __init__(
        self,
        d_model: int,
        nhead: int,
        kernel_size: int = 31,
        kdim: Optional[int] = None,
        vdim: Optional[int] = None,
        activation: Type[nn.Module] = nn.GELU,
        dropout: float = 0.0,
        attention_type: str = "SummaryMixing",
        csgu_linear_units: int = 3072,
        gate_activation: Type[nn.Module] = nn.Identity,
        use_linear_after_conv: bool = False,
        summary_mixing: Optional[Mapping[str, Any]] = None,
        inference_chunk_frames: int = 1024,
    ) -> None:
        check_attention_type(attention_type)
        if inference_chunk_frames < 0:
            raise ValueError(
                "BranchformerEncoderLayer: inference_chunk_frames must be >= 0 "
                f"(0 = off), got {inference_chunk_frames}")
        super().__init__(
            d_model, nhead, kernel_size=kernel_size, kdim=kdim, vdim=vdim,
            activation=activation, dropout=dropout,
            attention_type=attention_type,
            csgu_linear_units=csgu_linear_units,
            gate_activation=gate_activation,
            use_linear_after_conv=use_linear_after_conv,
        )
        csgu = self.convolution_branch.csgu
        # same weights; zero (not SpeechBrain's reflect) padding at the
        # sequence ends, so a sequence sees the same borders alone and padded
        # in a batch; no [B, T, C] <-> [B, C, T] copies; cheap backward
        csgu.conv = TimeMajorDepthwiseConv(csgu.conv.conv)
        self.install(attention_type, d_model, nhead, dropout, summary_mixing,
                     owner=csgu, time_dim=1)
        self.conv_halo = kernel_size // 2
        self.inference_chunk_frames = inference_chunk_frames

    def forward(self, x, src_mask=None, src_key_padding_mask=None,
                pos_embs=None, **kwargs):
        """SpeechBrain's layer, or its time-chunked form (see the class)."""
        src_key_padding_mask = drop_empty_mask(src_key_padding_mask)
        if self._chunkable(x, src_mask, src_key_padding_mask):
            return self._chunked_forward(x), None
        return super().forward(x, src_mask=src_mask,
                               src_key_padding_mask=src_key_padding_mask,
                               pos_embs=pos_embs, **kwargs)

    def _chunkable(self, x, src_mask, src_key_padding_mask) -> bool:
        if is_tracing():  # exported graphs: the whole layer, no shape guards
            return False
        chunk = self.inference_chunk_frames
        return (not self.training and not torch.is_grad_enabled()
                and src_mask is None
                and isinstance(self.mha_layer, SummaryMixing)
                and src_key_padding_mask is None
                and 0 < chunk < x.shape[1])

    def _chunked_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The layer's eval-mode output, ``inference_chunk_frames`` at a time.

        Pass 1 accumulates the SummaryMixing summary over chunks; pass 2
        mixes each chunk and runs the convolution branch on it plus
        ``kernel_size // 2`` frames of context each side, which gives the
        same frames as the whole sequence would.
        """
        chunk, halo, steps = self.inference_chunk_frames, self.conv_halo, x.shape[1]
        s_bar = self.mha_layer.chunked_summary(x, chunk, self.norm_mhsa)
        out = torch.empty_like(x)
        for start in range(0, steps, chunk):
            stop = min(steps, start + chunk)
            x1 = self.mha_layer.mix(self.norm_mhsa(x[:, start:stop]), s_bar)
            lo, hi = max(0, start - halo), min(steps, stop + halo)
            x2 = self.convolution_branch(self.norm_conv(x[:, lo:hi]))
            x2 = x2[:, start - lo:stop - lo]
            out[:, start:stop] = x[:, start:stop] + self.merge_proj(
                torch.cat([x1, x2], dim=-1))
        return out


class BranchformerEncoder(sb_brn.BranchformerEncoder):
    """SpeechBrain's Branchformer encoder built from our layers.

    Arguments
    ---------
    num_layers : int
        Number of layers.
    d_model : int
        Model width.
    nhead : int
        Attention heads / SummaryMixing groups.
    attention_type : str
        One of ``muselq_sb.lobes.mixers.ATTENTION_TYPES``.
    output_hidden_states : bool
        Also return every layer's output.
    layerdrop_prob : float
        Probability of skipping a layer in training.
    **layer_kwargs
        The other arguments of ``BranchformerEncoderLayer`` (``kernel_size``,
        ``csgu_linear_units``, ``dropout``, ``activation``, ...,
        ``summary_mixing``).

    Example
    -------
    >>> import torch
    >>> enc = BranchformerEncoder(2, d_model=16, nhead=2, kernel_size=3,
    ...     csgu_linear_units=32, output_hidden_states=True)
    >>> out, attn, hidden = enc(torch.rand(2, 9, 16))
    >>> out.shape, len(hidden)
    (torch.Size([2, 9, 16]), 3)
    """

    def __init__(
        self,
        num_layers: int,
        d_model: int,
        nhead: int,
        attention_type: str = "SummaryMixing",
        output_hidden_states: bool = False,
        layerdrop_prob: float = 0.0,
        **layer_kwargs: Any,
    ) -> None:
        check_attention_type(attention_type)
        super().__init__(
            0, d_model, nhead, attention_type=attention_type,
            output_hidden_states=output_hidden_states,
            layerdrop_prob=layerdrop_prob,
        )
        self.d_model = d_model
        self.layers = nn.ModuleList(
            BranchformerEncoderLayer(
                d_model, nhead, attention_type=attention_type, **layer_kwargs
            )
            for _ in range(num_layers)
        )
