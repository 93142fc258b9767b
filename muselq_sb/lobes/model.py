"""The music encoder: waveform -> log-mel -> normalisation -> convolutional
subsampling (25 Hz) -> Branchformer / Conformer -> hidden states.

Loading a trained one, and turning audio into embeddings with it:
:mod:`muselq_sb.inference.embedding`.

Authors
 * muselq_sb team
"""
from __future__ import annotations

from typing import Optional

import torch
from speechbrain.nnet.attention import RelPosEncXL
from torch import nn

from muselq_sb.lobes.frontend import (
    ConvSubsampling,
    FeatureNormalizer,
    MelFrontend,
    stack_frames,
    stacked_lengths,
)
from muselq_sb.nnet.masking import padding_mask


class MusicModel(nn.Module):
    """Front-end + encoder; the module probes, inference and export use.

    Arguments
    ---------
    encoder : nn.Module
        A ``muselq_sb.lobes`` Branchformer or Conformer encoder.
    d_model : int
        Encoder width.
    frontend : MelFrontend, optional
        Log-mel front-end (default: 24 kHz, 128 bins, 100 Hz).
    normalizer : FeatureNormalizer, optional
        Input normalisation (statistics saved with the model).
    subsampling_channels : int
        Width of the subsampling convolutions.
    stack : int
        Mel frames per encoder frame, a power of two (4: 100 Hz -> 25 Hz).

    Example
    -------
    >>> from muselq_sb.lobes.branchformer import BranchformerEncoder
    >>> enc = BranchformerEncoder(2, d_model=32, nhead=2, kernel_size=3,
    ...                           csgu_linear_units=64)
    >>> model = MusicModel(enc, d_model=32, subsampling_channels=32)
    >>> hidden = model(torch.rand(2, 24000), torch.tensor([1.0, 0.7]))
    >>> len(hidden), hidden[-1].shape, model.frame_rate
    (3, torch.Size([2, 26, 32]), 25.0)
    """

    def __init__(
        self,
        encoder: nn.Module,
        d_model: int,
        frontend: Optional[MelFrontend] = None,
        normalizer: Optional[FeatureNormalizer] = None,
        subsampling_channels: int = 256,
        stack: int = 4,
    ) -> None:
        super().__init__()
        self.frontend = frontend or MelFrontend()
        n_mels = self.frontend.n_mels
        self.normalizer = normalizer or FeatureNormalizer(n_mels)
        self.subsampling = ConvSubsampling(
            n_mels, subsampling_channels, d_model, stack=stack)
        self.encoder = encoder
        self.encoder.output_hidden_states = True
        self.d_model = d_model
        self.stack = stack
        self.pos_enc = (
            RelPosEncXL(d_model)
            if getattr(encoder, "attention_type", None) == "RelPosMHAXL"
            else None
        )

    @property
    def frame_rate(self) -> float:
        """Encoder frames (embeddings) per second."""
        return self.frontend.frame_rate / self.stack

    @property
    def frame_samples(self) -> int:
        """Waveform samples per encoder frame (hop x stack: 960 at 24 kHz)."""
        return self.frontend.hop_length * self.stack

    @property
    def num_layers(self) -> int:
        """Number of encoder layers."""
        return len(self.encoder.layers)

    @property
    def target_dim(self) -> int:
        """Size of a stacked mel frame (the quantizer / MSE target)."""
        return self.frontend.n_mels * self.stack

    def features(
        self, wavs: torch.Tensor, wav_lens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised log-mel [B, T100, n_mels] and absolute frame lengths.

        Padding frames are zero. The normaliser's statistics are frozen
        (computed once before pre-training).
        """
        mel, lens = self.frontend(wavs, wav_lens)
        return self.normalizer(mel, lens), lens

    def targets(self, mel: torch.Tensor) -> torch.Tensor:
        """Stacked mel frames [B, T25, n_mels * stack] (targets)."""
        return stack_frames(mel, self.stack)

    def encode(
        self, mel: torch.Tensor, lens: torch.Tensor
    ) -> list[torch.Tensor]:
        """Hidden states of normalised (possibly masked) mel frames.

        Returns ``num_layers + 1`` tensors [B, T25, d_model]: the subsampled
        input, then each layer's output; the last one carries the encoder's
        final LayerNorm (it is what the pre-training heads see).
        """
        x = self.subsampling(mel)
        lens25 = stacked_lengths(lens, self.stack)
        pad = padding_mask(lens25, x.shape[1])
        x = x.masked_fill(pad[:, :, None], 0.0)
        pos = self.pos_enc(x) if self.pos_enc is not None else None
        out, _, hidden = self.encoder(
            x, src_key_padding_mask=pad, pos_embs=pos
        )
        return list(hidden[:-1]) + [out]

    def forward(
        self, wavs: torch.Tensor, wav_lens: torch.Tensor
    ) -> list[torch.Tensor]:
        """Hidden states of waveforms [B, N] (24 kHz) with relative lengths."""
        mel, lens = self.features(wavs, wav_lens)
        return self.encode(mel, lens)

    def output_lengths(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> torch.Tensor:
        """Valid encoder frames per example (absolute)."""
        n_samples = torch.round(wav_lens.float() * wavs.shape[1]).long()
        return stacked_lengths(self.frontend.frame_lengths(n_samples), self.stack)
