"""Audio that only FFmpeg (PyAV) decodes, and Ogg Opus named ``.opus``:
the loader, duration probing, folder listings, shards and the CLI.

Every file is encoded here with PyAV (no binary fixtures): a 3 s stereo
harmonic tone, so its pitch and length can be checked after decoding.
"""
from __future__ import annotations

import io
import json
import tarfile

import av
import numpy as np
import pytest
import soundfile as sf
import torch

from muselq_sb.dataio.audio import (
    AUDIO_EXTENSIONS, AudioError, decode_audio, load_audio, probe_duration,
)
from muselq_sb.dataio.batching import DurationBatcher
from muselq_sb.dataio.manifest import read_manifest, read_task
from muselq_sb.dataio.shards import ShardLoader, ShardStream, find_shards
from muselq_sb.inference import cli
from muselq_sb.inference.encoder import MusicEncoder
from muselq_sb.inference.package import package_model
from muselq_sb.prepare.folder import list_folder
from muselq_sb.prepare.pretrain import prepare_pretrain
from muselq_sb.prepare.shards import write_shards
from tests.fixtures.audio import PYAV_FORMATS, encode_with_pyav, tone, write_audio
from tests.recipe_utils import write_run_folder

SECONDS = 3.0
FREQ = 440.0
# extension -> the rate it is written at (Opus only codes 48 kHz)
RATES = {".m4a": 44100, ".opus": 48000, ".wma": 44100, ".webm": 48000,
         ".mp4": 44100, ".mkv": 44100, ".aac": 44100, ".mka": 44100}
CODEC_FRAME = 2048  # samples: the longest codec frame here (wmav2)


def write(folder, ext, seconds=SECONDS, freq=FREQ, **kwargs):
    return write_audio(folder / f"tone{ext}", seconds, RATES[ext], freq=freq,
                       channels=2, harmonics=1, decay=0.0, noise=0.0, **kwargs)


def peak_hz(wav: np.ndarray, rate: int) -> float:
    """Frequency of the strongest bin of one second of ``wav`` (1 Hz bins)."""
    return float(np.argmax(np.abs(np.fft.rfft(wav[:rate] * np.hanning(rate)))))


def test_every_written_format_is_a_listed_extension():
    assert set(PYAV_FORMATS) <= set(AUDIO_EXTENSIONS)


