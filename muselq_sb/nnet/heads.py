"""Pre-training heads and the masked BEST-RQ + reconstruction objective.

Authors
 * muselq_sb team
"""
from __future__ import annotations

import torch
from torch import nn


class TokenHead(nn.Module):
    """Linear token classifier per codebook: [B, T, d] -> [B, T, G, V].

    Example
    -------
    >>> TokenHead(16, 32, 2)(torch.rand(2, 5, 16)).shape
    torch.Size([2, 5, 2, 32])
    """

    def __init__(self, d_model: int, cb_vocab: int = 8192,
                 num_codebooks: int = 1) -> None:
        super().__init__()
        self.num_codebooks, self.cb_vocab = num_codebooks, cb_vocab
        self.linear = nn.Linear(d_model, cb_vocab * num_codebooks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Token logits of encoder frames ``x``."""
        B, T, _ = x.shape
        return self.linear(x).view(B, T, self.num_codebooks, self.cb_vocab)


class MelHead(nn.Module):
    """Linear reconstruction of stacked mel frames: [B, T, d] -> [B, T, 512].

    Example
    -------
    >>> MelHead(16, 512)(torch.rand(2, 5, 16)).shape
    torch.Size([2, 5, 512])
    """

    def __init__(self, d_model: int, out_dim: int = 512) -> None:
        super().__init__()
        self.linear = nn.Linear(d_model, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predicted stacked mel frames."""
        return self.linear(x)


def masked_ssl_loss(
    logits: torch.Tensor,
    tokens: torch.Tensor,
    mel_pred: torch.Tensor,
    mel_target: torch.Tensor,
    mask: torch.Tensor,
    ce_weight: float = 1.0,
    mse_weight: float = 1.0,
) -> dict[str, torch.Tensor]:
    """``L = ce_weight * CE + mse_weight * MSE`` on masked frames only.

    Arguments
    ---------
    logits : torch.Tensor
        [N, G, V] token logits of the N masked frames (in ``mask`` order).
    tokens : torch.Tensor
        [B, T, G] target tokens of all frames.
    mel_pred : torch.Tensor
        [N, D] predicted stacked mel frames of the masked frames.
    mel_target : torch.Tensor
        [B, T, D] target stacked mel frames.
    mask : torch.Tensor
        [B, T] bool, True on masked (predicted) frames.
    ce_weight, mse_weight : float
        Weights of the two terms.

    Returns
    -------
    dict
        ``loss``, ``ce``, ``mse``, ``acc`` (masked-token accuracy) and
        ``n_masked``; computed in float32.

    Example
    -------
    >>> B, T, V = 2, 6, 4
    >>> mask = torch.zeros(B, T, dtype=torch.bool); mask[:, :2] = True
    >>> out = masked_ssl_loss(torch.zeros(4, 1, V),
    ...     torch.zeros(B, T, 1, dtype=torch.long), torch.zeros(4, 3),
    ...     torch.ones(B, T, 3), mask)
    >>> round(out["ce"].item(), 4), out["mse"].item(), int(out["n_masked"])
    (1.3863, 1.0, 4)
    """
    sel_tokens = tokens[mask]  # [N, G]
    if logits.shape[:2] != sel_tokens.shape:
        raise ValueError(
            f"logits {tuple(logits.shape)} do not match the {sel_tokens.shape[0]}"
            " masked frames: pass the head outputs of masked frames only"
        )
    logits = logits.float()
    ce = nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), sel_tokens.reshape(-1)
    )
    mse = nn.functional.mse_loss(mel_pred.float(), mel_target[mask].float())
    acc = (logits.argmax(-1) == sel_tokens).float().mean()
    return {
        "loss": ce_weight * ce + mse_weight * mse,
        "ce": ce,
        "mse": mse,
        "acc": acc.detach(),
        "n_masked": torch.tensor(float(sel_tokens.shape[0])),
    }
