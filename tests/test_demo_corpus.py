"""Tests of the built-in demo corpus: layout, tasks, determinism, caching, labels."""
from __future__ import annotations

import hashlib
import inspect
import json
from pathlib import Path

import mir_eval
import numpy as np
import pytest
import soundfile as sf

from muselq_sb.dataio import demo_corpus as dc
from muselq_sb.dataio.manifest import read_manifest, read_task
from muselq_sb.downstream.frame_targets import parse_annotation
from muselq_sb.prepare import demo

EXPECTED_SHA256 = Path(__file__).parent / "fixtures" / "demo_corpus_sha256.json"

SMALL = dict(n_music=12, n_notes=8, n_voice=12, clip_seconds=2.0, progress=False)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return demo.build_demo_corpus(tmp_path_factory.mktemp("demo"), seed=0, workers=1, **SMALL)


def _rows(folder):
    info = read_task(folder)
    return {s: read_manifest(folder / f"{s}.csv") for s in info["splits"]}


def _hashes(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((root / "audio").rglob("*.wav"))}


def test_layout_and_audio_format(corpus):
    wavs = sorted((corpus / "audio").rglob("*.wav"))
    assert len(wavs) == 12 + 8 + 12
    info = sf.info(str(wavs[0]))
    assert (info.samplerate, info.channels, info.subtype) == (24000, 1, "PCM_16")
    pretrain = _rows(corpus / "pretrain")
    assert read_task(corpus / "pretrain")["type"] == "pretrain"
    ids = [r["ID"] for r in pretrain["train"] + pretrain["valid"]]
    assert len(ids) == len(set(ids)) == 32 and len(pretrain["valid"]) >= 1


@pytest.mark.parametrize("name", sorted(demo.TASKS))
def test_every_task_folder_is_complete(corpus, name):
    info = read_task(corpus / "tasks" / name)
    rows = _rows(corpus / "tasks" / name)
    assert set(rows) == {"train", "valid", "test"}
    everything = [r for split in rows.values() for r in split]
    family = demo.TASKS[name][1]
    assert len(everything) == {"music": 12, "note": 8, "voice": 12}[family]
    assert all(r["ID"].startswith(family) for r in everything)
    # default shares 5 / 1 / 4, dealt in cycles of ten
    sizes = {"music": [7, 1, 4], "note": [5, 1, 2], "voice": [7, 1, 4]}[family]
    assert [len(rows[s]) for s in ("train", "valid", "test")] == sizes
    if info["type"] == "multiclass":
        assert {r[info["target"]] for r in everything} <= set(info["classes"])
    elif info["type"] == "multilabel":
        assert {t for r in everything for t in r["tags"].split(";")} <= set(info["classes"])
    elif info["type"] in ("beats", "chords"):
        for r in everything:  # every clip's annotation reads, from 0 s to its end
            times = parse_annotation(info["type"], r[info["target"]], name, 0)[0]
            assert times.min() == 0.0 and times.max() <= float(r["duration"])
    else:
        for column in info["target"]:
            assert all(np.isfinite(float(r[column])) for r in everything)


def test_key_classes_are_mir_eval_keys(corpus):
    info = read_task(corpus / "tasks" / "demo_key")
    assert len(info["classes"]) == 24 and info["metrics"] == ["key_weighted", "accuracy"]
    for key in info["classes"]:
        mir_eval.key.validate_key(key)


@pytest.mark.parametrize("shares, sizes", [((8, 1, 1), [32, 4, 4]),
                                            (demo.SPLIT_SHARES, [20, 4, 16])])
def test_multiclass_splits_are_stratified(shares, sizes):
    rows = [{"ID": f"i{k}", "label": "ab"[k % 2]} for k in range(40)]
    splits = demo.split_items(rows, "label", seed=0, name="t", shares=shares)
    assert [len(splits[s]) for s in ("train", "valid", "test")] == sizes
    for split in splits.values():
        assert {r["label"] for r in split} == {"a", "b"}
    with pytest.raises(ValueError, match="three positive integers"):
        demo.split_items(rows, "label", seed=0, name="t", shares=(8, 0, 2))


