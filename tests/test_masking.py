"""Span masking statistics, the masked-only loss, and what the encoder
sees of masked frames."""
import pytest
import speechbrain as sb
import torch

from muselq_sb.lobes.branchformer import BranchformerEncoder
from muselq_sb.lobes.model import MusicModel
from muselq_sb.nnet.heads import MelHead, TokenHead, masked_ssl_loss
from muselq_sb.nnet.masking import SpanMasker
from muselq_sb.nnet.quantizer import RandomProjectionQuantizer
from muselq_sb.pretrain.bestrq import BestRQModel
from tests.fixtures.audio import tone
from tests.recipe_utils import tiny_brain, write_songs

HALF_WINDOW, HOP = 1024, 240  # samples: a mel frame f sees 240 f +- 1024


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
    out = SpanMasker().apply(mel, mask, 4)
    assert out[0, 4:8].abs().sum() == 0 and out[0, :4].eq(1).all()
    assert out[0, 8:].eq(1).all()
    wav = torch.ones(1, 2500)
    noisy = SpanMasker(fill="noise").apply(wav, mask, 960)
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


def test_unmasked_frames_count_with_their_weight():
    """The unmasked terms are the per-frame means over the predicted frames
    that were not masked, added with ``unmasked_weight``; with weight 0 the
    loss is the masked-only loss whatever the unmasked frames hold."""
    torch.manual_seed(0)
    B, T, V, D = 2, 8, 5, 3
    mask = torch.rand(B, T) < 0.4
    mask[0, 0], mask[0, 1] = True, False
    predicted = torch.ones(B, T, dtype=torch.bool)
    predicted[1, -2:] = False  # padding
    mask &= predicted
    n = int(predicted.sum())
    logits, pred = torch.randn(n, 1, V), torch.randn(n, D)
    tokens, target = torch.randint(0, V, (B, T, 1)), torch.randn(B, T, D)
    masked_rows = mask[predicted]
    only_masked = masked_ssl_loss(logits[masked_rows], tokens, pred[masked_rows],
                                  target, mask)
    zero = masked_ssl_loss(logits, tokens, pred, target, mask,
                           predicted=predicted, unmasked_weight=0.0)
    assert torch.allclose(zero["loss"], only_masked["loss"])
    half = masked_ssl_loss(logits, tokens, pred, target, mask,
                           predicted=predicted, unmasked_weight=0.5)
    unmasked = predicted & ~mask
    ce_u = torch.nn.functional.cross_entropy(logits[~masked_rows, 0],
                                             tokens[unmasked][:, 0])
    mse_u = ((pred[~masked_rows] - target[unmasked]) ** 2).mean()
    assert torch.allclose(half["ce_unmasked"], ce_u)
    assert torch.allclose(half["mse_unmasked"], mse_u)
    assert torch.allclose(half["loss"], only_masked["loss"] + 0.5 * (ce_u + mse_u))
    assert torch.equal(half["acc"], only_masked["acc"])
    # unmasked_terms: the token loss on masked frames only, the mel one on all
    mel_only = masked_ssl_loss(logits, tokens, pred, target, mask,
                               predicted=predicted, unmasked_weight=0.5,
                               unmasked_terms=("mse",))
    assert torch.allclose(mel_only["ce_unmasked"], ce_u)  # reported, not trained
    assert torch.allclose(mel_only["loss"], only_masked["loss"] + 0.5 * mse_u)
    # the token head on the masked frames only: the same loss, nothing reported
    skipped = masked_ssl_loss(logits[masked_rows], tokens, pred, target, mask,
                              predicted=predicted, unmasked_weight=0.5,
                              unmasked_terms=("mse",))
    assert "ce_unmasked" not in skipped
    assert torch.allclose(skipped["loss"], mel_only["loss"])
    assert torch.equal(skipped["acc"], only_masked["acc"])
    with pytest.raises(ValueError, match="'ce' but its head ran on the masked"):
        masked_ssl_loss(logits[masked_rows], tokens, pred, target, mask,
                        predicted=predicted, unmasked_weight=0.5)
    with pytest.raises(ValueError, match="logits: 1 rows match neither"):
        masked_ssl_loss(logits[:1], tokens, pred, target, mask, predicted=predicted)
    with pytest.raises(ValueError, match=r"unmasked_terms.*\['mel'\]"):
        masked_ssl_loss(logits, tokens, pred, target, mask, predicted=predicted,
                        unmasked_weight=0.5, unmasked_terms=("mel",))
    with pytest.raises(ValueError, match="masked frame must be predicted"):
        masked_ssl_loss(logits, tokens, pred, target, mask | ~predicted,
                        predicted=predicted)


