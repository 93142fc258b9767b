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
    stack : int
        Mel frames per 25 Hz frame.
    samples_per_frame : int
        Waveform samples per 25 Hz frame (960 at 24 kHz).

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
        stack: int = 4,
        samples_per_frame: int = 960,
    ) -> None:
        super().__init__()
        if fill not in FILLS:
            raise ValueError(f"SpanMasker: fill {fill!r} not in {list(FILLS)}")
        if domain not in DOMAINS:
            raise ValueError(
                f"SpanMasker: domain {domain!r} not in {list(DOMAINS)}"
            )
        self.span, self.prob, self.fill = span, prob, fill
        self.noise_std, self.domain, self.stack = noise_std, domain, stack
        self.samples_per_frame = samples_per_frame

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

    def _fill(self, x: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
        if self.fill == "zeros":
            return x.masked_fill(where, 0.0)
        noise = torch.randn_like(x) * self.noise_std
        return torch.where(where, noise, x)

    def apply_mel(self, mel: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Fills the mel frames [B, T100, F] of masked 25 Hz frames."""
        m = mask.repeat_interleave(self.stack, dim=1)[:, : mel.shape[1]]
        if m.shape[1] < mel.shape[1]:
            m = nn.functional.pad(m, (0, mel.shape[1] - m.shape[1]))
        return self._fill(mel, m[:, :, None])

    def apply_waveform(
        self, wavs: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Fills the samples [B, N] of masked 25 Hz frames."""
        m = mask.repeat_interleave(self.samples_per_frame, dim=1)
        m = m[:, : wavs.shape[1]]
        if m.shape[1] < wavs.shape[1]:
            m = nn.functional.pad(m, (0, wavs.shape[1] - m.shape[1]))
        return self._fill(wavs, m)
