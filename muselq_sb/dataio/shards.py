"""Pre-training audio streamed from WebDataset tar shards, with a position
that survives a restart.

Format (written by ``python -m muselq_sb.prepare shards``): tar files
``<split>-NNNNNN.tar`` holding one sample per track, the track's audio
``<key>.<ext>`` (the original file's bytes, or the audio decoded once as
mono 16-bit WAV or FLAC) and ``<key>.json``::

    {"track_id": "...", "source": "/original/path.mp3", "duration": 241.3,
     "clip_offset": 118, "clips": [["<id>", start, stop], ...]}

Each clip is one segment of the pre-training manifest (``ID``, ``start``,
``stop`` in seconds); its position in an epoch is ``(shard name,
clip_offset + k)``. ``index.json`` beside the shards lists every shard with
its split, tracks, clips and seconds, and the total hours.

``ShardStream`` reads the shards of one rank and loader worker (a shuffled
list of shards per epoch, dealt round-robin to ``ranks x workers`` slots),
mixes their clips in a shuffle buffer, batches them by duration as the file
path does, and decodes a crop of each clip from the bytes on the fly.
``ShardLoader`` is the training ``DataLoader``: it records in a
``StreamPosition`` every clip it hands to training, keeps the ranks in step
at the end of an epoch, and is a checkpoint recoverable. Resuming from a
checkpoint skips exactly the clips recorded in it: no clip is replayed or
skipped (the bound is zero clips, whatever the number of workers), the
shards completed before it are not even opened, and only the shards being
read when it was written are read again (the clips already trained on
are passed over before decoding).

Authors
 * muselq_sb team
"""
from __future__ import annotations

import glob
import io
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

import numpy as np
import torch
import torch.distributed as dist
from speechbrain.dataio.batch import PaddedBatch
from speechbrain.utils.checkpoints import (
    mark_as_loader, mark_as_saver, register_checkpoint_hooks,
)
from speechbrain.utils.distributed import if_main_process
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from webdataset.filters import shuffle
from webdataset.shardlists import expand_urls
from webdataset.tariterators import group_by_keys, tar_file_expander

from muselq_sb.dataio.audio import (
    AudioError, crop_window, decode_audio, warn_unreadable,
)
from muselq_sb.dataio.batching import EmptyBatch, SkipEmptyCollate

INDEX_NAME = "index.json"
INDEX_FORMAT = 1


@dataclass(frozen=True)
class Shard:
    """One shard file and what the index says it holds."""

    path: str
    name: str
    n_clips: int
    seconds: float


def shard_index(folder: str | os.PathLike) -> dict[str, Any]:
    """The ``index.json`` of a shard folder.

    Raises
    ------
    FileNotFoundError
        Naming the missing index.
    """
    path = Path(folder) / INDEX_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no shard index; shards are written with "
            "'python -m muselq_sb.prepare shards', which writes it")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def find_shards(
    pattern: str, key: str = "data_shards", world_size: int = 1,
    num_workers: int = 0,
) -> list[Shard]:
    """The shards a pattern names, checked against the readers to feed.

    Arguments
    ---------
    pattern : str
        A glob and/or brace pattern (``/d/train-*.tar``,
        ``/d/train-{000000..000099}.tar``); ``::`` separates several.
    key : str
        The hparams key of the pattern, for the error messages.
    world_size : int
        Ranks that will split the shards.
    num_workers : int
        Loader workers per rank (0: the rank reads itself).

    Returns
    -------
    list of Shard
        Sorted by path; counts from each folder's ``index.json``.

    Raises
    ------
    FileNotFoundError
        When nothing matches, or a folder has no index.
    ValueError
        When fewer shards than ``world_size x max(1, num_workers)`` readers
        match, a shard is missing from its index, or two shards share a
        file name.

    Example
    -------
    >>> find_shards("/nonexistent/train-*.tar")
    Traceback (most recent call last):
    ...
    FileNotFoundError: data_shards: pattern '/nonexistent/train-*.tar' matches no shard
    """
    paths = sorted({p for part in expand_urls(pattern)
                    for p in glob.glob(os.path.expanduser(part))
                    if os.path.isfile(p)})
    if not paths:
        raise FileNotFoundError(f"{key}: pattern {pattern!r} matches no shard")
    readers = world_size * max(1, num_workers)
    if len(paths) < readers:
        raise ValueError(
            f"{key}: pattern {pattern!r} matches {len(paths)} shards, fewer "
            f"than {world_size} ranks x {max(1, num_workers)} loader workers "
            f"= {readers} readers; write smaller shards (--shard_mb) or use "
            "fewer loader workers (num_workers)")
    indexes: dict[str, dict[str, dict]] = {}
    shards = []
    for path in paths:
        folder = os.path.dirname(os.path.abspath(path))
        if folder not in indexes:
            indexes[folder] = {s["name"]: s for s in shard_index(folder)["shards"]}
        entry = indexes[folder].get(os.path.basename(path))
        if entry is None:
            raise ValueError(f"{key}: {path} is not listed in "
                             f"{os.path.join(folder, INDEX_NAME)}")
        shards.append(Shard(path, entry["name"], int(entry["n_clips"]),
                            float(entry["seconds"])))
    names = [s.name for s in shards]
    if len(set(names)) != len(names):
        raise ValueError(f"{key}: pattern {pattern!r} matches shards of the "
                         "same file name in different folders")
    return shards


