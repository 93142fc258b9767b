"""Tests of the GiantSteps key preparation on tiny copies of both repositories."""
import os

import mir_eval
import pytest

from muselq_sb.dataio.manifest import read_manifest, read_task
from muselq_sb.prepare.common import PrepareError
from muselq_sb.prepare.giantsteps import (
    KEYS,
    SPLIT_FILE,
    main,
    parse_key,
    prepare_giantsteps,
)
from tests.fixtures.giantsteps import listed_songs, write_giantsteps_tree
from tests.fixtures.manifests import manifest_labels, whole_recording_rows


def list_line(song_id):
    """The line of the shipped split list naming ``song_id``."""
    return 2 + [s[0] for s in listed_songs()].index(song_id)


def annotations_line(tree, song_id):
    lines = (tree["mtg_root"] / "annotations" / "annotations.txt").read_text().splitlines()
    return 1 + [line.split("\t")[0] for line in lines].index(song_id)


def set_mtg_row(tree, song_id, row):
    path = tree["mtg_root"] / "annotations" / "annotations.txt"
    lines = path.read_text().splitlines()
    lines[annotations_line(tree, song_id) - 1] = row
    path.write_text("\n".join(lines) + "\n")
    return path


def test_splits_and_labels(tmp_path):
    tree = write_giantsteps_tree(tmp_path / "gs")
    folder = prepare_giantsteps(tree["root"], tmp_path / "out", allow_missing=True)
    assert folder == tmp_path / "out" / "giantsteps_key"
    for split, expected in tree["splits"].items():
        assert manifest_labels(folder, split) == expected
        for row in whole_recording_rows(folder, split, tree["paths"], 0.4, abs=0.01):
            assert row["group"] == row["ID"]  # whole recordings
    info = read_task(folder)
    assert (info["type"], info["target"]) == ("multiclass", "label")
    assert info["classes"] == list(KEYS) and len(set(KEYS)) == 24
    assert info["metrics"] == ["key_weighted", "accuracy"]
    assert info["skipped"] == {"missing": 1763 - 8, "unreadable": 0}
    assert len(info["skipped_paths"]["missing"]) == 1000  # MAX_SKIPPED_PATHS


def test_class_names_are_mir_eval_keys():
    for key in KEYS:
        mir_eval.key.validate_key(key)
    assert KEYS[:3] == ("C major", "Db major", "D major")
    assert KEYS[12:] == tuple(f"{t} minor" for t in
                              "C Db D Eb E F Gb G Ab A Bb B".split())


@pytest.mark.parametrize("text,key", [
    ("C minor", "C minor"), ("d minor", "D minor"), ("D# minor", "Eb minor"),
    ("A# major", "Bb major"), ("B major ", "B major"), ("gb minor", "Gb minor"),
    ("Cb major", "B major"), ("E# minor", "F minor"),
])
def test_parse_key(text, key):
    assert parse_key(text) == key


@pytest.mark.parametrize("text", [
    "-", "", "F minor / G# major", "A/E major", "G minor/major", "H major",
    "C dorian", "C#b major", "C",
])
def test_parse_key_rejects(text):
    with pytest.raises(ValueError, match="unparseable key"):
        parse_key(text)


def test_missing_audio_is_an_error_by_default(tmp_path):
    tree = write_giantsteps_tree(tmp_path / "gs")
    with pytest.raises(PrepareError, match="5061 not found") as err:
        prepare_giantsteps(tree["root"], tmp_path / "out")
    assert (err.value.path, err.value.line) == (str(SPLIT_FILE), 2)
    assert not (tmp_path / "out" / "giantsteps_key" / "task.json").exists()


def test_corrupt_audio_is_skipped_and_counted(tmp_path):
    tree = write_giantsteps_tree(tmp_path / "gs")
    tree["paths"]["74982"].write_bytes(b"\xff\xfb\x90" + b"\x00" * 30)
    folder = prepare_giantsteps(tree["root"], tmp_path / "out", allow_missing=True)
    assert set(manifest_labels(folder, "test")) == {"61415", "101069"}
    assert read_task(folder)["skipped"]["unreadable"] == 1
    assert read_task(folder)["skipped_paths"]["unreadable"] == [str(tree["paths"]["74982"])]


def test_bad_test_key_file(tmp_path):
    tree = write_giantsteps_tree(tmp_path / "gs")
    key_file = tree["key_root"] / "annotations" / "key" / "61415.LOFI.key"
    key_file.write_text("F mixolydian")
    with pytest.raises(PrepareError, match="unparseable key 'F mixolydian'") as err:
        prepare_giantsteps(tree["root"], tmp_path / "out", allow_missing=True)
    assert (err.value.path, err.value.line) == (str(key_file), 1)
    key_file.unlink()
    with pytest.raises(PrepareError, match="GiantSteps key annotation not found") as err:
        prepare_giantsteps(tree["root"], tmp_path / "out", allow_missing=True)
    assert err.value.path == str(key_file)


