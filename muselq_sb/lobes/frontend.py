"""Mel front-end: log-mel at 100 Hz, input normalisation, ``stack``-frame
stacking and the convolutional subsampling to the encoder rate (25 Hz with
the paper's ``stack`` of 4).

Alignment contract: every encoder frame ``t`` (stacked target, encoder
output) covers exactly the mel frames ``stack*t .. stack*t + stack - 1``,
for any input length; mel sequences are zero-padded (after normalisation)
to a multiple of ``stack``.

Authors
 * muselq_sb team
"""
from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torchaudio
from torch import nn

from muselq_sb.nnet.masking import padding_mask


class MelFrontend(nn.Module):
    """Waveform to log-mel spectrogram (computed in float32).

    Arguments
    ---------
    sample_rate : int
        Input sample rate (24 kHz in the paper).
    n_fft : int
        FFT and window size.
    hop_length : int
        Hop in samples (240 at 24 kHz = 100 frames/s).
    n_mels : int
        Number of mel bins.
    log_offset : float
        Added before the log.
    chunk_frames : int
        Longer inputs get their STFT ``chunk_frames`` frames at a time (30 s
        at 100 Hz): the same log-mel, bit for bit, with the memory of the
        complex STFT bounded (about 0.5 GB for ten minutes at 24 kHz in one
        piece); 0 = never.

    Example
    -------
    >>> fe = MelFrontend()
    >>> mel, lens = fe(torch.rand(2, 24000), torch.tensor([1.0, 0.5]))
    >>> mel.shape, lens.tolist()
    (torch.Size([2, 101, 128]), [101, 51])
    """

    def __init__(
        self,
        sample_rate: int = 24000,
        n_fft: int = 2048,
        hop_length: int = 240,
        n_mels: int = 128,
        log_offset: float = 1e-6,
        chunk_frames: int = 3000,
    ) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.n_mels = n_mels
        self.log_offset = log_offset
        self.chunk_frames = chunk_frames
        # centred frames, the signal padded here with zeros (not reflected):
        # a clip then gives the same frames alone and zero-padded in a batch
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length,
            n_mels=n_mels, center=False, power=2.0,
        )

    @property
    def frame_rate(self) -> float:
        """Mel frames per second."""
        return self.sample_rate / self.hop_length

    def _apply(self, fn, recurse=True):
        """Moves like any module but keeps its buffers in float32.

        The STFT and the log need float32 range and precision, so a model
        cast with ``.to(torch.bfloat16)`` still computes its features in
        float32.
        """
        super()._apply(fn, recurse)
        for module in self.modules():
            for name, buf in module._buffers.items():
                if buf is not None and buf.is_floating_point():
                    module._buffers[name] = buf.float()
        return self

    def frame_lengths(self, n_samples: torch.Tensor) -> torch.Tensor:
        """Number of mel frames of signals of ``n_samples`` samples."""
        return torch.div(n_samples, self.hop_length, rounding_mode="floor") + 1

    def forward(
        self, wavs: torch.Tensor, wav_lens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Computes log-mels [B, T, n_mels] and absolute frame lengths [B]."""
        hop, n_frames = self.hop_length, wavs.shape[1] // self.hop_length + 1
        step = self.chunk_frames or n_frames
        with torch.autocast(wavs.device.type, enabled=False):
            half = self.n_fft // 2
            padded = nn.functional.pad(wavs.float(), (half, half))
            chunks = [
                self.mel(padded[:, first * hop:(min(n_frames, first + step) - 1) * hop
                                + self.n_fft])
                for first in range(0, n_frames, step)
            ]
            mel = torch.log(torch.cat(chunks, dim=2).transpose(1, 2) + self.log_offset)
        n_samples = torch.round(wav_lens.float() * wavs.shape[1]).long()
        lens = self.frame_lengths(n_samples).clamp(max=mel.shape[1])
        return mel, lens


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pads the time axis (dim 1) of ``x`` to a multiple of ``multiple``.

    Example
    -------
    >>> pad_to_multiple(torch.ones(1, 5, 2), 4).shape
    torch.Size([1, 8, 2])
    """
    extra = (-x.shape[1]) % multiple
    if extra == 0:
        return x
    return nn.functional.pad(x, (0, 0, 0, extra))


def stack_frames(mel: torch.Tensor, stack: int = 4) -> torch.Tensor:
    """Concatenates ``stack`` consecutive frames: [B, T, F] -> [B, T', F*stack].

    ``T' = ceil(T / stack)``; the tail is zero-padded.

    Example
    -------
    >>> stack_frames(torch.arange(6.).view(1, 3, 2), 2).tolist()
    [[[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 0.0, 0.0]]]
    """
    x = pad_to_multiple(mel, stack)
    B, T, F = x.shape
    return x.reshape(B, T // stack, F * stack)


def stacked_lengths(lens: torch.Tensor, stack: int = 4) -> torch.Tensor:
    """Number of stacked frames that hold at least one valid mel frame."""
    return torch.div(lens + stack - 1, stack, rounding_mode="floor")


class FeatureNormalizer(nn.Module):
    """Per-bin mean/std normalisation with frozen statistics saved in the model.

    The statistics are computed once, before training, from the valid
    frames of a number of training batches: ``update`` on each batch, then
    ``freeze`` (``muselq_sb.pretrain.normalization.compute_input_statistics``
    runs that pass). The forward pass only normalises, so the quantizer's
    targets never drift. The statistics are buffers: they travel in every
    checkpoint and exported model. Global statistics (not per clip) keep
    the time-mean of the features informative for pooled probes. Until
    ``freeze`` is called (``ready`` is False) the normaliser is the
    identity.

    Arguments
    ---------
    n_features : int
        Feature dimension.
    eps : float
        Floor of the standard deviation.

    Example
    -------
    >>> norm = FeatureNormalizer(3)
    >>> x = torch.randn(4, 50, 3) * 2 + 5
    >>> norm.update(x, torch.full((4,), 50))
    >>> norm.freeze()
    >>> y = norm(x, torch.full((4,), 50))
    >>> norm.ready, abs(y.mean().item()) < 1e-4, round(y.std().item(), 1)
    (True, True, 1.0)
    """

    def __init__(self, n_features: int = 128, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("sum", torch.zeros(n_features, dtype=torch.float64))
        self.register_buffer("sumsq", torch.zeros(n_features, dtype=torch.float64))
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))

    @property
    def ready(self) -> bool:
        """Whether the statistics have been computed (``freeze`` ran on
        at least one frame)."""
        return bool(self.count > 0)

    @torch.no_grad()
    def update(self, x: torch.Tensor, lens: torch.Tensor) -> None:
        """Adds the valid frames of ``x`` [B, T, F] to this process's sums
        (``mean``/``std`` change only at ``freeze``)."""
        valid = (~padding_mask(lens, x.shape[1])).to(torch.float64)
        xd = x.detach().to(torch.float64)
        self.count += valid.sum()
        self.sum += torch.einsum("btf,bt->f", xd, valid)
        self.sumsq += torch.einsum("btf,bt->f", xd * xd, valid)

    @torch.no_grad()
    def freeze(self) -> None:
        """Sets ``mean``/``std`` from the sums of the ``update`` calls.

        Under DDP the sums are first all-reduced, so every process ends
        with the same statistics; call it once, on every process, after
        the statistics pass. With no frame at all (on any process) the
        normaliser stays the identity and ``ready`` stays False.
        """
        n = self.mean.numel()
        stats = torch.cat([self.count.view(1), self.sum, self.sumsq])
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(stats)
        self.count.copy_(stats[0])
        self.sum.copy_(stats[1:1 + n])
        self.sumsq.copy_(stats[1 + n:])
        if not self.ready:
            return
        mean = self.sum / self.count.clamp(min=1)
        var = (self.sumsq / self.count.clamp(min=1) - mean**2).clamp(min=0)
        self.mean.copy_(mean.float())
        self.std.copy_(var.sqrt().clamp(min=self.eps).float())

    def forward(self, x: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        """Normalises ``x`` [B, T, F] with the frozen statistics; padding
        frames are zero."""
        y = (x - self.mean) / self.std
        return y.masked_fill(padding_mask(lens, x.shape[1])[:, :, None], 0.0)


class ConvSubsampling(nn.Module):
    """Strided 1-D convolutions, mel frames -> ``d_model`` frames ``stack``
    times slower (100 Hz -> 25 Hz with the default ``stack`` of 4).

    ``log2(stack)`` convolutions of kernel = stride = 2, so output frame
    ``t`` sees exactly mel frames ``stack*t .. stack*t + stack - 1``, the
    frames of stacked target ``t``.

    Arguments
    ---------
    n_mels : int
        Input features.
    channels : int
        Width of the intermediate convolutions (none when ``stack`` is 2).
    d_model : int
        Output size.
    activation : type
        Activation class after every convolution.
    stack : int
        Mel frames per output frame: a power of two (2, 4, 8...).

    Example
    -------
    >>> sub = ConvSubsampling(128, 32, 16)
    >>> sub(torch.rand(2, 10, 128)).shape   # 10 frames -> ceil(10 / 4)
    torch.Size([2, 3, 16])
    >>> ConvSubsampling(128, 32, 16, stack=2)(torch.rand(2, 10, 128)).shape
    torch.Size([2, 5, 16])
    """

    def __init__(
        self, n_mels: int = 128, channels: int = 256, d_model: int = 512,
        activation: type[nn.Module] = nn.GELU, stack: int = 4,
    ) -> None:
        super().__init__()
        if stack < 2 or stack & (stack - 1):
            raise ValueError(
                f"ConvSubsampling: stack must be a power of two >= 2 (2, 4, "
                f"8...), got {stack}")
        self.stack = stack
        widths = [n_mels] + [channels] * (stack.bit_length() - 2) + [d_model]
        for i, (a, b) in enumerate(zip(widths, widths[1:]), start=1):
            self.add_module(f"conv{i}", nn.Conv1d(a, b, kernel_size=2, stride=2))
        self.act = activation()

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """[B, T, n_mels] -> [B, ceil(T / stack), d_model]."""
        x = pad_to_multiple(mel, self.stack).transpose(1, 2)
        for conv in self.children():
            if isinstance(conv, nn.Conv1d):
                x = self.act(conv(x))
        return x.transpose(1, 2)


def n_stacked_frames(n_samples: int, hop_length: int = 240, stack: int = 4) -> int:
    """Encoder frames produced for a signal of ``n_samples`` samples.

    Example
    -------
    >>> n_stacked_frames(24000 * 30)   # 30 s -> 3001 mel frames -> 751
    751
    """
    return math.ceil((n_samples // hop_length + 1) / stack)