def test_default_corpus_has_100_test_items_per_task():
    defaults = inspect.signature(demo.build_demo_corpus).parameters
    for family, count in (("music", "n_music"), ("note", "n_notes"), ("voice", "n_voice")):
        rows = [{"ID": str(i), "label": str(i % 7)} for i in range(defaults[count].default)]
        splits = demo.split_items(rows, "label", 0, family, defaults["split_shares"].default)
        assert len(splits["test"]) >= 100, family
        assert len(splits["train"]) >= len(splits["test"])


def test_same_seed_same_bytes_whatever_the_workers(corpus, tmp_path):
    again = demo.build_demo_corpus(tmp_path / "again", seed=0, workers=2, **SMALL)
    assert _hashes(again) == _hashes(corpus)
    a = (corpus / "tasks" / "demo_tags" / "train.csv").read_text()
    b = (again / "tasks" / "demo_tags" / "train.csv").read_text()
    assert a.replace(str(corpus), "") == b.replace(str(again), "")
    other = demo.build_demo_corpus(tmp_path / "other", seed=1, workers=1, **SMALL)
    assert set(_hashes(other).values()).isdisjoint(_hashes(corpus).values())


def test_outputs_keep_their_bytes(tmp_path):
    """Every file of a small corpus (seed 0) has the bytes it had when the
    corpus was first written (the hashes were computed then; the corpus
    root inside the manifests is replaced by ``<root>``)."""
    root = demo.build_demo_corpus(tmp_path / "demo", seed=0, n_music=8, n_notes=4,
                                  n_voice=6, clip_seconds=1.0, workers=1,
                                  progress=False)
    got = {p.relative_to(root).as_posix(): hashlib.sha256(
               p.read_bytes().replace(str(root).encode(), b"<root>")).hexdigest()
           for p in sorted(root.rglob("*")) if p.is_file()}
    expected = json.loads(EXPECTED_SHA256.read_text())
    assert sorted(got) == sorted(expected)
    assert [f for f in expected if got[f] != expected[f]] == []


def test_cache_skips_and_rebuilds(tmp_path):
    small = dict(SMALL, n_music=2, n_notes=1, n_voice=1, clip_seconds=1.0)
    root = demo.build_demo_corpus(tmp_path / "c", workers=1, **small)
    stamp = (root / "pretrain" / "task.json").stat().st_mtime_ns
    demo.build_demo_corpus(root, workers=1, **small)
    assert (root / "pretrain" / "task.json").stat().st_mtime_ns == stamp
    (root / "pretrain" / "task.json").unlink()  # an interrupted build
    demo.build_demo_corpus(root, workers=1, **small)
    assert (root / "pretrain" / "task.json").is_file()
    demo.build_demo_corpus(root, workers=1, **dict(small, n_music=1))  # new config
    assert len(list((root / "audio" / "music").glob("*.wav"))) == 1


def test_default_root_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("MUSELQ_SB_DATA", str(tmp_path))
    assert demo.default_demo_root() == tmp_path / "demo_corpus"
    monkeypatch.delenv("MUSELQ_SB_DATA")
    assert demo.default_demo_root().parts[-3:] == (".cache", "muselq_sb", "demo_corpus")


def _estimate_pitch(y):
    """Harmonic-sum pitch estimate (MIDI) from the first second."""
    spectrum = np.abs(np.fft.rfft(y[: dc.SAMPLE_RATE] * np.hanning(dc.SAMPLE_RATE),
                                  4 * dc.SAMPLE_RATE))  # 0.25 Hz bins

    def magnitude(f):
        return max(spectrum[int(round(f * r * 4))] for r in (0.995, 1.0, 1.005))

    scores = {m: sum(magnitude(dc.midi_to_hz(m) * k) for k in (1, 2, 3))
              for m in range(30, 90)}
    return max(scores, key=scores.get)


def test_note_pitch_labels_are_recoverable():
    rng = np.random.default_rng(1)
    results = []
    for instrument in dc.INSTRUMENTS:
        for _ in range(3):
            y, labels = dc.render_single_note(instrument, rng)
            results.append(_estimate_pitch(y) == labels["pitch"])
    assert sum(results) >= 0.9 * len(results)


