"""Tests of the MTG-Jamendo preparation on a tiny copy of the native layout."""
import os

import pytest

from muselq_sb.dataio.manifest import read_manifest, read_task
from muselq_sb.prepare.common import PrepareError
from muselq_sb.prepare.mtg_jamendo import TASKS, main, prepare_mtg_jamendo
from tests.fixtures.manifests import whole_recording_rows
from tests.fixtures.mtg_jamendo import write_mtg_jamendo_tree

SPLITS = ("train", "valid", "test")


def manifest_tags(folder, split):
    return {r["ID"]: r["tags"].split(";") for r in read_manifest(folder / f"{split}.csv")}


def split_tsv(tree, subset, split="train"):
    return tree["root"] / "data" / "splits" / "split-0" / f"autotagging_{subset}-{split}.tsv"


@pytest.mark.parametrize("quality", ["low", "full"])
def test_all_tasks_splits_and_tags(tmp_path, quality):
    tree = write_mtg_jamendo_tree(tmp_path / "mtg", quality)
    folders = prepare_mtg_jamendo(tree["root"], tmp_path / "out", audio_quality=quality)
    assert [f.name for f in folders] == list(TASKS)
    for folder in folders:
        expected = tree["tasks"][folder.name]
        for split in SPLITS:
            assert manifest_tags(folder, split) == expected[split]
            rows = whole_recording_rows(folder, split, tree["paths"], 0.3, abs=0.01)
            assert all(r["group"] == r["ID"] for r in rows)  # whole recordings
        info = read_task(folder)
        assert (info["name"], info["type"], info["target"]) == (folder.name, "multilabel", "tags")
        assert info["classes"] == list(TASKS[folder.name][1])
        assert info["metrics"] == ["roc_auc", "ap"]
    assert "track_0000534" not in manifest_tags(folders[0], "valid")  # no top-50 tag
    assert len(read_task(folders[0])["classes"]) == 50
    assert [len(read_task(f)["classes"]) for f in folders[1:]] == [87, 40, 56]


def test_missing_and_corrupt_audio(tmp_path):
    tree = write_mtg_jamendo_tree(tmp_path / "mtg")
    tree["paths"]["track_0000382"].unlink()
    tree["paths"]["track_0001234"].write_bytes(b"ID3" + b"\x00" * 40)
    with pytest.raises(PrepareError, match="track_0000382 not found") as err:
        prepare_mtg_jamendo(tree["root"], tmp_path / "out")
    # mtg_top50 is written, the valid TSV of mtg_top50 names the track on line 2
    assert (err.value.path, err.value.line) == (str(split_tsv(tree, "top50tags", "validation")), 2)
    assert not (tmp_path / "out" / "mtg_genre").exists()
    folders = prepare_mtg_jamendo(tree["root"], tmp_path / "out", allow_missing=True)
    instrument = folders[2]
    assert manifest_tags(instrument, "valid") == {}
    assert manifest_tags(instrument, "test") == {}
    assert read_task(instrument)["skipped"] == {"missing": 1, "unreadable": 1}
    assert read_task(instrument)["skipped_paths"] == {
        "missing": [str(tree["paths"]["track_0000382"])],
        "unreadable": [str(tree["paths"]["track_0001234"])]}
    assert set(manifest_tags(folders[3], "test")) == {"track_0014101"}


@pytest.mark.parametrize("edit,line,message", [
    (lambda ls: ls[:1] + ["track_0000241\tartist_000005\talbum_000033\t41/241.mp3\t340.1"]
     + ls[2:], 2, "expected at least 6 tab-separated fields"),
    (lambda ls: ls[:2] + [ls[2] + "\tgenre---polka"] + ls[3:], 3,
     r"unknown tags \['genre---polka'\]"),
    (lambda ls: ls[:2] + [ls[2] + "\tinstrument---piano"] + ls[3:], 3,
     r"unknown tags \['instrument---piano'\]"),
    (lambda ls: ls[:3] + [ls[3].replace("track_", "trk_")] + ls[4:], 4, "bad TRACK_ID"),
    (lambda ls: [ls[0].replace("TAGS", "TAG")] + ls[1:], 1, "header"),
])
def test_malformed_tsv(tmp_path, edit, line, message):
    tree = write_mtg_jamendo_tree(tmp_path / "mtg")
    tsv = split_tsv(tree, "genre")
    lines = tsv.read_bytes().decode().split("\r\n")
    tsv.write_bytes("\r\n".join(edit(lines)).encode())
    with pytest.raises(PrepareError, match=message) as err:
        prepare_mtg_jamendo(tree["root"], tmp_path / "out", tasks=["mtg_genre"])
    assert (err.value.path, err.value.line) == (str(tsv), line)


def test_missing_split_file_and_bad_options(tmp_path):
    tree = write_mtg_jamendo_tree(tmp_path / "mtg")
    tsv = split_tsv(tree, "moodtheme", "test")
    tsv.unlink()
    with pytest.raises(PrepareError, match="MTG-Jamendo split file not found") as err:
        prepare_mtg_jamendo(tree["root"], tmp_path / "out", tasks=["mtg_moodtheme"])
    assert err.value.path == str(tsv)
    with pytest.raises(ValueError, match="unknown tasks"):
        prepare_mtg_jamendo(tree["root"], tmp_path / "out", tasks=["mtg_mood"])
    with pytest.raises(ValueError, match="audio_quality"):
        prepare_mtg_jamendo(tree["root"], tmp_path / "out", audio_quality="high")


def test_skips_work_when_up_to_date(tmp_path):
    tree = write_mtg_jamendo_tree(tmp_path / "mtg")
    folders = prepare_mtg_jamendo(tree["root"], tmp_path / "out")
    outputs = [f / n for f in folders for n in ("train.csv", "test.csv", "task.json")]
    old = [p.stat().st_mtime_ns for p in outputs]
    prepare_mtg_jamendo(tree["root"], tmp_path / "out")
    assert [p.stat().st_mtime_ns for p in outputs] == old
    tsv = split_tsv(tree, "genre", "test")
    tsv.write_bytes(tsv.read_bytes().split(b"\r\n")[0] + b"\r\n")
    newer = outputs[-1].stat().st_mtime + 10
    os.utime(tsv, (newer, newer))
    prepare_mtg_jamendo(tree["root"], tmp_path / "out")
    assert manifest_tags(folders[1], "test") == {}
    assert [p.stat().st_mtime_ns for p in outputs[:3]] == old[:3]  # top50 untouched


def test_cli(tmp_path):
    tree = write_mtg_jamendo_tree(tmp_path / "mtg", "full")
    out = tmp_path / "out"
    assert main(["--data_folder", str(tree["root"]), "--save_folder", str(out),
                 "--audio_quality", "full", "--tasks", "mtg_genre", "mtg_moodtheme"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["mtg_genre", "mtg_moodtheme"]
    assert manifest_tags(out / "mtg_moodtheme", "test") == tree["tasks"]["mtg_moodtheme"]["test"]
