"""Random-projection quantizer: brute-force equality, memory bound, RNG."""
import torch
from speechbrain.nnet.quantisers import RandomProjectionQuantizer as SBRPQ
from torch.profiler import ProfilerActivity, profile

from muselq_sb.nnet.quantizer import RandomProjectionQuantizer, codebook_usage


def test_equals_brute_force_argmin():
    q = RandomProjectionQuantizer(input_dim=512, cb_vocab=8192, chunk_size=300)
    x = torch.randn(3, 250, 512)
    assert torch.equal(q(x), q.brute_force(x))


def test_matches_speechbrain_tokens_with_same_buffers():
    ours = RandomProjectionQuantizer(input_dim=64, cb_vocab=256, seed=1)
    sb = SBRPQ(input_dim=64, cb_dim=16, cb_vocab=256)
    sb.P.copy_(ours.projection[0])
    sb.CB.copy_(ours.codebook[0])
    x = torch.randn(2, 40, 64)
    assert torch.equal(ours(x)[..., 0], sb(x))


def test_peak_memory_bounded_by_chunk():
    q = RandomProjectionQuantizer(input_dim=512, cb_vocab=8192, chunk_size=1024)
    x = torch.randn(4, 750, 512)  # 3000 frames
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as p:
        q(x)
    biggest = max(e.cpu_memory_usage for e in p.events())
    bound = 1024 * 8192 * 4  # one chunk of fp32 similarities
    assert biggest <= bound * 1.05
    # SpeechBrain's version would need B x V x T x d floats here
    assert 4 * 8192 * 750 * 16 * 4 > 20 * bound


def test_private_generator_and_frozen_buffers():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    q1 = RandomProjectionQuantizer(input_dim=32, cb_vocab=64, seed=5)
    after = torch.rand(1)
    assert torch.equal(before, after)  # global RNG untouched
    q2 = RandomProjectionQuantizer(input_dim=32, cb_vocab=64, seed=5)
    assert torch.equal(q1.codebook, q2.codebook)
    assert list(q1.parameters()) == []
    assert set(q1.state_dict()) == {"projection", "codebook"}
    norms = q1.codebook.norm(dim=-1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)


def test_several_codebooks_differ():
    q = RandomProjectionQuantizer(input_dim=32, cb_vocab=64, num_codebooks=3)
    tokens = q(torch.randn(2, 50, 32))
    assert tokens.shape == (2, 50, 3)
    assert not torch.equal(tokens[..., 0], tokens[..., 1])


def test_codebook_usage():
    usage = codebook_usage(torch.tensor([0, 0, 1, 1]), 4)
    assert usage["used_fraction"] == 0.5
    assert abs(usage["perplexity"] - 2.0) < 1e-6
