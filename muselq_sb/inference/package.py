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

import io
import pickle
import re
from pathlib import Path
from typing import Any

import torch
import yaml
from hyperpyyaml import load_hyperpyyaml
from ruamel.yaml import YAML
from safetensors.torch import load_file, save_file

from muselq_sb.dataio.manifest import atomic_write_text
from muselq_sb.lobes.model import MusicModel, latest_checkpoint
from muselq_sb.version import __version__

MODEL_FILE = "model.safetensors"
QUANTIZER_FILE = "quantizer.safetensors"
HPARAMS_FILE = "hyperparams.yaml"
CARD_FILE = "README.md"
#: Dotted-path prefixes a packaged ``hyperparams.yaml`` may instantiate.
ALLOWED_PREFIXES = ("muselq_sb.", "speechbrain.", "torch.nn.")
#: HyperPyYAML tags allowed in a packaged yaml (no ``!apply``/``!module``...).
ALLOWED_TAGS = ("new", "name", "ref", "copy", "tuple")
#: Run hyperparameters quoted in the model card.
CARD_KEYS = (
    "experiment_name", "size", "seed", "precision", "lr", "lr_min",
    "warmup_steps", "total_steps", "segment_seconds", "max_batch_seconds",
    "grad_accumulation_factor", "max_grad_norm", "mask_prob", "mask_span",
    "cb_vocab", "num_codebooks", "data_sources", "data_folder", "demo_folder",
)
_TAG = re.compile(r"!([A-Za-z_]+)(?::([\w.]*))?")


class ModelFolderError(RuntimeError):
    """A run or model folder cannot be used; the message names the file.

    Example
    -------
    >>> str(ModelFolderError("/m/model.safetensors", "missing"))
    '/m/model.safetensors: missing'
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)


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


def _round_trip_yaml() -> YAML:
    ry = YAML()
    ry.width = 100
    return ry


def _dump(ry: YAML, data: Any) -> str:
    stream = io.StringIO()
    ry.dump(data, stream)
    return stream.getvalue()


def _tag_of(node: Any) -> str:
    tag = getattr(node, "tag", None)
    return getattr(tag, "value", None) or ""


def _evaluate_applies(ry: YAML, node: Any) -> Any:
    """``node`` with every ``!apply:`` sub-node replaced by its value."""
    if _tag_of(node).startswith("!apply:"):
        return load_hyperpyyaml(_dump(ry, {"value": node}))["value"]
    if isinstance(node, dict):
        for key in list(node):
            node[key] = _evaluate_applies(ry, node[key])
    elif isinstance(node, list):
        for i, item in enumerate(node):
            node[i] = _evaluate_applies(ry, item)
    return node


def _read_run_hparams(run_folder: Path) -> dict:
    """The run's ``hyperparams.yaml`` as ruamel nodes (nothing built)."""
    path = run_folder / HPARAMS_FILE
    if not path.is_file():
        raise ModelFolderError(path, "missing: expected a pre-training run")
    doc = _round_trip_yaml().load(path.read_text(encoding="utf-8"))
    for key in ("model", "ssl_model"):
        if key not in doc:
            raise ModelFolderError(path, f"has no {key!r} entry")
    return doc


def _plain(value: Any) -> Any:
    """ruamel containers -> plain Python (for the card)."""
    return yaml.safe_load(_dump(_round_trip_yaml(), {"v": value}))["v"]


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
    ry = _round_trip_yaml()
    doc = _read_run_hparams(run_folder)
    model = _evaluate_applies(ry, doc["model"])
    quantizer = _evaluate_applies(ry, doc["ssl_model"]["quantizer"])
    built = build_from_yaml(_dump(ry, {"model": model}), run_folder)
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
    return intro + _dump(ry, {**header, "model": model, "quantizer": quantizer})


def check_yaml_tags(text: str, path: str | Path) -> None:
    """Refuses yaml that could run more than model constructors.

    Arguments
    ---------
    text : str
        HyperPyYAML text.
    path : path-like
        Its file (for the message).

    Raises
    ------
    ModelFolderError
        A tag other than ``ALLOWED_TAGS`` or a class outside
        ``ALLOWED_PREFIXES``.

    Example
    -------
    >>> check_yaml_tags("m: !new:muselq_sb.lobes.model.MusicModel", "h.yaml")
    >>> check_yaml_tags("x: !apply:os.system [ls]", "h.yaml")
    Traceback (most recent call last):
    ...
    muselq_sb.inference.package.ModelFolderError: h.yaml: tag '!apply:os.system' not allowed in a model folder (allowed: !new/!name of muselq_sb., speechbrain., torch.nn., !ref, !copy, !tuple)
    """
    for match in _TAG.finditer(text):
        kind, target = match.group(1), match.group(2) or ""
        ok = kind in ALLOWED_TAGS and (
            kind not in ("new", "name") or target.startswith(ALLOWED_PREFIXES)
        )
        if not ok:
            raise ModelFolderError(
                path,
                f"tag {match.group(0)!r} not allowed in a model folder "
                "(allowed: !new/!name of " + ", ".join(ALLOWED_PREFIXES)
                + ", !ref, !copy, !tuple)",
            )


def build_from_yaml(text: str, path: str | Path, key: str = "model") -> Any:
    """Builds the object ``key`` of checked model-only yaml text.

    Arguments
    ---------
    text : str
        Model-only HyperPyYAML text.
    path : path-like
        Where it comes from (for messages).
    key : str
        Entry to return (``model`` or ``quantizer``).

    Returns
    -------
    object
        The built object (a ``MusicModel`` for ``model``).
    """
    check_yaml_tags(text, path)
    hparams = load_hyperpyyaml(text)
    if key not in hparams:
        raise ModelFolderError(path, f"has no {key!r} entry")
    obj = hparams[key]
    if key == "model" and not isinstance(obj, MusicModel):
        raise ModelFolderError(path, "'model' is not a muselq_sb MusicModel")
    return obj


def _training_facts(run_folder: Path, ckpt_dir: Path) -> dict:
    """Hyperparameters and checkpoint meta quoted in the model card."""
    doc = _read_run_hparams(run_folder)
    ry = _round_trip_yaml()
    facts = {k: _plain(_evaluate_applies(ry, doc[k])) for k in CARD_KEYS
             if k in doc}
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
    model = build_from_yaml(text, run_folder / HPARAMS_FILE)
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
    model = build_from_yaml(text, hparams_path)
    try:
        model.load_state_dict(load_file(str(weights)), strict=True)
    except (RuntimeError, OSError) as err:
        raise ModelFolderError(weights, f"does not fit the yaml model ({err})") from err
    info = {k: v for k, v in yaml.safe_load(_strip_tags(text)).items()
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


def _strip_tags(text: str) -> str:
    """Yaml text with HyperPyYAML tags removed (for ``yaml.safe_load``)."""
    return _TAG.sub("", text)
