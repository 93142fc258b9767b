"""Batching that drops unreadable audio and counts what it dropped.

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
from typing import Any, Mapping, Sequence

from speechbrain.dataio.batch import PaddedBatch

logger = logging.getLogger(__name__)


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
