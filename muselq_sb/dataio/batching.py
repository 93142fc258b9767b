"""Batching that drops unreadable audio and counts what it dropped, the
batching of streamed clips by duration, and the split of a batch sampler's
batches across DDP ranks.

``audio_pipeline`` turns a bad file into an empty ``sig``;
``SkipEmptyCollate`` drops such items before padding and records how many it
dropped on the batch itself (``batch.n_skipped``).

Why the count travels on the batch: with ``num_workers > 0`` the collate
function runs in DataLoader worker processes, and any counter it keeps lives
in those processes and never reaches the Brain. The batch, however, is sent
to the main process, so the Brain reads ``batch.n_skipped`` in ``fit_batch``
/ ``evaluate_batch``, adds it to a ``SkipCounter`` and reports and resets
that counter in ``on_stage_end``. A batch in which every item was unreadable
is returned as an ``EmptyBatch`` that carries only ``n_skipped``; the Brain
counts it and runs no real step on it.

Authors
 * muselq_sb team
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence, TypeVar

import numpy as np
from speechbrain.dataio.batch import PaddedBatch
from speechbrain.dataio.sampler import DistributedSamplerWrapper, DynamicBatchSampler

logger = logging.getLogger(__name__)
T = TypeVar("T")


class EmptyBatch:
    """What the collate returns when every item of a batch was unreadable.

    Example
    -------
    >>> EmptyBatch(3).n_skipped
    3
    """

    def __init__(self, n_skipped: int) -> None:
        self.n_skipped = n_skipped

    def __len__(self) -> int:
        return 0


class SkipEmptyCollate:
    """Collate function: drops items whose ``sig`` is empty, pads the rest.

    Picklable (a plain class), so it works as ``collate_fn`` with worker
    processes.

    Arguments
    ---------
    signal_key : str
        The key holding the waveform.
    **padded_batch_kwargs
        Passed to ``speechbrain.dataio.batch.PaddedBatch``.

    Example
    -------
    >>> import torch
    >>> collate = SkipEmptyCollate()
    >>> batch = collate([{"id": "a", "sig": torch.ones(3)},
    ...                  {"id": "b", "sig": torch.zeros(0)}])
    >>> batch.id, batch.n_skipped, batch.sig.data.shape
    (['a'], 1, torch.Size([1, 3]))
    >>> collate([{"id": "b", "sig": torch.zeros(0)}]).n_skipped
    1
    """

    def __init__(self, signal_key: str = "sig", **padded_batch_kwargs: Any) -> None:
        self.signal_key = signal_key
        self.padded_batch_kwargs = padded_batch_kwargs

    def __call__(
        self, examples: Sequence[Mapping[str, Any]]
    ) -> PaddedBatch | EmptyBatch:
        kept = [ex for ex in examples if ex[self.signal_key].numel() > 0]
        if not kept:
            return EmptyBatch(len(examples))
        batch = PaddedBatch(kept, **self.padded_batch_kwargs)
        batch.n_skipped = len(examples) - len(kept)
        return batch


class SkipCounter:
    """Accumulates ``n_skipped`` of the batches of one epoch in the Brain.

    Example
    -------
    >>> import torch
    >>> counter = SkipCounter()
    >>> counter.add(SkipEmptyCollate()([{"sig": torch.zeros(0)},
    ...                                 {"sig": torch.ones(2)}]))
    >>> counter.add(EmptyBatch(2))
    >>> counter.total
    3
    >>> counter.report_and_reset()
    3
    >>> counter.total
    0
    """

    def __init__(self) -> None:
        self.total = 0

    def add(self, batch: object) -> None:
        """Adds the ``n_skipped`` of ``batch`` (0 where it has none)."""
        self.total += int(getattr(batch, "n_skipped", 0))

    def report_and_reset(self, log: logging.Logger = logger) -> int:
        """Logs the epoch total as a warning if non-zero, resets, returns it."""
        total, self.total = self.total, 0
        if total:
            log.warning("skipped %d unreadable audio files this epoch", total)
        return total


class DurationBatcher:
    """Groups a stream of items into batches by duration, as SpeechBrain's
    ``DynamicBatchSampler`` groups a manifest (what the file path uses).

    The buckets and their capacities are those of a ``DynamicBatchSampler``
    with the same ``max_batch_length`` and ``num_buckets``: an item goes to
    the first bucket whose boundary is not below its duration, and a bucket
    becomes a batch when it holds its capacity. Items left at the end of
    the stream make the last, smaller batches.

    Arguments
    ---------
    max_batch_length : float
        Seconds of audio per batch (``max_batch_seconds``).
    num_buckets : int
        Duration buckets.

    Example
    -------
    >>> batcher = DurationBatcher(8.0, 10)
    >>> [len(b) for b in batcher([2.0] * 7, length=float)]
    [3, 3, 1]
    >>> [b for b in batcher([0.5, 8.0, 0.5], length=float)]
    [[8.0], [0.5, 0.5]]
    """

    def __init__(self, max_batch_length: float, num_buckets: int) -> None:
        sampler = DynamicBatchSampler(
            range(1), max_batch_length=max_batch_length,
            num_buckets=num_buckets, lengths_list=[1.0],
        )
        self.boundaries = np.asarray(sampler._bucket_boundaries)
        self.capacities = list(sampler._bucket_lens)

    def __call__(
        self, items: Iterable[T], length: Callable[[T], float]
    ) -> Iterator[list[T]]:
        """Batches of ``items``; ``length(item)`` is its duration."""
        buckets: list[list[T]] = [[] for _ in self.capacities]
        for item in items:
            b = int(np.searchsorted(self.boundaries, length(item)))
            buckets[b].append(item)
            if len(buckets[b]) >= self.capacities[b]:
                yield buckets[b]
                buckets[b] = []
        yield from (bucket for bucket in buckets if bucket)


class CountBatcher:
    """Batches of ``batch_size`` items in stream order (the last smaller).

    Same call as ``DurationBatcher``; ``length`` is ignored.

    Example
    -------
    >>> [len(b) for b in CountBatcher(3)(range(7), length=float)]
    [3, 3, 1]
    """

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size

    def __call__(
        self, items: Iterable[T], length: Callable[[T], float]
    ) -> Iterator[list[T]]:
        """Batches of ``items``."""
        batch: list[T] = []
        for item in items:
            batch.append(item)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch:
            yield batch


class RankBatchSampler(DistributedSamplerWrapper):
    """``DistributedSamplerWrapper`` over a batch sampler that yields whole
    batches when a rank gets a single one.

    SpeechBrain 1.1.2's wrapper picks a rank's batches with
    ``itemgetter(*positions)``, which returns the batch itself, not a tuple
    of one batch, when there is one position: the loader then iterates the
    batch's indices as if each were a batch and fails ("'int' object is not
    iterable"). Under ``torchrun`` a small training set (two batches on two
    ranks) hit it.

    Example
    -------
    >>> s = RankBatchSampler([[0, 1, 2], [3, 4]], num_replicas=2, rank=1, shuffle=False)
    >>> list(s)
    [[3, 4]]
    """

    def __iter__(self) -> Iterator[Any]:
        batches = list(self.sampler.__iter__())
        return iter([batches[i] for i in super(DistributedSamplerWrapper, self).__iter__()])

