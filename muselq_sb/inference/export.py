"""Deployable encoders: TorchScript, ONNX and dynamic int8.

* TorchScript (``torch.jit.trace``) of :class:`WaveformEncoder`: waveform
  [1, N] at 24 kHz -> last hidden state [1, T, d] or all hidden states
  stacked [1, L + 1, T, d]. The length axis stays dynamic (checked on
  several lengths, including one whose mel length is a multiple of 4).
* ONNX (``torch.onnx.export``, dynamo exporter, dynamic length) of
  :class:`LogMelEncoder`: the STFT of the front-end does not export
  (complex tensors), so the ONNX graph starts from the log-mel
  [1, T100, n_mels] that ``log_mel`` (the model's own front-end) computes;
  input normalisation, subsampling and encoder are inside the graph.
* int8: ``torch.ao.quantization.quantize_dynamic`` of the ``nn.Linear``
  layers (CPU), deployable as TorchScript.

Every export is checked against the PyTorch model (max abs difference).

Authors
 * muselq_sb team
"""
from __future__ import annotations

import argparse
import copy
import warnings
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch
from torch import nn

from muselq_sb.inference.embedding import load_model
from muselq_sb.lobes.model import MusicModel

#: Lengths (seconds) every export is checked on.
CHECK_SECONDS = (2.0, 1.99, 3.37)


class WaveformEncoder(nn.Module):
    """Export wrapper: waveforms [1, N] -> hidden states.

    Arguments
    ---------
    model : MusicModel
        The encoder.
    all_layers : bool
        Return all hidden states stacked [1, L + 1, T, d] instead of the
        last one [1, T, d].

    Example
    -------
    >>> from muselq_sb.lobes.branchformer import BranchformerEncoder
    >>> enc = BranchformerEncoder(1, d_model=8, nhead=2, kernel_size=3,
    ...                           csgu_linear_units=16)
    >>> wrapper = WaveformEncoder(MusicModel(enc, 8, subsampling_channels=8))
    >>> wrapper(torch.randn(1, 24000)).shape
    torch.Size([1, 26, 8])
    """

    def __init__(self, model: MusicModel, all_layers: bool = False) -> None:
        super().__init__()
        self.model = model.eval()
        self.all_layers = all_layers

    def _output(self, hidden: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack(hidden, dim=1) if self.all_layers else hidden[-1]

    def forward(self, wavs: torch.Tensor) -> torch.Tensor:
        """Hidden states of full-length waveforms [B, N]."""
        lens = torch.ones(wavs.shape[0], device=wavs.device)
        return self._output(self.model(wavs, lens))


class LogMelEncoder(WaveformEncoder):
    """Export wrapper: raw log-mel [1, T100, n_mels] -> hidden states.

    The input is ``log_mel(model, wavs)`` (not yet normalised).

    Example
    -------
    >>> from muselq_sb.lobes.branchformer import BranchformerEncoder
    >>> enc = BranchformerEncoder(1, d_model=8, nhead=2, kernel_size=3,
    ...                           csgu_linear_units=16)
    >>> model = MusicModel(enc, 8, subsampling_channels=8).eval()
    >>> wav = torch.randn(1, 24000)
    >>> out = LogMelEncoder(model)(log_mel(model, wav))
    >>> torch.allclose(out, WaveformEncoder(model)(wav), atol=1e-5)
    True
    """

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """Hidden states of full-length log-mels [B, T, n_mels]."""
        lens = torch.full((mel.shape[0],), mel.shape[1], device=mel.device)
        normed = self.model.normalizer(mel, lens)
        return self._output(self.model.encode(normed, lens))


def log_mel(model: MusicModel, wavs: torch.Tensor) -> torch.Tensor:
    """The ONNX model's input: raw log-mel [B, T, n_mels] of waveforms."""
    with torch.no_grad():
        return model.frontend(wavs, torch.ones(wavs.shape[0]))[0]


def example_waves(
    seconds: Sequence[float] = CHECK_SECONDS, sample_rate: int = 24000,
    seed: int = 0,
) -> list[torch.Tensor]:
    """Reproducible random waveforms [1, N] of the given lengths."""
    gen = torch.Generator().manual_seed(seed)
    return [0.1 * torch.randn(1, round(s * sample_rate), generator=gen)
            for s in seconds]


def max_abs_diff(
    reference: Callable[[torch.Tensor], torch.Tensor],
    candidate: Callable[[torch.Tensor], torch.Tensor],
    inputs: Sequence[torch.Tensor],
) -> list[float]:
    """Max abs difference of two functions on each input (shapes must agree).

    Example
    -------
    >>> max_abs_diff(torch.sin, lambda x: torch.sin(x) + 0.5, [torch.zeros(2)])
    [0.5]
    """
    diffs = []
    with torch.no_grad():
        for x in inputs:
            ref, out = reference(x), torch.as_tensor(candidate(x))
            if ref.shape != out.shape:
                raise AssertionError(
                    f"exported output shape {tuple(out.shape)} != "
                    f"{tuple(ref.shape)} for input {tuple(x.shape)}"
                )
            diffs.append(float((ref.float() - out.float()).abs().max()))
    return diffs


def export_torchscript(
    model: MusicModel, path: str | Path, all_layers: bool = False
) -> Path:
    """Traces :class:`WaveformEncoder` and saves it (``torch.jit.load``).

    Arguments
    ---------
    model : MusicModel
        The encoder (fp32 or int8 from :func:`quantize_int8`).
    path : path-like
        Output ``.pt`` file.
    all_layers : bool
        Stack all hidden states.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = WaveformEncoder(model, all_layers).eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # deprecation + tracer notes
        traced = torch.jit.trace(wrapper, example_waves()[0], check_trace=False)
    traced.save(str(path))
    return path


def export_onnx(
    model: MusicModel, path: str | Path, all_layers: bool = False,
    opset: int = 18,
) -> Path:
    """Exports :class:`LogMelEncoder` to ONNX with a dynamic length axis.

    Arguments
    ---------
    model : MusicModel
        The encoder.
    path : path-like
        Output ``.onnx`` file (input ``mel`` [1, T, n_mels], output
        ``hidden``).
    all_layers : bool
        Stack all hidden states.
    opset : int
        ONNX opset.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = LogMelEncoder(model, all_layers).eval()
    mel = log_mel(model, example_waves()[0])
    frames = torch.export.Dim("frames", min=8, max=200_000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper, (mel,), str(path), input_names=["mel"],
            output_names=["hidden"], dynamic_shapes={"mel": {1: frames}},
            opset_version=opset, dynamo=True, verbose=False,
        )
    return path


def check_torchscript(
    model: MusicModel, path: str | Path, all_layers: bool = False,
    seconds: Sequence[float] = CHECK_SECONDS,
) -> list[float]:
    """Max abs difference of a saved TorchScript file vs the model.

    Example
    -------
    >>> import tempfile
    >>> from muselq_sb.lobes.branchformer import BranchformerEncoder
    >>> enc = BranchformerEncoder(1, d_model=8, nhead=2, kernel_size=3,
    ...                           csgu_linear_units=16)
    >>> model = MusicModel(enc, 8, subsampling_channels=8).eval()
    >>> f = export_torchscript(model, tempfile.mkdtemp() + "/m.pt")
    >>> max(check_torchscript(model, f)) < 1e-4
    True
    """
    loaded = torch.jit.load(str(path))
    return max_abs_diff(WaveformEncoder(model, all_layers), loaded,
                        example_waves(seconds))


def check_onnx(
    model: MusicModel, path: str | Path, all_layers: bool = False,
    seconds: Sequence[float] = CHECK_SECONDS,
) -> list[float]:
    """Max abs difference of an ONNX file (onnxruntime, CPU) vs the model."""
    import onnxruntime

    session = onnxruntime.InferenceSession(
        str(path), providers=["CPUExecutionProvider"]
    )

    def run(mel: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {"mel": mel.numpy()})[0])

    mels = [log_mel(model, w) for w in example_waves(seconds)]
    return max_abs_diff(LogMelEncoder(model, all_layers), run, mels)


