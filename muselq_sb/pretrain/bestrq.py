"""BEST-RQ pre-training model: features -> targets -> mask -> encoder -> heads.

Authors
 * muselq_sb team
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from muselq_sb.lobes.frontend import stacked_lengths
from muselq_sb.lobes.model import MusicModel
from muselq_sb.nnet.heads import UNMASKED_TERMS, MelHead, TokenHead
from muselq_sb.nnet.masking import SpanMasker
from muselq_sb.lobes.pitch_target import SemitoneSpectrum
from muselq_sb.nnet.quantizer import RandomProjectionQuantizer


class BestRQModel(nn.Module):
    """Everything pre-training runs in one module (one DDP wrapper).

    The quantizer and the normaliser's statistics are buffers of this
    module, so they are saved in every checkpoint and identical on every
    process. The normaliser never changes here: its statistics are computed
    once before training (``muselq_sb.pretrain.normalization``).

    Arguments
    ---------
    model : MusicModel
        The encoder with its front-end (what downstream tasks keep).
    quantizer : RandomProjectionQuantizer
        Frozen target generator over normalised stacked mel frames.
    masker : SpanMasker
        Span masking.
    token_head : TokenHead
        Token logits from the last layer.
    mel_head : MelHead
        Stacked-mel reconstruction from the last layer.
    eval_mask_seed : int
        Seed of the masks drawn in evaluation mode (the same every time, so
        validation curves compare like with like).
    unmasked_weight : float
        Weight of the loss on unmasked frames; when > 0 the heads of the
        terms in ``unmasked_terms`` run on every valid frame, the others
        and (at 0, BEST-RQ) all of them on the masked frames only.
    unmasked_terms : tuple of str
        The terms (of ``ce``, ``mse``, ``pitch``) trained on unmasked frames
        too (``muselq_sb.nnet.heads.masked_ssl_loss``); a head whose term is
        not among them skips the unmasked frames (the 8192-way token head
        is the costliest part of a tiny model's step after the encoder).
    freeze_subsampling : bool
        Keep the convolutional subsampling at its random initialisation
        (its parameters get no gradient); an ablation of the front-end.
    pitch_target : SemitoneSpectrum, optional
        A pitch-aware target computed from the waveform (one row per
        encoder frame), predicted by ``pitch_head`` on the same frames as
        the other heads; None = none (BEST-RQ).
    pitch_head : nn.Module, optional
        [N, d_model] -> [N, pitch_target.n_bins]; given with ``pitch_target``.

    Example
    -------
    >>> from muselq_sb.lobes.branchformer import BranchformerEncoder
    >>> enc = BranchformerEncoder(1, d_model=32, nhead=2, kernel_size=3,
    ...                           csgu_linear_units=64)
    >>> ssl = BestRQModel(MusicModel(enc, 32, subsampling_channels=32),
    ...     RandomProjectionQuantizer(cb_vocab=64), SpanMasker(),
    ...     TokenHead(32, 64), MelHead(32, 512))
    >>> out = ssl(torch.rand(2, 24000), torch.tensor([1.0, 0.5]))
    >>> out["tokens"].shape, out["mask"].shape
    (torch.Size([2, 26, 1]), torch.Size([2, 26]))
    >>> out["logits"].shape == (int(out["mask"].sum()), 1, 64)
    True
    """

    def __init__(
        self,
        model: MusicModel,
        quantizer: RandomProjectionQuantizer,
        masker: SpanMasker,
        token_head: TokenHead,
        mel_head: MelHead,
        eval_mask_seed: int = 0,
        unmasked_weight: float = 0.0,
        unmasked_terms: tuple[str, ...] = UNMASKED_TERMS,
        freeze_subsampling: bool = False,
        pitch_target: Optional[SemitoneSpectrum] = None,
        pitch_head: Optional[nn.Module] = None,
    ) -> None:
        super().__init__()
        if quantizer.input_dim != model.target_dim:
            raise ValueError(
                f"quantizer.input_dim ({quantizer.input_dim}) must equal the "
                f"stacked mel size n_mels * stack ({model.target_dim})"
            )
        self.model = model
        self.eval_mask_seed = eval_mask_seed
        self.quantizer = quantizer
        self.masker = masker
        self.token_head = token_head
        self.mel_head = mel_head
        self.unmasked_weight = unmasked_weight
        self.unmasked_terms = tuple(unmasked_terms)
        if (pitch_target is None) != (pitch_head is None):
            raise ValueError(
                "BestRQModel: pitch_target and pitch_head go together (both "
                "set, or both null)")
        self.pitch_target = pitch_target
        self.pitch_head = pitch_head
        model.subsampling.requires_grad_(not freeze_subsampling)

    def forward(
        self, wavs: torch.Tensor, wav_lens: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Runs one masked prediction step.

        Returns
        -------
        dict
            ``mask`` [B, T] (True = masked, never on padding), ``tokens``
            [B, T, G], ``mel_target`` [B, T, n_mels * stack], ``lens``
            (valid frames), ``predicted`` [B, T] (the frames the loss looks
            at: the masked ones, or every valid one when ``unmasked_weight``
            > 0) and the heads' outputs on their frames (every predicted
            frame for a term in ``unmasked_terms``, else the masked ones; in
            frame order): ``logits`` [N, G, V] and ``mel_pred``
            [N, n_mels * stack]; with a pitch target also ``pitch_target``
            [B, T, n_bins] and ``pitch_pred`` [N, n_bins].
        """
        mel, lens = self.model.features(wavs, wav_lens)
        targets = self.model.targets(mel)
        lens25 = stacked_lengths(lens, self.model.stack)
        tokens = self.quantizer(targets)
        # training draws fresh masks; evaluation the same ones every time
        generator = None if self.training else torch.Generator().manual_seed(
            self.eval_mask_seed
        )
        mask = self.masker(lens25, targets.shape[1], generator=generator)
        if self.masker.domain == "waveform":
            masked_wavs = self.masker.apply(wavs, mask, self.model.frame_samples)
            masked, _ = self.model.features(masked_wavs, wav_lens)
        else:
            masked = self.masker.apply(mel, mask, self.model.stack)
        last = self.model.encode(masked, lens)[-1]
        predicted = mask
        if self.unmasked_weight > 0:
            predicted = torch.arange(mask.shape[1], device=mask.device) < lens25[:, None]

        def picked(term: str) -> torch.Tensor:  # the heads only run where the loss looks
            return last[predicted if term in self.unmasked_terms else mask]

        out = {
            "logits": self.token_head(picked("ce")[None])[0],
            "tokens": tokens,
            "mel_pred": self.mel_head(picked("mse")),
            "mel_target": targets,
            "mask": mask,
            "predicted": predicted,
            "lens": lens25,
        }
        if self.pitch_target is not None:
            out["pitch_target"] = self.pitch_target(wavs)[:, : targets.shape[1]]
            out["pitch_pred"] = self.pitch_head(picked("pitch"))
        return out
