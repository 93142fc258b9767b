"""Running statistics of pre-training: losses, masked accuracy, codebook
usage, the trivial baselines, and throughput.

Authors
 * muselq_sb team
"""
from __future__ import annotations

import time
from typing import Any, Mapping

import torch

from muselq_sb.nnet.quantizer import codebook_usage


class SSLStats:
    """Accumulates the statistics of a run of batches.

    Besides the averages of the losses and of the masked-token accuracy it
    keeps what the two trivial baselines need: the counts of masked target
    tokens (the accuracy of always predicting the most frequent one) and
    the per-feature variance of masked mel targets (the MSE of predicting
    their mean).

    Arguments
    ---------
    cb_vocab : int
        Codebook size.
    sample_rate : int
        Audio sample rate (for the throughput in audio-hours per hour).

    Example
    -------
    >>> stats = SSLStats(cb_vocab=4, sample_rate=10)
    >>> out = {"tokens": torch.tensor([[[1], [1], [2]]]),
    ...        "mask": torch.tensor([[True, True, False]]),
    ...        "lens": torch.tensor([3]), "mel_target": torch.ones(1, 3, 2)}
    >>> losses = {"loss": torch.tensor(2.0), "ce": torch.tensor(1.5),
    ...           "mse": torch.tensor(0.5), "acc": torch.tensor(0.5)}
    >>> stats.add(out, losses, None)
    >>> s = stats.summary()
    >>> s["ce"], s["acc"], s["majority_acc"], s["mean_mse"]
    (1.5, 0.5, 1.0, 0.0)
    """

    def __init__(self, cb_vocab: int, sample_rate: int) -> None:
        self.cb_vocab = cb_vocab
        self.sample_rate = sample_rate
        self.reset()

    def reset(self) -> None:
        """Starts a new accumulation."""
        self.n = 0
        self.sums: dict[str, float] = {}
        self.masked_counts = torch.zeros(self.cb_vocab, dtype=torch.long)
        self.all_counts = torch.zeros(self.cb_vocab, dtype=torch.long)
        self.t_sum = self.t_sumsq = None
        self.t_n = 0
        self.audio_seconds = 0.0
        self.start = time.time()

    @torch.no_grad()
    def add(
        self, out: Mapping[str, torch.Tensor],
        losses: Mapping[str, torch.Tensor], batch: Any,
    ) -> None:
        """Adds one batch's outputs and losses."""
        self.n += 1
        for key in ("loss", "ce", "mse", "acc", "ce_unmasked", "mse_unmasked",
                    "pitch", "pitch_unmasked"):
            if key in losses:
                self.sums[key] = self.sums.get(key, 0.0) + float(losses[key])
        tokens, mask = out["tokens"][..., 0], out["mask"]
        valid = torch.arange(mask.shape[1], device=mask.device)[None] < out["lens"][:, None]
        self.masked_counts += torch.bincount(
            tokens[mask].cpu(), minlength=self.cb_vocab
        )
        self.all_counts += torch.bincount(
            tokens[valid].cpu(), minlength=self.cb_vocab
        )
        target = out["mel_target"][mask].double().cpu()
        if target.numel():
            s, ss = target.sum(0), (target * target).sum(0)
            self.t_sum = s if self.t_sum is None else self.t_sum + s
            self.t_sumsq = ss if self.t_sumsq is None else self.t_sumsq + ss
            self.t_n += target.shape[0]
        if batch is not None:
            wavs, lens = batch.sig
            self.audio_seconds += float(lens.sum()) * wavs.shape[1] / self.sample_rate

    def summary(self) -> dict[str, float]:
        """Averages, baselines, codebook usage and throughput."""
        out = {k: v / max(1, self.n) for k, v in self.sums.items()}
        total = int(self.masked_counts.sum())
        out["majority_acc"] = (
            float(self.masked_counts.max()) / total if total else 0.0
        )
        if self.t_n:
            mean = self.t_sum / self.t_n
            var = self.t_sumsq / self.t_n - mean * mean
            out["mean_mse"] = float(var.clamp(min=0).mean())
        if int(self.all_counts.sum()):
            tokens = torch.repeat_interleave(
                torch.arange(self.cb_vocab), self.all_counts
            )
            usage = codebook_usage(tokens, self.cb_vocab)
            out["codebook_used"] = usage["used_fraction"]
            out["codebook_perplexity"] = usage["perplexity"]
        hours = self.audio_seconds / 3600
        elapsed = max(1e-9, time.time() - self.start) / 3600
        out["audio_hours_per_hour"] = hours / elapsed
        return out
