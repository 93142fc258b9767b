"""Tests of the VocalSet preparation on a tiny native-layout tree."""
import logging
import os
import time

import pytest

from muselq_sb.dataio.manifest import read_manifest, read_task
from muselq_sb.prepare.common import PrepareError
from muselq_sb.prepare.vocalset import (
    SINGERS,
    TECHNIQUES,
    TEST_SINGERS,
    main,
    prepare_vocalset,
)
from tests.fixtures.audio import write_audio
from tests.fixtures.vocalset import write_vocalset_tree

SPLITS = ("train", "valid", "test")


@pytest.fixture
def tree(tmp_path):
    return write_vocalset_tree(tmp_path / "VocalSet")


def manifests(folder):
    return {s: read_manifest(folder / f"{s}.csv") for s in SPLITS}


def recordings_per_split(folder):
    return {s: {r["group"] for r in rows}
            for s, rows in manifests(folder).items()}


def check_segments(folder, tree, key):
    """Every row is one whole 3 s chunk of a usable recording, labelled by
    ``key``; every recording has all its chunks in one split."""
    recordings = tree["recordings"]
    seen = {}
    for split, rows in manifests(folder).items():
        for row in rows:
            rec = recordings[row["group"]]
            assert row["label"] == rec[key]
            assert row["path"] == rec["path"]
            k = int(row["ID"].rsplit("_", 1)[1])
            assert row["ID"] == f"{row['group']}_{k:02d}"
            assert (float(row["start"]), float(row["stop"]),
                    float(row["duration"])) == (3.0 * k, 3.0 * k + 3, 3.0)
            seen.setdefault(row["group"], []).append((split, k))
    for rec_id, chunks in seen.items():
        assert len({split for split, _ in chunks}) == 1
        assert sorted(k for _, k in chunks) == list(
            range(recordings[rec_id]["chunks"]))
    return seen


def test_technique_task(tree, tmp_path):
    technique, _ = prepare_vocalset(tree["root"], tmp_path / "out")
    info = read_task(technique)
    assert (info["name"], info["type"], info["target"]) == (
        "vocalset_technique", "multiclass", "label")
    assert info["classes"] == list(TECHNIQUES) and len(TECHNIQUES) == 10
    assert info["metrics"] == ["accuracy"]
    seen = check_segments(technique, tree, "technique")
    used = {r for r, v in tree["recordings"].items()
            if v["technique"] in TECHNIQUES}
    assert set(seen) == used  # "forte" is not one of the 10 techniques
    per_split = recordings_per_split(technique)
    assert per_split["test"] == {
        r for r in used if tree["recordings"][r]["singer"] in TEST_SINGERS}
    assert per_split["train"] | per_split["valid"] == {
        r for r in used
        if tree["recordings"][r]["singer"] not in TEST_SINGERS}
    # belt and vibrato have 2 recordings by non-test singers: one each way.
    for name in ("belt", "vibrato"):
        for split in ("train", "valid"):
            assert sum(tree["recordings"][r]["technique"] == name
                       for r in per_split[split]) == 1
    # The recording without singer prefix got one (MARBLE's renaming).
    assert "f1_scales_straight_a" in per_split["train"]


def test_singer_task(tree, tmp_path):
    _, singer = prepare_vocalset(tree["root"], tmp_path / "out")
    info = read_task(singer)
    assert info["name"] == "vocalset_singer"
    assert info["classes"] == list(SINGERS) and len(SINGERS) == 20
    seen = check_segments(singer, tree, "singer")
    assert set(seen) == set(tree["recordings"])
    per_split = recordings_per_split(singer)
    for split, recs in per_split.items():
        singers = sorted(tree["recordings"][r]["singer"] for r in recs)
        # 3 or 4 recordings per singer: 1 test, 1 valid, the rest train.
        if split == "train":
            assert sorted(set(singers)) == ["f1", "f2", "m1", "m3"]
        else:
            assert singers == ["f1", "f2", "m1", "m3"]
    assert info["splits"] == {s: len(rows)
                              for s, rows in manifests(singer).items()}


def test_left_out_files(tree, tmp_path):
    folders = prepare_vocalset(tree["root"], tmp_path / "out")
    for folder in folders:
        assert read_task(folder)["skipped"] == {"unreadable": 0,
                                                "too_short": 1}
        assert read_task(folder)["skipped_paths"] == {
            "unreadable": [], "too_short": tree["too_short_paths"]}
        rows = [r for rows in manifests(folder).values() for r in rows]
        paths = {r["path"] for r in rows}
        groups = {r["group"] for r in rows}
        assert tree["duplicate"] not in paths
        assert not groups & set(tree["too_short"])
        assert not any("/._" in p or "__MACOSX" in p for p in paths)


