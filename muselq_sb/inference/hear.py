"""The HEAR benchmark API (``hear-validator muselq_sb.hear -m MODEL``).

HEAR (Holistic Evaluation of Audio Representations) evaluation kits import
a module with three functions:

* :func:`load_model` (``model_file_path``: a packaged model folder, a
  pre-training run or a Hub repo id) returns a ``torch.nn.Module`` with
  ``sample_rate``, ``scene_embedding_size`` and ``timestamp_embedding_size``;
* :func:`get_timestamp_embeddings` (audio ``[n_sounds, n_samples]`` at
  ``sample_rate``) returns embeddings ``[n_sounds, T, d]`` and their
  timestamps in milliseconds ``[n_sounds, T]``;
* :func:`get_scene_embeddings` returns ``[n_sounds, d]``.

HEAR accepts 16, 22.05, 32, 44.1 and 48 kHz only, so the module takes 48 kHz
(``sample_rate``) and resamples to the model's 24 kHz with
:func:`muselq_sb.dataio.audio.resample`, the resampler every file goes
through. Embeddings come from the one path
(:meth:`~muselq_sb.inference.encoder.MusicEncoder.encode_batch`): a
SummaryMixing encoder sees each whole clip in one pass. Timestamp
embeddings are the chosen layer's 25 Hz frames; scene embeddings their
mean. Frame ``t`` covers the log-mel frames centred at ``40 t`` to
``40 t + 30`` ms; its timestamp is ``40 t`` ms (``t / frame_rate``), so
that the last frame of a clip never lies past its end (the validator
refuses that).

Example
-------
>>> from muselq_sb.lobes.branchformer import BranchformerEncoder
>>> from muselq_sb.lobes.model import MusicModel
>>> enc = BranchformerEncoder(1, d_model=16, nhead=2, kernel_size=3,
...                           csgu_linear_units=32)
>>> model = HearModel(MusicEncoder(MusicModel(enc, 16, subsampling_channels=16)))
>>> audio = torch.rand(2, model.sample_rate) * 2 - 1      # 1 s at 48 kHz
>>> emb, ts = get_timestamp_embeddings(audio, model)
>>> emb.shape, ts[0, :3].tolist(), get_scene_embeddings(audio, model).shape
(torch.Size([2, 26, 16]), [0.0, 40.0, 80.0], torch.Size([2, 16]))

Authors
 * muselq_sb team
"""
from __future__ import annotations

from typing import Sequence, Union

import torch
from torch import nn

from muselq_sb.dataio.audio import resample
from muselq_sb.inference.encoder import MusicEncoder

#: The input rate this module exposes (HEAR has no 24 kHz).
HEAR_SAMPLE_RATE = 48000
HearLayers = Union[int, Sequence[int]]


class HearModel(nn.Module):
    """A :class:`MusicEncoder` with the attributes HEAR requires.

    Arguments
    ---------
    encoder : MusicEncoder
        The loaded encoder.
    layers : int or list of int
        Hidden state(s) to return (-1: the last layer); several are
        concatenated along the features.
    """

    sample_rate = HEAR_SAMPLE_RATE

    def __init__(self, encoder: MusicEncoder, layers: HearLayers = -1) -> None:
        super().__init__()
        self.encoder = encoder
        self.layers = layers if isinstance(layers, int) else [int(i) for i in layers]
        n_layers = 1 if isinstance(layers, int) else len(self.layers)
        #: Features of a timestamp embedding and of a scene embedding.
        self.timestamp_embedding_size = int(n_layers * encoder.model.d_model)
        self.scene_embedding_size = self.timestamp_embedding_size

    def encode(self, audio: torch.Tensor, pooling: str | None) -> torch.Tensor:
        """Embeddings of ``audio`` [n_sounds, n_samples] at 48 kHz:
        [n, T, d] (pooling None) or [n, d], float32, on the model's device."""
        if audio.dim() != 2:
            raise ValueError(f"HEAR audio must be [n_sounds, n_samples], "
                             f"got shape {tuple(audio.shape)}")
        device = next(self.encoder.model.parameters()).device
        wavs = resample(audio.detach().float().cpu(), self.sample_rate,
                        self.encoder.sample_rate).to(device)
        emb = self.encoder.encode_batch(wavs, layers=self.layers, pooling=pooling)
        if not isinstance(self.layers, int):  # [n, K, (T,) d] -> [n, (T,) K*d]
            emb = torch.cat(emb.unbind(dim=1), dim=-1)
        return emb


def load_model(model_file_path: str = "", layers: HearLayers = -1,
               device: str = "cpu") -> HearModel:
    """HEAR's ``load_model``: a muselq_sb model as a :class:`HearModel`.

    Arguments
    ---------
    model_file_path : str
        A packaged model folder, a pre-training run or a Hub repo id
        (:meth:`MusicEncoder.from_pretrained`).
    layers : int or list of int
        Hidden state(s) to embed with (concatenated).
    device : str
        Where to load it (HEAR may move it with ``.to``).

    Raises
    ------
    ValueError
        No ``model_file_path``: muselq_sb has no built-in default model.
    """
    if not str(model_file_path):
        raise ValueError(
            "muselq_sb.hear.load_model needs model_file_path: a packaged model "
            "folder, a pre-training run folder or a Hub repo id "
            "(hear-validator muselq_sb.hear -m MODEL)")
    return HearModel(MusicEncoder.from_pretrained(model_file_path, device=device),
                     layers)


def get_timestamp_embeddings(
    audio: torch.Tensor, model: HearModel
) -> tuple[torch.Tensor, torch.Tensor]:
    """HEAR's frame embeddings: [n_sounds, T, d] and timestamps [n_sounds, T]
    in ms (``40 t``: frame ``t`` at 25 Hz), float32, on the model's device."""
    emb = model.encode(audio, pooling=None)
    frame_ms = 1000.0 / model.encoder.frame_rate
    steps = torch.arange(emb.shape[1], device=emb.device, dtype=torch.float32)
    return emb, (steps * frame_ms).expand(emb.shape[0], -1).contiguous()


def get_scene_embeddings(audio: torch.Tensor, model: HearModel) -> torch.Tensor:
    """HEAR's clip embeddings [n_sounds, d]: the mean of the frame embeddings."""
    return model.encode(audio, pooling="mean")
