"""Data of the pre-training recipe: sources -> manifests -> datasets, or
WebDataset shards -> streams (``data_shards``).

Authors
 * muselq_sb team
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from speechbrain.dataio.dataset import DynamicItemDataset
from speechbrain.dataio.sampler import DynamicBatchSampler
from torch.utils.data import DataLoader

from muselq_sb.dataio.audio import audio_pipeline
from muselq_sb.dataio.batching import CountBatcher, DurationBatcher, SkipEmptyCollate
from muselq_sb.prepare.demo import default_demo_root, ensure_demo_corpus
from muselq_sb.dataio.shards import (
    Shard, ShardCollate, ShardLoader, ShardStream, find_shards,
)
from muselq_sb.prepare.pretrain import prepare_pretrain

SOURCE_TYPES = ("demo", "folder", "music4all", "fma")


def resolve_sources(
    data_sources: Optional[Sequence[Mapping[str, Any]]],
    data_folder: Optional[str],
    demo_folder: Optional[str],
) -> list[dict[str, Any]]:
    """The list of data sources a run trains on.

    ``data_sources`` (a list of ``{type, path}``) wins; else ``data_folder``
    is read as a plain folder of audio; else the built-in demo corpus.

    Example
    -------
    >>> resolve_sources(None, "/music", None)
    [{'type': 'folder', 'path': '/music'}]
    >>> resolve_sources([{"type": "fma", "path": "/fma"}], None, None)
    [{'type': 'fma', 'path': '/fma'}]
    >>> resolve_sources([{"type": "mp3s", "path": "/x"}], None, None)
    Traceback (most recent call last):
    ...
    ValueError: data_sources[0]: unknown type 'mp3s'; valid: ['demo', 'folder', 'music4all', 'fma']
    """
    if data_sources:
        sources = [dict(s) for s in data_sources]
    elif data_folder:
        sources = [{"type": "folder", "path": str(data_folder)}]
    else:
        root = demo_folder or str(default_demo_root())
        sources = [{"type": "demo", "path": root}]
    for i, source in enumerate(sources):
        if source.get("type") not in SOURCE_TYPES:
            raise ValueError(
                f"data_sources[{i}]: unknown type {source.get('type')!r}; "
                f"valid: {list(SOURCE_TYPES)}"
            )
        if not source.get("path"):
            raise ValueError(f"data_sources[{i}]: missing 'path'")
    return sources


def check_data_paths(hparams: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The data sources of a run, after checking that their folders exist.

    The demo corpus is exempt (it is built on demand).

    Arguments
    ---------
    hparams : mapping
        With optional ``data_sources``, ``data_folder`` and ``demo_folder``.

    Returns
    -------
    list of dict
        As ``resolve_sources``.

    Raises
    ------
    FileNotFoundError
        Naming the hparams key (``data_folder`` or ``data_sources[i].path``).

    Example
    -------
    >>> check_data_paths({"data_folder": "/nonexistent"})
    Traceback (most recent call last):
    ...
    FileNotFoundError: data_folder: folder /nonexistent does not exist (data source 'folder')
    """
    sources = resolve_sources(
        hparams.get("data_sources"), hparams.get("data_folder"),
        hparams.get("demo_folder"),
    )
    for i, source in enumerate(sources):
        if source["type"] != "demo" and not Path(source["path"]).is_dir():
            key = f"data_sources[{i}].path" if hparams.get("data_sources") \
                else "data_folder"
            raise FileNotFoundError(
                f"{key}: folder {source['path']} does not exist "
                f"(data source {source['type']!r})"
            )
    return sources


