"""ProbeBrain: trains a probe on cached embeddings of a frozen encoder.

Every window is a training example carrying its item's target (MARBLE);
at validation and test the window logits of an item, then of the items of a
``group``, are averaged before the task's metrics are computed.

Authors
 * muselq_sb team
"""
from __future__ import annotations

from typing import Mapping, Sequence

import speechbrain as sb
import torch
import torch.nn.functional as F
import yaml
from speechbrain.utils.checkpoints import (
    mark_as_loader, mark_as_saver, mark_as_transfer, register_checkpoint_hooks,
)
from speechbrain.utils.epoch_loop import EpochCounterWithStopper

from muselq_sb.downstream.metrics import LogitAccumulator, compute_metrics, main_metric

LOSSES = {
    "multiclass": F.cross_entropy,
    "multilabel": F.binary_cross_entropy_with_logits,
    "regression": F.mse_loss,
}


class WindowDataset(torch.utils.data.Dataset):
    """Windows of cached embeddings with their item's target and group.

    Arguments
    ---------
    embeddings : sequence of torch.Tensor
        One [n_windows, L, d] tensor per item.
    targets : torch.Tensor
        One target per item (class index, multi-hot row or values).
    groups : sequence of str
        The averaging key of each item (its ``group``, else its ID).

    Example
    -------
    >>> ds = WindowDataset([torch.zeros(2, 3, 4), torch.ones(1, 3, 4)],
    ...                    torch.tensor([0, 1]), ["song", "song"])
    >>> len(ds), ds[2]["item"], ds[2]["group"], ds[2]["target"]
    (3, 1, 0, tensor(1))
    """

    def __init__(
        self,
        embeddings: Sequence[torch.Tensor],
        targets: torch.Tensor,
        groups: Sequence[str],
    ) -> None:
        if not len(embeddings) == len(targets) == len(groups):
            raise ValueError(
                f"{len(embeddings)} items, {len(targets)} targets and "
                f"{len(groups)} groups: expected one of each per item"
            )
        if not embeddings:
            raise ValueError("no items to probe (every item was skipped?)")
        self.windows = torch.cat(list(embeddings))
        counts = torch.tensor([len(e) for e in embeddings])
        self.items = torch.repeat_interleave(torch.arange(len(embeddings)), counts)
        group_ids = {g: i for i, g in enumerate(dict.fromkeys(groups))}
        self.groups = torch.tensor([group_ids[g] for g in groups])
        self.targets = targets

    @property
    def num_layers(self) -> int:
        """L, the number of stacked layers per window."""
        return self.windows.shape[1]

    @property
    def input_dim(self) -> int:
        """d, the embedding size."""
        return self.windows.shape[2]

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> dict:
        item = int(self.items[index])
        return {
            "emb": self.windows[index].float(),
            "target": self.targets[item],
            "item": item,
            "group": int(self.groups[item]),
        }


@register_checkpoint_hooks
class StoppingEpochCounter(EpochCounterWithStopper):
    """SpeechBrain's ``EpochCounterWithStopper`` whose early-stopping state
    survives a checkpoint.

    In SpeechBrain 1.1 that class is not registered for checkpoints of its
    own, so only the epoch number is saved: a probe that stopped early and
    is started again in its folder forgets its best score and that it
    stopped, trains up to ``limit_to_stop`` more epochs from its last
    weights, and the test can move to a new "best" checkpoint. This counter
    saves and recovers the epoch, the best epoch and score, and whether it
    has stopped (a bare epoch number, from a folder written before, is read
    as the epoch).

    Example
    -------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "counter.ckpt")
    >>> counter = StoppingEpochCounter(10, 1, 0, "max")
    >>> for epoch in counter:
    ...     counter.update_metric(1.0 if epoch == 1 else 0.5)
    >>> counter.current, counter.should_stop
    (2, True)
    >>> counter._save(path)
    >>> again = StoppingEpochCounter(10, 1, 0, "max")
    >>> again._recover(path)
    >>> again.best_score, list(again)
    (1.0, [])
    """

    @mark_as_saver
    def _save(self, path) -> None:
        # the parent's dict writer, registered here: SpeechBrain never calls it
        super()._save(path)

    @mark_as_loader
    @mark_as_transfer
    def _recover(self, path, end_of_epoch: bool = True, device=None) -> None:
        with open(path, encoding="utf-8") as fi:
            saved = yaml.safe_load(fi)
        if not isinstance(saved, dict):  # EpochCounter's format: the epoch
            saved = {"current_epoch": int(saved), "best_epoch": self.best_limit,
                     "best_score": self.best_score}
        self.current = saved["current_epoch"] - (0 if end_of_epoch else 1)
        self.best_limit = saved["best_epoch"]
        self.best_score = saved["best_score"]
        self.should_stop = end_of_epoch and bool(saved.get("should_stop", False))


