"""Front-end: mel shape/rate, normalisation, and 25 Hz alignment."""
import pytest
import torch

from muselq_sb.lobes.branchformer import BranchformerEncoder
from muselq_sb.lobes.frontend import (
    ConvSubsampling,
    FeatureNormalizer,
    MelFrontend,
    n_stacked_frames,
    stack_frames,
)
from muselq_sb.lobes.model import MusicModel


def test_mel_rate_and_lengths():
    fe = MelFrontend()
    mel, lens = fe(torch.randn(2, 24000 * 3), torch.tensor([1.0, 0.5]))
    assert mel.shape == (2, 301, 128)
    assert lens.tolist() == [301, 151]
    assert fe.frame_rate == 100.0


@pytest.mark.parametrize("stack", [2, 4, 8])
@pytest.mark.parametrize("n_frames", [37, 38, 39, 40, 41])
def test_subsampling_frame_t_sees_exactly_its_stacked_mel_frames(n_frames, stack):
    """Encoder frame t and target frame t cover the same mel frames,
    ``stack*t .. stack*t + stack - 1``."""
    sub = ConvSubsampling(n_mels=8, channels=6, d_model=4, stack=stack)
    mel = torch.randn(1, n_frames, 8, requires_grad=True)
    out = sub(mel)
    targets = stack_frames(mel.detach(), stack)
    assert out.shape[1] == targets.shape[1] == -(-n_frames // stack)
    for t in range(out.shape[1]):
        grad, = torch.autograd.grad(out[0, t].sum(), mel, retain_graph=True)
        touched = grad[0].abs().sum(-1).nonzero().flatten().tolist()
        frames = range(stack * t, stack * t + stack)
        assert touched == [f for f in frames if f < n_frames]
        # the stacked target t is made of the same frames
        expected = mel[0, stack * t:stack * t + stack].detach().reshape(-1)
        assert torch.equal(targets[0, t, :expected.numel()], expected)


def test_subsampling_refuses_a_stack_it_cannot_build():
    with pytest.raises(ValueError, match="power of two >= 2"):
        ConvSubsampling(stack=3)


def test_chunked_stft_gives_the_same_log_mel():
    wavs, lens = torch.randn(2, 24000 * 3 + 17), torch.tensor([1.0, 0.5])
    whole, whole_lens = MelFrontend(chunk_frames=0)(wavs, lens)
    chunked, chunked_lens = MelFrontend(chunk_frames=70)(wavs, lens)
    assert torch.allclose(chunked, whole, atol=1e-5)
    assert torch.equal(chunked_lens, whole_lens)


@pytest.mark.parametrize("n_samples", [24000, 24000 + 240 * 3, 24000 + 480 + 7])
def test_model_output_length_matches_targets(n_samples):
    enc = BranchformerEncoder(1, d_model=16, nhead=2, kernel_size=3,
                              csgu_linear_units=32)
    model = MusicModel(enc, d_model=16, subsampling_channels=16).eval()
    wav = torch.randn(1, n_samples)
    mel, lens = model.features(wav, torch.ones(1))
    hidden = model.encode(mel, lens)
    assert hidden[-1].shape[1] == model.targets(mel).shape[1]
    assert hidden[-1].shape[1] == n_stacked_frames(n_samples)
    assert int(model.output_lengths(wav, torch.ones(1))) == n_stacked_frames(n_samples)


def test_normalizer_statistics_of_the_pass_then_frozen():
    norm = FeatureNormalizer(4)
    x = torch.randn(2, 30, 4) * 3 + 7
    lens = torch.tensor([30, 20])
    norm.update(x[:1], lens[:1])
    norm.update(x[1:], lens[1:])
    norm.freeze()
    valid = torch.cat([x[0], x[1, :20]])
    assert norm.ready and float(norm.count) == 50
    assert torch.allclose(norm.mean, valid.mean(0), atol=1e-4)
    assert torch.allclose(norm.std, valid.std(0, unbiased=False), atol=1e-4)
    state = {k: v.clone() for k, v in norm.state_dict().items()}
    assert set(state) == {"count", "sum", "sumsq", "mean", "std"}
    # the forward pass never changes them, in training or evaluation mode
    for mode in (True, False):
        y = norm.train(mode)(torch.randn(2, 30, 4) + 100, lens)
        assert torch.all(y[1, 20:] == 0)  # padding stays zero
    for key, value in norm.state_dict().items():
        assert torch.equal(value, state[key]), key
    fresh = FeatureNormalizer(4)
    fresh.load_state_dict(state)
    assert fresh.ready and torch.equal(fresh.mean, state["mean"])
    assert torch.equal(fresh(x, lens), norm(x, lens))


def test_normalizer_without_statistics_is_the_identity():
    norm = FeatureNormalizer(3).train()
    x = torch.randn(1, 10, 3) + 5
    assert torch.equal(norm(x, torch.tensor([10])), x)
    norm.freeze()  # no frame was added: still the identity, not ready
    assert not norm.ready and torch.equal(norm(x, torch.tensor([10])), x)


def test_mel_frames_same_alone_and_zero_padded():
    fe = MelFrontend()
    wav = torch.randn(1, 24000)
    alone, _ = fe(wav, torch.ones(1))
    padded = torch.nn.functional.pad(wav, (0, 12000))
    batched, lens = fe(padded, torch.tensor([24000 / 36000]))
    n = int(lens)
    assert n == alone.shape[1]
    assert torch.allclose(batched[0, :n], alone[0], atol=1e-4)


def test_model_cast_to_bf16_keeps_fp32_features():
    enc = BranchformerEncoder(1, d_model=16, nhead=2, kernel_size=3,
                              csgu_linear_units=32)
    model = MusicModel(enc, d_model=16, subsampling_channels=16).eval()
    ref = model(torch.randn(1, 24000), torch.ones(1))[-1]
    model.to(torch.bfloat16)
    assert model.frontend.mel.mel_scale.fb.dtype == torch.float32
    assert model.subsampling.conv1.weight.dtype == torch.bfloat16
    mel, lens = model.features(torch.randn(1, 24000), torch.ones(1))
    assert mel.dtype == torch.float32
    out = model.encode(mel.to(torch.bfloat16), lens)[-1]
    assert out.dtype == torch.bfloat16 and out.shape == ref.shape
