"""Reading a pre-training run or a model folder safely: checkpoint, yaml.

The pieces every model loader shares, below the model itself:

* :func:`latest_checkpoint` and :func:`load_run_state`: the tensors of a
  run's latest complete checkpoint, read with ``weights_only`` (a pickled
  object is refused before any of its code runs);
* :func:`run_model_yaml`: the model definition of a run's training yaml
  alone (``!apply:`` presets evaluated), without its data, its training
  objects or its ``seed_everything`` line, so building it draws the weights
  from the caller's random state;
* :func:`check_yaml_tags` and :func:`build_from_yaml`: model-only yaml may
  only build classes of ``muselq_sb``, ``speechbrain`` and ``torch.nn``.

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

HPARAMS_FILE = "hyperparams.yaml"
#: Dotted-path prefixes a model-only yaml may instantiate.
ALLOWED_PREFIXES = ("muselq_sb.", "speechbrain.", "torch.nn.")
#: HyperPyYAML tags allowed in a model-only yaml (no ``!apply``/``!module``...).
ALLOWED_TAGS = ("new", "name", "ref", "copy", "tuple")
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


def latest_checkpoint(save_folder: str | Path) -> Path:
    """The most recent complete checkpoint folder (``CKPT+*``) of a run.

    A folder counts only when its ``CKPT.yaml`` exists (written last by
    SpeechBrain), so a checkpoint cut by a crash is never picked.

    Example
    -------
    >>> import tempfile
    >>> save = Path(tempfile.mkdtemp())
    >>> for name, time in (("CKPT+a", 2), ("CKPT+b", 1)):
    ...     (save / name).mkdir()
    ...     _ = (save / name / "CKPT.yaml").write_text(f"unixtime: {time}")
    >>> (save / "CKPT+c").mkdir()  # newest, but incomplete
    >>> latest_checkpoint(save).name
    'CKPT+a'
    """
    save_folder = Path(save_folder)
    candidates = []
    for folder in save_folder.glob("CKPT+*"):
        meta = folder / "CKPT.yaml"
        if meta.is_file():
            with open(meta, encoding="utf-8") as f:
                info = yaml.safe_load(f) or {}
            candidates.append((float(info.get("unixtime", 0)), folder.name, folder))
    if not candidates:
        raise FileNotFoundError(f"no complete checkpoint in {save_folder}")
    return max(candidates)[2]


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


def dump_yaml(data: Any) -> str:
    """Yaml text of ruamel nodes (tags and comments kept).

    Example
    -------
    >>> print(dump_yaml({"d_model": 8}), end="")
    d_model: 8
    """
    stream = io.StringIO()
    _round_trip_yaml().dump(data, stream)
    return stream.getvalue()


def evaluate_applies(node: Any) -> Any:
    """``node`` with every ``!apply:`` sub-node replaced by its value.

    Example
    -------
    >>> doc = _round_trip_yaml().load(
    ...     "d: !apply:muselq_sb.utils.presets.preset [tiny, d_model]")
    >>> evaluate_applies(doc)["d"]
    192
    """
    if _tag_of(node).startswith("!apply:"):
        return load_hyperpyyaml(dump_yaml({"value": node}))["value"]
    if isinstance(node, dict):
        for key in list(node):
            node[key] = evaluate_applies(node[key])
    elif isinstance(node, list):
        for i, item in enumerate(node):
            node[i] = evaluate_applies(item)
    return node


def _tag_of(node: Any) -> str:
    tag = getattr(node, "tag", None)
    return getattr(tag, "value", None) or ""


def read_run_hparams(run_folder: str | Path) -> dict:
    """A run's ``hyperparams.yaml`` as ruamel nodes (nothing is built).

    Raises
    ------
    ModelFolderError
        No ``hyperparams.yaml``, or one without a ``model`` entry.
    """
    path = Path(run_folder) / HPARAMS_FILE
    if not path.is_file():
        raise ModelFolderError(path, "missing: expected a pre-training run")
    doc = _round_trip_yaml().load(path.read_text(encoding="utf-8"))
    if not isinstance(doc, dict) or "model" not in doc:
        raise ModelFolderError(path, "has no 'model' entry")
    return doc


def run_model_yaml(run_folder: str | Path, with_quantizer: bool = False) -> str:
    """The model definition of a run's training yaml, alone.

    Arguments
    ---------
    run_folder : path-like
        A pre-training output folder.
    with_quantizer : bool
        Also keep ``ssl_model.quantizer`` as ``quantizer``.

    Returns
    -------
    str
        Yaml with a ``model`` (and ``quantizer``) entry, ``!apply:`` presets
        evaluated to numbers; nothing else of the run (no data paths, no
        training objects, no ``seed_everything``).
    """
    doc = read_run_hparams(run_folder)
    nodes = {"model": evaluate_applies(doc["model"])}
    if with_quantizer:
        try:
            quantizer = doc["ssl_model"]["quantizer"]
        except (KeyError, TypeError) as err:
            raise ModelFolderError(
                Path(run_folder) / HPARAMS_FILE, "has no 'ssl_model.quantizer' entry"
            ) from err
        nodes["quantizer"] = evaluate_applies(quantizer)
    return dump_yaml(nodes)


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
    muselq_sb.lobes.loading.ModelFolderError: h.yaml: tag '!apply:os.system' not allowed in a model folder (allowed: !new/!name of muselq_sb., speechbrain., torch.nn., !ref, !copy, !tuple)
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
        Model-only HyperPyYAML text (:func:`check_yaml_tags` runs first).
    path : path-like
        Where it comes from (for messages).
    key : str
        Entry to return (``model`` or ``quantizer``).

    Returns
    -------
    object
        The built object.

    Example
    -------
    >>> build_from_yaml("lin: !new:torch.nn.Linear [2, 3]", "h.yaml", "lin")
    Linear(in_features=2, out_features=3, bias=True)
    """
    check_yaml_tags(text, path)
    hparams = load_hyperpyyaml(text)
    if key not in hparams:
        raise ModelFolderError(path, f"has no {key!r} entry")
    return hparams[key]


def strip_tags(text: str) -> str:
    """Yaml text with HyperPyYAML tags removed (for ``yaml.safe_load``).

    Example
    -------
    >>> yaml.safe_load(strip_tags("m: !new:torch.nn.Identity\\nrate: 25"))
    {'m': None, 'rate': 25}
    """
    return _TAG.sub("", text)
