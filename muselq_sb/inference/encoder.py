"""``MusicEncoder``: embeddings of any audio, whole tracks included.

A SpeechBrain ``Pretrained`` interface around a ``MusicModel``:

* ``MusicEncoder.from_folder(folder)`` loads a packaged model folder
  (safetensors + yaml, no pickle); ``MusicEncoder.from_run(run)`` loads the
  latest checkpoint of a pre-training run (``weights_only`` loading);
* ``encode_file`` / ``encode_batch`` return one layer, several layers, all
  layers or a weighted sum of layers, per frame or pooled over time.

Whole tracks. A SummaryMixing encoder sees the whole track in one pass:
its global context is a mean, so memory grows linearly with the length
(the log-mel is computed in chunks so the STFT does not dominate). An
attention encoder (``RoPEMHA``, ``regularMHA``, ``RelPosMHAXL``,
``hypermixing``) falls back to windows (30 s by default) that overlap by
``overlap_seconds``; every output frame is taken from the window whose
centre region holds it: consecutive windows are cut in the middle of their
overlap, so each frame keeps at least ``overlap_seconds / 2`` of context on
both sides (except at the track ends). Windows start on 25 Hz frame
boundaries, so stitched frames align exactly with one-pass frames.

Authors
 * muselq_sb team
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional, Sequence, Union

import torch
from speechbrain.inference.interfaces import Pretrained
from torch import nn

from muselq_sb.dataio.audio import load_audio
from muselq_sb.inference.package import load_model_folder
from muselq_sb.lobes.frontend import n_stacked_frames
from muselq_sb.lobes.loading import ModelFolderError, latest_checkpoint
from muselq_sb.lobes.model import MusicModel, load_music_model

logger = logging.getLogger(__name__)

#: Mixers whose cost and memory are linear in the length (one pass is fine).
LINEAR_TYPES = ("SummaryMixing", "SummaryMixing-lite")
MODES = ("auto", "full", "window")
POOLINGS = (None, "mean", "max")
DTYPES = ("fp32", "bf16", "fp16")
Layers = Union[int, Sequence[int], str]


def window_plan(
    n_samples: int,
    window_frames: int,
    overlap_frames: int,
    frame_samples: int = 960,
    hop_length: int = 240,
) -> list[tuple[int, int, int, int]]:
    """Windows of a signal and the frames each contributes.

    Windows are ``window_frames`` encoder frames long, start on frame
    boundaries every ``window_frames - overlap_frames`` frames, and the last
    one reaches the end of the signal. Window ``k`` contributes the global
    frames from the middle of its overlap with window ``k - 1`` to the
    middle of its overlap with window ``k + 1``.

    Arguments
    ---------
    n_samples : int
        Signal length.
    window_frames : int
        Window length in encoder frames.
    overlap_frames : int
        Overlap of consecutive windows in encoder frames.
    frame_samples : int
        Samples per encoder frame (hop x stack).
    hop_length : int
        Samples per mel frame.

    Returns
    -------
    list of (sample_start, sample_stop, keep_start, keep_stop)
        ``keep_*`` index the window's own output frames.

    Example
    -------
    >>> window_plan(24000 * 70, 750, 100)   # 70 s, 30 s windows, 4 s overlap
    [(0, 720000, 0, 700), (624000, 1344000, 50, 700), (1248000, 1680000, 50, 451)]
    """
    step = window_frames - overlap_frames
    if step <= 0 or overlap_frames < 0:
        raise ValueError(
            f"overlap ({overlap_frames} frames) must be >= 0 and shorter than "
            f"the window ({window_frames} frames)"
        )
    stack = frame_samples // hop_length
    total = n_stacked_frames(n_samples, hop_length, stack)
    starts = [0]
    while (starts[-1] + window_frames) * frame_samples < n_samples:
        starts.append(starts[-1] + step)
    cuts = [0] + [s + overlap_frames // 2 for s in starts[1:]] + [total]
    return [
        (s * frame_samples, min(n_samples, (s + window_frames) * frame_samples),
         cuts[k] - s, cuts[k + 1] - s)
        for k, s in enumerate(starts)
    ]


def select_layers(
    hidden: Sequence[torch.Tensor],
    layers: Layers = -1,
    weights: Optional[Sequence[float] | torch.Tensor] = None,
) -> torch.Tensor:
    """Picks hidden states: one index, a list, ``"all"`` or ``"weighted"``.

    Arguments
    ---------
    hidden : sequence of torch.Tensor
        The ``num_layers + 1`` hidden states [B, T, d] (index 0 is the
        subsampled input, -1 the last layer).
    layers : int, list of int, "all" or "weighted"
        An index gives [B, T, d]; a list or ``"all"`` stacks them as
        [B, K, T, d]; ``"weighted"`` gives ``sum_i weights[i] * hidden[i]``.
    weights : sequence of float, optional
        One weight per hidden state (used as given), for ``"weighted"``.

    Returns
    -------
    torch.Tensor
        The selected states.

    Example
    -------
    >>> h = [torch.full((1, 2, 3), float(i)) for i in range(3)]
    >>> select_layers(h, -1)[0, 0].tolist(), select_layers(h, [0, 2]).shape
    ([2.0, 2.0, 2.0], torch.Size([1, 2, 2, 3]))
    >>> select_layers(h, "weighted", [0.0, 0.5, 0.5])[0, 0, 0].item()
    1.5
    """
    n = len(hidden)
    if isinstance(layers, str):
        if layers == "all":
            return torch.stack(list(hidden), dim=1)
        if layers != "weighted":
            raise ValueError(
                f"layers={layers!r}: expected an int, a list of ints, 'all' "
                "or 'weighted'"
            )
        if weights is None or len(weights) != n:
            raise ValueError(
                f"layers='weighted' needs {n} weights (one per hidden state), "
                f"got {None if weights is None else len(weights)}"
            )
        w = torch.as_tensor(weights, dtype=hidden[0].dtype, device=hidden[0].device)
        return torch.einsum("k,kbtd->btd", w, torch.stack(list(hidden)))
    indices = [layers] if isinstance(layers, int) else list(layers)
    for i in indices:
        if not -n <= int(i) < n:
            raise ValueError(f"layer {i} out of range: valid -{n}..{n - 1}")
    if isinstance(layers, int):
        return hidden[layers]
    return torch.stack([hidden[int(i)] for i in indices], dim=1)


def pool_time(
    x: torch.Tensor, lens: torch.Tensor, pooling: Optional[str]
) -> torch.Tensor:
    """Mean or max over the valid frames of the time axis (-2).

    Arguments
    ---------
    x : torch.Tensor
        [B, T, d] or [B, K, T, d].
    lens : torch.Tensor
        Valid frames per example [B].
    pooling : None, "mean" or "max"
        None returns ``x`` unchanged.

    Returns
    -------
    torch.Tensor
        [B, d] or [B, K, d] when pooled.

    Example
    -------
    >>> x = torch.tensor([[[1.0], [3.0], [100.0]]])
    >>> pool_time(x, torch.tensor([2]), "mean").tolist()
    [[2.0]]
    >>> pool_time(x, torch.tensor([2]), "max").tolist()
    [[3.0]]
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling={pooling!r}; valid: {list(POOLINGS)}")
    if pooling is None:
        return x
    steps = torch.arange(x.shape[-2], device=x.device)
    valid = steps[None, :] < lens.to(x.device)[:, None]  # [B, T]
    valid = valid.view(x.shape[0], *([1] * (x.dim() - 3)), x.shape[-2], 1)
    if pooling == "mean":
        total = x.masked_fill(~valid, 0.0).sum(dim=-2)
        return total / valid.sum(dim=-2).clamp(min=1)
    return x.masked_fill(~valid, float("-inf")).amax(dim=-2)


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
    info : dict, optional
        Facts about the model (from a packaged ``hyperparams.yaml``).

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

    def __init__(
        self,
        model: MusicModel,
        device: str = "cpu",
        dtype: str = "fp32",
        info: Optional[dict] = None,
    ) -> None:
        if dtype not in DTYPES:
            raise ValueError(f"dtype={dtype!r}; valid: {list(DTYPES)}")
        super().__init__(
            modules={"model": model},
            hparams={"audio_normalizer": None, "info": dict(info or {})},
            run_opts={"device": device, "precision": dtype},
        )
        self._warned_window = False

    @classmethod
    def from_folder(
        cls, model_folder: str | Path, device: str = "cpu", dtype: str = "fp32"
    ) -> "MusicEncoder":
        """Loads a packaged model folder (safetensors + yaml, no pickle).

        Arguments
        ---------
        model_folder : path-like
            Written by ``muselq_sb.inference.package.package_model``.
        device : str
            Where to run.
        dtype : str
            ``fp32``, ``bf16`` or ``fp16``.

        Returns
        -------
        MusicEncoder
        """
        model, info = load_model_folder(model_folder)
        return cls(model, device=device, dtype=dtype, info=info)

    @classmethod
    def from_run(
        cls, run_folder: str | Path, device: str = "cpu", dtype: str = "fp32"
    ) -> "MusicEncoder":
        """Loads the latest checkpoint of a pre-training output folder.

        The model comes from ``muselq_sb.lobes.model.load_music_model``,
        the loader the downstream suite uses: it is rebuilt from the run's
        model definition only (no data, no training objects) and the
        checkpoint is read with ``torch.load(weights_only=True)``: a
        checkpoint holding pickled code is refused with ``ModelFolderError``.

        Arguments
        ---------
        run_folder : path-like
            A pre-training output folder.
        device : str
            Where to run.
        dtype : str
            ``fp32``, ``bf16`` or ``fp16``.

        Returns
        -------
        MusicEncoder
        """
        run_folder = Path(run_folder)
        model = load_music_model(run_folder)
        info = {"checkpoint": str(latest_checkpoint(run_folder / "save"))}
        return cls(model, device=device, dtype=dtype, info=info)

    @classmethod
    def from_path(
        cls, path: str | Path, device: str = "cpu", dtype: str = "fp32"
    ) -> "MusicEncoder":
        """A packaged model folder or, failing that, a pre-training run."""
        path = Path(path)
        if (path / "model.safetensors").is_file():
            return cls.from_folder(path, device=device, dtype=dtype)
        if (path / "save").is_dir():
            return cls.from_run(path, device=device, dtype=dtype)
        raise ModelFolderError(
            path, "neither a packaged model folder (model.safetensors) nor "
            "a pre-training run (save/CKPT+*)"
        )

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

    def _resolve_mode(self, mode: str) -> str:
        if mode not in MODES:
            raise ValueError(f"mode={mode!r}; valid: {list(MODES)}")
        if mode != "auto":
            return mode
        if self.attention_type in LINEAR_TYPES:
            return "full"
        if not self._warned_window:
            logger.info(
                "attention_type %s is quadratic in the length: long inputs "
                "are embedded in overlapping windows (mode='full' forces one "
                "pass)", self.attention_type,
            )
            self._warned_window = True
        return "window"

    def _full(self, wavs: torch.Tensor, wav_lens: torch.Tensor):
        mel, lens = self.model.features(wavs, wav_lens)
        hidden = self.model.encode(mel, lens)
        return hidden, self.model.output_lengths(wavs, wav_lens)

    def _windowed(
        self, wav: torch.Tensor, window_seconds: float, overlap_seconds: float,
        window_batch: int,
    ) -> list[torch.Tensor]:
        """Hidden states [T, d] of one signal [N], window by window."""
        model = self.model
        frame_samples = model.frontend.hop_length * model.stack
        plan = window_plan(
            wav.shape[0], round(window_seconds * self.frame_rate),
            round(overlap_seconds * self.frame_rate), frame_samples,
            model.frontend.hop_length,
        )
        pieces: list[list[torch.Tensor]] = []
        for i in range(0, len(plan), window_batch):
            group = plan[i:i + window_batch]
            longest = max(b - a for a, b, _, _ in group)
            batch = torch.zeros(len(group), longest, device=wav.device)
            for row, (a, b, _, _) in enumerate(group):
                batch[row, :b - a] = wav[a:b]
            rel = torch.tensor([(b - a) / longest for a, b, _, _ in group],
                               device=wav.device)
            hidden, _ = self._full(batch, rel)
            for row, (_, _, keep_a, keep_b) in enumerate(group):
                pieces.append([h[row, keep_a:keep_b] for h in hidden])
        return [torch.cat(layer, dim=0) for layer in zip(*pieces)]

    @torch.no_grad()
    def hidden_states(
        self,
        wavs: torch.Tensor,
        wav_lens: Optional[torch.Tensor] = None,
        mode: str = "auto",
        window_seconds: float = 30.0,
        overlap_seconds: float = 5.0,
        window_batch: int = 4,
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """All hidden states of a batch, in one pass or window by window.

        Arguments
        ---------
        wavs : torch.Tensor
            Waveforms [B, N] at ``sample_rate`` (or one [N]).
        wav_lens : torch.Tensor, optional
            Relative lengths [B] (default: all 1).
        mode : str
            ``auto`` (one pass for SummaryMixing, windows for attention),
            ``full`` or ``window``.
        window_seconds : float
            Window length in window mode.
        overlap_seconds : float
            Overlap of consecutive windows.
        window_batch : int
            Windows encoded at once.

        Returns
        -------
        hidden : list of torch.Tensor
            ``num_layers + 1`` float32 tensors [B, T, d].
        lens : torch.Tensor
            Valid frames per example [B].
        """
        wavs = wavs[None] if wavs.dim() == 1 else wavs
        wavs = wavs.to(self.device)
        if wav_lens is None:
            wav_lens = torch.ones(wavs.shape[0])
        wav_lens = wav_lens.to(self.device)
        run_windows = self._resolve_mode(mode) == "window" and (
            wavs.shape[1] > round(window_seconds * self.sample_rate)
        )
        with self.inference_ctx:
            if not run_windows:
                hidden, lens = self._full(wavs, wav_lens)
            else:
                n_samples = torch.round(wav_lens.float() * wavs.shape[1]).long()
                per_item = [
                    self._windowed(wavs[b, :n], window_seconds,
                                   overlap_seconds, window_batch)
                    for b, n in enumerate(n_samples.tolist())
                ]
                lens = torch.tensor([item[0].shape[0] for item in per_item])
                hidden = [nn.utils.rnn.pad_sequence(list(layer), batch_first=True)
                          for layer in zip(*per_item)]
        return [h.float() for h in hidden], lens.to(self.device)

    def encode_batch(
        self,
        wavs: torch.Tensor,
        wav_lens: Optional[torch.Tensor] = None,
        layers: Layers = -1,
        weights: Optional[Sequence[float]] = None,
        pooling: Optional[str] = None,
        **window_kwargs,
    ) -> torch.Tensor:
        """Embeddings of a batch of waveforms.

        Arguments
        ---------
        wavs : torch.Tensor
            Waveforms [B, N] at ``sample_rate``.
        wav_lens : torch.Tensor, optional
            Relative lengths [B] (default: all 1).
        layers : int, list of int, "all" or "weighted"
            See :func:`select_layers` (0 = subsampled input, -1 = last).
        weights : sequence of float, optional
            Layer weights for ``layers="weighted"``.
        pooling : None, "mean" or "max"
            Over the valid frames (None keeps the frames, at
            ``frame_rate`` per second, padding frames included).
        **window_kwargs
            ``mode``, ``window_seconds``, ``overlap_seconds``,
            ``window_batch`` of :meth:`hidden_states`.

        Returns
        -------
        torch.Tensor
            [B, T, d], [B, K, T, d], or without T when pooled (float32).
        """
        hidden, lens = self.hidden_states(wavs, wav_lens, **window_kwargs)
        return pool_time(select_layers(hidden, layers, weights), lens, pooling)

    def encode_file(self, path: str | Path, **kwargs) -> torch.Tensor:
        """Embeddings of one audio file (any format soundfile decodes).

        Arguments
        ---------
        path : path-like
            The file (decoded, down-mixed and resampled).
        **kwargs
            As :meth:`encode_batch` (``layers``, ``pooling``, ``mode``...).

        Returns
        -------
        torch.Tensor
            As :meth:`encode_batch` without the batch axis.

        Raises
        ------
        muselq_sb.dataio.audio.AudioError
            The file cannot be decoded.
        """
        wav = self.load_audio(path)
        return self.encode_batch(wav[None], None, **kwargs)[0]

    def forward(self, wavs: torch.Tensor, wav_lens: Optional[torch.Tensor] = None):
        """Last hidden state [B, T, d] (``encode_batch`` defaults)."""
        return self.encode_batch(wavs, wav_lens)

