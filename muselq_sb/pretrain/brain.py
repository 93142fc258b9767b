"""``Brain`` for BEST-RQ pre-training with mel reconstruction.

Authors
 * muselq_sb team
"""
from __future__ import annotations

import json
import time
from typing import Any, Optional

import speechbrain as sb
import torch
from speechbrain.dataio.batch import PaddedBatch
from speechbrain.dataio.dataloader import LoopedLoader
from speechbrain.dataio.sampler import DistributedSamplerWrapper
from speechbrain.utils.distributed import if_main_process, infer_device
from speechbrain.utils.logger import get_logger
from torch.utils.data import DataLoader

from muselq_sb.dataio.batching import EmptyBatch, RankBatchSampler, SkipCounter
from muselq_sb.dataio.shards import ShardLoader
from muselq_sb.nnet.heads import masked_ssl_loss
from muselq_sb.pretrain.normalization import compute_input_statistics
from muselq_sb.pretrain.stats import SSLStats
from muselq_sb.utils.hardware import AUTO, bf16_speedup_on_cpu, resolve_precision

logger = get_logger(__name__)


class NonFiniteTrainingError(RuntimeError):
    """Too many consecutive steps had a non-finite loss or gradient."""


def whole_steps(limit: Any) -> Optional[int]:
    """``optimizer_step_limit`` as a number of steps (None: no limit).

    SpeechBrain 1.1.2 passes ``--optimizer_step_limit=N`` from the command
    line on as text (its parser types an option by its default, None here).

    Example
    -------
    >>> whole_steps("370"), whole_steps(None)
    (370, None)
    """
    if limit is None or isinstance(limit, int):
        return limit
    try:
        return int(limit)
    except ValueError:
        raise ValueError(
            f"optimizer_step_limit: expected a whole number of steps, got "
            f"{limit!r}") from None


def run_option(run_opts: Any, key: str) -> Any:
    """``key`` of SpeechBrain run options (a dict, or the ``RunOptions`` of
    ``sb.parse_arguments``) where it was given, else None.

    Example
    -------
    >>> run_option({"device": "cpu"}, "device"), run_option(None, "device")
    ('cpu', None)
    """
    if run_opts is None:
        return None
    if isinstance(run_opts, dict):
        return run_opts.get(key)
    return getattr(run_opts, key) if key in run_opts.overridden_args else None


