"""Tests of the NSynth preparation on a tiny native-layout tree."""
import json
import logging
import os
import time

import pytest

from muselq_sb.dataio.manifest import read_manifest, read_task
from muselq_sb.prepare.common import PrepareError
from muselq_sb.prepare.nsynth import FAMILIES, main, prepare_nsynth
from tests.fixtures.nsynth import write_nsynth_tree


@pytest.fixture
def tree(tmp_path):
    return write_nsynth_tree(tmp_path / "nsynth")


def examples_path(tree, split):
    return tree["root"] / f"nsynth-{split}" / "examples.json"


def edit_entry(tree, split, note, **fields):
    """Changes fields of one entry, keeping the file's indented layout."""
    path = examples_path(tree, split)
    examples = json.loads(path.read_text())
    examples[note].update(fields)
    path.write_text(json.dumps(examples, indent=4))
    return path


def line_of(path, note):
    lines = path.read_text().splitlines()
    return next(i for i, l in enumerate(lines, 1) if f'"{note}": {{' in l)


def test_instrument_and_pitch_tasks(tree, tmp_path):
    instrument, pitch = prepare_nsynth(tree["root"], tmp_path / "out")
    info_i, info_p = read_task(instrument), read_task(pitch)
    assert (info_i["name"], info_i["type"], info_i["target"]) == (
        "nsynth_instrument", "multiclass", "label")
    assert info_i["classes"] == list(FAMILIES) and len(FAMILIES) == 11
    assert (info_p["name"], info_p["type"], info_p["target"]) == (
        "nsynth_pitch", "multiclass", "pitch")
    assert info_p["classes"] == [str(p) for p in range(128)]
    assert info_i["metrics"] == info_p["metrics"] == ["accuracy"]
    for split, notes in tree["notes"].items():
        rows_i = read_manifest(instrument / f"{split}.csv")
        rows_p = read_manifest(pitch / f"{split}.csv")
        assert [r["ID"] for r in rows_i] == list(notes)
        assert [r["ID"] for r in rows_p] == list(notes)
        for row_i, row_p in zip(rows_i, rows_p):
            family, midi = notes[row_i["ID"]]
            assert row_i["label"] == family
            assert row_p["pitch"] == str(midi)
            assert row_i["path"] == str(
                tree["root"] / f"nsynth-{split}" / "audio"
                / f"{row_i['ID']}.wav")
            assert float(row_i["duration"]) == pytest.approx(0.25)
            assert "pitch" not in row_i and "label" not in row_p


def test_missing_wav_raises_or_is_skipped(tree, tmp_path):
    note = "brass_acoustic_006-070-075"
    os.remove(tree["root"] / "nsynth-valid" / "audio" / f"{note}.wav")
    path = examples_path(tree, "valid")
    with pytest.raises(PrepareError, match=f"{note}.wav not found") as err:
        prepare_nsynth(tree["root"], tmp_path / "out")
    assert str(err.value).startswith(f"{path}:{line_of(path, note)}:")
    assert not (tmp_path / "out" / "nsynth_instrument").exists()
    instrument, _ = prepare_nsynth(tree["root"], tmp_path / "out",
                                   allow_missing=True)
    assert read_task(instrument)["skipped"] == {"missing": 1,
                                                "unreadable": 0}
    assert read_task(instrument)["skipped_paths"]["missing"] == [
        str(tree["root"] / "nsynth-valid" / "audio" / f"{note}.wav")]
    valid = read_manifest(instrument / "valid.csv")
    assert [r["ID"] for r in valid] == ["guitar_electronic_012-064-050"]


def test_missing_examples_json(tree, tmp_path):
    os.remove(examples_path(tree, "test"))
    with pytest.raises(PrepareError, match="examples.json not found") as err:
        prepare_nsynth(tree["root"], tmp_path / "out")
    assert err.value.path == str(examples_path(tree, "test"))


