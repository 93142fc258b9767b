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

import yaml
from safetensors.torch import save_file

from muselq_sb.dataio.manifest import atomic_write_text
from muselq_sb.inference.embedding import MODEL_FILE, load_model, load_run_state
from muselq_sb.lobes.model import MusicModel
from muselq_sb.utils.hparams import (
    HPARAMS_FILE,
    dump_yaml,
    model_definition,
    read_run_hparams,
)
from muselq_sb.version import __version__

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


def model_yaml(run_folder: Path, model: MusicModel) -> str:
    """The model-only ``hyperparams.yaml`` text of a pre-training run.

    It keeps the run's ``model`` and ``ssl_model.quantizer`` definitions
    (size presets of old runs evaluated to numbers), drops data paths and
    training objects, and adds ``sample_rate``, ``frame_rate``,
    ``attention_type``, ``num_layers`` and ``d_model`` (of ``model``, the
    run's encoder).
    """
    header = {
        "muselq_sb_version": __version__,
        "sample_rate": model.frontend.sample_rate,
        "frame_rate": model.frame_rate,
        "attention_type": getattr(model.encoder, "attention_type", "unknown"),
        "num_layers": model.num_layers,
        "d_model": model.d_model,
    }
    intro = (
        "# muselq_sb model (model only: no data paths, no training objects).\n"
        "# Load with muselq_sb.inference.encoder.MusicEncoder.from_path.\n"
    )
    return intro + dump_yaml(header) + model_definition(run_folder, with_quantizer=True)


def _training_facts(run_folder: Path, ckpt_dir: Path) -> dict:
    """Hyperparameters and checkpoint meta quoted in the model card."""
    doc = read_run_hparams(run_folder)
    facts = {k: _plain(doc[k]) for k in CARD_KEYS if k in doc}
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
        "enc = MusicEncoder.from_path(\"<this folder>\")\n"
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
    model = load_model(run_folder)  # the weights fit the model definition
    text = model_yaml(run_folder, model)
    out_folder.mkdir(parents=True, exist_ok=True)
    meta = {"format": "muselq_sb", "version": __version__}
    save_file(model_state, str(out_folder / MODEL_FILE), metadata=meta)
    if quantizer_state:
        save_file(quantizer_state, str(out_folder / QUANTIZER_FILE), metadata=meta)
    atomic_write_text(out_folder / HPARAMS_FILE, text)
    card = model_card(model, _training_facts(run_folder, ckpt_dir))
    atomic_write_text(out_folder / CARD_FILE, card)
    return out_folder