def test_split_is_seeded(tree, tmp_path):
    first = prepare_vocalset(tree["root"], tmp_path / "a", seed=7)
    second = prepare_vocalset(tree["root"], tmp_path / "b", seed=7)
    for a, b in zip(first, second):
        assert manifests(a) == manifests(b)


def test_chunk_seconds(tree, tmp_path):
    technique, _ = prepare_vocalset(tree["root"], tmp_path / "out",
                                    chunk_seconds=2.0)
    rows = read_manifest(technique / "test.csv")
    f2_belt = [r for r in rows if r["group"] == "f2_arpeggios_belt_a"]
    assert [(r["start"], r["stop"]) for r in f2_belt] == [
        ("0", "2"), ("2", "4"), ("4", "6")]  # 7 s -> 3 chunks of 2 s


def test_unknown_technique_folder(tree, tmp_path):
    folder = tree["root"] / "FULL" / "male1" / "scales" / "yodel"
    write_audio(folder / "m1_scales_yodel_a.wav", 3.5, 8000)
    with pytest.raises(PrepareError, match="unknown technique") as err:
        prepare_vocalset(tree["root"], tmp_path / "out")
    assert err.value.path == str(folder)
    assert not (tmp_path / "out").exists()


def test_unknown_singer_folder(tree, tmp_path):
    write_audio(tree["root"] / "FULL" / "male12" / "scales" / "belt"
                / "m12_scales_belt_a.wav", 3.5, 8000)
    with pytest.raises(PrepareError, match="unknown singer folder") as err:
        prepare_vocalset(tree["root"], tmp_path / "out")
    assert err.value.path == str(tree["root"] / "FULL" / "male12")


def test_two_files_for_one_recording(tree, tmp_path):
    clash = (tree["root"] / "FULL" / "female1" / "scales" / "straight"
             / "f1_scales_straight_a.wav")
    write_audio(clash, 3.5, 8000)
    with pytest.raises(PrepareError, match="already used by") as err:
        prepare_vocalset(tree["root"], tmp_path / "out")
    assert str(clash) in str(err.value)
    assert str(clash.with_name("scales_straight_a.wav")) in str(err.value)


def test_missing_full_folder(tmp_path):
    with pytest.raises(PrepareError, match="FULL folder not found"):
        prepare_vocalset(tmp_path, tmp_path / "out")


def test_corrupt_audio_is_logged_and_skipped(tree, tmp_path, caplog):
    bad = tree["recordings"]["m3_arpeggios_belt_a"]["path"]
    with open(bad, "wb") as f:
        f.write(b"RIFF\x00\x00WAVE garbage")
    with caplog.at_level(logging.WARNING):
        technique, _ = prepare_vocalset(tree["root"], tmp_path / "out")
    assert bad in caplog.text
    assert read_task(technique)["skipped"]["unreadable"] == 1
    assert "m3_arpeggios_belt_a" not in recordings_per_split(technique)["test"]


def test_skips_when_up_to_date(tree, tmp_path):
    folders = prepare_vocalset(tree["root"], tmp_path / "out")
    outputs = sorted(p for f in folders for p in f.iterdir())
    before = [p.stat().st_mtime_ns for p in outputs]
    prepare_vocalset(tree["root"], tmp_path / "out")
    assert [p.stat().st_mtime_ns for p in outputs] == before
    # A new recording (a newer folder) makes it prepare again.
    new = write_audio(tree["root"] / "FULL" / "male3" / "scales" / "belt"
                      / "m3_scales_belt_a.wav", 3.5, 8000)
    later = time.time() + 10
    os.utime(new.parent, (later, later))
    technique, _ = prepare_vocalset(tree["root"], tmp_path / "out")
    assert "m3_scales_belt_a" in recordings_per_split(technique)["test"]


def test_main(tree, tmp_path, capsys):
    assert main(["--data_folder", str(tree["root"]),
                 "--save_folder", str(tmp_path / "out"),
                 "--chunk_seconds", "2", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "task vocalset_technique" in out and "task vocalset_singer" in out
    info = read_task(tmp_path / "out" / "vocalset_singer")
    assert info["options"]["chunk_seconds"] == 2.0
    assert info["options"]["seed"] == 3
