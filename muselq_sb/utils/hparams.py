"""The one reader of hparams files: training and probe yaml, run and model yaml.

Composition. A hparams file may start from another one: a top-level
``base: <path relative to the file>`` reads that file first, and every
top-level key of this file replaces the base's (chains allowed). When the
result has a ``size`` key, ``sizes/<size>.yaml`` beside the base file that
first defines ``size`` replaces its keys next (layers, widths and the
training scale of that size). Overrides come last, with HyperPyYAML's own
semantics (``--size=tiny --d_model=256`` on a recipe's command line; an
unknown key is an error). So ``hparams/brn_sum.yaml`` is a few lines on top
of ``hparams/pretrain/base.yaml``.

* :func:`resolve_hparams`: the composed text with references resolved (what
  a run saves as ``hyperparams.yaml``, :func:`save_hparams`);
* :func:`load_hparams`: the objects (``load_hyperpyyaml`` of that text);
* :func:`load_plain_hparams`: the values, building nothing (for checks);
* :func:`model_definition`, :func:`check_yaml_tags`, :func:`build_from_yaml`:
  the model definition of a saved run or model folder, read without running
  anything but model constructors of ``muselq_sb``, ``speechbrain`` and
  ``torch.nn``.

Authors
 * muselq_sb team
"""
from __future__ import annotations

import datetime
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

import yaml
from hyperpyyaml import load_hyperpyyaml
from hyperpyyaml.core import resolve_references
from ruamel.yaml import YAML

from muselq_sb.dataio.manifest import atomic_write_text

HPARAMS_FILE = "hyperparams.yaml"
BASE_KEY = "base"
SIZES_FOLDER = "sizes"
#: Dotted-path prefixes a model-only yaml may instantiate.
ALLOWED_PREFIXES = ("muselq_sb.", "speechbrain.", "torch.nn.")
#: HyperPyYAML tags allowed in a model-only yaml (no ``!apply``/``!module``...).
ALLOWED_TAGS = ("new", "name", "ref", "copy", "tuple")
_TAG = re.compile(r"!([A-Za-z_]+)(?::([\w.]*))?")
#: Runs saved before the sizes moved to yaml name them with this function;
#: the model keys of the three sizes it knew, as it knew them.
LEGACY_PRESET = "muselq_sb.utils.presets.preset"
LEGACY_SIZES = {
    size: dict(zip(("num_layers", "d_model", "nhead", "csgu_linear_units", "d_ffn",
                    "kernel_size", "subsampling_channels", "lr", "warmup_steps",
                    "total_steps", "max_batch_seconds", "segment_seconds"), values))
    for size, values in (
        ("large", (12, 1024, 16, 6144, 4096, 31, 512, 1e-4, 10000, 400000, 480.0, 30.0)),
        ("small", (4, 768, 12, 3072, 3072, 31, 256, 1e-4, 10000, 400000, 480.0, 30.0)),
        ("tiny", (4, 192, 4, 768, 768, 15, 192, 1e-3, 60, 600, 80.0, 10.0)),
    )
}


class ConfigError(ValueError):
    """A hparams value is invalid; the message starts with the key.

    Example
    -------
    >>> str(ConfigError("nhead", "must divide d_model"))
    'nhead: must divide d_model'
    """

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key


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


def _ruamel() -> YAML:
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
    _ruamel().dump(data, stream)
    return stream.getvalue()