def quantize_int8(model: MusicModel) -> MusicModel:
    """A copy of ``model`` with int8 dynamic-quantised ``nn.Linear`` layers.

    For CPU inference. SummaryMixing's grouped projections are not
    ``nn.Linear`` and stay float32.

    Example
    -------
    >>> from muselq_sb.lobes.branchformer import BranchformerEncoder
    >>> enc = BranchformerEncoder(1, d_model=8, nhead=2, kernel_size=3,
    ...                           csgu_linear_units=16)
    >>> q = quantize_int8(MusicModel(enc, 8, subsampling_channels=8))
    >>> q.encoder.layers[0].merge_proj.weight().dtype
    torch.qint8
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization deprecation
        return torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(model).eval(), {nn.Linear}, dtype=torch.qint8
        )


def load_int8_music_model(
    source: str | Path, random_seed: Optional[int] = None, device: str = "cpu"
) -> MusicModel:
    """``load_model`` then ``quantize_int8``: a CPU int8 encoder.

    Has the loader signature the downstream suite takes (its yaml key
    ``model_loader``), so probes can measure what int8 costs::

        python recipes/downstream/run_suite.py --encoder=RUN --no_baselines \
            --model_loader=!name:muselq_sb.inference.export.load_int8_music_model
    """
    if device != "cpu":
        raise ValueError(f"int8 dynamic quantisation runs on CPU, not {device}")
    return quantize_int8(load_model(source, random_seed=random_seed))


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m muselq_sb.inference.export MODEL OUT [--formats ...]``.

    Writes ``encoder.ts.pt`` (TorchScript), ``encoder.onnx`` and
    ``encoder_int8.ts.pt`` into OUT and prints each max abs difference.
    """
    p = argparse.ArgumentParser(description="Export a muselq_sb encoder.")
    p.add_argument("model", type=Path, help="packaged model or run folder")
    p.add_argument("out", type=Path)
    p.add_argument("--formats", nargs="+", default=["torchscript", "onnx", "int8"],
                   choices=["torchscript", "onnx", "int8"])
    p.add_argument("--all-layers", action="store_true")
    args = p.parse_args(argv)
    model = load_model(args.model)
    jobs = {
        "torchscript": lambda: check_torchscript(model, export_torchscript(
            model, args.out / "encoder.ts.pt", args.all_layers), args.all_layers),
        "onnx": lambda: check_onnx(model, export_onnx(
            model, args.out / "encoder.onnx", args.all_layers), args.all_layers),
        "int8": lambda: check_torchscript(model, export_torchscript(
            quantize_int8(model), args.out / "encoder_int8.ts.pt",
            args.all_layers), args.all_layers),
    }
    for name in args.formats:
        diffs = jobs[name]()
        print(f"{name}: max abs diff vs PyTorch "
              + ", ".join(f"{d:.2e}" for d in diffs)
              + f" on {', '.join(f'{s:g} s' for s in CHECK_SECONDS)} inputs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
