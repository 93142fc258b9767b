"""Both encoders with every attention_type: shapes, masks, hidden states."""
import pytest
import torch

from muselq_sb.lobes.branchformer import BranchformerEncoder
from muselq_sb.lobes.conformer import ConformerEncoder
from muselq_sb.lobes.mixers import ATTENTION_TYPES, drop_empty_mask
from muselq_sb.nnet.summary_mixing import SummaryMixing
from speechbrain.nnet.attention import RelPosEncXL, RoPEMHA

D = 32


def build(kind, attention_type, layers=2):
    torch.manual_seed(0)
    common = dict(d_model=D, nhead=4, kernel_size=5,
                  attention_type=attention_type, output_hidden_states=True)
    if kind == "branchformer":
        return BranchformerEncoder(layers, csgu_linear_units=64, **common)
    return ConformerEncoder(layers, d_ffn=64, **common)


def run(enc, x, pad=None):
    pos = RelPosEncXL(D)(x) if enc.attention_type == "RelPosMHAXL" else None
    return enc(x, src_key_padding_mask=pad, pos_embs=pos)


@pytest.mark.parametrize("kind", ["branchformer", "conformer"])
@pytest.mark.parametrize("attention_type", ATTENTION_TYPES)
def test_every_attention_type(kind, attention_type):
    enc = build(kind, attention_type).eval()
    x = torch.randn(3, 17, D)
    pad = torch.arange(17)[None] >= torch.tensor([17, 12, 5])[:, None]
    out, attn, hidden = run(enc, x, pad)
    assert out.shape == (3, 17, D)
    assert len(hidden) == 3 and all(h.shape == (3, 17, D) for h in hidden)
    assert torch.isfinite(out).all()
    mixer = enc.layers[0].mha_layer
    if attention_type.startswith("SummaryMixing"):
        assert isinstance(mixer, SummaryMixing) and attn == [None, None]
    if attention_type == "RoPEMHA":
        assert isinstance(mixer, RoPEMHA)


@pytest.mark.parametrize("kind", ["branchformer", "conformer"])
def test_unknown_attention_type_fails_at_construction(kind):
    with pytest.raises(ValueError, match="valid: .*SummaryMixing"):
        build(kind, "linear_attention")


@pytest.mark.parametrize("kind", ["branchformer", "conformer"])
@pytest.mark.parametrize("attention_type",
                         ["SummaryMixing", "RoPEMHA", "regularMHA"])
def test_valid_frames_independent_of_padding(kind, attention_type):
    """In eval mode a sequence's output does not depend on its batch mates:
    padded frames are kept out of mixers and convolutions."""
    enc = build(kind, attention_type).eval()
    # train-like weights: the CSGU starts as an identity gate, so perturb it
    with torch.no_grad():
        for p in enc.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x = torch.randn(2, 23, D)
    lens = [23, 14]
    pad = torch.arange(23)[None] >= torch.tensor(lens)[:, None]
    x[pad] = 50.0
    _, _, hidden = run(enc, x, pad)
    _, _, alone = run(enc, x[1:, :14])
    for h_b, h_a in zip(hidden[1:], alone[1:]):
        assert torch.allclose(h_b[1, :14], h_a[0], atol=1e-4)


def test_layerdrop_keeps_hidden_state_contract():
    enc = build("branchformer", "SummaryMixing", layers=4)
    enc.layerdrop_prob = 0.5
    torch.manual_seed(3)
    counts = {len(run(enc.train(), torch.randn(1, 8, D))[2]) for _ in range(10)}
    assert min(counts) < 5  # training drops layers (and their hidden states)
    _, _, hidden = run(enc.eval(), torch.randn(1, 8, D))
    assert len(hidden) == 5


@pytest.mark.parametrize("mode", ["SummaryMixing", "SummaryMixing-lite"])
@pytest.mark.parametrize("chunk,steps", [(4, 37), (5, 10), (8, 9), (16, 100)])
def test_chunked_inference_equals_whole_sequence(mode, chunk, steps):
    """Chunks smaller than the kernel halo, a last chunk of one frame,
    several chunks: the chunked eval forward gives the whole forward."""
    torch.manual_seed(steps)
    enc = BranchformerEncoder(2, d_model=16, nhead=2, kernel_size=7,
                              csgu_linear_units=32, attention_type=mode,
                              inference_chunk_frames=chunk).eval()
    x = torch.randn(2, steps, 16)
    with torch.no_grad():
        chunked, _ = enc(x)
        for layer in enc.layers:
            assert layer._chunkable(x, None, None)
            layer.inference_chunk_frames = 0
        whole, _ = enc(x)
    assert torch.allclose(chunked, whole, atol=1e-5)


def test_chunked_inference_only_where_it_is_exact():
    enc = BranchformerEncoder(1, d_model=16, nhead=2, kernel_size=3,
                              csgu_linear_units=32, inference_chunk_frames=4)
    layer = enc.layers[0]
    x = torch.randn(2, 9, 16)
    pad = torch.zeros(2, 9, dtype=torch.bool)
    pad[1, 6:] = True
    with torch.no_grad():
        assert not layer._chunkable(x, None, None)  # training mode
        enc.eval()
        # nothing padded: the layer drops the mask and chunks
        assert drop_empty_mask(pad & False) is None
        assert layer._chunkable(x, None, drop_empty_mask(pad & False))
        assert not layer._chunkable(x, None, drop_empty_mask(pad))  # padding
        assert not layer._chunkable(x[:, :4], None, None)  # one chunk
    assert not layer._chunkable(x, None, None)  # gradients wanted
    rope = BranchformerEncoder(1, d_model=16, nhead=2, kernel_size=3,
                               csgu_linear_units=32, attention_type="RoPEMHA",
                               inference_chunk_frames=4).eval()
    with torch.no_grad():
        assert not rope.layers[0]._chunkable(x, None, None)
    with pytest.raises(ValueError, match="inference_chunk_frames"):
        BranchformerEncoder(1, d_model=16, nhead=2, inference_chunk_frames=-1)