def test_heads_run_on_every_valid_frame_with_an_unmasked_weight():
    """``unmasked_weight`` > 0: the heads of ``unmasked_terms`` see every
    valid frame (padding excluded) and the masks are unchanged; 0, or a
    term left out: the masked frames only."""
    torch.manual_seed(0)
    ssl = tiny_bestrq().eval()
    wavs, lens = torch.randn(2, 48000), torch.tensor([1.0, 0.5])
    with torch.no_grad():
        paper = ssl(wavs, lens)
        ssl.unmasked_weight = 0.5
        both = ssl(wavs, lens)
    assert torch.equal(paper["predicted"], paper["mask"])
    valid = torch.arange(both["mask"].shape[1]) < both["lens"][:, None]
    assert torch.equal(both["predicted"], valid) and not valid.all()
    assert torch.equal(both["mask"], paper["mask"])
    assert both["logits"].shape[0] == int(valid.sum())
    rows = paper["mask"][both["predicted"]]
    assert torch.allclose(both["logits"][rows], paper["logits"], atol=1e-6)
    # a term outside unmasked_terms: its head skips the unmasked frames
    ssl.unmasked_terms = ("mse",)
    with torch.no_grad():
        mel_only = ssl(wavs, lens)
    assert torch.allclose(mel_only["logits"], paper["logits"], atol=1e-6)
    assert torch.allclose(mel_only["mel_pred"], both["mel_pred"], atol=1e-6)


def test_frozen_subsampling_gets_no_gradient():
    """``freeze_subsampling``: a backward pass leaves the subsampling without
    gradients while the encoder gets them."""
    torch.manual_seed(0)
    enc = BranchformerEncoder(1, d_model=16, nhead=2, kernel_size=3,
                              csgu_linear_units=32)
    ssl = BestRQModel(MusicModel(enc, 16, subsampling_channels=16),
                      RandomProjectionQuantizer(cb_vocab=32), SpanMasker(),
                      TokenHead(16, 32), MelHead(16, 512), freeze_subsampling=True)
    out = ssl(torch.randn(2, 48000), torch.ones(2))
    (out["logits"].sum() + out["mel_pred"].sum()).backward()
    assert all(p.grad is None for p in ssl.model.subsampling.parameters())
    assert all(p.grad is not None for p in ssl.model.encoder.parameters()
               if p.requires_grad)


def tiny_bestrq(domain="mel", stack=4):
    """A one-layer ``BestRQModel`` (the front-end's n_fft 2048, hop 240)."""
    enc = BranchformerEncoder(1, d_model=16, nhead=2, kernel_size=3,
                              csgu_linear_units=32)
    return BestRQModel(MusicModel(enc, 16, subsampling_channels=16, stack=stack),
                       RandomProjectionQuantizer(input_dim=128 * stack, cb_vocab=32),
                       SpanMasker(domain=domain), TokenHead(16, 32),
                       MelHead(16, 128 * stack))


def test_bestrq_masks_fixed_in_eval_fresh_in_training():
    ssl = tiny_bestrq()
    wavs, lens = torch.randn(2, 48000), torch.ones(2)
    ssl.eval()
    assert torch.equal(ssl(wavs, lens)["mask"], ssl(wavs, lens)["mask"])
    ssl.train()
    masks = [ssl(wavs, lens)["mask"] for _ in range(3)]
    assert not (torch.equal(masks[0], masks[1]) and torch.equal(masks[1], masks[2]))


def runs(mask):
    """The [start, end) 25 Hz frame ranges of the True runs of a 1-D mask."""
    edges = torch.diff(mask.int(), prepend=torch.zeros(1, dtype=torch.int),
                       append=torch.zeros(1, dtype=torch.int)).nonzero().flatten()
    return [(int(a), int(b)) for a, b in edges.view(-1, 2)]


def inner_samples(a, b, stack=4):
    """Samples that only the mel frames of 25 Hz frames [a, b) see: the STFT
    windows of the neighbouring mel frames (4a - 1 and 4b) end before and
    start after them."""
    return slice(HOP * (stack * a - 1) + HALF_WINDOW, HOP * stack * b - HALF_WINDOW)


