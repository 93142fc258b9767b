"""The music encoder: waveform -> log-mel -> normalisation -> convolutional
subsampling (25 Hz) -> Branchformer / Conformer -> hidden states.

Authors
 * muselq_sb team
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
import yaml
from speechbrain.nnet.attention import RelPosEncXL
from torch import nn

from muselq_sb.lobes.frontend import (
    ConvSubsampling,
    FeatureNormalizer,
    MelFrontend,
    padding_mask,
    stack_frames,
    stacked_lengths,
)


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
        Width of the subsampling convolution.
    stack : int
        Mel frames per encoder frame (4: 100 Hz -> 25 Hz).

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
        self.subsampling = ConvSubsampling(n_mels, subsampling_channels, d_model)
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


def latest_checkpoint(save_folder: str | Path) -> Path:
    """The most recent complete checkpoint folder (``CKPT+*``) of a run.

    A folder counts only when its ``CKPT.yaml`` exists (written last by
    SpeechBrain), so a checkpoint cut by a crash is never picked.
    """
    save_folder = Path(save_folder)
    candidates = []
    for folder in save_folder.glob("CKPT+*"):
        meta = folder / "CKPT.yaml"
        if meta.is_file():
            with open(meta, encoding="utf-8") as f:
                info = yaml.safe_load(f) or {}
            candidates.append((float(info.get("unixtime", 0)), folder.name, folder))
    if not candidates:
        raise FileNotFoundError(f"no complete checkpoint in {save_folder}")
    return max(candidates)[2]


def load_music_model(
    source: str | Path,
    random_init: bool = False,
    device: str = "cpu",
    overrides: Optional[dict] = None,
) -> MusicModel:
    """Loads the encoder of a pre-training run, frozen, in eval mode.

    Arguments
    ---------
    source : path-like
        A pre-training output folder (its ``hyperparams.yaml`` and the
        latest ``save/CKPT+*/ssl_model.ckpt``).
    random_init : bool
        Same architecture with random weights, keeping the saved input
        normalisation statistics (the random-weights baseline).
    device : str
        Where to put the model.
    overrides : dict, optional
        HyperPyYAML overrides applied when rebuilding the model.

    Returns
    -------
    MusicModel
        With ``requires_grad`` off and ``eval()`` mode.
    """
    from hyperpyyaml import load_hyperpyyaml

    source = Path(source)
    hparams_file = source / "hyperparams.yaml"
    if not hparams_file.is_file():
        raise FileNotFoundError(
            f"{hparams_file} not found: source must be a pre-training "
            "output folder"
        )
    with open(hparams_file, encoding="utf-8") as f:
        hparams = load_hyperpyyaml(f, overrides or {})
    model: MusicModel = hparams["model"]
    ckpt = latest_checkpoint(source / "save") / "ssl_model.ckpt"
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    prefix = "model."
    own = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if random_init:
        own = {k: v for k, v in own.items() if k.startswith("normalizer.")}
        model.load_state_dict(own, strict=False)
    else:
        model.load_state_dict(own, strict=True)
    model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model
