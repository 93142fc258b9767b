"""Tests of the EmoMusic preparation on a tiny native-layout tree."""
import logging
import os
import statistics
import time

import pytest

from muselq_sb.dataio.manifest import read_manifest, read_task
from muselq_sb.prepare.common import PrepareError
from muselq_sb.prepare.emomusic import main, prepare_emomusic, read_split_list
from tests.fixtures.emomusic import write_emomusic_tree


@pytest.fixture
def tree(tmp_path):
    return write_emomusic_tree(tmp_path / "emomusic")


def subset_list(tree, tmp_path, songs=None):
    """A split list holding only the fixture's songs (or ``songs``)."""
    path = tmp_path / "subset.tsv"
    songs = tree["songs"] if songs is None else songs
    path.write_text("song_id\tsplit\n" + "".join(
        f"{s}\t{tree['songs'][s]['split']}\n" for s in songs))
    return path


def manifests(folder):
    return {s: read_manifest(folder / f"{s}.csv")
            for s in ("train", "valid", "test")}


def test_packaged_split_list_is_the_marble_split():
    split = read_split_list()
    assert len(split) == 744
    assert [list(split.values()).count(s) for s in ("train", "valid", "test")
            ] == [504, 115, 125]


def test_splits_and_normalised_targets(tree, tmp_path):
    folder = prepare_emomusic(tree["root"], tmp_path / "out",
                              allow_missing=True)
    songs = tree["songs"]
    dev = [v for v in songs.values() if v["split"] != "test"]
    info = read_task(folder)
    assert info["type"] == "regression"
    assert info["target"] == ["arousal", "valence"]
    assert info["metrics"] == ["r2_arousal", "r2_valence"]
    assert info["skipped"] == {"missing": 744 - len(songs), "unreadable": 0}
    assert "7" in info["skipped_paths"]["missing"]  # no annotation row: its ID
    for split, rows in manifests(folder).items():
        assert sorted(r["ID"] for r in rows) == sorted(
            s for s, v in songs.items() if v["split"] == split)
        for row in rows:
            song = songs[row["ID"]]
            assert row["path"] == song["path"]
            # 0.5 s clips: the 30 s crop stops at the end of the file.
            assert (row["start"], row["stop"]) == ("0", "0.5")
            assert float(row["duration"]) == pytest.approx(0.5)
            for target in ("arousal", "valence"):
                raw = [v[target] for v in dev]
                mean, std = statistics.fmean(raw), statistics.pstdev(raw)
                assert float(row[target]) == pytest.approx(
                    (song[target] - mean) / std, abs=1e-5)
                assert info["target_stats"][target]["mean"] == \
                    pytest.approx(mean)


def test_raw_ratings_and_whole_clip(tree, tmp_path):
    folder = prepare_emomusic(tree["root"], tmp_path / "out",
                              crop_seconds=None, normalize=False,
                              split_list=subset_list(tree, tmp_path))
    rows = [r for rows in manifests(folder).values() for r in rows]
    assert len(rows) == len(tree["songs"])
    for row in rows:
        song = tree["songs"][row["ID"]]
        assert (row["start"], row["stop"]) == ("", "")
        assert float(row["arousal"]) == pytest.approx(song["arousal"])
        assert float(row["valence"]) == pytest.approx(song["valence"])
    assert read_task(folder)["target_stats"] is None


def test_crop_shorter_than_clip(tree, tmp_path):
    folder = prepare_emomusic(tree["root"], tmp_path / "out",
                              crop_seconds=0.2,
                              split_list=subset_list(tree, tmp_path))
    for row in read_manifest(folder / "train.csv"):
        assert (row["start"], row["stop"], row["duration"]) == \
            ("0", "0.2", "0.2")


def test_songs_missing_from_the_tree_raise_by_default(tree, tmp_path):
    with pytest.raises(PrepareError, match="no row for song 7 ") as err:
        prepare_emomusic(tree["root"], tmp_path / "out")
    assert err.value.path == str(tree["songs_info"])
    assert not (tmp_path / "out" / "emomusic" / "train.csv").exists()


def test_missing_audio_raises_or_is_skipped(tree, tmp_path):
    os.remove(tree["songs"]["5"]["path"])
    split_list = subset_list(tree, tmp_path)
    with pytest.raises(PrepareError, match=r"5\.mp3 of item 5 not found") as err:
        prepare_emomusic(tree["root"], tmp_path / "out",
                         split_list=split_list)
    # Header on line 1, then songs 2, 3, 4, 5 on lines 2..5.
    assert f"{tree['songs_info']}:5:" in str(err.value)
    folder = prepare_emomusic(tree["root"], tmp_path / "out",
                              split_list=split_list, allow_missing=True)
    assert read_task(folder)["skipped"]["missing"] == 1
    assert read_task(folder)["skipped_paths"]["missing"] == [
        tree["songs"]["5"]["path"]]
    assert "5" not in {r["ID"] for r in read_manifest(folder / "train.csv")}


