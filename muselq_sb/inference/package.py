"""Pre-training run -> self-contained, pickle-free model folder.

A packaged model folder holds:

* ``model.safetensors``: the ``MusicModel`` state dict (input normalisation
  statistics included);
* ``quantizer.safetensors``: the frozen BEST-RQ projection and codebook (for
  those who want the pre-training targets);
* ``hyperparams.yaml``: a model-only HyperPyYAML file that builds the
  ``MusicModel`` (key ``model``) and the quantizer (key ``quantizer``) with
  ``!new:`` tags, a few plain facts (``sample_rate``, ``frame_rate``...),
  and the ``modules`` and ``pretrainer`` keys of ``speechbrain.inference``
  (:class:`~muselq_sb.inference.pretrainer.FolderPretrainer`);
* ``README.md``: the model card, its facts also as YAML front matter that
  machines read (:func:`read_card`; the Hugging Face Hub shows it);
* ``custom_interface.py``: one import, for SpeechBrain's ``foreign_class``.

The same folder is a Hugging Face Hub model repository as it is
(``MusicEncoder.from_pretrained`` / ``push_to_hub``).

Nothing in it is unpickled when it is loaded, and its yaml may only name
classes of ``muselq_sb``, ``speechbrain`` and ``torch.nn`` (checked before
anything is built). Run checkpoints are read with
``torch.load(weights_only=True)``, which refuses pickled code.

Authors
 * muselq_sb team
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping, Optional

import yaml
from safetensors.torch import save_file

from muselq_sb.dataio.manifest import atomic_write_text
from muselq_sb.inference.embedding import (
    LINEAR_TYPES,
    MODEL_FILE,
    WINDOW_SECONDS,
    load_model,
    load_run_state,
    read_weights,
)
from muselq_sb.inference.pretrainer import FolderPretrainer
from muselq_sb.lobes.model import MusicModel
from muselq_sb.utils.hparams import (
    HPARAMS_FILE,
    ModelFolderError,
    dump_yaml,
    model_definition,
    read_run_hparams,
)
from muselq_sb.version import __version__

QUANTIZER_FILE = "quantizer.safetensors"
CARD_FILE = "README.md"
INTERFACE_FILE = "custom_interface.py"
#: Every file of a packaged folder (the Hub upload and download list).
FOLDER_FILES = (MODEL_FILE, QUANTIZER_FILE, HPARAMS_FILE, CARD_FILE, INTERFACE_FILE)
#: The card's front-matter key holding this package's facts.
CARD_KEY = "muselq_sb"
DEFAULT_LICENSE = "apache-2.0"
#: Run hyperparameters quoted in the model card.
CARD_KEYS = (
    "experiment_name", "size", "seed", "precision", "lr", "lr_min",
    "warmup_steps", "total_steps", "segment_seconds", "max_batch_seconds",
    "grad_accumulation_factor", "max_grad_norm", "mask_prob", "mask_span",
    "cb_vocab", "num_codebooks", "data_sources", "data_folder", "demo_folder",
)
INTERFACE_TEXT = (
    '"""SpeechBrain foreign_class entry point of this muselq_sb model folder."""\n'
    "from muselq_sb.inference.encoder import MusicEncoder  # noqa: F401\n"
)


def _plain(value: Any) -> Any:
    """ruamel containers -> plain Python (for the card)."""
    return yaml.safe_load(dump_yaml({"v": value}))["v"]


def folder_yaml(definition: str, model: MusicModel, with_quantizer: bool) -> str:
    """The ``hyperparams.yaml`` text of a packaged folder.

    Arguments
    ---------
    definition : str
        Yaml with the ``model`` (and ``quantizer``) entry
        (:func:`~muselq_sb.utils.hparams.model_definition`).
    model : MusicModel
        The model it builds (for the plain facts of the header).
    with_quantizer : bool
        The folder has ``quantizer.safetensors`` (the ``pretrainer`` loads it).

    Returns
    -------
    str
        Header facts, the definition, ``modules`` and ``pretrainer``.
    """
    header = {
        "muselq_sb_version": __version__,
        "sample_rate": model.frontend.sample_rate,
        "frame_rate": model.frame_rate,
        "attention_type": getattr(model.encoder, "attention_type", "unknown"),
        "num_layers": model.num_layers,
        "d_model": model.d_model,
    }
    names = ["model", "quantizer"] if with_quantizer else ["model"]
    files = {"model": MODEL_FILE, "quantizer": QUANTIZER_FILE}
    pretrainer = (
        f"pretrainer: !new:{FolderPretrainer.__module__}.{FolderPretrainer.__name__}\n"
        "  loadables:\n" + "".join(f"    {n}: !ref <{n}>\n" for n in names)
        + "  paths:\n" + "".join(f"    {n}: {files[n]}\n" for n in names)
    )
    intro = (
        "# muselq_sb model (model only: no data paths, no training objects).\n"
        "# Load with muselq_sb.inference.encoder.MusicEncoder.from_pretrained,\n"
        "# or SpeechBrain's MusicEncoder.from_hparams(source=<this folder>).\n"
    )
    return (intro + dump_yaml(header) + definition
            + "modules:\n  model: !ref <model>\n" + pretrainer)


def _training_facts(run_folder: Path, ckpt_dir: Path) -> dict:
    """Hyperparameters and checkpoint meta quoted in the model card."""
    doc = read_run_hparams(run_folder)
    facts = {k: _plain(doc[k]) for k in CARD_KEYS if k in doc}
    for name in ("brain.ckpt", "CKPT.yaml"):  # plain yaml files
        path = ckpt_dir / name
        if path.is_file():
            meta = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            facts.update({k: v for k, v in meta.items()
                          if k in ("optimizer_step", "end-of-epoch", "precision")})
    facts["checkpoint"] = ckpt_dir.name
    return facts


def recommended_layers(suite_results: Mapping, variant: str = "checkpoint") -> dict:
    """Recommended hidden state per task family, from a probe suite's results.

    The probes of ``layer: weighted`` learn softmax weights over the hidden
    states (``layer_weights`` of each seed's ``results.json``); a probe of
    ``layer: best`` counts as all weight on its ``chosen_layer``. A family's
    weights are the mean over its tasks and seeds (tasks without a
    ``task_family`` are their own family).

    Arguments
    ---------
    suite_results : mapping
        The suite's ``results.json`` (``{variant: {task: summary}}``).
    variant : str
        The encoder variant to read (``checkpoint`` for a one-encoder
        suite; the ``NAME`` of ``--encoder NAME=PATH`` otherwise).

    Returns
    -------
    dict
        ``{family: {"layer": index, "weights": [...], "tasks": [...]}}``
        (empty when no run recorded layer weights).

    Example
    -------
    >>> runs = [{"task": "key", "task_family": "tonal", "layer_weights": w}
    ...         for w in ([0.1, 0.7, 0.2], [0.3, 0.5, 0.2])]
    >>> recommended_layers({"checkpoint": {"key": {"runs": runs}}})
    {'tonal': {'layer': 1, 'weights': [0.2, 0.6, 0.2], 'tasks': ['key']}}
    >>> best = [{"task": "key", "chosen_layer": c, "layer_valid": [0.5] * 3} for c in (2, 2, 0)]
    >>> recommended_layers({"checkpoint": {"key": {"runs": best}}})["key"]["layer"]
    2
    """
    if variant not in suite_results:
        raise ValueError(f"suite results have no variant {variant!r}; "
                         f"found {sorted(suite_results)}")
    families: dict[str, dict] = {}
    for task, summary in suite_results[variant].items():
        for run in summary.get("runs", []):
            weights = run.get("layer_weights")
            if "chosen_layer" in run:
                weights = [float(i == run["chosen_layer"]) for i in range(len(run["layer_valid"]))]
            if weights:
                family = families.setdefault(run.get("task_family") or task,
                                             {"weights": [], "tasks": []})
                family["weights"].append(weights)
                if task not in family["tasks"]:
                    family["tasks"].append(task)
    result = {}
    for name, family in sorted(families.items()):
        mean = [sum(col) / len(col) for col in zip(*family["weights"])]
        result[name] = {"layer": max(range(len(mean)), key=mean.__getitem__),
                        "weights": [round(w, 4) for w in mean],
                        "tasks": sorted(family["tasks"])}
    return result


def model_facts(model: MusicModel) -> dict:
    """What a user of the model needs to know, as plain values.

    Example
    -------
    >>> from muselq_sb.lobes.branchformer import BranchformerEncoder
    >>> enc = BranchformerEncoder(1, d_model=16, nhead=2, kernel_size=3,
    ...                           csgu_linear_units=32)
    >>> facts = model_facts(MusicModel(enc, 16, subsampling_channels=16))
    >>> facts["sample_rate"], facts["frame_rate"], facts["max_input_seconds"]
    (24000, 25.0, None)
    """
    attention = getattr(model.encoder, "attention_type", "unknown")
    return {
        "sample_rate": model.frontend.sample_rate,
        "frame_rate": model.frame_rate,
        # SummaryMixing takes a whole track in one pass; attention encoders
        # see windows of this length (longer inputs are stitched windows)
        "max_input_seconds": None if attention in LINEAR_TYPES else WINDOW_SECONDS,
        "attention_type": attention,
        "encoder": type(model.encoder).__name__,
        "num_layers": model.num_layers,
        "d_model": model.d_model,
        "hidden_states": model.num_layers + 1,
        "parameters": sum(p.numel() for p in model.parameters()),
        "n_mels": model.frontend.n_mels,
    }


def card_metadata(
    model: MusicModel, facts: Mapping, license: str = DEFAULT_LICENSE,
    recommended: Optional[Mapping] = None,
) -> dict:
    """The card's YAML front matter: Hub fields and this package's facts
    (:func:`model_facts`, ``recommended_layers``, ``training``)."""
    return {
        "license": license,
        "library_name": "speechbrain",
        "pipeline_tag": "feature-extraction",
        "tags": ["music", "audio", "self-supervised-learning", "best-rq",
                 "muselq_sb", str(model_facts(model)["attention_type"])],
        CARD_KEY: {
            "version": __version__,
            **model_facts(model),
            "recommended_layers": dict(recommended or {}),
            "training": dict(facts),
        },
    }


def model_card(
    model: MusicModel, facts: Mapping, license: str = DEFAULT_LICENSE,
    recommended: Optional[Mapping] = None,
) -> str:
    """Markdown model card of a packaged model, with YAML front matter.

    Arguments
    ---------
    model : MusicModel
        The packaged model.
    facts : mapping
        Training facts (run hyperparameters and checkpoint meta).
    license : str
        The weights' licence (a Hub licence id).
    recommended : mapping, optional
        :func:`recommended_layers`.

    Returns
    -------
    str
        The ``README.md`` text (:func:`read_card` reads its front matter).

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
    meta = card_metadata(model, facts, license, recommended)
    info = meta[CARD_KEY]
    max_len = info["max_input_seconds"]
    arch = [
        ("encoder", f"{info['encoder']} ({type(model.encoder).__module__})"),
        ("attention type", info["attention_type"]),
        ("layers x width", f"{info['num_layers']} x {info['d_model']}"),
        ("parameters", f"{info['parameters']:,} ({info['parameters'] / 1e6:.2f} M)"),
        ("input", f"mono waveform at {info['sample_rate']} Hz "
                  f"-> {info['n_mels']}-bin log-mel"),
        ("embeddings per second", f"{info['frame_rate']:g}"),
        ("maximum input length", "none (whole tracks in one pass)" if max_len is None
         else f"{max_len:g} s per pass (longer inputs: overlapping windows)"),
        ("hidden states", f"{info['hidden_states']} (index 0: subsampled "
                          "input; last: final layer + LayerNorm)"),
        ("licence", license),
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
    layers = [(family, f"{r['layer']} (weights {r['weights']}; tasks "
                       f"{', '.join(r['tasks'])})")
              for family, r in info["recommended_layers"].items()]

    def table(rows: list) -> str:
        return "| | |\n|---|---|\n" + "".join(f"| {k} | {v} |\n" for k, v in rows)

    return (
        "---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n\n"
        "# muselq_sb music encoder\n\n"
        "BEST-RQ pre-trained music encoder packaged by muselq_sb "
        f"{__version__}. Weights are safetensors; nothing is unpickled.\n\n"
        "```python\nfrom muselq_sb.inference.encoder import MusicEncoder\n"
        "enc = MusicEncoder.from_pretrained(\"<this folder or Hub repo id>\")\n"
        "emb = enc.encode_file(\"song.mp3\", layers=-1, pooling=\"mean\")\n```\n\n"
        "Also: `muselq-embed MODEL song.mp3 out/`, the HEAR API "
        "(`muselq_sb.hear.load_model(MODEL)`) and SpeechBrain "
        "(`MusicEncoder.from_hparams(source=MODEL)`); `muselq-embed --info "
        "MODEL` prints this card's facts.\n\n"
        "## Architecture\n\n" + table(arch)
        + "\n## Recommended layers\n\n"
        + (table(layers) if layers else
           "No probe results were packaged: the last layer (-1) is the default; "
           "a weighted sum of all layers (`layers=\"all\"`) is the safe choice "
           "for a new task.\n")
        + "\n## Training\n\n" + table(train)
        + "\nFiles: `model.safetensors` (encoder + input statistics), "
        "`quantizer.safetensors` (BEST-RQ targets), `hyperparams.yaml`.\n"
    )


def read_card(folder: str | Path) -> dict:
    """The front matter of a packaged folder's model card (``{}`` if none).

    Raises
    ------
    ModelFolderError
        Front matter that is not valid yaml.
    """
    path = Path(folder) / CARD_FILE
    if not path.is_file():
        return {}
    text = path.read_text(encoding="utf-8")
    if not text.startswith("---\n") or "\n---\n" not in text[3:]:
        return {}
    try:
        meta = yaml.safe_load(text[4:text.index("\n---\n", 3)])
    except yaml.YAMLError as err:
        raise ModelFolderError(path, f"front matter is not valid yaml ({err})") from err
    return meta if isinstance(meta, dict) else {}


def _save_tensors(tensors: dict, path: Path) -> None:
    """``save_file`` to a temporary name, then renamed (never half-written)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"format": "pt", "muselq_sb": __version__})
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_model_folder(
    out_folder: str | Path, model: MusicModel, definition: str,
    quantizer_state: Mapping, card: str,
) -> Path:
    """Writes every file of a packaged folder (each atomically).

    Arguments
    ---------
    out_folder : path-like
        Created if needed.
    model : MusicModel
        Its state dict becomes ``model.safetensors``.
    definition : str
        The ``model`` (and ``quantizer``) yaml entries.
    quantizer_state : mapping
        Quantizer buffers (empty: no ``quantizer.safetensors``).
    card : str
        ``README.md`` text (:func:`model_card`).

    Returns
    -------
    Path
        ``out_folder``.
    """
    out_folder = Path(out_folder)
    out_folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    _save_tensors(state, out_folder / MODEL_FILE)
    if quantizer_state:
        _save_tensors(dict(quantizer_state), out_folder / QUANTIZER_FILE)
    elif (out_folder / QUANTIZER_FILE).exists():
        (out_folder / QUANTIZER_FILE).unlink()
    atomic_write_text(out_folder / HPARAMS_FILE,
                      folder_yaml(definition, model, bool(quantizer_state)))
    atomic_write_text(out_folder / CARD_FILE, card)
    atomic_write_text(out_folder / INTERFACE_FILE, INTERFACE_TEXT)
    return out_folder


def package_model(
    run_folder: str | Path, out_folder: str | Path,
    license: str = DEFAULT_LICENSE, suite_results: Optional[str | Path] = None,
    suite_variant: str = "checkpoint",
) -> Path:
    """Writes the self-contained model folder of a pre-training run.

    Arguments
    ---------
    run_folder : path-like
        A pre-training output folder.
    out_folder : path-like
        Where to write the folder's files (created if needed).
    license : str
        The weights' licence for the card (a Hub licence id: the code's
        by default; use the training data's terms when they are stricter).
    suite_results : path-like, optional
        The probe suite's ``results.json`` for this run: the card then
        recommends a layer per task family (:func:`recommended_layers`).
    suite_variant : str
        This run's variant in those results.

    Returns
    -------
    Path
        ``out_folder``.
    """
    run_folder = Path(run_folder)
    _, quantizer_state, ckpt_dir = load_run_state(run_folder)
    model = load_model(run_folder)  # the weights fit the model definition
    recommended = None
    if suite_results is not None:
        recommended = recommended_layers(
            json.loads(Path(suite_results).read_text(encoding="utf-8")),
            suite_variant)
    card = model_card(model, _training_facts(run_folder, ckpt_dir), license,
                      recommended)
    return write_model_folder(
        out_folder, model, model_definition(run_folder, with_quantizer=True),
        quantizer_state, card)


def save_model_folder(source: str | Path, out_folder: str | Path) -> Path:
    """A run or a packaged folder (of any muselq_sb version) -> a packaged
    folder in the current layout (its card's facts kept).

    Arguments
    ---------
    source : path-like
        A pre-training run (:func:`package_model`) or a packaged folder.
    out_folder : path-like
        Where to write (may be ``source`` itself).

    Returns
    -------
    Path
        ``out_folder``.
    """
    source = Path(source)
    if (source / "save").is_dir() and not (source / MODEL_FILE).is_file():
        return package_model(source, out_folder)
    model = load_model(source)
    meta = read_card(source)
    info = meta.get(CARD_KEY, {})
    quantizer = (read_weights(source / QUANTIZER_FILE)
                 if (source / QUANTIZER_FILE).is_file() else {})
    definition = model_definition(source, with_quantizer=bool(quantizer))
    card = model_card(model, info.get("training", {}),
                      meta.get("license", DEFAULT_LICENSE),
                      info.get("recommended_layers"))
    return write_model_folder(out_folder, model, definition, quantizer, card)
