"""Audio -> hidden states -> embeddings: the one path every caller takes.

The inference API (:class:`~muselq_sb.inference.encoder.MusicEncoder`), the
command line (``muselq-embed``), the downstream suite's embedding cache and
the benchmarks all go through this module:

1. :func:`load_model`, the one model loader: a pre-training run (its latest
   checkpoint, read with ``weights_only``) or a packaged model folder
   (safetensors), built from the model definition alone; with
   ``random_seed`` the random-weights baseline (the same architecture, its
   weights drawn from that seed, the saved input statistics kept).
2. :func:`hidden_states`: the model's front-end (``MelFrontend``, whose STFT
   runs in chunks on long inputs) and encoder, in one pass or in overlapping
   windows (:func:`~muselq_sb.dataio.audio.window_bounds`) stitched so that
   every frame keeps at least half the overlap of context on both sides.
3. :func:`select_layers` and :func:`pool_time`: which hidden states, and
   their mean / max / mean-and-std over the valid frames.
4. :func:`embed`: the three in one call; :func:`frame_embed`, its
   frame-level twin (no pooling; the log-mel at the encoder frame rate).

Whole tracks. A SummaryMixing encoder sees the whole track in one pass: its
global context is a mean, so memory grows linearly with the length. An
attention encoder falls back to windows (``mode="auto"``) that start on
encoder-frame boundaries, so stitched frames align exactly with one-pass
frames.

Example
-------
>>> from muselq_sb.lobes.branchformer import BranchformerEncoder
>>> model = MusicModel(BranchformerEncoder(
...     2, d_model=16, nhead=2, kernel_size=3, csgu_linear_units=32), 16,
...     subsampling_channels=16).eval()
>>> wavs = torch.randn(2, 48000)
>>> embed(model, wavs, layers="all", pooling="mean").shape   # [B, L+1, d]
torch.Size([2, 3, 16])
>>> embed(model, wavs, layers="log_mel", pooling="mean_std").shape
torch.Size([2, 1, 256])

Authors
 * muselq_sb team
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Optional, Sequence, Union

import torch
from safetensors.torch import load_file
from torch import nn

from muselq_sb.dataio.audio import window_bounds
from muselq_sb.lobes.frontend import n_stacked_frames, stack_frames, stacked_lengths
from muselq_sb.lobes.model import MusicModel
from muselq_sb.utils.checkpoints import latest_checkpoint
from muselq_sb.utils.hparams import (
    HPARAMS_FILE,
    ModelFolderError,
    build_from_yaml,
    model_definition,
)

MODEL_FILE = "model.safetensors"
#: Mixers whose cost and memory are linear in the length (one pass is fine).
LINEAR_TYPES = ("SummaryMixing", "SummaryMixing-lite")
MODES = ("auto", "full", "window")
#: Default window and overlap (seconds) of attention encoders on long inputs.
WINDOW_SECONDS = 30.0
OVERLAP_SECONDS = 5.0
POOLINGS = (None, "mean", "max", "mean_std")
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
Layers = Union[int, Sequence[int], str]


def load_run_state(run_folder: str | Path) -> tuple[dict, dict, Path]:
    """Tensors of the latest checkpoint of a pre-training run, no pickle.

    Arguments
    ---------
    run_folder : path-like
        A pre-training output folder (``save/CKPT+*/ssl_model.ckpt``).

    Returns
    -------
    model_state : dict
        ``MusicModel`` tensors (the ``model.`` prefix removed).
    quantizer_state : dict
        Quantizer buffers (``projection``, ``codebook``).
    checkpoint : Path
        The checkpoint folder read.

    Raises
    ------
    ModelFolderError
        No checkpoint, or a checkpoint holding anything but tensors (a
        pickled object is refused before any of its code runs).
    """
    try:
        ckpt_dir = latest_checkpoint(Path(run_folder) / "save")
    except FileNotFoundError as err:
        raise ModelFolderError(run_folder, str(err)) from err
    ckpt = ckpt_dir / "ssl_model.ckpt"
    if not ckpt.is_file():
        raise ModelFolderError(ckpt, "missing (expected the BEST-RQ weights)")
    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ModelFolderError(
            ckpt, f"refused: not a plain tensor checkpoint ({err})"
        ) from err

    def part(prefix: str) -> dict:
        return {k[len(prefix):]: v.contiguous() for k, v in state.items()
                if k.startswith(prefix)}

    model_state = part("model.")
    if not model_state:
        raise ModelFolderError(ckpt, "has no 'model.' weights")
    return model_state, part("quantizer."), ckpt_dir


def read_weights(path: str | Path) -> dict:
    """The tensors of a safetensors file (nothing is unpickled).

    Raises
    ------
    ModelFolderError
        A missing or unreadable file, named.

    Example
    -------
    >>> read_weights("/nowhere/model.safetensors")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    muselq_sb.utils.hparams.ModelFolderError: /nowhere/model.safetensors: unreadable (...)
    """
    try:
        return load_file(str(path))
    except (RuntimeError, OSError) as err:
        raise ModelFolderError(path, f"unreadable ({err})") from err


def load_weights(module: nn.Module, path: str | Path) -> None:
    """Loads a safetensors file into ``module``, every tensor fitting.

    Also SpeechBrain's parameter-transfer hook of a packaged folder's
    ``pretrainer`` (:class:`~muselq_sb.inference.pretrainer.FolderPretrainer`).

    Raises
    ------
    ModelFolderError
        Unreadable, or tensors missing, left over or of the wrong shape.

    Example
    -------
    >>> import tempfile
    >>> from safetensors.torch import save_file
    >>> f = Path(tempfile.mkdtemp()) / "lin.safetensors"
    >>> save_file(nn.Linear(2, 3).state_dict(), str(f))
    >>> load_weights(nn.Linear(2, 3), f)
    >>> load_weights(nn.Linear(2, 4), f)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    muselq_sb.utils.hparams.ModelFolderError: ...lin.safetensors: does not fit the model (Error(s) in loading state_dict for Linear:...
    """
    try:
        module.load_state_dict(read_weights(path), strict=True)
    except RuntimeError as err:
        raise ModelFolderError(path, f"does not fit the model ({err})") from err


def _definition_and_weights(source: Path) -> tuple[str, Path, dict, Path]:
    """Model yaml, its path, the weights and their file, of a folder."""
    if (source / MODEL_FILE).is_file():
        yaml_path, weights = source / HPARAMS_FILE, source / MODEL_FILE
        if not yaml_path.is_file():
            raise ModelFolderError(yaml_path, "missing: not a packaged model folder")
        return (yaml_path.read_text(encoding="utf-8"), yaml_path,
                read_weights(weights), weights)
    if (source / "save").is_dir():
        state, _, ckpt = load_run_state(source)
        return (model_definition(source), source / HPARAMS_FILE, state,
                ckpt / "ssl_model.ckpt")
    raise ModelFolderError(
        source, "neither a packaged model folder (model.safetensors) nor a "
        "pre-training run (save/CKPT+*)")


def load_model(
    source: str | Path, random_seed: Optional[int] = None, device: str = "cpu"
) -> MusicModel:
    """The encoder of a run or a packaged folder, frozen, in eval mode.

    The model is built from the model definition alone (a packaged
    ``hyperparams.yaml``, or the ``model`` entry of a run's, without its
    data, training objects or ``seed_everything`` line; only constructors
    of ``muselq_sb``, ``speechbrain`` and ``torch.nn`` may run). Nothing is
    unpickled: run checkpoints are read with ``weights_only``.

    Arguments
    ---------
    source : path-like
        A packaged model folder (``model.safetensors``) or a pre-training
        output folder (its latest complete ``save/CKPT+*``).
    random_seed : int, optional
        The random-weights baseline: the weights are drawn from this seed
        (re-initialised), only the saved input statistics are kept.
    device : str
        Where to put the model.

    Returns
    -------
    MusicModel
        With ``requires_grad`` off and ``eval()`` mode.

    Example
    -------
    >>> load_model("/nowhere")
    Traceback (most recent call last):
    ...
    muselq_sb.utils.hparams.ModelFolderError: /nowhere: neither a packaged model folder (model.safetensors) nor a pre-training run (save/CKPT+*)
    """
    text, yaml_path, state, weights = _definition_and_weights(Path(source))
    with torch.random.fork_rng(devices=[]):
        if random_seed is not None:
            torch.manual_seed(random_seed)
        model = build_from_yaml(text, yaml_path)
    if not isinstance(model, MusicModel):
        raise ModelFolderError(yaml_path, "'model' is not a muselq_sb MusicModel")
    if random_seed is not None:
        state = {k: v for k, v in state.items() if k.startswith("normalizer.")}
    try:
        result = model.load_state_dict(state, strict=random_seed is None)
    except RuntimeError as err:
        raise ModelFolderError(weights, f"does not fit the yaml model ({err})") from err
    missing = [k for k in result.missing_keys if k.startswith("normalizer.")]
    if missing or result.unexpected_keys:
        raise ModelFolderError(weights, (
            f"input statistics do not fit the model (missing {missing}, "
            f"unexpected {result.unexpected_keys})"))
    return model.to(device).eval().requires_grad_(False)


def resolve_mode(model: MusicModel, mode: str) -> str:
    """``full`` or ``window``: ``auto`` is one pass for SummaryMixing
    encoders (linear in the length), windows for attention.

    Example
    -------
    >>> resolve_mode(None, "full")
    'full'
    """
    if mode not in MODES:
        raise ValueError(f"mode={mode!r}; valid: {list(MODES)}")
    if mode != "auto":
        return mode
    linear = getattr(model.encoder, "attention_type", None) in LINEAR_TYPES
    return "full" if linear else "window"


def _stitched(
    model: MusicModel, wav: torch.Tensor, window_frames: int,
    overlap_frames: int, window_batch: int,
) -> list[torch.Tensor]:
    """Hidden states [T, d] of one signal [N], window by window.

    Window ``k`` contributes the frames from the middle of its overlap with
    window ``k - 1`` to the middle of its overlap with window ``k + 1``.
    """
    fs = model.frame_samples
    bounds = window_bounds(wav.shape[0], window_frames * fs,
                           hop=(window_frames - overlap_frames) * fs)
    starts = [a // fs for a, _ in bounds]
    total = n_stacked_frames(wav.shape[0], model.frontend.hop_length, model.stack)
    cuts = [0] + [s + overlap_frames // 2 for s in starts[1:]] + [total]
    pieces: list[list[torch.Tensor]] = []
    for first in range(0, len(bounds), window_batch):
        group = range(first, min(len(bounds), first + window_batch))
        batch = nn.utils.rnn.pad_sequence([wav[slice(*bounds[k])] for k in group],
                                          batch_first=True)
        rel = torch.tensor([(bounds[k][1] - bounds[k][0]) / batch.shape[1]
                            for k in group], device=wav.device)
        hidden = model(batch, rel)
        for row, k in enumerate(group):
            keep = slice(cuts[k] - starts[k], cuts[k + 1] - starts[k])
            pieces.append([h[row, keep] for h in hidden])
    return [torch.cat(layer, dim=0) for layer in zip(*pieces)]


def hidden_states(
    model: MusicModel,
    wavs: torch.Tensor,
    wav_lens: Optional[torch.Tensor] = None,
    mode: str = "auto",
    window_seconds: float = WINDOW_SECONDS,
    overlap_seconds: float = OVERLAP_SECONDS,
    window_batch: int = 4,
    precision: str = "fp32",
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """All hidden states of a batch, in one pass or window by window.

    Arguments
    ---------
    model : MusicModel
        The encoder (:func:`load_model`).
    wavs : torch.Tensor
        Waveforms [B, N] at the model's sample rate (or one [N]).
    wav_lens : torch.Tensor, optional
        Relative lengths [B] (default: all 1).
    mode : str
        ``auto`` (:func:`resolve_mode`), ``full`` or ``window``; inputs no
        longer than one window take one pass.
    window_seconds : float
        Window length (rounded to encoder frames).
    overlap_seconds : float
        Overlap of consecutive windows (rounded to encoder frames).
    window_batch : int
        Windows encoded at once.
    precision : str
        ``fp32``, or autocast to ``bf16`` or ``fp16``; outputs are float32.

    Returns
    -------
    hidden : list of torch.Tensor
        ``num_layers + 1`` tensors [B, T, d]: the subsampled input, then
        each layer's output (the last with the encoder's final LayerNorm).
    lens : torch.Tensor
        Valid frames per example [B].

    Example
    -------
    >>> from muselq_sb.lobes.conformer import ConformerEncoder
    >>> enc = ConformerEncoder(1, d_model=8, d_ffn=16, nhead=2, kernel_size=3,
    ...                        attention_type="RoPEMHA")
    >>> model = MusicModel(enc, 8, subsampling_channels=8).eval()
    >>> wav = torch.randn(1, 24000 * 3)
    >>> full, _ = hidden_states(model, wav, mode="full")
    >>> windows, lens = hidden_states(model, wav, window_seconds=1.0,
    ...                               overlap_seconds=0.4)
    >>> windows[-1].shape == full[-1].shape, lens.tolist()
    (True, [76])
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}; valid: {list(PRECISIONS)}")
    device = next(model.parameters()).device
    wavs = (wavs[None] if wavs.dim() == 1 else wavs).to(device)
    wav_lens = torch.ones(len(wavs)) if wav_lens is None else wav_lens
    wav_lens = wav_lens.to(device)
    window_frames = round(window_seconds * model.frame_rate)
    overlap_frames = round(overlap_seconds * model.frame_rate)
    windowed = resolve_mode(model, mode) == "window" and (
        wavs.shape[1] > window_frames * model.frame_samples)
    dtype = PRECISIONS[precision]
    with torch.no_grad(), torch.autocast(device.type, dtype=dtype,
                                         enabled=dtype is not None):
        if not windowed:
            hidden = model(wavs, wav_lens)
            lens = model.output_lengths(wavs, wav_lens)
        else:
            n_samples = torch.round(wav_lens.float() * wavs.shape[1]).long()
            items = [_stitched(model, wavs[b, :n], window_frames, overlap_frames,
                               window_batch) for b, n in enumerate(n_samples.tolist())]
            lens = torch.tensor([item[0].shape[0] for item in items], device=device)
            hidden = [nn.utils.rnn.pad_sequence(list(layer), batch_first=True)
                      for layer in zip(*items)]
    return [h.float() for h in hidden], lens


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
                f"layers={layers!r}: expected an int, a list of ints, 'all', "
                "'weighted' or 'log_mel'"
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
    """Mean, max or mean-and-std over the valid frames of the time axis (-2).

    Arguments
    ---------
    x : torch.Tensor
        [B, T, d] or [B, K, T, d].
    lens : torch.Tensor
        Valid frames per example [B] (at least one is used).
    pooling : None, "mean", "max" or "mean_std"
        None returns ``x`` unchanged; ``mean_std`` concatenates the mean and
        the standard deviation (2d features).

    Returns
    -------
    torch.Tensor
        [B, d] or [B, K, d] ([B, 2d], [B, K, 2d] for ``mean_std``).

    Example
    -------
    >>> x = torch.tensor([[[1.0], [3.0], [100.0]]])
    >>> pool_time(x, torch.tensor([2]), "mean").tolist()
    [[2.0]]
    >>> pool_time(x, torch.tensor([2]), "max").tolist()
    [[3.0]]
    >>> pool_time(x, torch.tensor([2]), "mean_std").tolist()
    [[2.0, 1.0]]
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling={pooling!r}; valid: {list(POOLINGS)}")
    if pooling is None:
        return x
    steps = torch.arange(x.shape[-2], device=x.device)
    valid = steps[None, :] < lens.to(x.device).clamp(min=1)[:, None]  # [B, T]
    valid = valid.view(x.shape[0], *([1] * (x.dim() - 3)), x.shape[-2], 1)
    if pooling == "max":
        return x.masked_fill(~valid, float("-inf")).amax(dim=-2)
    count = valid.sum(dim=-2)
    mean = x.masked_fill(~valid, 0.0).sum(dim=-2) / count
    if pooling == "mean":
        return mean
    var = ((x - mean.unsqueeze(-2)) ** 2).masked_fill(~valid, 0.0).sum(dim=-2) / count
    return torch.cat([mean, var.sqrt()], dim=-1)


def embed(
    model: MusicModel,
    wavs: torch.Tensor,
    wav_lens: Optional[torch.Tensor] = None,
    layers: Layers = -1,
    weights: Optional[Sequence[float]] = None,
    pooling: Optional[str] = None,
    **options,
) -> torch.Tensor:
    """Embeddings of a batch of waveforms: hidden states, layers, pooling.

    Arguments
    ---------
    model, wavs, wav_lens
        As :func:`hidden_states`.
    layers : int, list of int, "all", "weighted" or "log_mel"
        See :func:`select_layers`; ``"log_mel"`` takes the model's
        normalised log-mel frames (100 Hz) as one layer [B, 1, T, n_mels]
        instead (the pooled log-mel baseline).
    weights : sequence of float, optional
        Layer weights for ``layers="weighted"``.
    pooling : None, "mean", "max" or "mean_std"
        Over the valid frames (None keeps the frames, padding included).
    **options
        ``mode``, ``window_seconds``, ``overlap_seconds``, ``window_batch``
        and ``precision`` of :func:`hidden_states`.

    Returns
    -------
    torch.Tensor
        [B, T, d], [B, K, T, d], or without T when pooled (float32).
    """
    if layers == "log_mel":
        device = next(model.parameters()).device
        wavs = (wavs[None] if wavs.dim() == 1 else wavs).to(device)
        wav_lens = torch.ones(len(wavs), device=device) if wav_lens is None else wav_lens
        with torch.no_grad():
            mel, lens = model.features(wavs, wav_lens.to(device))
        return pool_time(mel[:, None].float(), lens, pooling)
    hidden, lens = hidden_states(model, wavs, wav_lens, **options)
    return pool_time(select_layers(hidden, layers, weights), lens, pooling)


def frame_embed(
    model: MusicModel,
    wavs: torch.Tensor,
    wav_lens: Optional[torch.Tensor] = None,
    layers: Layers = "all",
    **options,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame-level features of a batch at the encoder frame rate (25 Hz).

    The frame-level probes' input: every frame of the chosen hidden states
    (one pass for SummaryMixing encoders, stitched windows for attention,
    as :func:`hidden_states` decides), or for ``layers="log_mel"`` the
    mean and standard deviation of the normalised log-mel over the
    ``stack`` mel frames of each encoder frame (the frame-level log-mel
    baseline, aligned with the encoder's frames).

    Arguments
    ---------
    model, wavs, wav_lens
        As :func:`hidden_states`.
    layers : int, list of int, "all" or "log_mel"
        See :func:`select_layers`.
    **options
        ``mode``, ``window_seconds``, ``overlap_seconds``, ``window_batch``
        and ``precision`` of :func:`hidden_states`.

    Returns
    -------
    frames : torch.Tensor
        [B, K, T, d] (one index: K = 1); ``log_mel``: [B, 1, T, 2 n_mels].
    lens : torch.Tensor
        Valid frames per example [B].

    Example
    -------
    >>> from muselq_sb.lobes.branchformer import BranchformerEncoder
    >>> model = MusicModel(BranchformerEncoder(
    ...     2, d_model=16, nhead=2, kernel_size=3, csgu_linear_units=32), 16,
    ...     subsampling_channels=16).eval()
    >>> x, lens = frame_embed(model, torch.randn(1, 48000))
    >>> x.shape, lens.tolist()
    (torch.Size([1, 3, 51, 16]), [51])
    >>> frame_embed(model, torch.randn(1, 48000), layers="log_mel")[0].shape
    torch.Size([1, 1, 51, 256])
    """
    if layers == "log_mel":
        device = next(model.parameters()).device
        wavs = (wavs[None] if wavs.dim() == 1 else wavs).to(device)
        wav_lens = torch.ones(len(wavs), device=device) if wav_lens is None else wav_lens
        with torch.no_grad():
            mel, mel_lens = model.features(wavs, wav_lens.to(device))
        valid = (torch.arange(mel.shape[1], device=device)[None] < mel_lens[:, None])
        mel = mel.float() * valid[..., None]
        k, n_mels = model.stack, mel.shape[-1]
        groups = stack_frames(mel, k).view(len(mel), -1, k, n_mels)
        counts = stack_frames(valid[..., None].float(), k).sum(-1, keepdim=True)
        mean = groups.sum(2) / counts.clamp(min=1)
        var = ((groups - mean[:, :, None]) ** 2 * stack_frames(
            valid[..., None].float(), k)[..., None]).sum(2) / counts.clamp(min=1)
        return torch.cat([mean, var.sqrt()], -1)[:, None], stacked_lengths(mel_lens, k)
    hidden, lens = hidden_states(model, wavs, wav_lens, **options)
    selected = select_layers(hidden, layers)
    return (selected[:, None] if selected.dim() == 3 else selected), lens
