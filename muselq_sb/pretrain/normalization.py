"""The statistics pass: the input normaliser's per-bin mean/std computed
once, before the first optimizer step, from training batches, then frozen
(as BEST-RQ does), so that the quantizer's targets never drift.

Authors
 * muselq_sb team
"""
from __future__ import annotations

from itertools import islice
from typing import Iterable

import torch
from speechbrain.utils.logger import get_logger
from tqdm import tqdm

from muselq_sb.dataio.batching import EmptyBatch, SkipCounter
from muselq_sb.lobes.model import MusicModel

logger = get_logger(__name__)


class NoInputStatisticsError(RuntimeError):
    """The statistics pass found no readable audio."""


@torch.no_grad()
def compute_input_statistics(
    model: MusicModel,
    batches: Iterable,
    n_batches: int,
    device: str | torch.device = "cpu",
    progressbar: bool = False,
) -> dict[str, float]:
    """Computes and freezes the statistics of ``model.normalizer``.

    Reads the first ``n_batches`` batches of ``batches`` (fewer if it ends
    first), adds the log-mel frames of their valid samples to the
    normaliser (``FeatureNormalizer.update``) and freezes it. Under DDP
    each process reads its own batches and the sums are all-reduced, so
    every process ends with the same statistics. Unreadable files (an
    ``EmptyBatch`` or a batch's ``n_skipped``) are skipped and counted.

    Arguments
    ---------
    model : MusicModel
        Its front-end computes the log-mels; its normaliser gets the
        statistics (it must not have any yet).
    batches : iterable
        Batches with a ``sig`` (waveforms, relative lengths): the training
        DataLoader.
    n_batches : int
        Batches to read (per process).
    device : str or torch.device
        Where the front-end runs.
    progressbar : bool
        Whether to show a progress bar.

    Returns
    -------
    dict
        ``batches`` read, ``frames`` and ``hours`` of audio (all processes
        together) and ``skipped_files`` (this process).

    Raises
    ------
    NoInputStatisticsError
        No readable audio in the batches (of any process).

    Example
    -------
    >>> from speechbrain.dataio.batch import PaddedBatch
    >>> from muselq_sb.lobes.branchformer import BranchformerEncoder
    >>> enc = BranchformerEncoder(1, d_model=16, nhead=2, kernel_size=3,
    ...                           csgu_linear_units=32)
    >>> model = MusicModel(enc, 16, subsampling_channels=16)
    >>> batch = PaddedBatch([{"sig": torch.randn(24000)}])
    >>> info = compute_input_statistics(model, [batch] * 3, n_batches=2)
    >>> info["batches"], info["frames"], model.normalizer.ready
    (2, 202, True)
    """
    normalizer = model.normalizer
    if normalizer.ready:
        raise ValueError(
            "compute_input_statistics: the normaliser already has its "
            "statistics; they are computed once per run"
        )
    skips = SkipCounter()
    read = 0
    try:
        total = min(n_batches, len(batches))
    except TypeError:  # a stream (or a loader over one) has no length
        total = n_batches
    for batch in tqdm(islice(batches, n_batches), total=total,
                      desc="input statistics", disable=not progressbar):
        read += 1
        skips.add(batch)
        if isinstance(batch, EmptyBatch):
            continue
        wavs, wav_lens = batch.sig
        mel, lens = model.frontend(wavs.to(device), wav_lens.to(device))
        normalizer.update(mel, lens)
    normalizer.freeze()
    if not normalizer.ready:
        raise NoInputStatisticsError(
            f"no readable audio in the first {read} training batches "
            f"({skips.total} unreadable files skipped on this process): the "
            "input statistics cannot be computed; check the training data"
        )
    frames = int(normalizer.count)
    hours = frames / model.frontend.frame_rate / 3600
    logger.info(
        "input statistics: per-bin mean/std of %d log-mel frames (%.2f h of "
        "audio, %d batches per process, %d unreadable files skipped), frozen "
        "for the whole run", frames, hours, read, skips.total,
    )
    return {"batches": read, "frames": frames, "hours": hours,
            "skipped_files": skips.total}