class ProbeBrain(sb.Brain):
    """Trains ``modules.probe`` on :class:`WindowDataset` batches.

    Needs in hparams: ``task`` (the task.json dict), ``main_metric``
    (None for the task default), ``epoch_counter`` (an
    ``StoppingEpochCounter`` maximising the main metric),
    ``lr_annealing`` (``speechbrain.nnet.schedulers.ReduceLROnPlateau`` on
    the valid loss) and ``train_logger``. A checkpoint is saved only when
    the main metric beats the best saved one (a tie keeps the earlier
    epoch), and only the best is kept: it is the one the test uses
    (``evaluate(max_key=...)``) and the one an interrupted run restarts
    from. When training ends, the finished state (the spent or stopped
    epoch counter) is saved beside it, so a run started again in the same
    folder trains no further and tests the same probe.

    Example
    -------
    >>> import tempfile
    >>> from speechbrain.utils.checkpoints import Checkpointer
    >>> from speechbrain.utils.epoch_loop import EpochCounterWithStopper
    >>> from speechbrain.nnet.schedulers import ReduceLROnPlateau
    >>> from speechbrain.utils.train_logger import FileTrainLogger
    >>> from muselq_sb.downstream.probe import Probe
    >>> d = tempfile.mkdtemp()
    >>> task = {"name": "toy", "type": "multiclass", "classes": ["a", "b"],
    ...         "metrics": ["accuracy"]}
    >>> x = torch.cat([torch.zeros(8, 1, 2), torch.ones(8, 1, 2)])
    >>> ds = WindowDataset(list(x.unsqueeze(1)), torch.tensor([0] * 8 + [1] * 8),
    ...                    [str(i) for i in range(16)])
    >>> probe = Probe(1, 2, 2, layer=0, hidden_dim=8)
    >>> counter = EpochCounterWithStopper(30, 30, 0, "max")
    >>> brain = ProbeBrain(
    ...     modules={"probe": probe}, opt_class=lambda p: torch.optim.Adam(p, 0.05),
    ...     hparams={"task": task, "main_metric": None, "epoch_counter": counter,
    ...              "lr_annealing": ReduceLROnPlateau(0, 0.5, 5, 0),
    ...              "train_logger": FileTrainLogger(d + "/log.txt")},
    ...     checkpointer=Checkpointer(d, {"probe": probe, "counter": counter}),
    ...     run_opts={"noprogressbar": True})
    >>> brain.fit(counter, ds, ds, train_loader_kwargs={"batch_size": 4})
    >>> _ = brain.evaluate(ds, max_key="accuracy")
    >>> brain.test_stats["accuracy"]
    1.0
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        task = self.hparams.task
        self.loss_fn = self.task_loss(task)
        self.main_metric = main_metric(task, self.hparams.main_metric)
        self.train_stats: dict = {}
        self.test_stats: dict = {}
        self.accumulator = LogitAccumulator()

    def task_loss(self, task: Mapping):
        """The loss of the task's type (refuses types it cannot train)."""
        if task["type"] not in LOSSES:
            raise ValueError(
                f"task {task.get('name')!r}: type {task['type']!r}; expected "
                f"one of {list(LOSSES)}"
            )
        return LOSSES[task["type"]]

    def stage_metrics(self) -> dict:
        """The task's metrics on what the stage's batches collected."""
        logits, targets = self.accumulator.clip_level()
        return compute_metrics(self.hparams.task, logits, targets)

    def fit(self, *args, **kwargs) -> None:
        """``Brain.fit``, then the finished state saved (see the class)."""
        super().fit(*args, **kwargs)
        if self.checkpointer is not None:
            self.checkpointer.save_and_keep_only(
                meta={"epoch": int(self.hparams.epoch_counter.current)},
                max_keys=[self.main_metric],
                keep_recent=True,
                importance_keys=[],
            )

    def _best_saved_score(self) -> float:
        """Main metric of the best checkpoint (-inf before the first)."""
        best = self.checkpointer.find_checkpoint(max_key=self.main_metric)
        return best.meta[self.main_metric] if best else -float("inf")

    def compute_forward(self, batch: Mapping, stage: sb.Stage) -> torch.Tensor:
        """Probe outputs [B, n_outputs] of the window embeddings."""
        return self.modules.probe(batch["emb"].to(self.device))

    def compute_objectives(
        self, predictions: torch.Tensor, batch: Mapping, stage: sb.Stage
    ) -> torch.Tensor:
        """The task's loss (CE, BCE-with-logits or MSE) over windows."""
        return self.loss_fn(predictions.float(), batch["target"].to(self.device))

    def evaluate_batch(self, batch: Mapping, stage: sb.Stage) -> torch.Tensor:
        """Evaluates a batch and keeps its logits for clip-level metrics."""
        with self.evaluation_ctx:
            predictions = self.compute_forward(batch, stage)
            loss = self.compute_objectives(predictions, batch, stage)
        self.accumulator.append(
            batch["item"], predictions.float(), batch["target"], batch["group"]
        )
        return loss.detach().cpu()

    def on_stage_start(self, stage: sb.Stage, epoch: int | None = None) -> None:
        """Starts a fresh logit accumulator for the stage."""
        self.accumulator = LogitAccumulator()

    def on_stage_end(
        self, stage: sb.Stage, stage_loss: float, epoch: int | None = None
    ) -> None:
        """Computes metrics, anneals, early-stops, checkpoints and logs."""
        stats = {"loss": float(stage_loss)}
        if stage == sb.Stage.TRAIN:
            self.train_stats = stats
            return
        stats.update(self.stage_metrics())
        score = float(stats[self.main_metric])
        if stage == sb.Stage.VALID:
            old_lr, new_lr = self.hparams.lr_annealing(
                [self.optimizer], epoch, stats["loss"]
            )
            sb.nnet.schedulers.update_learning_rate(self.optimizer, new_lr)
            self.hparams.epoch_counter.update_metric(score)
            self.hparams.train_logger.log_stats(
                {"epoch": epoch, "lr": old_lr},
                train_stats=self.train_stats,
                valid_stats=stats,
            )
            if score > self._best_saved_score():
                self.checkpointer.save_and_keep_only(
                    meta={self.main_metric: score, "epoch": int(epoch)},
                    max_keys=[self.main_metric],
                    keep_recent=False,
                    importance_keys=[],  # SpeechBrain appends to it: not its default
                )
        else:
            self.test_stats = stats
            self.hparams.train_logger.log_stats(
                {"epoch loaded": self.hparams.epoch_counter.current},
                test_stats=stats,
            )