class StreamPosition:
    """The clips of the current epoch already handed to training.

    A shard whose clips were all handed over is kept as its name only.

    Example
    -------
    >>> pos = StreamPosition()
    >>> pos.add([("a.tar", 0), ("a.tar", 2)], n_clips={"a.tar": 3})
    >>> pos.consumed("a.tar", 2), pos.consumed("a.tar", 1)
    (True, False)
    >>> pos.add([("a.tar", 1)], n_clips={"a.tar": 3})
    >>> pos.to_dict()
    {'epoch': 0, 'finished': False, 'done': ['a.tar'], 'partial': {}}
    >>> pos.finish_epoch(); pos.start_epoch(); pos.epoch, pos.done
    (1, set())
    """

    def __init__(self) -> None:
        self.epoch = 0
        self.finished = False
        self.done: set[str] = set()
        self.partial: dict[str, int] = {}  # shard -> bit mask of clips

    def consumed(self, shard: str, index: int) -> bool:
        """Whether clip ``index`` of ``shard`` was handed to training."""
        return shard in self.done or bool(self.partial.get(shard, 0) >> index & 1)

    def add(self, positions: Iterable[tuple[str, int]],
            n_clips: dict[str, int]) -> None:
        """Records clips handed to training (``n_clips``: per shard)."""
        for shard, index in positions:
            if shard in self.done:
                continue
            mask = self.partial.get(shard, 0) | (1 << index)
            if mask == (1 << n_clips[shard]) - 1:
                self.partial.pop(shard, None)
                self.done.add(shard)
            else:
                self.partial[shard] = mask

    def merge(self, other: "StreamPosition") -> None:
        """Adds the clips ``other`` recorded (another rank's)."""
        self.done |= other.done
        for shard, mask in other.partial.items():
            if shard not in self.done:
                self.partial[shard] = self.partial.get(shard, 0) | mask

    def finish_epoch(self) -> None:
        """Every clip of the epoch was handed over."""
        self.finished = True

    def start_epoch(self) -> None:
        """Moves to the next epoch if the current one finished."""
        if self.finished:
            self.epoch += 1
            self.finished = False
            self.done, self.partial = set(), {}

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (masks as hexadecimal strings)."""
        return {"epoch": self.epoch, "finished": self.finished,
                "done": sorted(self.done),
                "partial": {k: format(v, "x") for k, v in sorted(self.partial.items())}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "StreamPosition":
        """The inverse of ``to_dict``."""
        pos = cls()
        pos.epoch, pos.finished = int(data["epoch"]), bool(data["finished"])
        pos.done = set(data["done"])
        pos.partial = {k: int(v, 16) for k, v in data["partial"].items()}
        return pos


@dataclass
class _Clip:
    id: str
    name: str  # for log messages: shard/member
    data: Optional[bytes]  # None: an unreadable member (counted, skipped)
    start: float = 0.0
    stop: float = 0.0
    position: Optional[tuple[str, int]] = None
    seconds: float = 0.0


class ShardStream(IterableDataset):
    """The clips of a list of shards, batched, for one rank's DataLoader.

    Each epoch the shards are shuffled (training; seeded by ``seed`` and the
    epoch, the same on every rank) and dealt round-robin to the
    ``world_size x num_workers`` readers; a reader reads its shards in
    turn, mixes their clips in a shuffle buffer, groups them with
    ``batcher`` and decodes ``crop_seconds`` of each clip (a random crop
    for training, the first for validation) at ``sample_rate``. An
    unreadable member (bad audio bytes, JSON or tar) is logged and yields
    empty signals, which ``ShardCollate`` drops and counts.

    Arguments
    ---------
    shards : sequence of Shard
        From ``find_shards``.
    batcher : callable
        ``DurationBatcher`` or ``CountBatcher``
        (``muselq_sb.dataio.batching``).
    sample_rate : int
        Output sample rate.
    crop_seconds : float
        Crop length (``segment_seconds``).
    train : bool
        Shuffled shards and clips, random crops, shards split across ranks
        (True); else every rank reads every shard in order, first crops.
    shuffle_buffer : int
        Clips in each reader's shuffle buffer (training).
    seed : int
        Seed of the shard order, the buffer and the crops.
    rank, world_size : int
        This process among the training processes.
    position : StreamPosition, optional
        Clips to skip (those already trained on in this epoch).
    """

    def __init__(
        self, shards: Sequence[Shard], batcher: Callable, sample_rate: int,
        crop_seconds: float, train: bool = True, shuffle_buffer: int = 256,
        seed: int = 0, rank: int = 0, world_size: int = 1,
        position: Optional[StreamPosition] = None,
    ) -> None:
        super().__init__()
        self.shards = list(shards)
        self.batcher = batcher
        self.sample_rate = sample_rate
        self.crop_seconds = crop_seconds
        self.train = train
        self.shuffle_buffer = shuffle_buffer
        self.seed = seed
        self.rank, self.world_size = (rank, world_size) if train else (0, 1)
        self.position = position or StreamPosition()

    @property
    def n_clips(self) -> dict[str, int]:
        """Clips per shard name."""
        return {s.name: s.n_clips for s in self.shards}

    def reader_shards(self, worker: int, num_workers: int) -> list[Shard]:
        """The shards of this rank's ``worker`` (of ``num_workers``) this epoch.

        Example
        -------
        >>> shards = [Shard(f"{i}.tar", f"{i}.tar", 1, 1.0) for i in range(8)]
        >>> ranks = [ShardStream(shards, None, 24000, 1.0, rank=r, world_size=2)
        ...          for r in (0, 1)]
        >>> readers = [s.reader_shards(w, 2) for s in ranks for w in (0, 1)]
        >>> [len(r) for r in readers]
        [2, 2, 2, 2]
        >>> sorted(x.name for r in readers for x in r) == [x.name for x in shards]
        True
        """
        order = list(range(len(self.shards)))
        if self.train:
            rng = np.random.default_rng([self.seed, self.position.epoch])
            order = rng.permutation(len(self.shards)).tolist()
        readers = self.world_size * max(1, num_workers)
        reader = self.rank * max(1, num_workers) + worker
        return [self.shards[i] for i in order[reader::readers]]

    def __iter__(self) -> Iterator[list[dict[str, Any]]]:
        info = get_worker_info()
        worker, num_workers = (0, 0) if info is None else (info.id, info.num_workers)
        skip = StreamPosition.from_dict(self.position.to_dict())  # a snapshot
        clips: Iterator[_Clip] = self._clips(self.reader_shards(worker, num_workers), skip)
        crops = None
        if self.train:
            rng = random.Random(f"{self.seed}/{skip.epoch}/{self.rank}/{worker}")
            if self.shuffle_buffer > 1:
                clips = shuffle(self.shuffle_buffer, self.shuffle_buffer, rng=rng)(clips)
            crops = torch.Generator().manual_seed(rng.getrandbits(62))
        for group in self.batcher(clips, length=lambda c: c.seconds):
            yield [self._example(clip, crops) for clip in group]

    def _clips(self, shards: Sequence[Shard], skip: StreamPosition) -> Iterator[_Clip]:
        for shard in shards:
            if shard.name in skip.done:
                continue
            yield from self._shard_clips(shard, skip)

    def _shard_clips(self, shard: Shard, skip: StreamPosition) -> Iterator[_Clip]:
        errors: list[Exception] = []

        def keep_going(err: Exception) -> bool:
            errors.append(err)
            return True

        with open(shard.path, "rb") as stream:
            files = tar_file_expander([{"url": shard.path, "stream": stream}],
                                      handler=keep_going)
            for sample in group_by_keys(files, handler=keep_going):
                yield from self._sample_clips(shard, sample, skip)
        for err in errors:
            name = f"{shard.path} (tar)"
            warn_unreadable(name, err)
            yield _Clip(id=name, name=name, data=None)

    def _sample_clips(self, shard: Shard, sample: dict[str, Any],
                      skip: StreamPosition) -> Iterator[_Clip]:
        name = f"{shard.path}/{sample['__key__']}"
        audio = [k for k in sample if not k.startswith("__") and k != "json"]
        try:
            meta = json.loads(sample["json"])
            offset, clips = int(meta["clip_offset"]), meta["clips"]
            if len(audio) != 1:
                raise ValueError(f"expected one audio member, found {audio}")
        except (KeyError, ValueError, TypeError) as err:
            warn_unreadable(name, err)
            yield _Clip(id=name, name=name, data=None)
            return
        data, name = sample[audio[0]], f"{name}.{audio[0]}"
        for k, (clip_id, start, stop) in enumerate(clips):
            if skip.consumed(shard.name, offset + k):
                continue
            yield _Clip(id=clip_id, name=name, data=data, start=float(start),
                        stop=float(stop), position=(shard.name, offset + k),
                        seconds=min(float(stop) - float(start), self.crop_seconds))

    def _example(self, clip: _Clip, crops: Optional[torch.Generator]) -> dict[str, Any]:
        sig = torch.zeros(0)
        if clip.data is not None:
            begin, end = crop_window(clip.start, clip.stop, self.crop_seconds, crops)
            try:
                sig = decode_audio(io.BytesIO(clip.data), clip.name, begin, end,
                                   self.sample_rate)
            except AudioError as err:
                warn_unreadable(clip.name, err)
        return {"id": clip.id, "sig": sig, "position": clip.position}


class ShardCollate(SkipEmptyCollate):
    """``SkipEmptyCollate`` that also puts on the batch the stream positions
    of all its clips, the dropped ones included (``batch.positions``).

    Example
    -------
    >>> batch = ShardCollate()([
    ...     {"id": "a", "sig": torch.ones(2), "position": ("s.tar", 0)},
    ...     {"id": "b", "sig": torch.zeros(0), "position": ("s.tar", 1)},
    ...     {"id": "c", "sig": torch.zeros(0), "position": None}])
    >>> batch.id, batch.n_skipped, batch.positions
    (['a'], 2, [('s.tar', 0), ('s.tar', 1)])
    """

    def __call__(self, examples: Sequence[dict[str, Any]]) -> PaddedBatch | EmptyBatch:
        positions = [ex["position"] for ex in examples if ex["position"] is not None]
        batch = super().__call__(
            [{k: v for k, v in ex.items() if k != "position"} for ex in examples])
        batch.positions = positions
        return batch


class ShardLoader(DataLoader):
    """The training ``DataLoader`` of a ``ShardStream``; a checkpoint
    recoverable holding the stream's position.

    Every batch it yields is recorded as handed to training; an epoch ends
    when the stream is exhausted. Under DDP the ranks agree at every step
    whether one of them still has data (one all-reduce of a flag); a rank
    that has none yields empty batches (the Brain runs a zero-weight step)
    until all are done, so every rank runs the same number of steps. The
    checkpoint holds the union of the positions of all ranks.

    Arguments
    ---------
    stream : ShardStream
        A training stream.
    num_workers : int
        DataLoader worker processes.
    **kwargs
        More ``DataLoader`` arguments.
    """

    def __init__(self, stream: ShardStream, num_workers: int = 0, **kwargs: Any) -> None:
        super().__init__(stream, batch_size=None, collate_fn=ShardCollate(),
                         num_workers=num_workers, **kwargs)

    def __iter__(self) -> Iterator[PaddedBatch | EmptyBatch]:
        position = self.dataset.position
        position.start_epoch()
        n_clips = self.dataset.n_clips
        for batch in _in_step(super().__iter__()):
            position.add(getattr(batch, "positions", []), n_clips)
            yield batch
        position.finish_epoch()

    def peek(self) -> Iterator[PaddedBatch | EmptyBatch]:
        """Batches of the stream from its current position, recorded
        nowhere (for a pass that reads data without training on it, such
        as the input statistics): the next epoch still yields them."""
        return super().__iter__()

    @mark_as_saver
    def _save(self, path: str | os.PathLike) -> None:
        position = self.dataset.position
        if dist.is_available() and dist.is_initialized():
            everyone: list[Any] = [None] * dist.get_world_size()
            dist.all_gather_object(everyone, position.to_dict())
            for other in everyone:
                position.merge(StreamPosition.from_dict(other))
        if if_main_process():
            with open(path, "w", encoding="utf-8") as f:
                json.dump(position.to_dict(), f)

    @mark_as_loader
    def _load(self, path: str | os.PathLike, end_of_epoch: bool = False) -> None:
        with open(path, encoding="utf-8") as f:
            self.dataset.position = StreamPosition.from_dict(json.load(f))


register_checkpoint_hooks(ShardLoader, save_on_main_only=False)


def _in_step(batches: Iterator[Any]) -> Iterator[Any]:
    """``batches``, then empty batches until every rank is out of data."""
    if not (dist.is_available() and dist.is_initialized()):
        yield from batches
        return
    device = torch.device("cpu")
    if dist.get_backend() == "nccl":
        device = torch.device("cuda", torch.cuda.current_device())
    exhausted = False
    while True:
        batch = None if exhausted else next(batches, None)
        exhausted = batch is None
        more = torch.tensor([0 if exhausted else 1], device=device)
        dist.all_reduce(more, op=dist.ReduceOp.MAX)
        if not int(more.item()):
            return
        yield EmptyBatch(0) if exhausted else batch
