"""The interfaces the field expects: one clip, one embedding, four ways
(MusicEncoder, the HEAR module, SpeechBrain's from_hparams/foreign_class,
the command line); the HEAR contract that hear-validator checks."""
import numpy as np
import pytest
import soundfile as sf
import torch
from speechbrain.inference.interfaces import foreign_class

import muselq_sb.hear as hear
from muselq_sb.inference import cli
from muselq_sb.inference.encoder import MusicEncoder
from muselq_sb.inference.package import INTERFACE_FILE, package_model
from muselq_sb.utils.hparams import HPARAMS_FILE, build_from_yaml
from tests.fixtures.audio import write_audio
from tests.recipe_utils import write_run_folder

HEAR_RATES = (16000, 22050, 32000, 44100, 48000)  # what hear-validator accepts


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    run = write_run_folder(tmp_path_factory.mktemp("run") / "brn_sum")
    return package_model(run, tmp_path_factory.mktemp("pkg") / "model")


@pytest.fixture(scope="module")
def hear_model(folder):
    return hear.load_model(str(folder))


def test_same_clip_same_embedding_four_ways(folder, tmp_path):
    song = write_audio(tmp_path / "in" / "song.wav", 2.3, 48000, freq=330, seed=3)
    api = MusicEncoder.from_pretrained(folder)
    frames = api.encode_file(song)                       # [T, d], last layer
    clip = api.encode_file(song, pooling="mean")         # [d]

    audio = torch.from_numpy(sf.read(song, dtype="float32")[0])[None]  # 48 kHz
    model = hear.load_model(str(folder))
    hear_frames, stamps = hear.get_timestamp_embeddings(audio, model)
    hear_clip = hear.get_scene_embeddings(audio, model)

    sb = MusicEncoder.from_hparams(source=str(folder), savedir=str(tmp_path / "sb"))
    foreign = foreign_class(source=str(folder), pymodule_file=INTERFACE_FILE,
                            classname="MusicEncoder", savedir=str(tmp_path / "fc"))

    assert cli.main([str(folder), str(song), str(tmp_path / "out"),
                     "--no-progress"]) == 0
    from_cli = torch.from_numpy(np.load(tmp_path / "out" / "song.wav.npy"))

    assert frames.shape == (58, 32) and stamps.shape == (1, 58)
    for other in (hear_frames[0], sb.encode_file(song), foreign.encode_file(song),
                  from_cli):
        assert other.shape == frames.shape
        assert torch.allclose(other, frames, atol=1e-5, rtol=0)
    assert torch.allclose(hear_clip[0], clip, atol=1e-5, rtol=0)
    assert torch.allclose(sb.encode_file(song, pooling="mean"), clip, atol=1e-5, rtol=0)


def test_from_hparams_loads_the_weights_not_a_fresh_model(folder, tmp_path):
    wav = torch.randn(1, 24000)
    sb = MusicEncoder.from_hparams(source=str(folder), savedir=str(tmp_path),
                                   run_opts={"device": "cpu", "precision": "bf16"})
    assert sb.precision == "bf16" and sb.device == "cpu"
    assert not any(p.requires_grad for p in sb.model.parameters())
    fresh = build_from_yaml((folder / HPARAMS_FILE).read_text(), folder).eval()
    with torch.no_grad():
        untrained = fresh(wav, torch.ones(1))[-1]
    loaded = MusicEncoder.from_hparams(source=str(folder)).encode_batch(wav)
    assert not torch.allclose(untrained, loaded, atol=1e-3)
    assert torch.equal(loaded, MusicEncoder.from_path(folder).encode_batch(wav))
    with pytest.raises(ValueError, match="model, or SpeechBrain's modules"):
        MusicEncoder()


def test_hear_attributes(hear_model):
    assert isinstance(hear_model, torch.nn.Module)
    assert hear_model.sample_rate in HEAR_RATES
    assert isinstance(hear_model.scene_embedding_size, int)
    assert isinstance(hear_model.timestamp_embedding_size, int)
    assert hear_model.timestamp_embedding_size == hear_model.encoder.model.d_model
    hear_model.to("cpu")  # what the validator does


@pytest.mark.parametrize("seconds", [1.07, 1.98, 4.0])
def test_hear_timestamp_embeddings(hear_model, seconds):
    gen = torch.Generator().manual_seed(0)
    audio = torch.rand(2, int(seconds * hear_model.sample_rate), generator=gen) * 2 - 1
    emb, ts = hear.get_timestamp_embeddings(audio, hear_model)
    assert isinstance(emb, torch.Tensor) and isinstance(ts, torch.Tensor)
    assert emb.dtype == torch.float32 and emb.dim() == 3
    assert emb.shape[0] == 2 and emb.shape[2] == hear_model.timestamp_embedding_size
    assert ts.shape == emb.shape[:2]
    assert torch.equal(ts[0], ts[1])
    step = torch.diff(ts[0])
    assert (step > 0).all() and (step - step.mean()).abs().max() <= 1.0
    assert step.mean() <= 50.0                       # HEAR's onset tolerance
    assert ts.min() <= step.mean()                   # starts at the start...
    end = 1000 * seconds
    assert end - 50 <= ts.max() <= end               # ...ends at the end, not past it
    assert not torch.allclose(emb[0], emb[1])        # different content, different rows


def test_hear_scene_embeddings_and_batches(hear_model):
    gen = torch.Generator().manual_seed(1)
    audio = torch.rand(4, int(2.74 * hear_model.sample_rate), generator=gen) * 2 - 1
    scene = hear.get_scene_embeddings(audio, hear_model)
    assert scene.dtype == torch.float32
    assert scene.shape == (4, hear_model.scene_embedding_size)
    frames, _ = hear.get_timestamp_embeddings(audio, hear_model)
    assert torch.allclose(scene, frames.mean(dim=1), atol=1e-6)
    alone = hear.get_scene_embeddings(audio[2:3], hear_model)
    assert torch.allclose(alone[0], scene[2], atol=1e-5)  # the batch does not leak
    with pytest.raises(ValueError, match=r"\[n_sounds, n_samples\]"):
        hear.get_scene_embeddings(audio[0], hear_model)


def test_hear_layers_and_load_errors(folder, hear_model):
    both = hear.load_model(str(folder), layers=[0, -1])
    audio = torch.rand(1, 48000) - 0.5
    emb, _ = hear.get_timestamp_embeddings(audio, both)
    last, _ = hear.get_timestamp_embeddings(audio, hear_model)
    d = hear_model.timestamp_embedding_size
    assert both.timestamp_embedding_size == emb.shape[-1] == 2 * d
    assert torch.allclose(emb[..., d:], last, atol=1e-6)
    with pytest.raises(ValueError, match="needs model_file_path"):
        hear.load_model()


def test_hear_whole_clip_in_one_pass(hear_model):
    calls = []
    hook = hear_model.encoder.model.encoder.register_forward_hook(
        lambda module, args, out: calls.append(args[0].shape[1]))
    try:
        emb, ts = hear.get_timestamp_embeddings(torch.zeros(1, 48000 * 40), hear_model)
    finally:
        hook.remove()
    assert hear_model.encoder.attention_type == "SummaryMixing"
    assert calls == [emb.shape[1]] and emb.shape[1] == 1001  # 40 s, one pass