@pytest.mark.parametrize("name", ["songs_info.csv", "static_annotations.csv"])
def test_missing_annotation_file(tree, tmp_path, name):
    os.remove(tree["root"] / name)
    with pytest.raises(PrepareError, match="annotation file not found") as e:
        prepare_emomusic(tree["root"], tmp_path / "out", allow_missing=True)
    assert e.value.path == str(tree["root"] / name)


@pytest.mark.parametrize("old, new, message", [
    ("5, 4.4, 0.9, 4.2, 1.1", "5, 4.4, 0.9, 4.2", "expected 5 comma"),
    ("5, 4.4, 0.9", "5, high, 0.9", "mean_arousal must be a number"),
    ("5, 4.4, 0.9, 4.2", "5, 4.4, 0.9, 42.0", "outside the rating scale"),
])
def test_bad_static_row(tree, tmp_path, old, new, message):
    static = tree["static"]
    static.write_text(static.read_text().replace(old, new))
    with pytest.raises(PrepareError, match=message) as err:
        prepare_emomusic(tree["root"], tmp_path / "out",
                         split_list=subset_list(tree, tmp_path))
    assert str(err.value).startswith(f"{static}:5:")
    assert not (tmp_path / "out" / "emomusic").exists()


def test_mediaeval_set_must_agree_with_the_split(tree, tmp_path):
    info = tree["songs_info"]
    lines = info.read_bytes().split(b"\r\n")
    lines[2] = lines[2].replace(b"evaluation", b"development")  # song 3
    info.write_bytes(b"\r\n".join(lines))
    with pytest.raises(PrepareError, match="puts it in 'test'") as err:
        prepare_emomusic(tree["root"], tmp_path / "out", allow_missing=True)
    assert str(err.value).startswith(f"{info}:3:")


def test_header_without_documented_column(tree, tmp_path):
    info = tree["songs_info"]
    info.write_bytes(info.read_bytes().replace(b"Mediaeval 2013 set",
                                               b"set"))
    with pytest.raises(PrepareError, match="lacks columns") as err:
        prepare_emomusic(tree["root"], tmp_path / "out", allow_missing=True)
    assert str(err.value).startswith(f"{info}:1:")


def test_corrupt_audio_is_logged_and_skipped(tree, tmp_path, caplog):
    bad = tree["songs"]["13"]["path"]
    with open(bad, "wb") as f:
        f.write(b"not an mp3 at all" * 10)
    with caplog.at_level(logging.WARNING):
        folder = prepare_emomusic(tree["root"], tmp_path / "out",
                                  split_list=subset_list(tree, tmp_path))
    assert bad in caplog.text
    assert read_task(folder)["skipped"] == {"missing": 0, "unreadable": 1}
    assert read_task(folder)["skipped_paths"]["unreadable"] == [bad]
    assert "13" not in {r["ID"] for r in read_manifest(folder / "train.csv")}


def test_skips_when_up_to_date(tree, tmp_path):
    split_list = subset_list(tree, tmp_path)
    folder = prepare_emomusic(tree["root"], tmp_path / "out",
                              split_list=split_list)
    outputs = sorted(folder.iterdir())
    before = [p.stat().st_mtime_ns for p in outputs]
    prepare_emomusic(tree["root"], tmp_path / "out", split_list=split_list)
    assert [p.stat().st_mtime_ns for p in outputs] == before
    # Another option rewrites the task.
    prepare_emomusic(tree["root"], tmp_path / "out", split_list=split_list,
                     crop_seconds=None)
    assert read_task(folder)["crop_seconds"] is None
    # So does a newer annotation file.
    written = (folder / "task.json").stat().st_mtime_ns
    later = time.time() + 10
    os.utime(tree["static"], (later, later))
    prepare_emomusic(tree["root"], tmp_path / "out", split_list=split_list,
                     crop_seconds=None)
    assert (folder / "task.json").stat().st_mtime_ns != written


def test_main(tree, tmp_path, capsys):
    assert main(["--data_folder", str(tree["root"]),
                 "--save_folder", str(tmp_path / "out"),
                 "--crop_seconds", "0", "--no_normalize",
                 "--allow_missing"]) == 0
    assert "task emomusic (regression)" in capsys.readouterr().out
    info = read_task(tmp_path / "out" / "emomusic")
    assert info["options"]["crop_seconds"] is None
    assert info["target_stats"] is None


def test_bad_split_list_line(tree, tmp_path):
    split_list = subset_list(tree, tmp_path)
    with open(split_list, "a") as f:
        f.write("21\tholdout\n")
    with pytest.raises(PrepareError, match="expected 'song_id<TAB>split'"
                       ) as err:
        prepare_emomusic(tree["root"], tmp_path / "out",
                         split_list=split_list)
    assert str(err.value).startswith(f"{split_list}:{len(tree['songs']) + 2}:")