def _read_mapping(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: hparams file not found")
    doc = _ruamel().load(path.read_text(encoding="utf-8"))
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ConfigError(str(path), "expected a mapping of keys at the top level")
    return doc


def _compose(path: Path, seen: tuple[Path, ...] = ()) -> tuple[dict, Optional[Path]]:
    """The file with its base chain applied, and where its sizes are."""
    path = path.resolve()
    if path in seen:
        raise ConfigError(BASE_KEY, f"{path} is its own base (through {seen[-1]})")
    doc = _read_mapping(path)
    sizes = path.parent / SIZES_FOLDER if "size" in doc else None
    if BASE_KEY not in doc:
        return doc, sizes
    composed, base_sizes = _compose(path.parent / str(doc.pop(BASE_KEY)), seen + (path,))
    for key, value in doc.items():
        composed[key] = value
    return composed, base_sizes or sizes


def overrides_mapping(overrides: Optional[str | Mapping]) -> dict:
    """Overrides (yaml text or a mapping) as a dict; tags such as ``!name:`` kept.

    Example
    -------
    >>> overrides_mapping("layer: 2\\nseed: 7\\n")
    {'layer': 2, 'seed': 7}
    >>> overrides_mapping(None)
    {}
    """
    if not overrides:
        return {}
    if isinstance(overrides, str):
        overrides = _ruamel().load(overrides) or {}
    return dict(overrides)


def resolve_hparams(
    hparams_file: str | os.PathLike, overrides: Optional[str | Mapping] = None
) -> str:
    """The composed hparams with overrides applied and references resolved.

    Arguments
    ---------
    hparams_file : path-like
        A hparams file (with or without a ``base``).
    overrides : str or mapping, optional
        As given to ``load_hyperpyyaml`` (a key it does not have is an error).

    Returns
    -------
    str
        Yaml text that ``load_hyperpyyaml`` builds without more context.

    Example
    -------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "base.yaml").write_text("size: s\\nd: !PLACEHOLDER\\nx: !ref <d> * 2\\n")
    >>> (d / "sizes").mkdir()
    >>> _ = (d / "sizes" / "s.yaml").write_text("w: 1\\n")
    >>> _ = (d / "sizes" / "l.yaml").write_text("w: 9\\n")
    >>> _ = (d / "model.yaml").write_text("base: base.yaml\\nd: 4\\n")
    >>> print(resolve_hparams(d / "model.yaml", "size: l"), end="")
    size: l
    d: 4
    x: 8
    w: 9
    """
    doc, sizes = _compose(Path(hparams_file))
    overrides = overrides_mapping(overrides)
    if sizes is not None:
        size = overrides.get("size", doc.get("size"))
        valid = sorted(p.stem for p in sizes.glob("*.yaml"))
        if str(size) not in valid:
            raise ConfigError("size", f"unknown size {size!r}; valid: {valid}")
        for key, value in _read_mapping(sizes / f"{size}.yaml").items():
            doc[key] = value
    return resolve_references(dump_yaml(doc), overrides,
                              overrides_must_match=True).getvalue()


def load_hparams(
    hparams_file: str | os.PathLike, overrides: Optional[str | Mapping] = None
) -> dict[str, Any]:
    """The objects of a hparams file (:func:`resolve_hparams`, then built).

    Example
    -------
    >>> import tempfile
    >>> f = Path(tempfile.mkdtemp()) / "h.yaml"
    >>> _ = f.write_text("n: 2\\nlin: !new:torch.nn.Linear [!ref <n>, 3]\\n")
    >>> load_hparams(f, {"n": 4})["lin"].in_features
    4
    """
    return load_hyperpyyaml(resolve_hparams(hparams_file, overrides))


def save_hparams(
    folder: str | os.PathLike, hparams_file: str | os.PathLike,
    overrides: Optional[str | Mapping] = None,
) -> Path:
    """Writes ``<folder>/hyperparams.yaml``: the resolved hparams of a run,
    self-contained, with a header naming the file it comes from (as
    SpeechBrain's ``create_experiment_directory`` writes it)."""
    path = Path(folder) / HPARAMS_FILE
    header = (f"# Generated {datetime.date.today()} from:\n"
              f"# {os.path.abspath(hparams_file)}\n# yamllint disable\n")
    atomic_write_text(path, header + resolve_hparams(hparams_file, overrides))
    return path


# ---- Plain values, nothing built -------------------------------------------
@dataclass
class Deferred:
    """An object a hparams file would create (``!new:``, ``!name:``, ...),
    kept as its target and arguments instead of being built."""

    tag: str
    target: str
    args: list = field(default_factory=list)
    kwargs: dict = field(default_factory=dict)


class _PlainLoader(yaml.SafeLoader):
    """Reads a resolved HyperPyYAML stream without building objects."""


def _deferred(tag: str):
    def construct(loader: yaml.Loader, target: str, node: yaml.Node) -> Deferred:
        if isinstance(node, yaml.MappingNode):
            return Deferred(tag, target, kwargs=loader.construct_mapping(node, deep=True))
        if isinstance(node, yaml.SequenceNode):
            return Deferred(tag, target, args=loader.construct_sequence(node, deep=True))
        return Deferred(tag, target)

    return construct


def _tuple(loader: yaml.Loader, node: yaml.Node) -> tuple:
    text = loader.construct_scalar(node)
    return tuple(yaml.safe_load("[" + text[1:-1] + "]"))


for _tag in ("!new:", "!name:", "!module:", "!apply:"):
    _PlainLoader.add_multi_constructor(_tag, _deferred(_tag))
_PlainLoader.add_constructor("!tuple", _tuple)
_PlainLoader.add_implicit_resolver("!tuple", re.compile(r"^\(.*\)$"), "(")


def load_plain_hparams(
    hparams_file: str | os.PathLike, overrides: Optional[str | Mapping] = None
) -> dict[str, Any]:
    """The values of a hparams file and its overrides, building nothing.

    Composition, sizes, overrides and references as :func:`resolve_hparams`;
    every ``!new:``/``!name:``/``!apply:`` becomes a :class:`Deferred`.

    Example
    -------
    >>> import tempfile
    >>> f = Path(tempfile.mkdtemp()) / "h.yaml"
    >>> _ = f.write_text("d_model: 8\\nlin: !new:torch.nn.Linear [!ref <d_model>, 2]\\n")
    >>> h = load_plain_hparams(f, "d_model: 768")
    >>> h["d_model"], h["lin"].target, h["lin"].args
    (768, 'torch.nn.Linear', [768, 2])
    """
    text = resolve_hparams(hparams_file, overrides)
    return yaml.load(text, Loader=_PlainLoader) or {}


# ---- Model definitions of saved runs and model folders ---------------------
def _tag_of(node: Any) -> str:
    tag = getattr(node, "tag", None)
    return getattr(tag, "value", None) or ""


def _legacy_values(node: Any, path: Path) -> Any:
    """``node`` with the size presets of old runs replaced by their values."""
    if _tag_of(node) == f"!apply:{LEGACY_PRESET}":
        size, key = list(node)
        if size not in LEGACY_SIZES or key not in LEGACY_SIZES[size]:
            raise ModelFolderError(path, f"unknown legacy size preset [{size}, {key}]")
        return LEGACY_SIZES[size][key]
    if isinstance(node, dict):
        for key in list(node):
            node[key] = _legacy_values(node[key], path)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            node[i] = _legacy_values(item, path)
    return node


def read_run_hparams(run_folder: str | os.PathLike) -> dict:
    """A run's ``hyperparams.yaml`` as ruamel nodes (nothing is built; the
    size presets of runs saved before the sizes moved to yaml are replaced
    by their values).

    Raises
    ------
    ModelFolderError
        No ``hyperparams.yaml``, or one without a ``model`` entry.
    """
    path = Path(run_folder) / HPARAMS_FILE
    if not path.is_file():
        raise ModelFolderError(path, "missing: expected a pre-training run")
    doc = _ruamel().load(path.read_text(encoding="utf-8"))
    if not isinstance(doc, dict) or "model" not in doc:
        raise ModelFolderError(path, "has no 'model' entry")
    return _legacy_values(doc, path)


def model_definition(run_folder: str | os.PathLike, with_quantizer: bool = False) -> str:
    """The model definition of a run's training yaml, alone.

    Arguments
    ---------
    run_folder : path-like
        A pre-training output folder, or a packaged model folder (its
        ``model`` and ``quantizer`` entries).
    with_quantizer : bool
        Also keep ``ssl_model.quantizer`` (a packaged folder's
        ``quantizer``) as ``quantizer``.

    Returns
    -------
    str
        Yaml with a ``model`` (and ``quantizer``) entry; nothing else of the
        run (no data paths, no training objects, no ``seed_everything``), so
        building it draws the weights from the caller's random state.
    """
    doc = read_run_hparams(run_folder)
    nodes = {"model": doc["model"]}
    if with_quantizer:
        try:
            nodes["quantizer"] = (doc["quantizer"] if "quantizer" in doc
                                  else doc["ssl_model"]["quantizer"])
        except (KeyError, TypeError) as err:
            raise ModelFolderError(
                Path(run_folder) / HPARAMS_FILE, "has no 'ssl_model.quantizer' entry"
            ) from err
    return dump_yaml(nodes)


def check_yaml_tags(text: str, path: str | os.PathLike) -> None:
    """Refuses yaml that could run more than model constructors.

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
    muselq_sb.utils.hparams.ModelFolderError: h.yaml: tag '!apply:os.system' not allowed in a model folder (allowed: !new/!name of muselq_sb., speechbrain., torch.nn., !ref, !copy, !tuple)
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


def build_from_yaml(text: str, path: str | os.PathLike, key: str = "model") -> Any:
    """Builds the object ``key`` of checked model-only yaml text.

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
