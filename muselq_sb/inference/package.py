"""Pre-training run -> self-contained, pickle-free model folder.

A packaged model folder holds:

* ``model.safetensors``: the ``MusicModel`` state dict (input normalisation
  statistics included);
* ``quantizer.safetensors``: the frozen BEST-RQ projection and codebook (for
  those who want the pre-training targets);
* ``hyperparams.yaml``: a model-only HyperPyYAML file that builds the
  ``MusicModel`` (key ``model``) and the quantizer (key ``quantizer``) with
  ``!new:`` tags, plus a few plain facts (``sample_rate``, ``frame_rate``...);
* ``README.md``: a model card (architecture, size, training set-up).

Nothing in it is unpickled when it is loaded, and its yaml may only name
classes of ``muselq_sb``, ``speechbrain`` and ``torch.nn`` (checked before
anything is built). Run checkpoints are read with
``torch.load(weights_only=True)``, which refuses pickled code.

Authors
 * muselq_sb team
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import load_file, save_file

from muselq_sb.dataio.manifest import atomic_write_text
from muselq_sb.lobes.loading import (
    HPARAMS_FILE,
    ModelFolderError,
    build_from_yaml,
    dump_yaml,
    evaluate_applies,
    load_run_state,
    read_run_hparams,
    run_model_yaml,
    strip_tags,
)
from muselq_sb.lobes.model import MusicModel, build_music_model
from muselq_sb.version import __version__

MODEL_FILE = "model.safetensors"
QUANTIZER_FILE = "quantizer.safetensors"
CARD_FILE = "README.md"
#: Run hyperparameters quoted in the model card.
CARD_KEYS = (
    "experiment_name", "size", "seed", "precision", "lr", "lr_min",
    "warmup_steps", "total_steps", "segment_seconds", "max_batch_seconds",
    "grad_accumulation_factor", "max_grad_norm", "mask_prob", "mask_span",
    "cb_vocab", "num_codebooks", "data_sources", "data_folder", "demo_folder",
)


def _plain(value: Any) -> Any:
    """ruamel containers -> plain Python (for the card)."""
    return yaml.safe_load(dump_yaml({"v": value}))["v"]


def model_yaml(run_folder: str | Path) -> str:
    """The model-only ``hyperparams.yaml`` text of a pre-training run.

    It keeps the run's ``model`` and ``ssl_model.quantizer`` definitions
    (``!apply:`` presets evaluated to numbers), drops data paths and
    training objects, and adds ``sample_rate``, ``frame_rate``,
    ``attention_type``, ``num_layers`` and ``d_model``.

    Arguments
    ---------
    run_folder : path-like
        A pre-training output folder.

    Returns
    -------
    str
        YAML text that :func:`build_from_yaml` turns into a model.
    """
    run_folder = Path(run_folder)
    text = run_model_yaml(run_folder, with_quantizer=True)
    built = build_music_model(text, run_folder / HPARAMS_FILE)
    header = {
        "muselq_sb_version": __version__,
        "sample_rate": built.frontend.sample_rate,
        "frame_rate": built.frame_rate,
        "attention_type": getattr(built.encoder, "attention_type", "unknown"),
        "num_layers": built.num_layers,
        "d_model": built.d_model,
    }
    intro = (
        "# muselq_sb model (model only: no data paths, no training objects).\n"
        "# Load with muselq_sb.inference.encoder.MusicEncoder.from_folder.\n"
    )
    return intro + dump_yaml(header) + text


def _training_facts(run_folder: Path, ckpt_dir: Path) -> dict:
    """Hyperparameters and checkpoint meta quoted in the model card."""
    doc = read_run_hparams(run_folder)
    facts = {k: _plain(evaluate_applies(doc[k])) for k in CARD_KEYS if k in doc}
    for name in ("brain.ckpt", "CKPT.yaml"):  # plain yaml files
        path = ckpt_dir / name
        if path.is_file():
            meta = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            facts.update({k: v for k, v in meta.items()
                          if k in ("optimizer_step", "end-of-epoch")})
    facts["checkpoint"] = ckpt_dir.name
    return facts


def model_card(model: MusicModel, facts: dict) -> str:
    """Markdown model card of a packaged model.

    Arguments
    ---------
    model : MusicModel
        The packaged model.
    facts : dict
        Training facts (run hyperparameters and checkpoint meta).

    Returns
    -------
    str
        The ``README.md`` text.

    Example
    -------
    >>> from muselq_sb.lobes.branchformer import BranchformerEncoder
    >>> enc = BranchformerEncoder(1, d_model=16, nhead=2, kernel_size=3,
    ...                           csgu_linear_units=32)
    >>> card = model_card(MusicModel(enc, 16, subsampling_channels=16),
    ...                   {"optimizer_step": 5, "precision": "bf16"})
    >>> "| optimizer steps | 5 |" in card and "SummaryMixing" in card
    True
    """
    n_params = sum(p.numel() for p in model.parameters())
    encoder = model.encoder
    arch = [
        ("encoder", f"{type(encoder).__name__} ({type(encoder).__module__})"),
        ("attention type", getattr(encoder, "attention_type", "unknown")),
        ("layers x width", f"{model.num_layers} x {model.d_model}"),
        ("parameters", f"{n_params:,} ({n_params / 1e6:.2f} M)"),
        ("input", f"mono waveform at {model.frontend.sample_rate} Hz "
                  f"-> {model.frontend.n_mels}-bin log-mel"),
        ("embeddings per second", f"{model.frame_rate:g}"),
        ("hidden states", f"{model.num_layers + 1} (index 0: subsampled "
                          "input; last: final layer + LayerNorm)"),
    ]
    schedule = (
        f"warm-up to {facts.get('lr')} over {facts.get('warmup_steps')} "
        f"steps, cosine to {facts.get('lr_min')} at "
        f"{facts.get('total_steps')} steps"
    )
    train = [
        ("optimizer steps", facts.get("optimizer_step")),
        ("data sources", facts.get("data_sources") or facts.get("data_folder")
         or f"demo corpus ({facts.get('demo_folder') or 'default cache'})"),
        ("precision", facts.get("precision")),
        ("learning-rate schedule", schedule),
        ("segment / batch seconds",
         f"{facts.get('segment_seconds')} / {facts.get('max_batch_seconds')}"),
        ("masking", f"p={facts.get('mask_prob')}, span={facts.get('mask_span')}"),
        ("codebook", f"{facts.get('num_codebooks')} x {facts.get('cb_vocab')}"),
        ("experiment / size / seed", f"{facts.get('experiment_name')} / "
                                     f"{facts.get('size')} / {facts.get('seed')}"),
        ("checkpoint", facts.get("checkpoint")),
    ]

    def table(rows: list) -> str:
        return "| | |\n|---|---|\n" + "".join(f"| {k} | {v} |\n" for k, v in rows)

    return (
        "# muselq_sb music encoder\n\n"
        "BEST-RQ pre-trained music encoder packaged by muselq_sb "
        f"{__version__}. Weights are safetensors; nothing is unpickled.\n\n"
        "```python\nfrom muselq_sb.inference.encoder import MusicEncoder\n"
        "enc = MusicEncoder.from_folder(\"<this folder>\")\n"
        "emb = enc.encode_file(\"song.mp3\", layers=-1, pooling=\"mean\")\n```\n\n"
        "## Architecture\n\n" + table(arch) + "\n## Training\n\n" + table(train)
        + "\nFiles: `model.safetensors` (encoder + input statistics), "
        "`quantizer.safetensors` (BEST-RQ targets), `hyperparams.yaml`.\n"
    )


def package_model(run_folder: str | Path, out_folder: str | Path) -> Path:
    """Writes the self-contained model folder of a pre-training run.

    Arguments
    ---------
    run_folder : path-like
        A pre-training output folder.
    out_folder : path-like
        Where to write ``model.safetensors``, ``quantizer.safetensors``,
        ``hyperparams.yaml`` and ``README.md`` (created if needed).

    Returns
    -------
    Path
        ``out_folder``.
    """
    run_folder, out_folder = Path(run_folder), Path(out_folder)
    model_state, quantizer_state, ckpt_dir = load_run_state(run_folder)
    text = model_yaml(run_folder)
    model = build_music_model(text, run_folder / HPARAMS_FILE)
    model.load_state_dict(model_state, strict=True)
    out_folder.mkdir(parents=True, exist_ok=True)
    meta = {"format": "muselq_sb", "version": __version__}
    save_file(model_state, str(out_folder / MODEL_FILE), metadata=meta)
    if quantizer_state:
        save_file(quantizer_state, str(out_folder / QUANTIZER_FILE), metadata=meta)
    atomic_write_text(out_folder / HPARAMS_FILE, text)
    card = model_card(model, _training_facts(run_folder, ckpt_dir))
    atomic_write_text(out_folder / CARD_FILE, card)
    return out_folder


def load_model_folder(model_folder: str | Path) -> tuple[MusicModel, dict]:
    """Builds the ``MusicModel`` of a packaged folder (safetensors + yaml).

    Arguments
    ---------
    model_folder : path-like
        A folder written by :func:`package_model`.

    Returns
    -------
    model : MusicModel
        With its weights, in eval mode.
    info : dict
        The plain facts of ``hyperparams.yaml`` (``sample_rate``...).
    """
    folder = Path(model_folder)
    hparams_path, weights = folder / HPARAMS_FILE, folder / MODEL_FILE
    for path in (hparams_path, weights):
        if not path.is_file():
            raise ModelFolderError(path, "missing: not a packaged model folder")
    text = hparams_path.read_text(encoding="utf-8")
    model = build_music_model(text, hparams_path)
    try:
        model.load_state_dict(load_file(str(weights)), strict=True)
    except (RuntimeError, OSError) as err:
        raise ModelFolderError(weights, f"does not fit the yaml model ({err})") from err
    info = {k: v for k, v in yaml.safe_load(strip_tags(text)).items()
            if not isinstance(v, (dict, list))}
    return model.eval(), info


def load_quantizer(model_folder: str | Path) -> torch.nn.Module:
    """The frozen BEST-RQ quantizer of a packaged model folder.

    Arguments
    ---------
    model_folder : path-like
        A folder written by :func:`package_model`.

    Returns
    -------
    RandomProjectionQuantizer
        Tokens of stacked normalised log-mels (``model.targets(mel)``).
    """
    folder = Path(model_folder)
    path = folder / HPARAMS_FILE
    quantizer = build_from_yaml(path.read_text(encoding="utf-8"), path, "quantizer")
    weights = folder / QUANTIZER_FILE
    if not weights.is_file():
        raise ModelFolderError(weights, "missing: the run had no quantizer")
    quantizer.load_state_dict(load_file(str(weights)), strict=True)
    return quantizer

