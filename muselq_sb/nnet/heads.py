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


def _squared_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error per frame, in float32: [N, D], [N, D] -> [N]."""
    return (pred.float() - target.float()).pow(2).mean(-1)


def _head_frames(name: str, rows: int,
                 frame_sets: tuple[tuple[torch.Tensor, int], ...]) -> torch.Tensor:
    """The frames a head's ``rows`` outputs are, among ``frame_sets``
    (``(predicted, count), (mask, count)``): every predicted frame, or the
    masked ones only (the masked frames are among the predicted ones, so
    the two counts are equal only when the two sets are)."""
    for frames, count in frame_sets:
        if rows == count:
            return frames
    (_, n_predicted), (_, n_masked) = frame_sets
    raise ValueError(
        f"{name}: {rows} rows match neither the {n_predicted} predicted "
        f"frames nor the {n_masked} masked ones: pass the head outputs of "
        "those frames only, in their order")


UNMASKED_TERMS = ("ce", "mse", "pitch")


def masked_ssl_loss(
    logits: torch.Tensor,
    tokens: torch.Tensor,
    mel_pred: torch.Tensor,
    mel_target: torch.Tensor,
    mask: torch.Tensor,
    ce_weight: float = 1.0,
    mse_weight: float = 1.0,
    predicted: torch.Tensor | None = None,
    unmasked_weight: float = 0.0,
    pitch_pred: torch.Tensor | None = None,
    pitch_target: torch.Tensor | None = None,
    pitch_weight: float = 0.0,
    unmasked_terms: tuple[str, ...] = UNMASKED_TERMS,
) -> dict[str, torch.Tensor]:
    """``L = ce_weight * CE + mse_weight * MSE (+ pitch_weight * MSE of the
    pitch target)`` on masked frames, plus ``unmasked_weight`` times the
    terms named in ``unmasked_terms`` on unmasked frames (HuBERT's weighting
    of masked and unmasked frames; 0 = BEST-RQ, masked only).

    Arguments
    ---------
    logits : torch.Tensor
        [N, G, V] token logits of the N predicted frames (in ``predicted``
        order), or of the masked frames only (in ``mask`` order; then the
        token loss is not taken on unmasked frames).
    tokens : torch.Tensor
        [B, T, G] target tokens of all frames.
    mel_pred : torch.Tensor
        [N, D] predicted stacked mel frames of the predicted frames, or of
        the masked ones only (as ``logits``).
    mel_target : torch.Tensor
        [B, T, D] target stacked mel frames.
    mask : torch.Tensor
        [B, T] bool, True on masked frames.
    ce_weight, mse_weight : float
        Weights of the two terms.
    predicted : torch.Tensor, optional
        [B, T] bool, the frames the heads ran on (``mask`` when None; with
        ``unmasked_weight`` > 0, every valid frame).
    unmasked_weight : float
        Weight of the terms on the predicted frames that were not masked.
    pitch_pred, pitch_target : torch.Tensor, optional
        [N, P] predicted (of the predicted or the masked frames, as
        ``logits``) and [B, T, P] target pitch frames
        (``muselq_sb.lobes.pitch_target``); None = no pitch term.
    pitch_weight : float
        Weight of the pitch term.
    unmasked_terms : tuple of str
        The terms (of ``ce``, ``mse``, ``pitch``) that ``unmasked_weight``
        adds on unmasked frames; the others are reported on them where their
        head ran there, not trained on them (``("mse",)``: tokens of masked
        frames only, mel reconstruction of every frame). A term named here
        whose head ran on the masked frames only is an error.

    Returns
    -------
    dict
        ``loss``, ``ce``, ``mse`` (masked frames), ``ce_unmasked`` and
        ``mse_unmasked`` (only where that head ran on unmasked frames),
        ``pitch`` and ``pitch_unmasked`` (with a pitch target), ``acc`` (masked-token
        accuracy) and ``n_masked``; computed in float32.

    Example
    -------
    >>> B, T, V = 2, 6, 4
    >>> mask = torch.zeros(B, T, dtype=torch.bool); mask[:, :2] = True
    >>> out = masked_ssl_loss(torch.zeros(4, 1, V),
    ...     torch.zeros(B, T, 1, dtype=torch.long), torch.zeros(4, 3),
    ...     torch.ones(B, T, 3), mask)
    >>> round(out["ce"].item(), 4), out["mse"].item(), int(out["n_masked"])
    (1.3863, 1.0, 4)
    >>> every = torch.ones(B, T, dtype=torch.bool)
    >>> out = masked_ssl_loss(torch.zeros(12, 1, V),
    ...     torch.zeros(B, T, 1, dtype=torch.long), torch.zeros(12, 3),
    ...     torch.ones(B, T, 3), mask, predicted=every, unmasked_weight=0.5)
    >>> out["mse_unmasked"].item(), round(out["loss"].item(), 4)
    (1.0, 3.5794)
    >>> out = masked_ssl_loss(torch.zeros(4, 1, V),
    ...     torch.zeros(B, T, 1, dtype=torch.long), torch.zeros(12, 3),
    ...     torch.ones(B, T, 3), mask, predicted=every, unmasked_weight=0.5,
    ...     unmasked_terms=("mse",))  # the token head on masked frames only
    >>> "ce_unmasked" in out, round(out["loss"].item(), 4)
    (False, 2.8863)
    """
    unknown = set(unmasked_terms) - set(UNMASKED_TERMS)
    if unknown:
        raise ValueError(
            f"unmasked_terms: unknown term(s) {sorted(unknown)}; expected "
            f"names among {list(UNMASKED_TERMS)}")
    predicted = mask if predicted is None else predicted
    if (mask & ~predicted).any():
        raise ValueError("every masked frame must be predicted")
    logits = logits.float()
    # counted once: each count is a device sync on a GPU
    frame_sets = ((predicted, int(predicted.sum())), (mask, int(mask.sum())))
    some_unmasked = frame_sets[0][1] > frame_sets[1][1]
    ce_frames = _head_frames("logits", logits.shape[0], frame_sets)
    sel_tokens = tokens[ce_frames]  # [N, G]
    if logits.shape[1] != sel_tokens.shape[1]:
        raise ValueError(
            f"logits {tuple(logits.shape)}: {logits.shape[1]} codebooks, the "
            f"tokens have {sel_tokens.shape[1]}")
    ce = nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), sel_tokens.reshape(-1),
        reduction="none",
    ).view(sel_tokens.shape).mean(-1)  # [N]
    per_frame = {  # name: (values [N], their frames [B, T], weight)
        "ce": (ce, ce_frames, ce_weight)}
    heads = [("mse", mel_pred, mel_target, mse_weight)]
    if pitch_pred is not None:
        heads.append(("pitch", pitch_pred, pitch_target, pitch_weight))
    for name, pred, target, weight in heads:
        frames = _head_frames(name, pred.shape[0], frame_sets)
        per_frame[name] = (_squared_error(pred, target[frames]), frames, weight)
    terms, loss = {}, 0.0
    for name, (values, frames, weight) in per_frame.items():
        masked = mask[frames]  # True on the masked ones among the head's frames
        terms[name] = values[masked].mean()
        loss = loss + weight * terms[name]
        if (~masked).any():
            terms[f"{name}_unmasked"] = values[~masked].mean()
            if name in unmasked_terms:
                loss = loss + unmasked_weight * weight * terms[f"{name}_unmasked"]
        elif name in unmasked_terms and unmasked_weight > 0 and some_unmasked:
            raise ValueError(
                f"unmasked_terms has {name!r} but its head ran on the masked "
                "frames only: run it on every predicted frame")
    masked = mask[ce_frames]
    acc = (logits[masked].argmax(-1) == sel_tokens[masked]).float().mean()
    return {
        "loss": loss,
        **terms,
        "acc": acc.detach(),
        "n_masked": torch.tensor(float(masked.sum())),
    }