@pytest.mark.parametrize("row,message", [
    ("5881\tA major", "expected 3 tab-separated fields"),
    ("5881\tA/E major\t2", "unparseable key 'A/E major'"),
    ("5881\tA major\t1", "confidence C is '1', not 2"),
    ("5881\tA minor\t2", "annotated 'A minor' but the split list says 'A major'"),
])
def test_bad_mtg_annotation_rows(tmp_path, row, message):
    tree = write_giantsteps_tree(tmp_path / "gs")
    line = annotations_line(tree, "5881")
    path = set_mtg_row(tree, "5881", row)
    with pytest.raises(PrepareError, match=message) as err:
        prepare_giantsteps(tree["root"], tmp_path / "out", allow_missing=True)
    if "split list says" in message:  # the list line is named
        assert (err.value.path, err.value.line) == (str(SPLIT_FILE), list_line("5881"))
    else:
        assert (err.value.path, err.value.line) == (str(path), line)


def test_missing_annotations_and_unannotated_song(tmp_path):
    tree = write_giantsteps_tree(tmp_path / "gs")
    path = set_mtg_row(tree, "5881", "9000099\t-\t0")
    with pytest.raises(PrepareError, match="song 5881 of the split list"):
        prepare_giantsteps(tree["root"], tmp_path / "out", allow_missing=True)
    path.unlink()
    with pytest.raises(PrepareError, match="MTG-key annotations not found") as err:
        prepare_giantsteps(tree["root"], tmp_path / "out", allow_missing=True)
    assert err.value.path == str(path)


def test_bad_split_file(tmp_path):
    tree = write_giantsteps_tree(tmp_path / "gs")
    split_file = tmp_path / "split.tsv"
    split_file.write_text("id\tsource\tsplit\tkey\tn_30s_clips\n"
                          "5881\tgiantsteps-mtg-key\ttrain\tA major\t4\n"
                          "61415\tgiantsteps-mtg-key\ttest\tF minor\t4\n")
    with pytest.raises(PrepareError, match="split 'test' or source") as err:
        prepare_giantsteps(tree["root"], tmp_path / "out", split_file=split_file)
    assert (err.value.path, err.value.line) == (str(split_file), 3)


def test_own_split_file_and_up_to_date(tmp_path):
    tree = write_giantsteps_tree(tmp_path / "gs")
    split_file = tmp_path / "split.tsv"
    split_file.write_text("id\tsource\tsplit\tkey\tn_30s_clips\n"
                          "5881\tgiantsteps-mtg-key\ttrain\tA major\t4\n"
                          "33846\tgiantsteps-mtg-key\tvalid\tC minor\t4\n"
                          "61415\tgiantsteps-key\ttest\tF minor\t4\n")
    folder = prepare_giantsteps(tree["root"], tmp_path / "out", split_file=split_file)
    assert [manifest_labels(folder, s) for s in ("train", "valid", "test")] == [
        {"5881": "A major"}, {"33846": "C minor"}, {"61415": "F minor"}]
    outputs = [folder / n for n in ("train.csv", "valid.csv", "test.csv", "task.json")]
    old = [p.stat().st_mtime_ns for p in outputs]
    prepare_giantsteps(tree["root"], tmp_path / "out", split_file=split_file)
    assert [p.stat().st_mtime_ns for p in outputs] == old
    key_file = tree["key_root"] / "annotations" / "key" / "61415.LOFI.key"
    newer = outputs[-1].stat().st_mtime + 10
    os.utime(key_file, (newer, newer))
    prepare_giantsteps(tree["root"], tmp_path / "out", split_file=split_file)
    assert outputs[-1].stat().st_mtime_ns != old[-1]


def test_cli(tmp_path):
    tree = write_giantsteps_tree(tmp_path / "gs")
    moved = tmp_path / "elsewhere"
    tree["key_root"].rename(moved)
    out = tmp_path / "out"
    assert main(["--data_folder", str(tree["root"]), "--save_folder", str(out),
                 "--key_dataset", str(moved), "--allow_missing"]) == 0
    rows = read_manifest(out / "giantsteps_key" / "test.csv")
    assert {r["ID"]: r["label"] for r in rows} == tree["splits"]["test"]
    assert all(r["path"].startswith(str(moved)) for r in rows)
