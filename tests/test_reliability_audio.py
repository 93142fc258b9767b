"""A zoo of bad and odd audio: decoding, training through it, embedding it.

Bad files (empty, truncated, header-only, NaN/inf samples, not audio, a
folder) are logged once by path and skipped; odd but valid ones (8 kHz
8-bit, 6 channels at 96 kHz, silence, a wav named .mp3, a long file read by
a 2 s crop) are used. ``chmod 000`` keeps a file from being read unless the
tests run as root (then it is an ordinary good file): the expected outcome
follows ``os.access``.
"""
import csv
import logging
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from speechbrain.dataio.dataset import DynamicItemDataset

from muselq_sb.dataio import audio
from muselq_sb.dataio.audio import audio_pipeline
from muselq_sb.inference.cli import main as embed_main
from muselq_sb.prepare.pretrain import prepare_pretrain
from muselq_sb.pretrain.report import read_metrics
from tests.fixtures.audio import write_audio
from tests.recipe_utils import TRAIN, args_for, env

SEED = 1986  # the recipe's seed: the prepared task is then up to date


def build_zoo(folder):
    """Writes the zoo; returns {name: True if the file must be skipped}."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    noise = (0.1 * rng.standard_normal(96000 * 2)).astype("float32")
    (folder / "empty.wav").write_bytes(b"")
    write_audio(folder / "whole.mp3", 3.0, 24000, freq=440, seed=0)
    mp3 = (folder / "whole.mp3").read_bytes()
    (folder / "truncated.mp3").write_bytes(mp3[:300])
    os.remove(folder / "whole.mp3")
    sf.write(folder / "header_only.wav", np.zeros((0, 1), "float32"), 24000)
    for name, value in (("nan.wav", np.nan), ("inf.wav", np.inf)):
        bad = noise[:48000].copy()
        bad[1000] = value
        sf.write(folder / name, bad, 24000, subtype="FLOAT")
    (folder / "text.wav").write_text("not audio at all\n" * 50)
    (folder / "folder.wav").mkdir()
    sf.write(folder / "8k_8bit.wav", noise[:24000], 8000, subtype="PCM_U8")
    sf.write(folder / "6ch_96k.wav", np.tile(noise[:, None], (1, 6)), 96000)
    sf.write(folder / "silence.wav", np.zeros(48000, "float32"), 24000)
    sf.write(folder / "wav_named.mp3", noise[:48000], 24000, format="WAV")
    sf.write(folder / "no_permission.wav", noise[:48000], 24000)
    os.chmod(folder / "no_permission.wav", 0)
    bad = {"empty.wav", "truncated.mp3", "header_only.wav", "nan.wav",
           "inf.wav", "text.wav", "folder.wav"}
    readable = os.access(folder / "no_permission.wav", os.R_OK)
    return {p.name: p.name in bad or (p.name == "no_permission.wav" and not readable)
            for p in folder.iterdir()}


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("zoo")
    return folder, build_zoo(folder)


def test_zoo_through_the_pipeline(zoo, caplog):
    folder, expected_bad = zoo
    data = DynamicItemDataset(
        {name: {"path": str(folder / name), "start": "", "stop": ""}
         for name in expected_bad},
        dynamic_items=[audio_pipeline(crop_seconds=2.0, seed=0)],
        output_keys=["id", "sig"])
    audio._WARNED_PATHS.clear()
    with caplog.at_level(logging.WARNING, logger=audio.__name__):
        for _ in range(2):  # a second epoch logs nothing new
            for item in data:
                name, sig, bad = item["id"], item["sig"], expected_bad[item["id"]]
                if bad:
                    assert sig.numel() == 0, name
                else:
                    assert sig.shape == (48000,) and torch.isfinite(sig).all(), name
    messages = [r.getMessage() for r in caplog.records]
    for name, bad in expected_bad.items():
        assert sum(str(folder / name) in m for m in messages) == int(bad), name


def test_crop_of_a_long_file_reads_only_the_crop(tmp_path, monkeypatch):
    path = tmp_path / "long.flac"
    write_audio(path, 180.0, 8000, freq=220, seed=0)  # 3 minutes
    reads, seeks = [], []
    real_read, real_seek = sf.SoundFile.read, sf.SoundFile.seek
    monkeypatch.setattr(sf.SoundFile, "read", lambda self, frames=-1, *a, **k: (
        reads.append(frames), real_read(self, frames, *a, **k))[1])
    monkeypatch.setattr(sf.SoundFile, "seek", lambda self, frames, whence=sf.SEEK_SET: (
        whence == sf.SEEK_SET and seeks.append(frames),
        real_seek(self, frames, whence))[1])
    data = DynamicItemDataset({"long": {"path": str(path), "start": "", "stop": ""}},
                              dynamic_items=[audio_pipeline(crop_seconds=2.0, seed=3)],
                              output_keys=["sig"])
    sig = data[0]["sig"]
    assert sig.shape == (48000,)
    assert reads == [16000]  # 2 s at the native 8 kHz, nothing more
    assert 0 < seeks[0] <= 178 * 8000  # it jumped to the crop


def add_rows(csv_path, folder, names):
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        fields, rows = reader.fieldnames, list(reader)
    for name in names:
        rows.append({**{k: "" for k in fields}, "ID": f"zoo-{name}",
                     "path": str(folder / name), "duration": "2.0",
                     "group": f"zoo-{name}"})
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def test_training_and_embedding_go_on_through_the_zoo(zoo, tmp_path):
    folder, expected_bad = zoo
    good = tmp_path / "good"
    for i in range(4):
        write_audio(good / f"song{i}.wav", 3.0, 24000, freq=110 * (i + 1), seed=i)
    out = tmp_path / "run"
    task = prepare_pretrain([{"type": "folder", "path": str(good)}], out / "data",
                            segment_seconds=2.0, valid_fraction=0.25, seed=SEED)
    in_valid = ["empty.wav", "folder.wav"]
    add_rows(task / "train.csv", folder, sorted(expected_bad))
    add_rows(task / "valid.csv", folder, in_valid)
    args = args_for("brn_sum", good, out, 100, ["--number_of_epochs=2"])
    proc = subprocess.run([sys.executable, str(TRAIN), *args], env=env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "tracks used" not in proc.stdout  # our manifest was trained on
    log = (out / "log.txt").read_text()
    for name, bad in expected_bad.items():
        # each bad file named once (both epochs, train and valid together)
        assert log.count(f"skipping unreadable audio {folder / name} ") == int(bad), name
    n_bad = sum(expected_bad.values())
    valid = [r for r in read_metrics(out / "metrics.jsonl") if r["stage"] == "valid"]
    assert [v["skipped_files"] for v in valid] == [len(in_valid)] * 2
    assert all(np.isfinite(v["loss"]) for v in valid)
    train_log = (out / "train_log.txt").read_text()
    assert re.findall(r"train skipped_files: (\d+)", train_log) == [str(n_bad)] * 2
    steps = [r for r in read_metrics(out / "metrics.jsonl") if r["stage"] == "train_step"]
    assert steps and all(np.isfinite(r["loss"]) for r in steps)

    # the embedding command line on the same zoo, with the model just trained
    emb = tmp_path / "emb"
    assert embed_main([str(out), str(folder), str(emb), "--pooling", "mean"]) == 0
    files = [p for p in expected_bad if (folder / p).is_file()]
    for name in files:
        written = (emb / f"{name}.npy").exists()
        assert written != expected_bad[name], name
        if written:
            assert np.isfinite(np.load(emb / f"{name}.npy")).all()
