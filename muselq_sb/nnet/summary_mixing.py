"""SummaryMixing: a linear-time alternative to multi-head self-attention.

Implements, from the equations of Parcollet et al., "SummaryMixing: A Linear-
Complexity Alternative to Self-Attention for Speech Recognition and
Understanding" (arXiv 2307.07421), for frames ``x_1..x_T`` of one sequence:

* local transform  ``f(x_t)`` (a small per-frame MLP),
* summary          ``s_bar = mean_t s(x_t)`` over the *valid* frames only,
* combiner         ``h_t = c([f(x_t); s_bar])``.

``SummaryMixing-lite`` drops ``f`` and returns ``c(s_bar)`` for every frame.
Multi-head (``nhead > 1``) splits the features into ``nhead`` groups with
their own weights in ``f`` and ``s`` (block-diagonal linear layers).

The module follows SpeechBrain's attention call signature
``(query, key, value, attn_mask, key_padding_mask, pos_embs) -> (out, None)``
with SpeechBrain's mask polarity (``True`` = padding / blocked), so it can be
set as the ``mha_layer`` of SpeechBrain's Branchformer and Conformer layers.

Authors
 * muselq_sb team
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Type

import torch
from torch import nn

MODES = ("SummaryMixing", "SummaryMixing-lite")


class GroupedLinear(nn.Module):
    """A linear layer applied separately to ``groups`` slices of features.

    Equivalent to a block-diagonal weight matrix: cost and parameters are
    divided by ``groups``.

    Arguments
    ---------
    in_features : int
        Input size (divisible by ``groups``).
    out_features : int
        Output size (divisible by ``groups``).
    groups : int
        Number of independent slices.
    bias : bool
        Whether to add a bias.

    Example
    -------
    >>> lin = GroupedLinear(8, 4, groups=2)
    >>> lin(torch.rand(3, 5, 8)).shape
    torch.Size([3, 5, 4])
    >>> sum(p.numel() for p in lin.parameters())
    20
    """

    def __init__(
        self, in_features: int, out_features: int, groups: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if in_features % groups or out_features % groups:
            raise ValueError(
                f"GroupedLinear: in_features={in_features} and out_features="
                f"{out_features} must both be divisible by groups={groups}"
            )
        self.groups = groups
        self.weight = nn.Parameter(
            torch.empty(groups, in_features // groups, out_features // groups)
        )
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        bound = 1.0 / math.sqrt(in_features // groups)
        nn.init.uniform_(self.weight, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Applies the grouped projection to ``x`` [..., in_features]."""
        if self.groups == 1:
            out = x @ self.weight[0]
        else:
            shape = x.shape[:-1]
            xg = x.reshape(*shape, self.groups, -1)
            out = torch.einsum("...gi,gio->...go", xg, self.weight)
            out = out.reshape(*shape, -1)
        return out if self.bias is None else out + self.bias


def _mlp(
    in_dim: int, hidden: Sequence[int], out_dim: int, groups: int,
    activation: Type[nn.Module],
) -> nn.Sequential:
    """A per-frame MLP: (GroupedLinear, activation) for every layer."""
    dims = [in_dim, *hidden, out_dim]
    layers: list[nn.Module] = []
    for a, b in zip(dims[:-1], dims[1:]):
        layers += [GroupedLinear(a, b, groups), activation()]
    return nn.Sequential(*layers)


