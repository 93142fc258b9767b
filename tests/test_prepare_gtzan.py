"""Tests of the GTZAN preparation on tiny trees in the native layouts."""
import os
import shutil

import pytest

from muselq_sb.dataio.manifest import read_task
from muselq_sb.prepare.common import PrepareError
from muselq_sb.prepare.gtzan import SPLITS_DIR, main, prepare_gtzan
from tests.fixtures.gtzan import write_gtzan_tree
from tests.fixtures.manifests import manifest_labels, whole_recording_rows


@pytest.mark.parametrize("layout,extension", [("kaggle", ".wav"), ("original", ".au")])
def test_splits_and_labels(tmp_path, layout, extension):
    tree = write_gtzan_tree(tmp_path / "gtzan", layout, extension)
    folder = prepare_gtzan(tree["root"], tmp_path / "out", allow_missing=True)
    assert folder == tmp_path / "out" / "gtzan"
    for split, expected in tree["splits"].items():
        assert manifest_labels(folder, split) == expected
        for row in whole_recording_rows(folder, split, tree["paths"], 0.25):
            assert row["path"].endswith(extension) and os.path.isabs(row["path"])
            assert "group" not in row  # one clip per item, nothing to average
    info = read_task(folder)
    assert info["type"] == "multiclass" and info["target"] == "label"
    assert info["classes"] == ["blues", "classical", "country", "disco", "hiphop",
                               "jazz", "metal", "pop", "reggae", "rock"]
    assert info["metrics"] == ["accuracy"]
    # 930 listed - jazz.00054 (always dropped) - the 9 written files
    assert info["skipped"] == {"missing": 920, "unreadable": 0, "excluded": 1}
    genres = tree["root"] / ("Data/genres_original" if layout == "kaggle" else "genres")
    assert info["skipped_paths"]["excluded"] == [str(genres / "jazz/jazz.00054.wav")]
    assert str(genres / "blues/blues.00029.wav") in info["skipped_paths"]["missing"]


def test_missing_listed_file_is_an_error_by_default(tmp_path):
    tree = write_gtzan_tree(tmp_path / "gtzan")
    with pytest.raises(PrepareError) as err:
        prepare_gtzan(tree["root"], tmp_path / "out")
    assert err.value.path == str(SPLITS_DIR / "gtzan" / "train_filtered.txt")
    assert err.value.line == 1  # blues/blues.00029.wav is not in the fixture
    assert "blues.00029.wav" in str(err.value)
    assert not (tmp_path / "out" / "gtzan" / "task.json").exists()


def test_corrupt_audio_is_skipped_and_counted(tmp_path, caplog):
    tree = write_gtzan_tree(tmp_path / "gtzan")
    tree["paths"]["classical.00030"].write_bytes(b"RIFF" + b"\x01" * 100)
    folder = prepare_gtzan(tree["root"], tmp_path / "out", allow_missing=True)
    assert str(tree["paths"]["classical.00030"]) in caplog.text  # logged
    expected = dict(tree["splits"]["train"])
    del expected["classical.00030"]
    assert manifest_labels(folder, "train") == expected
    info = read_task(folder)
    assert info["skipped"]["unreadable"] == 1
    assert info["skipped_paths"]["unreadable"] == [str(tree["paths"]["classical.00030"])]


def write_lists(folder, train, valid="", test=""):
    folder.mkdir(parents=True, exist_ok=True)
    for split, text in (("train", train), ("valid", valid), ("test", test)):
        (folder / f"{split}_filtered.txt").write_text(text)
    return folder


@pytest.mark.parametrize("entry,message", [
    ("polka/polka.00001.wav", "unknown genre 'polka'"),
    ("jazz/pop.00001.wav", "malformed entry"),
    ("jazz.00001.wav", "malformed entry"),
])
def test_bad_list_entry_names_file_and_line(tmp_path, entry, message):
    tree = write_gtzan_tree(tmp_path / "gtzan")
    lists = write_lists(tmp_path / "lists", f"jazz/jazz.00000.wav\n{entry}\n")
    with pytest.raises(PrepareError, match=message) as err:
        prepare_gtzan(tree["root"], tmp_path / "out", split_folder=lists)
    assert err.value.path == str(lists / "train_filtered.txt")
    assert err.value.line == 2


def test_missing_split_list_and_missing_genres(tmp_path):
    tree = write_gtzan_tree(tmp_path / "gtzan")
    lists = write_lists(tmp_path / "lists", "jazz/jazz.00000.wav\n")
    (lists / "test_filtered.txt").unlink()
    with pytest.raises(PrepareError, match="split list not found") as err:
        prepare_gtzan(tree["root"], tmp_path / "out", split_folder=lists)
    assert err.value.path == str(lists / "test_filtered.txt")
    shutil.rmtree(tree["root"] / "Data")
    with pytest.raises(PrepareError, match="no GTZAN genre folders"):
        prepare_gtzan(tree["root"], tmp_path / "out", allow_missing=True)


def test_skips_work_when_up_to_date(tmp_path, capsys):
    tree = write_gtzan_tree(tmp_path / "gtzan")
    lists = write_lists(tmp_path / "lists", "jazz/jazz.00000.wav\n",
                        "jazz/jazz.00002.wav\n", "jazz/jazz.00073.wav\n")
    folder = prepare_gtzan(tree["root"], tmp_path / "out", split_folder=lists)
    outputs = [folder / n for n in ("train.csv", "valid.csv", "test.csv", "task.json")]
    old = [p.stat().st_mtime_ns for p in outputs]
    prepare_gtzan(tree["root"], tmp_path / "out", split_folder=lists)
    assert [p.stat().st_mtime_ns for p in outputs] == old
    assert "task gtzan (multiclass)" in capsys.readouterr().out
    # a changed option or a newer list file makes it prepare again
    prepare_gtzan(tree["root"], tmp_path / "out", split_folder=lists, allow_missing=True)
    assert read_task(folder)["options"]["allow_missing"] is True
    newer = outputs[-1].stat().st_mtime + 10
    (lists / "test_filtered.txt").write_text("jazz/jazz.00073.wav\njazz/jazz.00000.wav\n")
    os.utime(lists / "test_filtered.txt", (newer, newer))
    (lists / "train_filtered.txt").write_text("")
    prepare_gtzan(tree["root"], tmp_path / "out", split_folder=lists, allow_missing=True)
    assert manifest_labels(folder, "test") == {"jazz.00073": "jazz", "jazz.00000": "jazz"}


def test_cli(tmp_path, capsys):
    tree = write_gtzan_tree(tmp_path / "gtzan", "original")
    out = tmp_path / "out"
    assert main(["--data_folder", str(tree["root"]), "--save_folder", str(out),
                 "--allow_missing"]) == 0
    assert manifest_labels(out / "gtzan", "valid") == tree["splits"]["valid"]
    assert "skipped: 920 missing, 0 unreadable, 1 excluded" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["--data_folder", str(tmp_path / "nowhere"), "--save_folder", str(out)])
    assert exit_info.value.code == 1
    assert "GTZAN data folder not found" in capsys.readouterr().err
