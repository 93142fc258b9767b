"""Conformer encoder whose attention can be any mixer, SummaryMixing
included, built on SpeechBrain 1.1.2's Conformer.

Authors
 * muselq_sb team
"""
from __future__ import annotations

from typing import Any, Mapping, Optional, Type

from speechbrain.lobes.models.transformer import Conformer as sb_cnf
from speechbrain.nnet.activations import Swish
from torch import nn

from muselq_sb.lobes.mixers import PaddingAwareLayer, check_attention_type


class ConformerEncoderLayer(PaddingAwareLayer, sb_cnf.ConformerEncoderLayer):
    """SpeechBrain's Conformer layer with a validated, pluggable mixer.

    Same arguments as ``speechbrain...ConformerEncoderLayer`` plus
    ``summary_mixing`` (keyword arguments of ``SummaryMixing``). Padded
    frames enter the depthwise convolution as zeros.

    Example
    -------
    >>> import torch
    >>> layer = ConformerEncoderLayer(d_model=16, d_ffn=32, nhead=2,
    ...     kernel_size=3, attention_type="SummaryMixing-lite")
    >>> layer(torch.rand(2, 7, 16))[0].shape
    torch.Size([2, 7, 16])
    """

    def __init__(
        self,
        d_model: int,
        d_ffn: int,
        nhead: int,
        kernel_size: int = 31,
        kdim: Optional[int] = None,
        vdim: Optional[int] = None,
        activation: Type[nn.Module] = Swish,
        bias: bool = True,
        dropout: float = 0.0,
        causal: bool = False,
        attention_type: str = "SummaryMixing",
        summary_mixing: Optional[Mapping[str, Any]] = None,
    ) -> None:
        check_attention_type(attention_type)
        super().__init__(
            d_model, d_ffn, nhead, kernel_size=kernel_size, kdim=kdim,
            vdim=vdim, activation=activation, bias=bias, dropout=dropout,
            causal=causal, attention_type=attention_type,
        )
        self.install(attention_type, d_model, nhead, dropout, summary_mixing,
                     owner=self.convolution_module, time_dim=2)


class ConformerEncoder(sb_cnf.ConformerEncoder):
    """SpeechBrain's Conformer encoder built from our layers.

    Arguments
    ---------
    num_layers : int
        Number of layers.
    d_model : int
        Model width.
    d_ffn : int
        Feed-forward width.
    nhead : int
        Attention heads / SummaryMixing groups.
    attention_type : str
        One of ``muselq_sb.lobes.mixers.ATTENTION_TYPES``.
    output_hidden_states : bool
        Also return every layer's output.
    layerdrop_prob : float
        Probability of skipping a layer in training.
    **layer_kwargs
        The other arguments of ``ConformerEncoderLayer`` (``kernel_size``,
        ``dropout``, ``activation``, ``causal``, ..., ``summary_mixing``).

    Example
    -------
    >>> import torch
    >>> enc = ConformerEncoder(2, d_model=16, d_ffn=32, nhead=2,
    ...     kernel_size=3, attention_type="RoPEMHA", output_hidden_states=True)
    >>> out, attn, hidden = enc(torch.rand(2, 9, 16))
    >>> out.shape, len(hidden)
    (torch.Size([2, 9, 16]), 3)
    """

    def __init__(
        self,
        num_layers: int,
        d_model: int,
        d_ffn: int,
        nhead: int,
        attention_type: str = "SummaryMixing",
        output_hidden_states: bool = False,
        layerdrop_prob: float = 0.0,
        **layer_kwargs: Any,
    ) -> None:
        check_attention_type(attention_type)
        super().__init__(
            0, d_model, d_ffn, nhead, attention_type=attention_type,
            output_hidden_states=output_hidden_states,
            layerdrop_prob=layerdrop_prob,
        )
        self.d_model = d_model
        self.layers = nn.ModuleList(
            ConformerEncoderLayer(
                d_model, d_ffn, nhead, attention_type=attention_type,
                **layer_kwargs,
            )
            for _ in range(num_layers)
        )
