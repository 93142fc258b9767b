"""Branchformer encoder whose global branch can be any mixer, SummaryMixing
and RoPE attention included, built on SpeechBrain 1.1.2's Branchformer.

Authors
 * muselq_sb team
"""
from __future__ import annotations

from typing import Any, Mapping, Optional, Type

from speechbrain.lobes.models.transformer import Branchformer as sb_brn
from torch import nn

from muselq_sb.lobes.mixers import PaddingAwareLayer, check_attention_type
from muselq_sb.nnet.depthwise_conv import TimeMajorDepthwiseConv


class BranchformerEncoderLayer(PaddingAwareLayer, sb_brn.BranchformerEncoderLayer):
    """SpeechBrain's Branchformer layer with a validated, pluggable mixer.

    Same arguments as ``speechbrain...BranchformerEncoderLayer``, plus
    ``summary_mixing`` (keyword arguments of ``SummaryMixing``).
    ``attention_type`` is one of ``muselq_sb.lobes.mixers.ATTENTION_TYPES``.
    Padded frames are kept out of the convolutional branch.

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
    ) -> None:
        check_attention_type(attention_type)
        super().__init__(
            d_model, nhead, kernel_size=kernel_size, kdim=kdim, vdim=vdim,
            activation=activation, dropout=dropout,
            attention_type=attention_type,
            csgu_linear_units=csgu_linear_units,
            gate_activation=gate_activation,
            use_linear_after_conv=use_linear_after_conv,
        )
        csgu = self.convolution_branch.csgu
        # zero (not SpeechBrain's reflect) padding at the sequence ends, so a
        # sequence sees the same borders alone and padded in a batch
        csgu.conv.padding_mode = "constant"
        # same weights, no [B, T, C] <-> [B, C, T] copies, cheap backward
        csgu.conv = TimeMajorDepthwiseConv(csgu.conv.conv)
        self.install(attention_type, d_model, nhead, dropout, summary_mixing,
                     owner=csgu, time_dim=1)


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