def test_malformed_json_names_the_line(tree, tmp_path):
    path = examples_path(tree, "train")
    lines = path.read_text().splitlines()
    lines[5] = lines[5].rstrip(",")  # drop a comma between two fields
    path.write_text("\n".join(lines))
    with pytest.raises(PrepareError, match="not valid JSON") as err:
        prepare_nsynth(tree["root"], tmp_path / "out")
    assert err.value.path == str(path) and err.value.line == 7


@pytest.mark.parametrize("fields, message", [
    ({"instrument_family_str": "kazoo"}, "unknown instrument_family_str"),
    ({"instrument_family": 3}, "does not match instrument_family_str"),
    ({"pitch": 128}, "pitch must be an integer in 0..127"),
    ({"pitch": "60"}, "pitch must be an integer in 0..127"),
])
def test_bad_entry_names_file_and_line(tree, tmp_path, fields, message):
    note = "keyboard_acoustic_004-060-025"
    path = edit_entry(tree, "train", note, **fields)
    with pytest.raises(PrepareError, match=message) as err:
        prepare_nsynth(tree["root"], tmp_path / "out")
    assert str(err.value).startswith(f"{path}:{line_of(path, note)}:")
    assert note in str(err.value)


def test_entry_without_fields(tree, tmp_path):
    path = examples_path(tree, "test")
    examples = json.loads(path.read_text())
    del examples["flute_acoustic_002-077-100"]["pitch"]
    path.write_text(json.dumps(examples))  # single-line variant
    with pytest.raises(PrepareError, match=r"lacks fields \['pitch'\]") as e:
        prepare_nsynth(tree["root"], tmp_path / "out")
    assert str(e.value).startswith(f"{path}:1:")


def test_corrupt_wav_is_logged_and_skipped(tree, tmp_path, caplog):
    bad = tree["root"] / "nsynth-test" / "audio" / (
        "mallet_acoustic_047-094-025.wav")
    bad.write_bytes(b"RIFF....WAVEjunk")
    with caplog.at_level(logging.WARNING):
        instrument, pitch = prepare_nsynth(tree["root"], tmp_path / "out")
    assert str(bad) in caplog.text
    assert read_task(pitch)["skipped"] == {"missing": 0, "unreadable": 1}
    assert read_task(pitch)["skipped_paths"]["unreadable"] == [str(bad)]
    assert [r["ID"] for r in read_manifest(pitch / "test.csv")] == [
        "flute_acoustic_002-077-100"]


def test_skips_when_up_to_date(tree, tmp_path):
    folders = prepare_nsynth(tree["root"], tmp_path / "out")
    outputs = sorted(p for f in folders for p in f.iterdir())
    before = [p.stat().st_mtime_ns for p in outputs]
    prepare_nsynth(tree["root"], tmp_path / "out")
    assert [p.stat().st_mtime_ns for p in outputs] == before
    later = time.time() + 10
    os.utime(examples_path(tree, "valid"), (later, later))
    prepare_nsynth(tree["root"], tmp_path / "out")
    assert [p.stat().st_mtime_ns for p in outputs] != before


def test_main(tree, tmp_path, capsys):
    assert main(["--data_folder", str(tree["root"]),
                 "--save_folder", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "task nsynth_instrument" in out and "task nsynth_pitch" in out


def test_completed_download_is_prepared_again(tree, tmp_path):
    note = "flute_acoustic_002-077-100"
    wav = tree["root"] / "nsynth-test" / "audio" / f"{note}.wav"
    content = wav.read_bytes()
    wav.unlink()
    instrument, _ = prepare_nsynth(tree["root"], tmp_path / "out",
                                   allow_missing=True)
    assert read_task(instrument)["skipped"]["missing"] == 1
    wav.write_bytes(content)
    later = time.time() + 10
    os.utime(wav.parent, (later, later))
    prepare_nsynth(tree["root"], tmp_path / "out", allow_missing=True)
    assert read_task(instrument)["skipped"]["missing"] == 0
    assert note in {r["ID"] for r in read_manifest(instrument / "test.csv")}