class SummaryMixing(nn.Module):
    """SummaryMixing token mixer with SpeechBrain's attention interface.

    Arguments
    ---------
    enc_dim : int
        Model dimension (input and output size).
    nhead : int
        Number of feature groups ("heads") in the local and summary MLPs.
    local_proj_hid_dim : sequence of int
        Hidden sizes of the local MLP ``f``.
    local_proj_out_dim : int
        Output size of ``f``.
    summary_hid_dim : sequence of int
        Hidden sizes of the summary MLP ``s``.
    summary_out_dim : int
        Output size of ``s``.
    activation : type
        Activation class used in every MLP layer.
    global_dropout : float
        Dropout on the output.
    mode : str
        ``"SummaryMixing"`` or ``"SummaryMixing-lite"``.

    Example
    -------
    >>> mixer = SummaryMixing(enc_dim=16, nhead=2, local_proj_hid_dim=[16],
    ...                       local_proj_out_dim=16, summary_hid_dim=[16],
    ...                       summary_out_dim=16)
    >>> x = torch.rand(2, 10, 16)
    >>> pad = torch.zeros(2, 10, dtype=torch.bool); pad[1, 6:] = True
    >>> out, attn = mixer(x, x, x, key_padding_mask=pad)
    >>> out.shape, attn
    (torch.Size([2, 10, 16]), None)
    """

    def __init__(
        self,
        enc_dim: int,
        nhead: int = 1,
        local_proj_hid_dim: Sequence[int] = (512,),
        local_proj_out_dim: int = 512,
        summary_hid_dim: Sequence[int] = (512,),
        summary_out_dim: int = 512,
        activation: Type[nn.Module] = nn.GELU,
        global_dropout: float = 0.1,
        mode: str = "SummaryMixing",
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(
                f"SummaryMixing: unknown mode {mode!r}; valid: {list(MODES)}"
            )
        self.mode = mode
        self.summary_proj = _mlp(
            enc_dim, summary_hid_dim, summary_out_dim, nhead, activation
        )
        if mode == "SummaryMixing":
            self.local_proj = _mlp(
                enc_dim, local_proj_hid_dim, local_proj_out_dim, nhead,
                activation,
            )
            self.combiner = nn.Sequential(
                nn.Linear(local_proj_out_dim + summary_out_dim, enc_dim),
                activation(),
            )
        else:
            self.local_proj = None
            self.combiner = nn.Sequential(
                nn.Linear(summary_out_dim, enc_dim), activation()
            )
        self.dropout = nn.Dropout(global_dropout)

    def summary(
        self,
        s: torch.Tensor,
        key_padding_mask: Optional[torch.Tensor] = None,
        attn_mask: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Mean of ``s`` [B, T, D] over the frames each frame may see.

        Padding frames (``key_padding_mask`` True) never enter the mean. With
        no ``attn_mask`` the result is [B, 1, D] (one summary per sequence,
        cost linear in T); with a [T, T] boolean ``attn_mask`` (True =
        blocked, e.g. chunked training) it is [B, T, D].
        The sum is accumulated in float32, also under autocast.
        """
        B, T, _ = s.shape
        s32 = s.float()
        if key_padding_mask is None:
            keep = torch.ones(B, T, device=s.device)
        else:
            keep = (~key_padding_mask.bool()).float()
        if attn_mask is None:
            total = torch.einsum("btd,bt->bd", s32, keep)
            count = keep.sum(dim=1).clamp(min=1.0)
            return (total / count[:, None]).unsqueeze(1)
        allowed = (~attn_mask.bool()).float()  # [T, T]
        weights = allowed[None] * keep[:, None, :]  # [B, T, T]
        count = weights.sum(dim=-1, keepdim=True).clamp(min=1.0)
        return torch.bmm(weights, s32) / count

    def forward(
        self,
        query: torch.Tensor,
        key: Optional[torch.Tensor] = None,
        value: Optional[torch.Tensor] = None,
        attn_mask: Optional[torch.Tensor] = None,
        key_padding_mask: Optional[torch.Tensor] = None,
        pos_embs: Optional[torch.Tensor] = None,
    ) -> tuple[torch.Tensor, None]:
        """Mixes the frames of ``query`` [B, T, enc_dim].

        ``key``, ``value`` and ``pos_embs`` are accepted for interface
        compatibility with SpeechBrain attention and ignored (self-mixing).

        Returns
        -------
        out : torch.Tensor
            [B, T, enc_dim].
        attn : None
            SummaryMixing has no attention map.
        """
        s_bar = self.summary(self.summary_proj(query), key_padding_mask,
                             attn_mask)
        return self.mix(query, s_bar), None

    def chunked_summary(self, x: torch.Tensor, chunk_frames: int,
                        norm: Optional[nn.Module] = None) -> torch.Tensor:
        """The summary of unpadded ``x`` [B, T, enc_dim], ``chunk_frames``
        frames at a time (``norm`` applied to each chunk first).

        Equals ``summary(summary_proj(norm(x)))`` without holding the
        ``[B, T, summary_out_dim]`` projection: for inference on long inputs.

        Returns
        -------
        torch.Tensor
            [B, 1, summary_out_dim], float32.
        """
        total = 0.0
        for start in range(0, x.shape[1], chunk_frames):
            chunk = x[:, start:start + chunk_frames]
            if norm is not None:
                chunk = norm(chunk)
            total = total + self.summary_proj(chunk).float().sum(dim=1)
        return (total / max(x.shape[1], 1)).unsqueeze(1)

    def mix(self, x: torch.Tensor, s_bar: torch.Tensor) -> torch.Tensor:
        """Combines each frame of ``x`` [B, T, enc_dim] with the summary
        ``s_bar`` ([B, 1, D], or [B, T, D] under an attention mask)."""
        if self.local_proj is None:
            out = self.combiner(s_bar.to(x.dtype)).expand(-1, x.shape[1], -1)
            return self.dropout(out)
        local = self.local_proj(x)
        linear, act = self.combiner[0], self.combiner[1]
        if not isinstance(linear, nn.Linear):  # e.g. int8-quantised
            s_bar = s_bar.expand(-1, x.shape[1], -1).to(local.dtype)
            out = self.combiner(torch.cat([local, s_bar], dim=-1))
            return self.dropout(out)
        # c([f(x_t); s_bar]) = act(W_f f(x_t) + W_s s_bar + b): the summary
        # half is computed once per sequence (or row), not once per frame
        n_local = local.shape[-1]
        from_local = nn.functional.linear(
            local, linear.weight[:, :n_local], linear.bias
        )
        from_summary = nn.functional.linear(
            s_bar.to(from_local.dtype), linear.weight[:, n_local:]
        )
        return self.dropout(act(from_local + from_summary))
