"""Configuration checks of the pre-training recipe, run before anything is
built.

A wrong value in a hparams file (or an override) would otherwise surface as
an error deep inside a constructor (``GroupedLinear: in_features=32 ... must
be divisible by groups=3``) or, worse, after hours of training. Here the
file is read with its references and overrides resolved but *without*
creating any object (``load_plain_hparams``), and ``check_hparams`` raises a
``ConfigError`` whose message starts with the name of the offending key.

Authors
 * muselq_sb team
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Optional

import yaml
from hyperpyyaml.core import resolve_references

from muselq_sb.lobes.mixers import ATTENTION_TYPES
from muselq_sb.pretrain.data import check_data_paths, check_shards
from muselq_sb.utils import presets

#: ``!apply:`` functions evaluated while reading plain values (pure ones).
PURE_FUNCTIONS = {"muselq_sb.utils.presets.preset": presets.preset}
PRECISIONS = ("fp32", "fp16", "bf16")


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


def _node_args(loader: yaml.Loader, node: yaml.Node) -> tuple[list, dict]:
    if isinstance(node, yaml.MappingNode):
        return [], loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True), {}
    return [], {}


def _deferred(tag: str):
    def construct(loader: yaml.Loader, target: str, node: yaml.Node) -> Any:
        args, kwargs = _node_args(loader, node)
        if tag == "!apply:" and target in PURE_FUNCTIONS:
            try:
                return PURE_FUNCTIONS[target](*args, **kwargs)
            except (KeyError, TypeError, ValueError) as err:
                message = str(err).strip('"')
                if message.startswith("size: "):
                    raise ConfigError("size", message[len("size: "):]) from err
                raise ConfigError(target, message) from err
        return Deferred(tag, target, args, kwargs)

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

    ``!ref`` references and overrides are resolved as HyperPyYAML does; the
    size presets (``!apply:muselq_sb.utils.presets.preset``) are evaluated;
    every other ``!new:``/``!name:``/``!apply:`` becomes a ``Deferred``.

    Arguments
    ---------
    hparams_file : path-like
        A HyperPyYAML file.
    overrides : str or mapping, optional
        As given to ``load_hyperpyyaml``.

    Returns
    -------
    dict
        Plain values and ``Deferred`` objects.

    Example
    -------
    >>> import tempfile
    >>> f = os.path.join(tempfile.mkdtemp(), "h.yaml")
    >>> _ = open(f, "w").write("size: tiny\\nd_model: !apply:muselq_sb."
    ...     "utils.presets.preset [!ref <size>, d_model]\\n"
    ...     "lin: !new:torch.nn.Linear [!ref <d_model>, 2]\\n")
    >>> h = load_plain_hparams(f, "size: small")
    >>> h["d_model"], h["lin"].target, h["lin"].args
    (768, 'torch.nn.Linear', [768, 2])
    """
    with open(hparams_file, encoding="utf-8") as f:
        stream = resolve_references(f, overrides or {})
    return yaml.load(stream, Loader=_PlainLoader) or {}


def _walk(value: Any, key: str = "") -> Iterator[tuple[str, Deferred]]:
    """Every ``Deferred`` in a tree, with its dotted key."""
    if isinstance(value, Deferred):
        yield key, value
        children = {**dict(enumerate(value.args)), **value.kwargs}
    elif isinstance(value, Mapping):
        children = value
    elif isinstance(value, (list, tuple)):
        children = dict(enumerate(value))
    else:
        return
    for name, child in children.items():
        yield from _walk(child, f"{key}.{name}" if key else str(name))


def _require(hparams: Mapping[str, Any], key: str, ok, expected: str) -> None:
    if key in hparams and not isinstance(hparams[key], Deferred) and not ok(hparams[key]):
        raise ConfigError(key, f"got {hparams[key]!r}, expected {expected}")


def _is_int(low: int):
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low


def _is_number(low: float, high: float = float("inf")):
    return lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) \
        and low <= v <= high