def check_shards(hparams: Mapping[str, Any]) -> tuple[list[Shard], list[Shard]]:
    """The training and validation shards of a streaming run, checked.

    ``valid_shards`` null means ``valid-*.tar`` in the folder of the first
    training shard. The training shards must be at least ranks
    (``WORLD_SIZE``) x ``num_workers``.

    Arguments
    ---------
    hparams : mapping
        With ``data_shards``, ``valid_shards`` and ``num_workers``.

    Returns
    -------
    (list of Shard, list of Shard)
        Training and validation shards.

    Raises
    ------
    FileNotFoundError or ValueError
        Naming the key, the pattern and the counts (``find_shards``).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    train = find_shards(hparams["data_shards"], "data_shards", world_size,
                        hparams["num_workers"])
    pattern = hparams.get("valid_shards") or os.path.join(
        os.path.dirname(train[0].path), "valid-*.tar")
    return train, find_shards(pattern, "valid_shards")


def prepare_data(hparams: Mapping[str, Any]) -> Optional[Path]:
    """Builds the demo corpus if used, then the pre-training manifests;
    nothing when streaming from shards (None).

    Run it once, on the main process (``run_on_main``).
    """
    if hparams.get("data_shards"):
        return None
    sources = check_data_paths(hparams)
    for source in sources:
        if source["type"] == "demo":
            ensure_demo_corpus(source["path"], seed=hparams["demo_seed"])
    return prepare_pretrain(
        sources,
        hparams["prepare_folder"],
        segment_seconds=hparams["segment_seconds"],
        valid_fraction=hparams["valid_fraction"],
        seed=hparams["seed"],
    )


def stream_prepare(hparams: Mapping[str, Any]) -> tuple[ShardLoader, DataLoader]:
    """Training and validation loaders streaming from shards.

    The training loader is added to the checkpointer (``train_stream``), so
    that a resumed run carries on with the clips it had not trained on.
    """
    train, valid = check_shards(hparams)
    common = {"sample_rate": hparams["sample_rate"],
              "crop_seconds": hparams["segment_seconds"], "seed": hparams["seed"]}
    stream = ShardStream(
        train, DurationBatcher(hparams["max_batch_seconds"], hparams["num_buckets"]),
        train=True, shuffle_buffer=hparams["shuffle_buffer"],
        rank=int(os.environ.get("RANK", "0")),
        world_size=int(os.environ.get("WORLD_SIZE", "1")), **common)
    loader = ShardLoader(stream, num_workers=hparams["num_workers"])
    hparams["checkpointer"].add_recoverable("train_stream", loader)
    valid_stream = ShardStream(valid, CountBatcher(hparams["valid_batch_size"]),
                               train=False, **common)
    valid_loader = DataLoader(valid_stream, batch_size=None, collate_fn=ShardCollate(),
                              num_workers=hparams["num_workers"])
    return loader, valid_loader


def dataio_prepare(
    hparams: Mapping[str, Any], task_folder: Optional[Path]
) -> tuple[Any, Any, dict, dict]:
    """Datasets (or loaders) and loader arguments for training and validation.

    Training reads random crops of ``segment_seconds`` and batches them
    dynamically by duration (``max_batch_seconds``); validation reads the
    first ``segment_seconds`` of each segment in fixed-size batches. With
    ``data_shards`` the same comes from shards (``stream_prepare``) and the
    loader arguments are empty.
    """
    if hparams.get("data_shards"):
        return (*stream_prepare(hparams), {}, {})
    task_folder = Path(task_folder)
    datasets = {}
    for split, random in (("train", True), ("valid", False)):
        ds = DynamicItemDataset.from_csv(str(task_folder / f"{split}.csv"))
        ds.add_dynamic_item(audio_pipeline(
            sample_rate=hparams["sample_rate"],
            crop_seconds=hparams["segment_seconds"], random=random,
            seed=hparams["seed"],
        ))
        ds.set_output_keys(["id", "sig"])
        datasets[split] = ds
    collate = SkipEmptyCollate()
    sampler = DynamicBatchSampler(
        datasets["train"],
        max_batch_length=hparams["max_batch_seconds"],
        num_buckets=hparams["num_buckets"],
        length_func=lambda x: min(float(x["duration"]), hparams["segment_seconds"]),
        shuffle=True,
        batch_ordering="random",
        seed=hparams["seed"],
    )
    train_kwargs = {
        "batch_sampler": sampler, "collate_fn": collate,
        "num_workers": hparams["num_workers"],
    }
    valid_kwargs = {
        "batch_size": hparams["valid_batch_size"], "collate_fn": collate,
        "num_workers": hparams["num_workers"],
    }
    return datasets["train"], datasets["valid"], train_kwargs, valid_kwargs
