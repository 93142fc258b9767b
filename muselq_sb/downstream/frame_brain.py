"""Frame-level probes: whole tracks of cached frames, a per-frame head.

A training example is a whole track: its cached frames [T, L, d] (extracted
in one pass, or stitched windows for attention encoders) and one class per
frame. Tracks of a batch are padded to the longest; padded frames carry the
target :data:`~muselq_sb.downstream.frame_metrics.IGNORE`, so the
cross-entropy is a masked mean over real frames only. At validation and
test the frame posteriors of each track are decoded (beats, chord segments)
and scored against the reference annotation
(:func:`~muselq_sb.downstream.frame_metrics.frame_task_metrics`).

Authors
 * muselq_sb team
"""
from __future__ import annotations

from typing import Mapping, Sequence

import speechbrain as sb
import torch
import torch.nn.functional as F

from muselq_sb.downstream.brain import ProbeBrain
from muselq_sb.downstream.frame_metrics import (
    FRAME_TASK_TYPES,
    IGNORE,
    frame_task_metrics,
)


class FrameDataset(torch.utils.data.Dataset):
    """Tracks of cached frames with per-frame targets and their annotation.

    Arguments
    ---------
    frames : sequence of torch.Tensor
        One cached [1, L, T, d] tensor per track (the cache's single
        whole-track "window").
    targets : sequence of torch.Tensor
        One [T] tensor of classes per track.
    references : sequence
        Each track's reference annotation (for the metrics).

    Example
    -------
    >>> ds = FrameDataset([torch.zeros(1, 2, 5, 3), torch.ones(1, 2, 3, 3)],
    ...                   [torch.zeros(5, dtype=torch.long), torch.ones(3, dtype=torch.long)],
    ...                   ["ref a", "ref b"])
    >>> batch = FrameDataset.collate([ds[0], ds[1]])
    >>> batch["emb"].shape, batch["lens"].tolist(), batch["target"][1].tolist()
    (torch.Size([2, 5, 2, 3]), [5, 3], [1, 1, 1, -100, -100])
    """

    def __init__(
        self,
        frames: Sequence[torch.Tensor],
        targets: Sequence[torch.Tensor],
        references: Sequence,
    ) -> None:
        if not len(frames) == len(targets) == len(references):
            raise ValueError(f"{len(frames)} tracks, {len(targets)} targets and "
                             f"{len(references)} references: expected one of each")
        if not frames:
            raise ValueError("no tracks to probe (every item was skipped?)")
        for k, (x, y) in enumerate(zip(frames, targets)):
            if x.dim() != 4 or x.shape[0] != 1 or x.shape[2] != len(y):
                raise ValueError(
                    f"track {k}: frames of shape {tuple(x.shape)} for {len(y)} "
                    "targets: expected one whole-track window [1, L, T, d] with "
                    "one target per frame (window_seconds must be null)")
        self.frames = [x[0].transpose(0, 1) for x in frames]  # [T, L, d]
        self.targets = list(targets)
        self.references = list(references)

    @property
    def num_layers(self) -> int:
        """L, the number of stacked layers per frame."""
        return self.frames[0].shape[1]

    @property
    def input_dim(self) -> int:
        """d, the frame feature size."""
        return self.frames[0].shape[2]

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> dict:
        return {"emb": self.frames[index], "target": self.targets[index],
                "reference": self.references[index]}

    @staticmethod
    def collate(examples: Sequence[Mapping]) -> dict:
        """Pads tracks to the longest: ``emb`` [B, T, L, d], ``target`` [B, T]
        (:data:`IGNORE` on padding), ``lens`` [B] and the ``reference`` list."""
        return {
            "emb": torch.nn.utils.rnn.pad_sequence(
                [e["emb"].float() for e in examples], batch_first=True),
            "target": torch.nn.utils.rnn.pad_sequence(
                [e["target"] for e in examples], batch_first=True, padding_value=IGNORE),
            "lens": torch.tensor([len(e["target"]) for e in examples]),
            "reference": [e["reference"] for e in examples],
        }


def masked_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the frames whose target is not :data:`IGNORE`.

    Example
    -------
    >>> logits = torch.tensor([[[2.0, 0.0], [0.0, 0.0], [9.0, -9.0]]])
    >>> loss = masked_cross_entropy(logits, torch.tensor([[0, 1, IGNORE]]))
    >>> round(loss.item(), 4)  # (log(1 + e^-2) + log 2) / 2, the padded frame left out
    0.41
    """
    return F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=IGNORE)


class FrameProbeBrain(ProbeBrain):
    """:class:`~muselq_sb.downstream.brain.ProbeBrain` for frame-level tasks.

    Training, checkpoint selection on the valid main metric, annealing and
    early stopping are the clip-level ones; the loss is
    :func:`masked_cross_entropy` and the metrics decode each track. Needs in
    hparams, besides ProbeBrain's: ``frame_rate`` (of the cached frames),
    and for beats ``beat_threshold``, ``min_beat_interval`` and
    ``beat_trim_seconds``.

    Example
    -------
    ``tests/test_frame_level.py`` trains one on cached frames and through
    the suite.
    """

    def task_loss(self, task: Mapping):
        """The masked frame cross-entropy (beats and chords only)."""
        if task["type"] not in FRAME_TASK_TYPES:
            raise ValueError(f"task {task.get('name')!r}: type {task['type']!r} "
                             f"is not frame-level; expected one of {list(FRAME_TASK_TYPES)}")
        return masked_cross_entropy

    def compute_forward(self, batch: Mapping, stage: sb.Stage) -> torch.Tensor:
        """Frame logits [B, T, C]."""
        return self.modules.probe(batch["emb"].to(self.device))

    def evaluate_batch(self, batch: Mapping, stage: sb.Stage) -> torch.Tensor:
        """Evaluates a batch and keeps each track's frame posteriors."""
        with self.evaluation_ctx:
            logits = self.compute_forward(batch, stage)
            loss = self.compute_objectives(logits, batch, stage)
        posteriors = torch.softmax(logits.float(), dim=-1).cpu().numpy()
        for k, n in enumerate(batch["lens"].tolist()):
            self.collected.append((posteriors[k, :n], batch["reference"][k]))
        return loss.detach().cpu()

    def on_stage_start(self, stage: sb.Stage, epoch: int | None = None) -> None:
        """Starts a fresh list of (posteriors, reference) per track."""
        self.collected: list = []

    def stage_metrics(self) -> dict:
        """Decodes every collected track and scores the split."""
        posteriors, references = zip(*self.collected)
        return frame_task_metrics(self.hparams.task, posteriors, references,
                                  self.hparams.frame_rate, vars(self.hparams))