def noise(samples):
    return 0.5 * torch.randn(samples.stop - samples.start)


@pytest.mark.parametrize("domain, stack", [("mel", 4), ("waveform", 4),
                                           ("mel", 2), ("waveform", 8)])
def test_encoder_sees_nothing_of_the_masked_audio(domain, stack):
    """Changing the audio inside the masked spans changes the targets but
    not one output of the encoder (nor the heads); changing it elsewhere
    does. Fails if the encoder is given the clean features or the clean
    waveform, or if the masked samples are not hop x stack per frame."""
    torch.manual_seed(0)
    ssl = tiny_bestrq(domain, stack).eval()  # eval: the same masks on every call
    wav = torch.from_numpy(tone(4.0, freq=330.0)[:, 0])[None]
    lens = torch.ones(1)
    with torch.no_grad():
        ref = ssl(wav, lens)
    spans = runs(ref["mask"][0])
    assert spans and not ref["mask"][0].all()
    inside, outside = wav.clone(), wav.clone()
    for a, b in spans:
        inside[0, inner_samples(a, b, stack)] += noise(inner_samples(a, b, stack))
    a, b = runs(~ref["mask"][0])[0]
    outside[0, inner_samples(a, b, stack)] += noise(inner_samples(a, b, stack))
    with torch.no_grad():
        changed, control = ssl(inside, lens), ssl(outside, lens)
    assert torch.equal(changed["mask"], ref["mask"])
    masked = ref["mask"]
    # the targets come from the clean audio...
    assert not torch.allclose(changed["mel_target"][masked], ref["mel_target"][masked])
    unmasked = ~masked & (torch.arange(masked.shape[1]) < ref["lens"][:, None])
    assert torch.equal(changed["mel_target"][unmasked], ref["mel_target"][unmasked])
    # ...the encoder sees none of it
    for key in ("logits", "mel_pred"):
        torch.testing.assert_close(changed[key], ref[key], rtol=0, atol=1e-5)
    assert not torch.allclose(control["mel_pred"], ref["mel_pred"], atol=1e-3)


def test_encoder_input_is_the_fill_at_masked_frames():
    """The encoder's input holds the fill value (zeros) at the mel frames
    of masked 25 Hz frames and the clean normalised features elsewhere."""
    ssl = tiny_bestrq("mel").eval()
    seen = []
    encode = ssl.model.encode
    ssl.model.encode = lambda mel, lens: seen.append(mel) or encode(mel, lens)
    wav = torch.from_numpy(tone(3.0)[:, 0])[None]
    with torch.no_grad():
        out = ssl(wav, torch.ones(1))
        clean, _ = ssl.model.features(wav, torch.ones(1))
    frames = out["mask"][0].repeat_interleave(4)[:clean.shape[1]]
    assert frames.any() and not frames.all()
    assert torch.all(seen[0][0, frames] == 0)
    assert torch.all(clean[0, frames] != 0)
    assert torch.equal(seen[0][0, ~frames], clean[0, ~frames])


def test_recipe_unmasked_terms_reach_the_loss(tmp_path):
    """``unmasked_terms`` in the YAML decides which unmasked terms the
    Brain's objective trains on: with ``[mse]`` the loss is the masked
    terms plus the weighted unmasked mel term, and the token head skips
    the unmasked frames (no unmasked token loss is computed)."""
    songs = write_songs(tmp_path / "songs", count=4, seconds=1.0)
    brain, hp, _ = tiny_brain(tmp_path / "run", songs, unmasked_weight=0.5,
                              mse_weight=2.0, unmasked_terms=["mse"])
    torch.manual_seed(0)
    wavs = torch.randn(2, 24000)
    batch = type("Batch", (), {"to": lambda self, device: self,
                               "sig": (wavs, torch.ones(2))})()
    out = brain.compute_forward(batch, sb.Stage.VALID)
    loss = brain.compute_objectives(out, batch, sb.Stage.VALID)
    terms = brain.last_losses
    assert "ce_unmasked" not in terms and terms["mse_unmasked"] > 0
    valid = torch.arange(out["mask"].shape[1]) < out["lens"][:, None]
    assert out["logits"].shape[0] == int(out["mask"].sum()) < int(valid.sum())
    assert out["mel_pred"].shape[0] == int(valid.sum())
    assert torch.allclose(loss, terms["ce"] + 2.0 * terms["mse"]
                          + 0.5 * 2.0 * terms["mse_unmasked"])
