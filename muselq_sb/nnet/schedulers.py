"""Learning-rate schedule of the paper: linear warm-up, then cosine decay.

Authors
 * muselq_sb team
"""
from __future__ import annotations

import math

import torch
from speechbrain.utils.checkpoints import (
    mark_as_loader,
    mark_as_saver,
    register_checkpoint_hooks,
)


@register_checkpoint_hooks
class WarmupCosineScheduler:
    """Linear warm-up to ``lr_max`` then cosine decay to ``lr_min``.

    Call it with the optimizer after every optimizer step; its state (the
    step count) is saved by the SpeechBrain ``Checkpointer``.

    Arguments
    ---------
    lr_max : float
        Peak learning rate (1e-4 in the paper).
    lr_min : float
        Final learning rate (1e-5).
    warmup_steps : int
        Steps of linear warm-up.
    total_steps : int
        Step at which ``lr_min`` is reached (held afterwards).

    Example
    -------
    >>> sched = WarmupCosineScheduler(1e-4, 1e-5, warmup_steps=10,
    ...                               total_steps=110)
    >>> opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])
    >>> [round(sched.lr_at(s) * 1e5, 3) for s in (0, 5, 10, 60, 110, 200)]
    [1.0, 5.5, 10.0, 5.5, 1.0, 1.0]
    >>> _ = sched(opt); opt.param_groups[0]["lr"] == sched.lr_at(1)
    True
    """

    def __init__(
        self, lr_max: float, lr_min: float, warmup_steps: int,
        total_steps: int,
    ) -> None:
        if total_steps <= warmup_steps:
            raise ValueError(
                f"total_steps ({total_steps}) must exceed warmup_steps "
                f"({warmup_steps})"
            )
        self.lr_max, self.lr_min = lr_max, lr_min
        self.warmup_steps, self.total_steps = warmup_steps, total_steps
        self.step = 0

    def lr_at(self, step: int) -> float:
        """The learning rate after ``step`` optimizer steps."""
        if step < self.warmup_steps:
            return self.lr_min + (self.lr_max - self.lr_min) * step / max(
                1, self.warmup_steps
            )
        progress = min(
            1.0, (step - self.warmup_steps)
            / (self.total_steps - self.warmup_steps)
        )
        cos = 0.5 * (1 + math.cos(math.pi * progress))
        return self.lr_min + (self.lr_max - self.lr_min) * cos

    def current_lr(self) -> float:
        """The learning rate in use now."""
        return self.lr_at(self.step)

    def set_lr(self, optimizer: torch.optim.Optimizer) -> None:
        """Writes the current learning rate into ``optimizer``."""
        for group in optimizer.param_groups:
            group["lr"] = self.current_lr()

    def __call__(self, optimizer: torch.optim.Optimizer) -> float:
        """Advances one step and sets the new learning rate."""
        self.step += 1
        self.set_lr(optimizer)
        return self.current_lr()

    @mark_as_saver
    def save(self, path: str) -> None:
        """Saves the step count."""
        torch.save({"step": self.step}, path)

    @mark_as_loader
    def load(self, path: str, end_of_epoch: bool = False) -> None:
        """Restores the step count."""
        del end_of_epoch
        self.step = int(torch.load(path, weights_only=True)["step"])