@pytest.mark.parametrize("ext", sorted(RATES))
def test_decodes_pitch_length_and_crops(tmp_path, ext):
    rate = RATES[ext]
    path = write(tmp_path, ext)
    full = load_audio(path, sample_rate=rate).numpy()
    # raw ADTS (.aac) keeps the encoder's 1024 priming samples (no header
    # says to drop them); every other container trims them
    slack = CODEC_FRAME + (1024 if ext == ".aac" else 0)
    assert abs(full.size - SECONDS * rate) <= slack
    assert peak_hz(full[rate // 2:], rate) == pytest.approx(FREQ, abs=2)
    assert load_audio(path, sample_rate=16000).numel() == pytest.approx(
        full.size * 16000 / rate, abs=1)
    # crops equal the same samples of the whole decode: before the seek
    # pre-roll (decoded from the start), after it (a seek where the
    # container allows one), to the end of the file
    for start, stop in ((0.1, 0.6), (1.5, 2.25), (2.0, None)):
        first = round(start * rate)
        last = full.size if stop is None else round(stop * rate)
        crop = load_audio(path, start, stop, sample_rate=rate).numpy()
        assert crop.size == last - first, (start, stop)
        np.testing.assert_allclose(crop, full[first:last], atol=1e-6)
    with pytest.raises(AudioError, match="no samples"):
        load_audio(path, start=SECONDS + 1.0, sample_rate=rate)


@pytest.mark.parametrize("ext", sorted(RATES))
def test_probed_duration_is_the_decoded_length(tmp_path, ext):
    rate = RATES[ext]
    path = write(tmp_path, ext)
    decoded = load_audio(path, sample_rate=rate).numel() / rate
    assert probe_duration(path) == pytest.approx(decoded, abs=CODEC_FRAME / rate)
    assert probe_duration(io.BytesIO(path.read_bytes()), "x") == probe_duration(path)


@pytest.mark.parametrize("name, codec, sample_format", [
    ("alac.m4a", "alac", "s32p"), ("flac.mka", "flac", "s16")])
def test_lossless_through_pyav_gives_the_original_samples(tmp_path, name, codec, sample_format):
    # integer decoder output (s16 packed, s32 planar) comes back as floats
    original = tone(2.0, 44100, channels=2, seed=3)
    path = tmp_path / name
    encode_with_pyav(path, original, 44100, codec)
    with av.open(str(path)) as container:
        assert container.streams.audio[0].codec_context.format.name == sample_format
    with pytest.raises(sf.LibsndfileError):
        sf.info(str(path))  # so this is the PyAV path
    np.testing.assert_allclose(load_audio(path, sample_rate=44100).numpy(),
                               original.mean(axis=1), atol=2 ** -15)
    np.testing.assert_allclose(load_audio(path, 0.5, 1.0, sample_rate=44100).numpy(),
                               original[22050:44100].mean(axis=1), atol=2 ** -15)


def test_soundfile_stays_the_first_choice_for_opus(tmp_path):
    # libsndfile reads Ogg Opus: the loader's samples are its samples
    path = write(tmp_path, ".opus")
    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    assert torch.equal(load_audio(path, sample_rate=rate), torch.from_numpy(data.mean(axis=1)))


def test_bytes_decode_like_the_file(tmp_path):
    path = write(tmp_path, ".m4a")
    from_bytes = decode_audio(io.BytesIO(path.read_bytes()), "m", 1.5, 2.5, 24000)
    assert torch.equal(from_bytes, load_audio(path, 1.5, 2.5, 24000))


def corrupt_m4a(folder):
    """An .m4a cut in half: the index (moov, written last) is gone."""
    good = write(folder, ".m4a")
    bad = folder / "broken.m4a"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    good.unlink()
    return bad


def test_corrupt_m4a_names_the_file_and_both_decoders(tmp_path):
    bad = corrupt_m4a(tmp_path)
    with pytest.raises(AudioError, match="cannot decode") as info:
        load_audio(bad)
    assert info.value.path == str(bad)
    assert "soundfile:" in info.value.reason and "PyAV:" in info.value.reason
    with pytest.raises(AudioError, match="cannot read"):
        probe_duration(bad)
    video = tmp_path / "silent.mkv"  # a video without an audio stream
    with av.open(str(video), "w", format="matroska") as out:
        stream = out.add_stream("ffv1", rate=25)
        stream.width = stream.height = 16
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), "rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    with pytest.raises(AudioError, match="no audio stream"):
        load_audio(video)


def test_folder_preparation_lists_probes_and_skips(tmp_path):
    root = tmp_path / "music"
    for i, ext in enumerate((".m4a", ".opus", ".wma", ".webm")):
        write_audio(root / "sub" / f"s{i}{ext.upper() if i == 0 else ext}", SECONDS,
                    RATES[ext], channels=2)
    corrupt_m4a(root)
    (root / "notes.txt").write_text("not audio")
    assert [t for t, _ in list_folder(root).tracks] == [
        "folder_broken.m4a", "folder_sub_s0.M4A", "folder_sub_s1.opus",
        "folder_sub_s2.wma", "folder_sub_s3.webm"]
    folder = prepare_pretrain([{"type": "folder", "path": root}], tmp_path / "out",
                              segment_seconds=1.0, min_segment_seconds=0.5,
                              valid_fraction=0.0)
    rows = read_manifest(folder / "train.csv")
    assert sorted({r["path"].rsplit("/", 1)[1] for r in rows}) == [
        "s0.M4A", "s1.opus", "s2.wma", "s3.webm"]
    assert len(rows) == 4 * 3  # 3 s each, 1 s segments
    assert read_task(folder)["n_unreadable"] == 1
    # every segment of the manifest decodes to its length (within a codec
    # frame: FFmpeg's own WMA comes back a little shorter than its header)
    for row in rows:
        wav = load_audio(row["path"], float(row["start"]), float(row["stop"]))
        assert wav.numel() == pytest.approx(
            24000 * (float(row["stop"]) - float(row["start"])), abs=CODEC_FRAME * 24000 / 44100)


def test_shards_keep_m4a_bytes_and_stream_them(tmp_path):
    root = tmp_path / "music"
    for i in range(3):
        write_audio(root / f"s{i}.m4a", SECONDS, 44100, freq=220 * (i + 1), seed=i)
    write_shards([{"type": "folder", "path": str(root)}], tmp_path / "shards",
                 segment_seconds=1.0, valid_fraction=0.0)
    (shard,) = find_shards(str(tmp_path / "shards" / "train-*.tar"))
    with tarfile.open(shard.path) as tar:
        names = sorted(m.name.split(".", 1)[1] for m in tar.getmembers())
        metas = [json.load(tar.extractfile(m)) for m in tar.getmembers()
                 if m.name.endswith(".json")]
    assert names == ["json"] * 3 + ["m4a"] * 3  # the original bytes, probed
    assert [m["duration"] for m in metas] == [pytest.approx(SECONDS, abs=1e-3)] * 3
    stream = ShardStream(find_shards(str(tmp_path / "shards" / "train-*.tar")),
                         DurationBatcher(4.0, 2), 24000, 1.0, shuffle_buffer=2)
    lengths = [n for batch in ShardLoader(stream)
               for n in (batch.sig.lengths * batch.sig.data.shape[1]).round().tolist()]
    assert sorted(lengths) == [24000.0] * 9


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    """A tiny untrained brn_sum model, packaged."""
    run = write_run_folder(tmp_path_factory.mktemp("run") / "brn_sum")
    return package_model(run, tmp_path_factory.mktemp("pkg") / "model")


def test_cli_embeds_aac_opus_wma_webm_and_skips_a_corrupt_m4a(model_folder, tmp_path, capsys):
    src, out = tmp_path / "in", tmp_path / "out"
    for ext in (".m4a", ".opus", ".wma", ".webm"):
        write(src, ext).rename(src / f"song{ext}")
    for freq in (FREQ, 1.5 * FREQ):  # the same tone, lossless; a fifth above
        write_audio(src / f"{freq:g}.wav", SECONDS, 24000, channels=2, freq=freq,
                    harmonics=1, decay=0.0, noise=0.0)
    corrupt_m4a(src)
    assert cli.main([str(model_folder), str(src), str(out), "--no-progress",
                     "--pooling", "mean"]) == 0
    captured = capsys.readouterr()
    assert "unreadable files (1)" in captured.err and "broken.m4a" in captured.err
    assert sorted(p.name for p in out.glob("*.npy")) == [
        "440.wav.npy", "660.wav.npy", "song.m4a.npy", "song.opus.npy",
        "song.webm.npy", "song.wma.npy"]

    def cosine(a, b):
        return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))

    # each lossy copy embeds as MusicEncoder embeds its decoded audio, and
    # nearer the lossless tone than the fifth does (untrained weights)
    encoder = MusicEncoder.from_path(model_folder)
    reference = np.load(out / "440.wav.npy")
    fifth = cosine(np.load(out / "660.wav.npy"), reference)
    for ext in (".m4a", ".opus", ".wma", ".webm"):
        emb = np.load(out / f"song{ext}.npy")
        direct = encoder.encode_file(src / f"song{ext}", pooling="mean").numpy()
        np.testing.assert_allclose(emb, direct, atol=1e-5)
        assert cosine(emb, reference) > fifth, ext
