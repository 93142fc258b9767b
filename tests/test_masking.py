"""Span masking statistics and the masked-only loss."""
import torch

from muselq_sb.nnet.heads import masked_ssl_loss
from muselq_sb.nnet.masking import SpanMasker


def test_fraction_spans_padding_and_fresh_draws():
    masker = SpanMasker(span=10, prob=0.2)
    lens = torch.tensor([750] * 16 + [333] * 16)
    mask = masker(lens, 750)
    pad = torch.arange(750)[None] >= lens[:, None]
    assert not mask[pad].any()
    frac = mask[~pad].float().mean().item()
    assert 0.16 < frac < 0.26
    # spans are grid-aligned runs of 10 frames (except at the valid end)
    full = mask[:16].view(16, 75, 10)
    assert torch.all(full.all(-1) == full.any(-1))
    assert not torch.equal(mask, masker(lens, 750))


def test_every_example_gets_a_span():
    masker = SpanMasker(span=10, prob=0.0)
    mask = masker(torch.tensor([5, 40, 100]), 100)
    assert mask.any(dim=1).all()
    assert not mask[0, 5:].any()


def test_mel_and_waveform_fill():
    mask = torch.zeros(1, 3, dtype=torch.bool)
    mask[0, 1] = True
    mel = torch.ones(1, 11, 2)
    out = SpanMasker(stack=4).apply_mel(mel, mask)
    assert out[0, 4:8].abs().sum() == 0 and out[0, :4].eq(1).all()
    assert out[0, 8:].eq(1).all()
    wav = torch.ones(1, 2500)
    noisy = SpanMasker(fill="noise", samples_per_frame=960).apply_waveform(wav, mask)
    assert noisy[0, :960].eq(1).all() and not noisy[0, 960:1920].eq(1).any()


def test_loss_ignores_unmasked_frames():
    B, T, V, D = 2, 12, 16, 8
    mask = torch.zeros(B, T, dtype=torch.bool)
    mask[0, 2:5] = True
    mask[1, 7:9] = True
    tokens = torch.randint(V, (B, T, 1))
    target = torch.randn(B, T, D)
    n = int(mask.sum())
    logits = torch.randn(n, 1, V)
    pred = torch.randn(n, D)
    ref = masked_ssl_loss(logits, tokens, pred, target, mask)
    # change the targets of unmasked frames only: loss unchanged
    tokens2, target2 = tokens.clone(), target.clone()
    tokens2[~mask] = (tokens2[~mask] + 1) % V
    target2[~mask] += 10
    again = masked_ssl_loss(logits, tokens2, pred, target2, mask)
    assert torch.equal(ref["loss"], again["loss"])
    # perfect predictions on the masked frames give zero MSE and acc 1
    onehot = torch.nn.functional.one_hot(tokens[mask], V).float() * 50
    perfect = masked_ssl_loss(onehot, tokens, target[mask], target, mask)
    assert perfect["mse"] == 0 and perfect["acc"] == 1
    assert perfect["ce"] < 1e-6


def test_bestrq_masks_fixed_in_eval_fresh_in_training():
    from muselq_sb.lobes.branchformer import BranchformerEncoder
    from muselq_sb.lobes.model import MusicModel
    from muselq_sb.nnet.heads import MelHead, TokenHead
    from muselq_sb.nnet.quantizer import RandomProjectionQuantizer
    from muselq_sb.pretrain.bestrq import BestRQModel

    enc = BranchformerEncoder(1, d_model=16, nhead=2, kernel_size=3,
                              csgu_linear_units=32)
    ssl = BestRQModel(MusicModel(enc, 16, subsampling_channels=16),
                      RandomProjectionQuantizer(cb_vocab=32), SpanMasker(),
                      TokenHead(16, 32), MelHead(16, 512))
    wavs, lens = torch.randn(2, 48000), torch.ones(2)
    ssl.eval()
    assert torch.equal(ssl(wavs, lens)["mask"], ssl(wavs, lens)["mask"])
    ssl.train()
    masks = [ssl(wavs, lens)["mask"] for _ in range(3)]
    assert not (torch.equal(masks[0], masks[1]) and torch.equal(masks[1], masks[2]))
