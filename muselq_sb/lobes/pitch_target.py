"""A pitch-aware pre-training target: the semitone spectrum of each encoder
frame (a CQT-like log-frequency spectrum, the kind of target MERT adds
beside its acoustic tokens).

The BEST-RQ targets (random projections of stacked 128-bin log-mels) follow
the broad spectral envelope; the mel scale's 2048-point STFT cannot even
separate neighbouring semitones below ~200 Hz. This target is computed from
a long STFT (8192 points at 24 kHz: 2.9 Hz per bin) pooled into semitone
bands, so reconstructing it asks the encoder to keep which notes sound.

Authors
 * muselq_sb team
"""
from __future__ import annotations

import math

import torch
from torch import nn

from muselq_sb.lobes.frontend import pad_to_multiple


def semitone_filterbank(
    sample_rate: int, n_fft: int, lowest_midi: int, n_bins: int
) -> torch.Tensor:
    """[n_bins, n_fft // 2 + 1] triangular weights in log-frequency.

    Bin ``k`` is MIDI note ``lowest_midi + k``: an FFT bin at frequency ``f``
    weighs ``max(0, 1 - |12 log2(f / f_k)|)``, so each FFT bin is shared by
    its two nearest semitones. Rows are normalised to sum to one (a mean of
    power over the band); a band that no FFT bin reaches is an error.

    Example
    -------
    >>> fb = semitone_filterbank(24000, 8192, 36, 72)
    >>> fb.shape, bool(torch.allclose(fb.sum(1), torch.ones(72)))
    (torch.Size([72, 4097]), True)
    """
    freqs = torch.arange(n_fft // 2 + 1, dtype=torch.float64) * sample_rate / n_fft
    centres = 440.0 * 2.0 ** ((torch.arange(n_bins, dtype=torch.float64)
                               + lowest_midi - 69) / 12)
    if centres[-1] * 2 ** (1 / 12) >= sample_rate / 2:
        raise ValueError(
            f"semitone_filterbank: the highest band (MIDI {lowest_midi + n_bins - 1}) "
            f"reaches the Nyquist frequency of {sample_rate} Hz")
    distance = 12 * torch.log2(freqs[1:, None] / centres[None, :])  # [F-1, n_bins]
    weights = (1 - distance.abs()).clamp(min=0)
    weights = torch.cat([torch.zeros(1, n_bins, dtype=weights.dtype), weights]).T
    empty = (weights.sum(1) == 0).nonzero().flatten()
    if len(empty):
        raise ValueError(
            f"semitone_filterbank: no FFT bin of a {n_fft}-point STFT at "
            f"{sample_rate} Hz falls in the band of MIDI {lowest_midi + int(empty[0])}; "
            f"raise n_fft or lowest_midi")
    return (weights / weights.sum(1, keepdim=True)).float()


class SemitoneSpectrum(nn.Module):
    """Waveform -> per-frame standardised log semitone spectrum at the
    encoder rate: [B, N] -> [B, T25, n_bins].

    Frame ``t`` of the 100 Hz STFT is centred on sample ``hop_length * t``,
    like the log-mel's, so stacking ``stack`` frames aligns the target with
    the stacked mel target and the encoder frame. Each stacked frame's log
    spectrum is standardised over its bins (mean 0, std 1): loudness goes,
    which notes sound (and their octave) stays.

    Arguments
    ---------
    sample_rate : int
        Input sample rate.
    n_fft : int
        STFT size (8192 at 24 kHz: 2.9 Hz per bin).
    hop_length : int
        Hop in samples (the log-mel's).
    stack : int
        STFT frames per encoder frame (the model's).
    lowest_midi : int
        MIDI note of the first band (36: C2, 65 Hz).
    n_bins : int
        Number of semitone bands (72: six octaves, up to B7).
    log_offset : float
        Added to the band power before the log.

    Example
    -------
    >>> target = SemitoneSpectrum()
    >>> t = torch.arange(24000) / 24000
    >>> a4 = torch.sin(2 * math.pi * 440.0 * t)[None]   # MIDI 69
    >>> spec = target(a4)
    >>> spec.shape, int(spec[0, 10].argmax()) + target.lowest_midi
    (torch.Size([1, 26, 72]), 69)
    """

    def __init__(
        self,
        sample_rate: int = 24000,
        n_fft: int = 8192,
        hop_length: int = 240,
        stack: int = 4,
        lowest_midi: int = 36,
        n_bins: int = 72,
        log_offset: float = 1e-6,
    ) -> None:
        super().__init__()
        self.n_fft, self.hop_length, self.stack = n_fft, hop_length, stack
        self.lowest_midi, self.n_bins, self.log_offset = lowest_midi, n_bins, log_offset
        self.register_buffer(
            "filterbank",
            semitone_filterbank(sample_rate, n_fft, lowest_midi, n_bins),
            persistent=False,
        )
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    @torch.no_grad()
    def forward(self, wavs: torch.Tensor) -> torch.Tensor:
        """Targets of zero-padded waveforms [B, N] (one STFT per row, to
        bound memory)."""
        half = self.n_fft // 2
        frames = []
        with torch.autocast(wavs.device.type, enabled=False):
            for wav in nn.functional.pad(wavs.float(), (half, half)):
                spec = torch.stft(wav, self.n_fft, self.hop_length,
                                  window=self.window, center=False,
                                  return_complex=True)
                frames.append(self.filterbank @ spec.abs().pow(2))  # [n_bins, T100]
            power = torch.stack(frames).transpose(1, 2)  # [B, T100, n_bins]
            power = pad_to_multiple(power, self.stack)
            B, T, F = power.shape
            power = power.view(B, T // self.stack, self.stack, F).mean(2)
            logspec = torch.log(power + self.log_offset)
            mean = logspec.mean(-1, keepdim=True)
            std = logspec.std(-1, keepdim=True).clamp(min=1e-3)
        return (logspec - mean) / std
