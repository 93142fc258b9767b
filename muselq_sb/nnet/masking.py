"""BEST-RQ span masking: 400 ms spans (10 frames at 25 Hz), p = 0.2.

Each example's valid frames are cut into consecutive spans of ``span``
frames; every span is masked independently with probability ``prob`` (at
least one per example, so every example has a loss). Padding is never
masked. A fresh mask is drawn on every call.

Authors
 * muselq_sb team
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

FILLS = ("zeros", "noise")
DOMAINS = ("mel", "waveform")


def padding_mask(lens: torch.Tensor, max_len: int) -> torch.Tensor:
    """Bool [B, max_len], True on padding frames (SpeechBrain polarity).

    Example
    -------
    >>> padding_mask(torch.tensor([2, 3]), 3).tolist()
    [[False, False, True], [False, False, False]]
    """
    steps = torch.arange(max_len, device=lens.device)
    return steps[None, :] >= lens[:, None]


class SpanMasker(nn.Module):
    """Draws span masks and applies them to mel frames or waveforms.

    Arguments
    ---------
    span : int
        Span length in 25 Hz frames (10 = 400 ms).
    prob : float
        Probability that a span is masked.
    fill : str
        ``"zeros"`` (the normalised mean) or ``"noise"`` (Gaussian).
    noise_std : float
        Standard deviation of the noise fill.
    domain : str
        ``"mel"`` (mask normalised mel frames) or ``"waveform"`` (mask the
        samples before the front-end; targets still come from clean audio).

    Example
    -------
    >>> masker = SpanMasker(span=10, prob=0.2)
    >>> mask = masker(torch.tensor([100, 60]), 100)
    >>> mask.shape, bool(mask[1, 60:].any())
    (torch.Size([2, 100]), False)
    """

    def __init__(
        self,
        span: int = 10,
        prob: float = 0.2,
        fill: str = "zeros",
        noise_std: float = 0.1,
        domain: str = "mel",
    ) -> None:
        super().__init__()
        if fill not in FILLS:
            raise ValueError(f"SpanMasker: fill {fill!r} not in {list(FILLS)}")
        if domain not in DOMAINS:
            raise ValueError(
                f"SpanMasker: domain {domain!r} not in {list(DOMAINS)}"
            )
        self.span, self.prob, self.fill = span, prob, fill
        self.noise_std, self.domain = noise_std, domain

    def forward(
        self, lens: torch.Tensor, max_len: int,
        generator: Optional[torch.Generator] = None,
    ) -> torch.Tensor:
        """Mask [B, max_len] (True = masked) for absolute lengths ``lens``."""
        B = lens.shape[0]
        n_spans = -(-max_len // self.span)
        n_valid = (-(-lens.cpu() // self.span)).clamp(min=1)
        in_valid = torch.arange(n_spans)[None, :] < n_valid[:, None]
        draw = torch.rand(B, n_spans, generator=generator) < self.prob
        chosen = draw & in_valid
        # every example gets at least one span, inside its valid frames
        empty = ~chosen.any(dim=1)
        forced = (torch.rand(B, generator=generator) * n_valid).long()
        chosen[empty, forced[empty]] = True
        mask = chosen.repeat_interleave(self.span, dim=1)[:, :max_len]
        mask = mask.to(lens.device)
        return mask & ~padding_mask(lens, max_len)

    def apply(
        self, x: torch.Tensor, mask: torch.Tensor, per_frame: int
    ) -> torch.Tensor:
        """Fills what masked frames cover in ``x``: mel frames [B, T, F]
        (``per_frame`` = stack) or samples [B, N] (``per_frame`` = hop x
        stack); axis 1 of ``x`` holds ``per_frame`` steps per frame of
        ``mask`` [B, T25].

        Example
        -------
        >>> mask = torch.tensor([[False, True]])
        >>> SpanMasker().apply(torch.ones(1, 5, 1), mask, 2)[0, :, 0].tolist()
        [1.0, 1.0, 0.0, 0.0, 1.0]
        """
        m = mask.repeat_interleave(per_frame, dim=1)[:, : x.shape[1]]
        if m.shape[1] < x.shape[1]:
            m = nn.functional.pad(m, (0, x.shape[1] - m.shape[1]))
        where = m[:, :, None] if x.dim() == 3 else m
        if self.fill == "zeros":
            return x.masked_fill(where, 0.0)
        return torch.where(where, torch.randn_like(x) * self.noise_std, x)
