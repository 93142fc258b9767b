"""``MusicEncoder``: embeddings of any audio file or batch, whole tracks included.

A SpeechBrain ``Pretrained`` interface around the one embedding path of
:mod:`muselq_sb.inference.embedding`:

* ``MusicEncoder.from_path(path)`` loads a packaged model folder (safetensors
  + yaml, no pickle) or the latest checkpoint of a pre-training run
  (``weights_only`` loading) with :func:`~muselq_sb.inference.embedding.load_model`;
* ``encode_file`` / ``encode_batch`` return one layer, several layers, all
  layers or a weighted sum of layers, per frame or pooled over time; long
  inputs of attention encoders are embedded in overlapping windows.

Authors
 * muselq_sb team
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import torch
from speechbrain.inference.interfaces import Pretrained

from muselq_sb.dataio.audio import load_audio
from muselq_sb.inference.embedding import (
    PRECISIONS,
    embed,
    hidden_states,
    load_model,
    resolve_mode,
)
from muselq_sb.lobes.model import MusicModel

logger = logging.getLogger(__name__)

DTYPES = tuple(PRECISIONS)


class MusicEncoder(Pretrained):
    """Frozen music encoder: waveforms or files -> embeddings.

    Arguments
    ---------
    model : MusicModel
        The encoder (weights loaded).
    device : str
        ``cpu``, ``cuda``, ``cuda:1``...
    dtype : str
        ``fp32``, or ``bf16`` (autocast on CPU and CUDA) or ``fp16``
        (CUDA). Outputs are always float32.

    Example
    -------
    >>> from muselq_sb.lobes.branchformer import BranchformerEncoder
    >>> enc = BranchformerEncoder(2, d_model=16, nhead=2, kernel_size=3,
    ...                           csgu_linear_units=32)
    >>> encoder = MusicEncoder(MusicModel(enc, 16, subsampling_channels=16))
    >>> wavs = torch.randn(2, 48000)
    >>> encoder.encode_batch(wavs, torch.tensor([1.0, 0.5])).shape
    torch.Size([2, 51, 16])
    >>> encoder.encode_batch(wavs, layers="all", pooling="mean").shape
    torch.Size([2, 3, 16])
    >>> encoder.frame_rate
    25.0
    """

    def __init__(self, model: MusicModel, device: str = "cpu", dtype: str = "fp32") -> None:
        if dtype not in DTYPES:
            raise ValueError(f"dtype={dtype!r}; valid: {list(DTYPES)}")
        super().__init__(
            modules={"model": model},
            hparams={"audio_normalizer": None},
            run_opts={"device": device, "precision": dtype},
        )
        self._warned_window = False

    @classmethod
    def from_path(
        cls, path: str | Path, device: str = "cpu", dtype: str = "fp32"
    ) -> "MusicEncoder":
        """A packaged model folder or a pre-training run (:func:`load_model`).

        A run checkpoint holding pickled code is refused with
        ``ModelFolderError``, as is a model yaml naming anything but model
        constructors.
        """
        return cls(load_model(path), device=device, dtype=dtype)

    from_folder = from_path
    from_run = from_path

    @property
    def model(self) -> MusicModel:
        """The wrapped ``MusicModel``."""
        return self.mods.model

    @property
    def frame_rate(self) -> float:
        """Embeddings per second (25 for the paper's models)."""
        return self.model.frame_rate

    @property
    def sample_rate(self) -> int:
        """Input sample rate (files are resampled to it)."""
        return self.model.frontend.sample_rate

    @property
    def attention_type(self) -> str:
        """The encoder's token mixer."""
        return getattr(self.model.encoder, "attention_type", "unknown")

    def load_audio(self, path: str | Path, savedir=None) -> torch.Tensor:
        """Decodes a file (soundfile) as mono float32 at ``sample_rate``."""
        return load_audio(path, sample_rate=self.sample_rate).to(self.device)

    def _options(self, options: dict) -> dict:
        """``options`` with this encoder's precision; logs the first time an
        attention encoder falls back to windows."""
        mode = options.get("mode", "auto")
        if (mode == "auto" and resolve_mode(self.model, mode) == "window"
                and not self._warned_window):
            logger.info(
                "attention_type %s is quadratic in the length: long inputs "
                "are embedded in overlapping windows (mode='full' forces one "
                "pass)", self.attention_type)
            self._warned_window = True
        return {"precision": self.precision, **options}

    def hidden_states(
        self, wavs: torch.Tensor, wav_lens: Optional[torch.Tensor] = None, **options
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """All hidden states of a batch (``mode``, ``window_seconds``,
        ``overlap_seconds``, ``window_batch``: see
        :func:`~muselq_sb.inference.embedding.hidden_states`)."""
        return hidden_states(self.model, wavs, wav_lens, **self._options(options))

    def encode_batch(
        self, wavs: torch.Tensor, wav_lens: Optional[torch.Tensor] = None, **options
    ) -> torch.Tensor:
        """Embeddings of a batch of waveforms [B, N] at ``sample_rate``.

        Options and result as :func:`~muselq_sb.inference.embedding.embed`
        (``layers``: an index, 0 = subsampled input, -1 = last; a list,
        ``"all"``, ``"weighted"`` with ``weights``, or ``"log_mel"``;
        ``pooling``: None, ``"mean"``, ``"max"``, ``"mean_std"``; ``mode``,
        ``window_seconds``, ``overlap_seconds``, ``window_batch``).
        """
        return embed(self.model, wavs, wav_lens, **self._options(options))

    def encode_file(self, path: str | Path, **kwargs) -> torch.Tensor:
        """Embeddings of one audio file (any format soundfile decodes),
        as :meth:`encode_batch` without the batch axis.

        Raises
        ------
        muselq_sb.dataio.audio.AudioError
            The file cannot be decoded.
        """
        return self.encode_batch(self.load_audio(path)[None], None, **kwargs)[0]

    def forward(self, wavs: torch.Tensor, wav_lens: Optional[torch.Tensor] = None):
        """Last hidden state [B, T, d] (``encode_batch`` defaults)."""
        return self.encode_batch(wavs, wav_lens)
