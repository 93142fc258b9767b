"""Configuration checks of the pre-training recipe, run before anything is
built.

A wrong value in a hparams file (or an override) would otherwise surface as
an error deep inside a constructor (``GroupedLinear: in_features=32 ... must
be divisible by groups=3``) or, worse, after hours of training. Here the
file is read with its references and overrides resolved but *without*
creating any object (``muselq_sb.utils.hparams.load_plain_hparams``), and
``check_hparams`` raises a ``ConfigError`` whose message starts with the
name of the offending key.

Authors
 * muselq_sb team
"""
from __future__ import annotations

from typing import Any, Iterator, Mapping

from muselq_sb.lobes.mixers import ATTENTION_TYPES
from muselq_sb.pretrain.data import check_data_paths, check_shards
from muselq_sb.utils.hardware import AUTO, PRECISIONS
from muselq_sb.utils.hparams import ConfigError, Deferred


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
    for key in ("precision", "eval_precision"):
        _require(h, key, lambda v: v in (*PRECISIONS, AUTO), f"one of {[*PRECISIONS, AUTO]}")


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
    ``d_model``, the attention type, that ``stack`` is a power of two, that
    a batch holds a segment, that the quantizer input and the mel head
    output have ``n_mels * stack`` dimensions (when ``hparams`` comes from
    ``load_plain_hparams``), and that every data folder exists (or,
    streaming, that the shard patterns match enough shards). The size is
    checked when the file is read (``muselq_sb.utils.hparams``).

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
    muselq_sb.utils.hparams.ConfigError: nhead: 3 heads do not divide d_model (32); ...
    >>> check_hparams({"attention_type": "flash"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    muselq_sb.utils.hparams.ConfigError: attention_type: got 'flash', expected one of [...]
    """
    _check_values(hparams)
    _check_relations(hparams)
    _check_objects(hparams)
    if hparams.get("data_shards"):
        check_shards(hparams)
    else:
        check_data_paths(hparams)