def _check_values(h: Mapping[str, Any]) -> None:
    for key in ("d_model", "nhead", "num_layers", "n_mels", "cb_vocab",
                "cb_dim", "num_codebooks", "kernel_size", "subsampling_channels",
                "total_steps", "log_interval", "keep_checkpoints", "sample_rate",
                "grad_accumulation_factor", "valid_batch_size", "mask_span",
                "csgu_linear_units", "d_ffn", "normalizer_batches"):
        _require(h, key, _is_int(1), "an integer >= 1")
    for key in ("warmup_steps", "num_workers", "ckpt_interval_steps", "shuffle_buffer"):
        _require(h, key, _is_int(0), "an integer >= 0")
    _require(h, "stack", lambda v: _is_int(2)(v) and not v & (v - 1),
             "a power of two >= 2 (2, 4, 8...: the subsampling halves the "
             "frame rate log2(stack) times)")
    _require(h, "segment_seconds", _is_number(1e-3), "a number of seconds > 0")
    _require(h, "valid_fraction", _is_number(0.0, 0.999), "a fraction in [0, 1)")
    _require(h, "mask_prob", _is_number(1e-6, 1.0), "a probability in (0, 1]")
    _require(h, "attention_type", lambda v: v in ATTENTION_TYPES,
             f"one of {list(ATTENTION_TYPES)}")
    _require(h, "precision", lambda v: v in PRECISIONS, f"one of {list(PRECISIONS)}")
    _require(h, "size", lambda v: v in presets.SIZES, f"one of {list(presets.SIZES)}")


def _numbers(h: Mapping[str, Any], *keys: str) -> bool:
    return all(isinstance(h.get(k), (int, float)) for k in keys)


def _check_relations(h: Mapping[str, Any]) -> None:
    if _numbers(h, "d_model", "nhead") and h["d_model"] % h["nhead"]:
        raise ConfigError("nhead", f"{h['nhead']} heads do not divide d_model "
                          f"({h['d_model']}); pick nhead | d_model")
    if _numbers(h, "max_batch_seconds", "segment_seconds") \
            and h["max_batch_seconds"] < h["segment_seconds"]:
        raise ConfigError("max_batch_seconds", (
            f"{h['max_batch_seconds']} s cannot hold one segment of "
            f"segment_seconds={h['segment_seconds']} s"))
    if _numbers(h, "warmup_steps", "total_steps") \
            and h["warmup_steps"] >= h["total_steps"]:
        raise ConfigError("warmup_steps", f"{h['warmup_steps']} must be below "
                          f"total_steps ({h['total_steps']})")


def _check_objects(h: Mapping[str, Any]) -> None:
    stacked = h["n_mels"] * h["stack"] if _numbers(h, "n_mels", "stack") else 0
    wanted = {"RandomProjectionQuantizer": "input_dim", "MelHead": "out_dim"}
    for key, obj in _walk(h):
        arg = wanted.get(obj.target.rsplit(".", 1)[-1])
        value = obj.kwargs.get(arg) if arg else None
        if stacked and value is not None and value != stacked:
            raise ConfigError(f"{key}.{arg}", (
                f"{value} must equal n_mels * stack = {h['n_mels']} * "
                f"{h['stack']} = {stacked}"))


def check_hparams(hparams: Mapping[str, Any]) -> None:
    """Raises ``ConfigError`` (or ``FileNotFoundError`` for data paths) on
    the first invalid value; the message starts with the key.

    Checks types and ranges of the scalar options, that ``nhead`` divides
    ``d_model``, the attention type, the size, that a batch holds a segment,
    that the quantizer input and the mel head output have ``n_mels * stack``
    dimensions (when ``hparams`` comes from ``load_plain_hparams``), and
    that every data folder exists (or, streaming, that the shard patterns
    match enough shards).

    Arguments
    ---------
    hparams : mapping
        From ``load_plain_hparams`` (or ``load_hyperpyyaml``).

    Example
    -------
    >>> check_hparams({"d_model": 32, "nhead": 4, "attention_type": "SummaryMixing"})
    >>> check_hparams({"d_model": 32, "nhead": 3})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    muselq_sb.pretrain.checks.ConfigError: nhead: 3 heads do not divide d_model (32); ...
    >>> check_hparams({"attention_type": "flash"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    muselq_sb.pretrain.checks.ConfigError: attention_type: got 'flash', expected one of [...]
    """
    _check_values(hparams)
    _check_relations(hparams)
    _check_objects(hparams)
    if hparams.get("data_shards"):
        check_shards(hparams)
    else:
        check_data_paths(hparams)
