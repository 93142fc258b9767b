"""Tests of the MagnaTagATune preparation on a tiny tree in the native layout."""
import os

import pytest

from muselq_sb.dataio.manifest import read_manifest, read_task
from muselq_sb.prepare.common import PrepareError
from muselq_sb.prepare.mtat import TOP50, main, prepare_mtat
from tests.fixtures.manifests import whole_recording_rows
from tests.fixtures.mtat import write_mtat_tree


def manifest_tags(folder, split):
    return {r["ID"]: [t for t in r["tags"].split(";") if t]
            for r in read_manifest(folder / f"{split}.csv")}


def edit_line(path, line_no, edit):
    lines = path.read_text().split("\n")
    lines[line_no - 1] = edit(lines[line_no - 1])
    path.write_text("\n".join(lines))


def test_splits_and_tags(tmp_path, caplog):
    tree = write_mtat_tree(tmp_path / "mtat")
    folder = prepare_mtat(tree["root"], tmp_path / "out")
    assert "mtat valid: no clip has the tags ['classical', 'slow'," in caplog.text
    assert folder == tmp_path / "out" / "mtat"
    for split, expected in tree["splits"].items():
        assert manifest_tags(folder, split) == expected
        for row in whole_recording_rows(folder, split, tree["paths"], 0.3, abs=0.01):
            assert "group" not in row  # one clip per item, nothing to average
    assert manifest_tags(folder, "train")["13"] == []  # kept, as MARBLE does
    info = read_task(folder)
    assert (info["type"], info["target"]) == ("multilabel", "tags")
    assert info["classes"] == list(TOP50) and len(set(TOP50)) == 50
    assert info["metrics"] == ["roc_auc", "ap"]
    assert info["skipped"] == {"missing": 0, "unreadable": 0, "untagged": 0}


def test_drop_untagged_and_corrupt_audio(tmp_path):
    tree = write_mtat_tree(tmp_path / "mtat")
    tree["paths"]["10"].write_bytes(b"\xff\xfb" + b"\x00" * 64)
    folder = prepare_mtat(tree["root"], tmp_path / "out", drop_untagged=True)
    assert set(manifest_tags(folder, "train")) == {"6"}
    info = read_task(folder)
    assert info["skipped"] == {"missing": 0, "unreadable": 1, "untagged": 1}
    assert tree["untagged"] == ["13"]
    assert info["skipped_paths"] == {
        "missing": [], "unreadable": [str(tree["paths"]["10"])],
        "untagged": [str(tree["paths"]["13"])]}


def test_missing_audio(tmp_path):
    tree = write_mtat_tree(tmp_path / "mtat")
    tree["paths"]["34"].unlink()
    annotations = tree["root"] / "annotations_final.csv"
    with pytest.raises(PrepareError, match="34 not found") as err:
        prepare_mtat(tree["root"], tmp_path / "out")
    assert (err.value.path, err.value.line) == (str(annotations), 7)
    assert not (tmp_path / "out" / "mtat" / "task.json").exists()
    folder = prepare_mtat(tree["root"], tmp_path / "out", allow_missing=True)
    assert set(manifest_tags(folder, "test")) == {"2", "40"}
    assert read_task(folder)["skipped"]["missing"] == 1
    assert read_task(folder)["skipped_paths"]["missing"] == [str(tree["paths"]["34"])]


@pytest.mark.parametrize("line_no,edit,message", [
    (3, lambda s: s.rsplit("\t", 1)[0], "expected 58 tab-separated fields, found 57"),
    (4, lambda s: s.replace('"0"', '"2"', 1), "tag values must be 0 or 1"),
    (5, lambda s: s.replace('"b/', '"x/'), "bad clip_id"),
    (1, lambda s: s.replace('"choral"', '"chorale"'), r"header lacks columns \['choral'\]"),
])
def test_malformed_annotations(tmp_path, line_no, edit, message):
    tree = write_mtat_tree(tmp_path / "mtat")
    annotations = tree["root"] / "annotations_final.csv"
    edit_line(annotations, line_no, edit)
    with pytest.raises(PrepareError, match=message) as err:
        prepare_mtat(tree["root"], tmp_path / "out")
    assert (err.value.path, err.value.line) == (str(annotations), line_no)


def test_missing_annotation_file(tmp_path):
    tree = write_mtat_tree(tmp_path / "mtat")
    (tree["root"] / "annotations_final.csv").unlink()
    with pytest.raises(PrepareError, match="MTAT annotations not found") as err:
        prepare_mtat(tree["root"], tmp_path / "out")
    assert err.value.path == str(tree["root"] / "annotations_final.csv")


def test_skips_work_when_up_to_date(tmp_path):
    tree = write_mtat_tree(tmp_path / "mtat")
    folder = prepare_mtat(tree["root"], tmp_path / "out")
    task_json = folder / "task.json"
    old = [(folder / f).stat().st_mtime_ns for f in ("train.csv", "task.json")]
    prepare_mtat(tree["root"], tmp_path / "out")
    assert [(folder / f).stat().st_mtime_ns for f in ("train.csv", "task.json")] == old
    annotations = tree["root"] / "annotations_final.csv"
    edit_line(annotations, 8, lambda s: "")  # drop clip 40
    newer = task_json.stat().st_mtime + 10
    os.utime(annotations, (newer, newer))
    prepare_mtat(tree["root"], tmp_path / "out")
    assert set(manifest_tags(folder, "test")) == {"2", "34"}


def test_cli(tmp_path):
    tree = write_mtat_tree(tmp_path / "mtat")
    out = tmp_path / "out"
    assert main(["--data_folder", str(tree["root"]), "--save_folder", str(out),
                 "--drop_untagged"]) == 0
    assert manifest_tags(out / "mtat", "valid") == tree["splits"]["valid"]
    assert read_task(out / "mtat")["options"]["drop_untagged"] is True