def test_key_labels_are_recoverable_from_chroma():
    rng = np.random.default_rng(2)
    hits = 0
    for i in range(12):
        key = dc.KEYS[int(rng.integers(24))]
        y, labels = dc.render_music(sorted(dc.STYLES)[i % 6], key, 6.0, rng)
        spectrum = np.abs(np.fft.rfft(y)) ** 2
        freqs = np.fft.rfftfreq(y.size, 1 / dc.SAMPLE_RATE)
        band = (freqs > 60) & (freqs < 2000)
        pitch_class = np.round(12 * np.log2(freqs[band] / 440) + 69).astype(int) % 12
        chroma = np.bincount(pitch_class, weights=spectrum[band], minlength=12)
        tonic, mode = labels["key"].split()
        truth = {(dc.TONICS.index(tonic) + s) % 12 for s in dc.SCALES[mode]}
        best = max(range(12), key=lambda r: sum(chroma[(r + s) % 12] for s in dc.SCALES["major"]))
        hits += {(best + s) % 12 for s in dc.SCALES["major"]} == truth
    assert hits >= 9  # chance is 1 in 12


def test_labels_follow_generation_parameters():
    rng = np.random.default_rng(3)
    fast = [dc.render_music("electronic", "C major", 2.0, rng)[1] for _ in range(4)]
    slow = [dc.render_music("ambient", "C minor", 2.0, rng)[1] for _ in range(4)]
    assert min(f["arousal"] for f in fast) > max(s["arousal"] for s in slow)
    assert min(f["valence"] for f in fast) > max(s["valence"] for s in slow)
    assert all("drums" in f["tags"] and "bass" in f["tags"] for f in fast)
    assert all("drums" not in s["tags"] and "calm" in s["tags"] for s in slow)
    assert all(120 <= f["tempo"] <= 135 for f in fast)


def test_voice_singers_differ_and_techniques_are_validated():
    low, high = dc.make_singers(0, 2)
    assert low.f0 < 150 < high.f0 and low.formant_scale < high.formant_scale
    y, labels = dc.render_voice(low, "vocal_fry", np.random.default_rng(0))
    assert y.shape == (int(dc.VOICE_SECONDS * dc.SAMPLE_RATE),) and np.abs(y).max() <= 1
    with pytest.raises(ValueError, match="unknown technique"):
        dc.render_voice(low, "yodel", np.random.default_rng(0))


def test_plots_and_cli(corpus, tmp_path, capsys):
    demo.main(["--root", str(corpus), "--plots", str(tmp_path / "img"), "--n-music", "12",
             "--n-notes", "8", "--n-voice", "12", "--clip-seconds", "2", "--workers", "1"])
    out = capsys.readouterr().out
    assert "demo_key" in out  # the cached corpus was reused and summarised
    for name in ("demo_spectrograms.png", "demo_labels.png"):
        assert (tmp_path / "img" / name).read_bytes()[:4] == b"\x89PNG"


def test_music_clips_know_their_beats_and_chords():
    """The beat grid and chords follow the clip's tempo, key and progression."""
    y, labels = dc.render_music("ballad", "A minor", 10.0, np.random.default_rng(3))
    period = 60.0 / labels["tempo"]
    times = [t for t, _ in labels["beats"]]
    assert np.allclose(np.diff(times), period) and times[-1] < 10.0 <= times[-1] + period
    assert [p for _, p in labels["beats"]][:5] == [1, 2, 3, 4, 1]
    chords = labels["chords"]
    assert chords[0][0] == 0.0 and chords[-1][1] == 10.0
    assert all(np.isclose(e - s, 4 * period) for s, e, _ in chords[:-1])  # one bar each
    a_minor_triads = {"A:min", "B:dim", "C:maj", "D:min", "E:min", "F:maj", "G:maj"}
    assert {c for _, _, c in chords} <= a_minor_triads
    # the audio did not change for the labels: same seed, same samples
    again, _ = dc.render_music("ballad", "A minor", 10.0, np.random.default_rng(3))
    assert np.array_equal(y, again)
