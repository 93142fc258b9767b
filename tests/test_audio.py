"""Tests of muselq_sb.dataio.audio: decoding, cropping, segmenting, pipeline."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import soundfile as sf
import torch
from speechbrain.dataio.dataset import DynamicItemDataset

from muselq_sb.dataio import audio
from muselq_sb.dataio.audio import (
    AudioError, audio_pipeline, load_audio, random_crop, resample, window_bounds,
)
from tests.fixtures.audio import write_audio


@pytest.mark.parametrize("ext", [".wav", ".flac", ".ogg", ".mp3", ".au"])
def test_load_every_format_mono_resampled(tmp_path, ext):
    path = write_audio(tmp_path / f"a{ext}", seconds=1.0, sample_rate=44100,
                       freq=440.0, channels=2)
    wav = load_audio(path, sample_rate=24000)
    assert wav.dtype == torch.float32 and wav.dim() == 1
    assert abs(wav.numel() - 24000) <= 24  # mp3/ogg may pad a few samples
    spectrum = torch.fft.rfft(wav[:24000]).abs()
    assert abs(int(spectrum.argmax()) - 440) <= 2  # the tone survives, in Hz bins


def test_partial_read_equals_slice_of_full_read(tmp_path):
    path = write_audio(tmp_path / "a.wav", seconds=3.0, sample_rate=24000)
    full = load_audio(path)
    part = load_audio(path, start=1.25, stop=2.0)
    assert torch.equal(part, full[30000:48000])
    assert torch.equal(load_audio(path, start=2.5), full[60000:])
    assert torch.equal(load_audio(path, stop=10.0), full)  # clipped to the end


def test_partial_read_only_reads_needed_frames(tmp_path, monkeypatch):
    path = write_audio(tmp_path / "a.flac", seconds=4.0, sample_rate=24000)
    asked = []
    original = sf.SoundFile.read

    def spy(self, frames=-1, *args, **kwargs):
        asked.append(frames)
        return original(self, frames, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", spy)
    assert load_audio(path, start=1.0, stop=1.5).numel() == 12000
    assert asked == [12000]


def test_downmix_is_channel_mean(tmp_path):
    left = np.linspace(-0.5, 0.5, 2400, dtype=np.float32)
    data = np.stack([left, np.full_like(left, 0.25)], axis=1)
    sf.write(tmp_path / "s.wav", data, 24000, subtype="FLOAT")
    wav = load_audio(tmp_path / "s.wav")
    assert torch.allclose(wav, torch.from_numpy((left + 0.25) / 2))


def test_resample_reuses_kernel_per_rate_pair():
    audio._resampler.cache_clear()
    resample(torch.zeros(441), 44100, 24000)
    resample(torch.zeros(882), 44100, 24000)
    info = audio._resampler.cache_info()
    assert (info.hits, info.misses) == (1, 1)
    x = torch.randn(100)
    assert resample(x, 24000, 24000) is x


def _nan_file(path):
    sf.write(path, np.array([0.1, np.nan, 0.2], dtype=np.float32), 24000, subtype="FLOAT")


def _empty_file(path):
    sf.write(path, np.zeros(0, dtype=np.float32), 24000)


def _garbage_file(path):
    path.write_bytes(b"not audio at all" * 10)


@pytest.mark.parametrize("make, reason", [
    (None, "cannot decode"),
    (_garbage_file, "cannot decode"),
    (_nan_file, "NaN or infinite"),
    (_empty_file, "no samples"),
])
def test_bad_files_raise_audio_error_naming_path(tmp_path, make, reason):
    path = tmp_path / "bad.wav"
    if make is not None:
        make(path)
    with pytest.raises(AudioError, match=reason) as info:
        load_audio(path)
    assert str(path) in str(info.value) and info.value.path == str(path)


def test_directory_and_out_of_range_raise(tmp_path):
    with pytest.raises(AudioError, match="is a directory"):
        load_audio(tmp_path)
    path = write_audio(tmp_path / "a.wav", seconds=1.0)
    with pytest.raises(AudioError, match="no samples"):
        load_audio(path, start=2.0, stop=3.0)
    with pytest.raises(AudioError, match="bad range"):
        load_audio(path, start=0.8, stop=0.2)


def test_random_crop_is_seeded_and_in_bounds():
    wav = torch.arange(1000.0)
    a = random_crop(wav, 100, torch.Generator().manual_seed(3))
    b = random_crop(wav, 100, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.numel() == 100
    assert torch.equal(a, torch.arange(a[0], a[0] + 100))
    starts = {int(random_crop(wav, 100)[0]) for _ in range(50)}
    assert len(starts) > 10 and max(starts) <= 900


def _segment_cases():
    rng = np.random.default_rng(0)
    cases = [(0.0, 1.0, 1.0), (30.0, 30.0, 1.0), (60.0000001, 30.0, 0.0), (0.99, 1.0, 1.0)]
    cases += [(float(rng.uniform(0, 500)), float(rng.uniform(0.5, 60)),
               float(rng.uniform(0, 10))) for _ in range(300)]
    return cases


def test_windows_tile_the_recording():
    # A property check over many random (duration, segment, min_last).
    # (hypothesis is not used: its pytest plugin trips over SpeechBrain's lazy
    # modules while collecting.)
    for duration, segment, min_last in _segment_cases():
        segments = window_bounds(duration, segment, min_last=min_last)
        for (a, b), (c, _) in zip(segments, segments[1:]):
            assert b == pytest.approx(c, abs=1e-5)  # contiguous, no overlap
            assert b - a == pytest.approx(segment, abs=1e-5)  # only the last is short
        full = int(duration / segment + 1e-9)
        tail = duration - full * segment
        assert len(segments) == full + (tail > 1e-6 and tail >= min_last - 1e-9)
        if segments:
            assert segments[0][0] == 0.0
            assert segments[-1][1] <= duration + 1e-6
            assert segments[-1][1] - segments[-1][0] >= min(min_last, segment) - 1e-5


def test_windows_drop_short_last_window():
    assert window_bounds(65.0, 30.0, min_last=10.0) == [(0.0, 30.0), (30.0, 60.0)]
    assert window_bounds(0.5, 30.0, min_last=1.0) == []
    assert window_bounds(20.0, 30.0, min_last=1.0) == [(0.0, 20.0)]
    with pytest.raises(ValueError):
        window_bounds(10.0, 0.0)


@pytest.mark.parametrize("hop", [0, -1, 41])
def test_windows_refuse_a_hop_outside_the_window(hop):
    with pytest.raises(ValueError, match="0 < hop <= window"):
        window_bounds(100, 40, hop=hop)


def test_overlapping_windows_cover_the_recording():
    for n in range(1, 400, 7):
        windows = window_bounds(n, 40, hop=30)
        starts = [a for a, _ in windows]
        assert starts == list(range(0, 30 * len(windows), 30))
        assert all(b - a == 40 for a, b in windows[:-1])
        assert windows[-1][1] == n and (len(windows) == 1 or windows[-2][1] < n)


def _dataset(rows, **kwargs):
    data = {f"i{k}": row for k, row in enumerate(rows)}
    return DynamicItemDataset(data, dynamic_items=[audio_pipeline(**kwargs)],
                              output_keys=["id", "sig"])


def test_pipeline_reads_ranges_with_empty_cells(tmp_path):
    path = str(write_audio(tmp_path / "a.wav", seconds=2.0, sample_rate=48000))
    ds = _dataset([{"path": path, "start": "", "stop": ""},
                   {"path": path, "start": "0.5", "stop": "1.5"},
                   {"path": path, "start": 1.0, "stop": ""}])
    assert [ds[i]["sig"].numel() for i in range(3)] == [48000, 24000, 24000]


def test_pipeline_random_crops_are_seeded_and_inside_range(tmp_path):
    sr = 24000
    ramp = np.arange(4 * sr, dtype=np.float32) / (4 * sr)
    sf.write(tmp_path / "ramp.wav", ramp, sr, subtype="FLOAT")
    row = {"path": str(tmp_path / "ramp.wav"), "start": "1.0", "stop": "3.0"}

    def firsts(seed):
        ds = _dataset([row], crop_seconds=0.5, random=True, seed=seed)
        return [float(ds[0]["sig"][0]) for _ in range(8)]

    a, b = firsts(1), firsts(1)
    assert a == b and len(set(a)) > 1
    assert all(0.25 - 1e-4 <= x <= 0.625 + 1e-4 for x in a)  # within [1 s, 2.5 s]
    fixed = _dataset([row], crop_seconds=0.5, random=False)[0]["sig"]
    assert fixed.numel() == 12000 and float(fixed[0]) == pytest.approx(0.25, abs=1e-4)


def test_pipeline_bad_file_yields_empty_and_warns_once(tmp_path, caplog):
    bad = str(tmp_path / "corrupt.mp3")
    _garbage_file(tmp_path / "corrupt.mp3")
    audio._WARNED_PATHS.discard(bad)
    ds = _dataset([{"path": bad, "start": "", "stop": ""}], crop_seconds=1.0)
    with caplog.at_level(logging.WARNING, logger="muselq_sb.dataio.audio"):
        for _ in range(3):
            assert ds[0]["sig"].numel() == 0
    warnings = [r for r in caplog.records if bad in r.getMessage()]
    assert len(warnings) == 1
