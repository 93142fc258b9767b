"""The pitch-aware pre-training target (semitone spectrum), its loss term and
its recipe (hparams/brn_sum_pitch.yaml)."""
import math
from pathlib import Path

import pytest
import torch

from muselq_sb.lobes.branchformer import BranchformerEncoder
from muselq_sb.lobes.model import MusicModel
from muselq_sb.nnet.heads import MelHead, TokenHead, masked_ssl_loss
from muselq_sb.nnet.masking import SpanMasker
from muselq_sb.lobes.pitch_target import SemitoneSpectrum, semitone_filterbank
from muselq_sb.nnet.quantizer import RandomProjectionQuantizer
from muselq_sb.pretrain.bestrq import BestRQModel
from muselq_sb.utils.hparams import load_hparams, load_plain_hparams

HPARAMS = Path(__file__).resolve().parents[1] / "hparams"
SR = 24000


def midi_tone(notes, seconds=1.0, start=0.0):
    """Sum of sines at MIDI ``notes``, silent before ``start`` seconds."""
    t = torch.arange(int(seconds * SR)) / SR
    wav = sum(torch.sin(2 * math.pi * 440.0 * 2 ** ((n - 69) / 12) * t) for n in notes)
    return torch.where(t >= start, wav, torch.zeros(())) / len(notes)


@pytest.mark.parametrize("note", [37, 45, 60, 69, 94, 106])
def test_a_pure_tone_peaks_in_its_own_semitone(note):
    """Low notes (C#2, 4 Hz between semitones) included: the long STFT
    separates neighbouring semitones over the whole range."""
    target = SemitoneSpectrum()
    spec = target(midi_tone([note])[None])
    peaks = spec[0, 3:-3].argmax(-1) + target.lowest_midi
    assert (peaks == note).all()


def test_a_chord_shows_its_three_notes_and_frames_are_standardised():
    target = SemitoneSpectrum()
    spec = target(midi_tone([48, 64, 67])[None])[0, 12]  # C3 E4 G4
    top = set((spec.topk(3).indices + target.lowest_midi).tolist())
    assert top == {48, 64, 67}
    assert abs(spec.mean().item()) < 1e-5 and abs(spec.std().item() - 1) < 1e-4


def test_target_frames_align_with_the_stacked_mel_frames():
    """One target row per encoder frame, for any length; a note entering at
    2 s shows from encoder frame 50 on (25 Hz), silence before is flat."""
    enc = BranchformerEncoder(1, d_model=16, nhead=2, kernel_size=3, csgu_linear_units=32)
    model = MusicModel(enc, 16, subsampling_channels=16)
    target = SemitoneSpectrum()
    for n in (24000, 24000 + 241, 24000 + 959):
        wav = torch.randn(1, n)
        mel, _ = model.features(wav, torch.ones(1))
        assert target(wav).shape[1] == model.targets(mel).shape[1]
    spec = target(midi_tone([69], seconds=4.0, start=2.0)[None])[0]
    assert spec[:45].abs().max() < 0.01  # flat: the 8192-point window has not reached it
    assert (spec[52:-3].argmax(-1) + target.lowest_midi == 69).all()


def test_filterbank_refuses_bands_it_cannot_resolve():
    with pytest.raises(ValueError, match="MIDI 24.*raise n_fft"):
        semitone_filterbank(SR, 2048, 24, 12)
    with pytest.raises(ValueError, match="Nyquist"):
        semitone_filterbank(SR, 8192, 100, 40)


def tiny_pitch_bestrq(unmasked_weight=0.0):
    enc = BranchformerEncoder(1, d_model=16, nhead=2, kernel_size=3, csgu_linear_units=32)
    return BestRQModel(
        MusicModel(enc, 16, subsampling_channels=16),
        RandomProjectionQuantizer(cb_vocab=32), SpanMasker(), TokenHead(16, 32),
        MelHead(16, 512), unmasked_weight=unmasked_weight,
        pitch_target=SemitoneSpectrum(), pitch_head=torch.nn.Linear(16, 72))


def test_pitch_term_is_added_with_its_weight_and_trains_its_head():
    torch.manual_seed(0)
    ssl = tiny_pitch_bestrq(unmasked_weight=0.5)
    out = ssl(torch.randn(2, 48000), torch.tensor([1.0, 0.6]))
    assert out["pitch_pred"].shape == (int(out["predicted"].sum()), 72)
    args = (out["logits"], out["tokens"], out["mel_pred"], out["mel_target"], out["mask"])
    kw = dict(predicted=out["predicted"], unmasked_weight=0.5)
    plain = masked_ssl_loss(*args, **kw)
    with_pitch = masked_ssl_loss(*args, **kw, pitch_pred=out["pitch_pred"],
                                 pitch_target=out["pitch_target"], pitch_weight=2.0)
    masked = out["mask"][out["predicted"]]
    se = (out["pitch_pred"] - out["pitch_target"][out["predicted"]]).pow(2).mean(-1)
    assert torch.allclose(with_pitch["pitch"], se[masked].mean())
    assert torch.allclose(with_pitch["pitch_unmasked"], se[~masked].mean())
    assert torch.allclose(with_pitch["loss"], plain["loss"] + 2.0 * (
        se[masked].mean() + 0.5 * se[~masked].mean()))
    assert "pitch" not in plain
    with_pitch["loss"].backward()
    assert ssl.pitch_head.weight.grad.abs().sum() > 0


def test_pitch_target_needs_its_head():
    enc = BranchformerEncoder(1, d_model=16, nhead=2, kernel_size=3, csgu_linear_units=32)
    with pytest.raises(ValueError, match="pitch_target and pitch_head"):
        BestRQModel(MusicModel(enc, 16, subsampling_channels=16),
                    RandomProjectionQuantizer(cb_vocab=32), SpanMasker(),
                    TokenHead(16, 32), MelHead(16, 512), pitch_target=SemitoneSpectrum())


def test_pitch_recipe_is_the_recommended_one_plus_the_pitch_target(tmp_path):
    """``brn_sum_pitch.yaml`` builds a model with the target and a head of
    its width; every other value is the recommended recipe's."""
    ours = load_plain_hparams(HPARAMS / "brn_sum_unmasked.yaml", "size: tiny")
    pitch = load_plain_hparams(HPARAMS / "brn_sum_pitch.yaml", "size: tiny")
    assert ours["pitch_target"] is None and ours["pitch_head"] is None
    added = {"pitch_lowest_midi", "pitch_bins", "pitch_n_fft"}
    assert set(pitch) == set(ours) | added
    differ = {k for k in ours
              if repr(ours[k]) != repr(pitch[k]).replace("brn_sum_pitch", "brn_sum_unmasked")}
    assert differ == {"pitch_target", "pitch_head", "ssl_model", "modules", "checkpointer"}
    built = load_hparams(HPARAMS / "brn_sum_pitch.yaml",
                         f"size: tiny\noutput_folder: {tmp_path}")["ssl_model"]
    assert built.pitch_head.out_features == built.pitch_target.n_bins == pitch["pitch_bins"]