class BestRQBrain(sb.Brain):
    """Pre-trains ``modules.ssl_model`` (a ``BestRQModel``).

    Expected hparams: ``ssl_model``, ``lr_scheduler``
    (``WarmupCosineScheduler``), ``ce_weight``, ``mse_weight``,
    ``log_interval`` (steps between step logs), ``normalizer_batches``,
    ``train_logger`` (``FileTrainLogger``), ``checkpointer``,
    ``keep_checkpoints``, ``sample_rate``, ``metrics_file`` (JSON lines)
    and optionally ``tensorboard_folder``.

    Before the first optimizer step the input normaliser's statistics are
    computed from ``normalizer_batches`` training batches and frozen
    (``compute_input_statistics``); they are saved in every checkpoint, and
    a resumed run keeps the saved ones.

    An ``EmptyBatch`` (every item unreadable) is counted and skipped; under
    DDP a silent placeholder runs in its place with zero loss weight, so
    that the processes stay in step.

    A step whose loss or gradients are not finite is skipped (no parameter
    or optimizer update) and counted; after ``nonfinite_patience``
    consecutive skipped steps a checkpoint of the last good state is saved
    and ``NonFiniteTrainingError`` stops the run. Gradients are all-reduced
    before the check, so every process takes the same decision.

    With fp16 (CUDA) the gradients are scaled by the ``GradScaler``, whose
    overflows are expected: a skipped step also lowers the scale (the
    scaler's ``update()``), and it counts towards ``nonfinite_patience``
    only once the scale is down to 1, where scaling cannot be the cause.
    """

    def __init__(self, modules: Any = None, opt_class: Any = None,
                 hparams: Optional[dict] = None, run_opts: Any = None,
                 checkpointer: Any = None) -> None:
        """As ``Brain.__init__``; ``precision`` / ``eval_precision: auto`` in
        the hparams resolve to what is fast on the run's device
        (:func:`muselq_sb.utils.hardware.resolve_precision`)."""
        auto = [key for key in ("precision", "eval_precision")
                if hparams is not None and hparams.get(key) == AUTO]
        if auto:
            device = run_option(run_opts, "device") or hparams.get("device") or infer_device()
            chosen = [resolve_precision(AUTO, device)]
            if (torch.device(device).type == "cpu" and torch.distributed.is_available()
                    and torch.distributed.is_initialized()):
                torch.distributed.broadcast_object_list(chosen, src=0)  # one choice for all ranks
            hparams = {**hparams, **{key: chosen[0] for key in auto}}
        super().__init__(modules, opt_class, hparams, run_opts, checkpointer)
        self.optimizer_step_limit = whole_steps(self.optimizer_step_limit)

    def fit(
        self, epoch_counter: Any, train_set: Any, valid_set: Any = None,
        progressbar: Optional[bool] = None,
        train_loader_kwargs: Optional[dict] = None,
        valid_loader_kwargs: Optional[dict] = None,
    ) -> None:
        """As ``Brain.fit``; keeps the training loader for the statistics
        pass of ``on_fit_start``."""
        if not isinstance(train_set, (DataLoader, LoopedLoader)):
            train_set = self.make_dataloader(
                train_set, stage=sb.Stage.TRAIN, **(train_loader_kwargs or {})
            )
        self.train_loader = train_set
        super().fit(epoch_counter, train_set, valid_set, progressbar,
                    valid_loader_kwargs=valid_loader_kwargs or {})

    def make_dataloader(
        self, dataset: Any, stage: sb.Stage, ckpt_prefix: str = "dataloader-",
        **loader_kwargs: Any,
    ) -> DataLoader:
        """As ``Brain.make_dataloader``; outside DDP, SpeechBrain does not
        register a training ``batch_sampler`` (the file path's
        ``DynamicBatchSampler``) as ``train_sampler``, so its ``set_epoch``
        was never called and every epoch drew the same
        batches in the same order. Registered here, each epoch draws its
        own, reproducibly (seed + epoch), resumed runs included."""
        loader = super().make_dataloader(dataset, stage, ckpt_prefix, **loader_kwargs)
        sampler = loader_kwargs.get("batch_sampler")
        if (stage == sb.Stage.TRAIN and self.train_sampler is None
                and hasattr(sampler, "set_epoch")):
            self.train_sampler = sampler
        return loader

    def _train_loader_specifics(self, dataset: Any, loader_kwargs: dict) -> dict:
        """As ``Brain._train_loader_specifics``; under DDP the batch sampler's
        wrapper is a :class:`RankBatchSampler` (SpeechBrain's own loses the
        batch structure when a rank gets a single batch)."""
        loader_kwargs = super()._train_loader_specifics(dataset, loader_kwargs)
        wrapper = loader_kwargs.get("batch_sampler")
        if type(wrapper) is DistributedSamplerWrapper:
            self.train_sampler = RankBatchSampler(
                wrapper.sampler, rank=self.rank, shuffle=wrapper.shuffle)
            loader_kwargs["batch_sampler"] = self.train_sampler
        return loader_kwargs

    def on_fit_start(self) -> None:
        """Builds optimizers, recovers, restores the scheduled lr, and
        computes the input statistics unless the checkpoint has them."""
        super().on_fit_start()
        self.hparams.lr_scheduler.set_lr(self.optimizer)
        if torch.device(self.device).type == "cpu" and self.precision == "bf16":
            speedup = bf16_speedup_on_cpu()
            if speedup < 1.0:
                logger.warning(
                    "precision=bf16 on a CPU where bf16 matrix products measured "
                    "%.2fx the speed of fp32 (docs/benchmarks.md, section 5); "
                    "pass --precision=fp32 to train faster", speedup)
        self.skips = SkipCounter()
        self.nonfinite_in_a_row = 0
        self.nonfinite_total = 0
        self.step_skipped = False
        self.tb_writer = None
        folder = getattr(self.hparams, "tensorboard_folder", None)
        if folder and if_main_process():
            from torch.utils.tensorboard import SummaryWriter

            self.tb_writer = SummaryWriter(folder)
        model = self.hparams.ssl_model.model
        if model.normalizer.ready:
            logger.info("input statistics restored from the checkpoint "
                        "(%d frames), not recomputed", int(model.normalizer.count))
        else:
            batches = self.train_loader
            if isinstance(batches, ShardLoader):  # reading is not training
                batches = batches.peek()
            compute_input_statistics(
                model, batches, self.hparams.normalizer_batches,
                device=self.device,
                progressbar=not self.noprogressbar and if_main_process(),
            )

    # ---- forward / loss -------------------------------------------------
    def _placeholder_batch(self) -> PaddedBatch:
        sig = torch.zeros(int(self.hparams.sample_rate))
        batch = PaddedBatch([{"id": "placeholder", "sig": sig}])
        batch.placeholder = True
        return batch

    def fit_batch(self, batch: PaddedBatch | EmptyBatch) -> torch.Tensor:
        """Trains on ``batch``; an ``EmptyBatch`` runs a zero-weight step."""
        self.skips.add(batch)
        if isinstance(batch, EmptyBatch):
            if not self.distributed_launch:
                return torch.tensor(0.0)  # nothing to learn from: no step
            # other processes may have data: take part in the collectives
            batch = self._placeholder_batch()
        return super().fit_batch(batch)

    def evaluate_batch(self, batch: PaddedBatch | EmptyBatch, stage) -> torch.Tensor:
        """Evaluates ``batch`` and records its statistics."""
        self.skips.add(batch)
        if isinstance(batch, EmptyBatch):
            return torch.tensor(0.0)
        loss = super().evaluate_batch(batch, stage)
        self.stage_stats.add(self.last_out, self.last_losses, batch)
        return loss

    def compute_forward(self, batch: PaddedBatch, stage) -> dict[str, Any]:
        """Masked prediction on the batch's waveforms."""
        batch = batch.to(self.device)
        wavs, wav_lens = batch.sig
        return self.modules.ssl_model(wavs, wav_lens)

    def compute_objectives(
        self, predictions: dict[str, Any], batch: PaddedBatch, stage
    ) -> torch.Tensor:
        """CE on tokens + MSE on stacked mel frames (masked, and unmasked
        frames weighted by ``unmasked_weight``)."""
        losses = masked_ssl_loss(
            predictions["logits"], predictions["tokens"],
            predictions["mel_pred"], predictions["mel_target"],
            predictions["mask"], ce_weight=self.hparams.ce_weight,
            mse_weight=self.hparams.mse_weight,
            predicted=predictions["predicted"],
            unmasked_weight=self.hparams.unmasked_weight,
            pitch_pred=predictions.get("pitch_pred"),
            pitch_target=predictions.get("pitch_target"),
            pitch_weight=self.hparams.pitch_weight,
            unmasked_terms=tuple(self.hparams.unmasked_terms),
        )
        self.last_out, self.last_losses = predictions, losses
        if getattr(batch, "placeholder", False):
            return losses["loss"] * 0.0
        return losses["loss"]

    def check_loss_isfinite(self, loss: torch.Tensor) -> None:
        """Non-finite losses are handled in ``optimizers_step``."""

    def _grads_finite(self) -> bool:
        grads = [p.grad for p in self.modules.parameters() if p.grad is not None]
        if not grads:
            return True
        return bool(torch.stack([torch.isfinite(g).all() for g in grads]).all())

    def _lower_loss_scale(self) -> bool:
        """fp16: lets the GradScaler see the overflow and lower its scale.

        Returns True when the scale was above 1 (the overflow may be the
        scale's doing, and the lower scale may cure it); False without an
        enabled scaler.
        """
        if not self.scaler.is_enabled():
            return False
        scale = self.scaler.get_scale()
        self.scaler.unscale_(self.optimizer)  # records the inf for update()
        self.scaler.update()
        logger.warning(
            "fp16 gradient overflow at optimizer step %d: step skipped, loss "
            "scale %g -> %g", self.optimizer_step, scale, self.scaler.get_scale(),
        )
        return scale > 1.0

    def optimizers_step(self) -> None:
        """Steps unless a gradient is non-finite (then skips, see the class)."""
        self.step_skipped = not self._grads_finite()
        if not self.step_skipped:
            self.nonfinite_in_a_row = 0
            super().optimizers_step()
            self.hparams.lr_scheduler(self.optimizer)
            return
        self.nonfinite_total += 1
        cured_by_scale = self._lower_loss_scale()
        self.optimizer.zero_grad(set_to_none=True)
        if cured_by_scale:
            return
        self.nonfinite_in_a_row += 1
        logger.warning(
            "non-finite loss or gradient at optimizer step %d: step skipped "
            "(%d in a row, %d in total)", self.optimizer_step,
            self.nonfinite_in_a_row, self.nonfinite_total,
        )
        if self.nonfinite_in_a_row >= self.nonfinite_patience:
            self._save_intra_epoch_ckpt()
            raise NonFiniteTrainingError(
                f"{self.nonfinite_in_a_row} consecutive optimizer steps had a "
                "non-finite loss or gradient; training stopped. The weights "
                "were never updated with them: the checkpoint just saved in "
                f"{self.checkpointer.checkpoints_dir} holds the last good "
                "state (lower lr, check the data, or raise "
                "--nonfinite_patience)."
            )

    # ---- bookkeeping ----------------------------------------------------
    def on_stage_start(self, stage, epoch=None) -> None:
        """Resets the statistics of the stage."""
        self.stage_stats = SSLStats(
            self.hparams.ssl_model.quantizer.cb_vocab, self.hparams.sample_rate
        )
        self.interval_stats = SSLStats(
            self.hparams.ssl_model.quantizer.cb_vocab, self.hparams.sample_rate
        )

    def on_fit_batch_end(self, batch, outputs, loss, should_step) -> None:
        """Accumulates and logs step statistics."""
        if getattr(batch, "placeholder", False) or not torch.isfinite(loss):
            return
        self.stage_stats.add(outputs, self.last_losses, batch)
        self.interval_stats.add(outputs, self.last_losses, batch)
        if not should_step or self.step_skipped:
            return
        if self.optimizer_step % self.hparams.log_interval == 0:
            stats = self.interval_stats.summary()
            stats["lr"] = self.hparams.lr_scheduler.current_lr()
            self._record("train_step", stats)
            self.interval_stats.reset()

    def _record(self, stage: str, stats: dict[str, float], **extra) -> None:
        """Appends a record to ``metrics.jsonl`` and TensorBoard (main
        process only; no collective, so it may be called on one rank)."""
        if not if_main_process():
            return
        record = {"step": self.optimizer_step, "stage": stage, **extra, **stats}
        with open(self.hparams.metrics_file, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb_writer is not None:
            prefix = "train" if stage == "train_step" else stage
            for key, value in stats.items():
                self.tb_writer.add_scalar(
                    f"{prefix}/{key}", value, self.optimizer_step
                )
            self.tb_writer.flush()

    def on_stage_end(self, stage, stage_loss, epoch=None) -> None:
        """Logs the epoch, reports skipped files and saves a checkpoint."""
        stats = self.stage_stats.summary()
        stats["loss"] = float(stage_loss)
        skipped = self.skips.report_and_reset(logger)
        stats["skipped_files"] = skipped
        stats["skipped_steps"] = self.nonfinite_total
        if stage == sb.Stage.TRAIN:
            self.train_stats = stats
            return
        if stage != sb.Stage.VALID:
            return
        meta = {"epoch": epoch, "steps": self.optimizer_step,
                "lr": self.hparams.lr_scheduler.current_lr()}
        self.hparams.train_logger.log_stats(
            stats_meta=meta, train_stats=self.train_stats, valid_stats=stats
        )
        self._record(
            "valid", stats, epoch=epoch, time=time.time(),
            train_skipped_files=self.train_stats["skipped_files"],
        )
        self.checkpointer.save_and_keep_only(
            meta={"loss": float(stats["loss"]), "acc": float(stats["acc"]),
                  "steps": int(self.optimizer_step), "precision": self.precision},
            min_keys=["loss"],
            num_to_keep=self.hparams.keep_checkpoints,
        )
