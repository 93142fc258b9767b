"""Tests of the pre-training preparation (Music4All, FMA, folder, demo, mixed)."""
from __future__ import annotations

import os
import time

import pytest

from muselq_sb.dataio.manifest import read_manifest, read_task
from muselq_sb.prepare import __main__ as prepare_cli
from muselq_sb.prepare.common import PrepareError
from muselq_sb.prepare.fma import list_fma, read_fma_tracks
from muselq_sb.prepare.folder import list_folder
from muselq_sb.prepare.music4all import list_music4all
from muselq_sb.prepare.common import write_pretrain_task
from muselq_sb.prepare.pretrain import prepare_pretrain
from tests.fixtures.audio import write_audio
from tests.fixtures.fma import write_fma
from tests.fixtures.music4all import MISSING, UNREADABLE, write_music4all


def _rows(folder):
    return {s: read_manifest(folder / f"{s}.csv") for s in ("train", "valid")}


def _all_rows(folder):
    rows = _rows(folder)
    return rows["train"] + rows["valid"]


def test_music4all_segments_item_by_item(tmp_path):
    root = write_music4all(tmp_path / "music4all")
    folder = prepare_pretrain([{"type": "music4all", "path": root}], tmp_path / "out",
                              segment_seconds=2.0, valid_fraction=0.0)
    rows = {r["ID"]: r for r in _all_rows(folder)}
    expected = {  # 3 s, 2 s and 5 s songs, 2 s segments, last kept if >= 1 s
        "m4a_0009fFIM1eYThaPg-0000": (0, 2), "m4a_0009fFIM1eYThaPg-0001": (2, 3),
        "m4a_001sB6lDD3xhzBpG-0000": (0, 2),
        "m4a_00AQNp8DtDUv3ZQV-0000": (0, 2), "m4a_00AQNp8DtDUv3ZQV-0001": (2, 4),
        "m4a_00AQNp8DtDUv3ZQV-0002": (4, 5),
    }
    assert set(rows) == set(expected)
    for item_id, (start, stop) in expected.items():
        row = rows[item_id]
        assert (float(row["start"]), float(row["stop"])) == (start, stop)
        assert float(row["duration"]) == stop - start
        song = item_id[4:-5]
        assert row["path"] == str((root / "audios" / f"{song}.mp3").resolve())
        assert row["group"] == f"m4a_{song}"
    info = read_task(folder)
    assert info["type"] == "pretrain"
    assert (info["n_unreadable"], info["n_missing"], info["n_tracks"]) == (1, 1, 3)


def test_music4all_listing_counts_missing_audio(tmp_path):
    listing = list_music4all(write_music4all(tmp_path / "m"))
    ids = [t for t, _ in listing.tracks]
    assert f"m4a_{UNREADABLE}" in ids and f"m4a_{MISSING}" not in ids
    assert listing.n_missing == 1
    assert listing.inputs == [tmp_path / "m" / "id_information.csv"]


def test_music4all_missing_annotations_raise(tmp_path):
    root = write_music4all(tmp_path / "m")
    (root / "id_information.csv").unlink()
    with pytest.raises(PrepareError, match="id_information.csv") as info:
        list_music4all(root)
    assert info.value.path == str(root / "id_information.csv")


@pytest.mark.parametrize("line, bad, message", [
    (3, "0009fFIM1eYThaPg\tCher\tBelieve", "expected 4 tab-separated fields"),
    (2, "bad id!\tX\tY\tZ", "malformed song id"),
    (4, "0009fFIM1eYThaPg\tCher\tBelieve\tBelieve", "duplicate song id"),
])
def test_music4all_bad_rows_name_file_and_line(tmp_path, line, bad, message):
    root = write_music4all(tmp_path / "m", missing=False, unreadable=False)
    path = root / "id_information.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines.insert(line - 1, bad)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(PrepareError, match=message) as info:
        list_music4all(root)
    assert (info.value.path, info.value.line) == (str(path), line)


def test_music4all_comma_separated_file_is_rejected(tmp_path):
    root = write_music4all(tmp_path / "m", missing=False, unreadable=False)
    (root / "id_information.csv").write_text("id,artist,song,album_name\n")
    with pytest.raises(PrepareError, match="tab-separated header") as info:
        list_music4all(root)
    assert info.value.line == 1


def test_fma_membership_skips_broken_short_and_missing(tmp_path):
    root = write_fma(tmp_path / "fma")
    folder = prepare_pretrain([{"type": "fma", "path": root}], tmp_path / "out",
                              segment_seconds=2.0, valid_fraction=0.0)
    ids = sorted(r["ID"] for r in _all_rows(folder))
    assert ids == ["fma_000002-0000", "fma_000002-0001", "fma_000005-0000",
                   "fma_000140-0000", "fma_000140-0001", "fma_001234-0000"]
    rows = {r["ID"]: r for r in _all_rows(folder)}
    assert rows["fma_000140-0001"]["path"].endswith("fma_large/000/000140.mp3")
    info = read_task(folder)
    assert (info["n_unreadable"], info["n_missing"], info["n_too_short"]) == (1, 1, 1)


def test_fma_excludes_splits_and_subsets_and_reads_full(tmp_path):
    root = write_fma(tmp_path / "fma", audio="fma_full")
    ids = [t for t, _ in list_fma(root, exclude_splits=["validation", "test"]).tracks]
    assert ids == ["fma_000002", "fma_000005", "fma_099134", "fma_108925"]
    ids = [t for t, _ in list_fma(root, subset="small").tracks]
    assert ids == ["fma_000002", "fma_099134"]
    assert list_fma(root).tracks[0][1] == (root / "fma_full" / "000" / "000002.mp3").resolve()
    with pytest.raises(ValueError, match="unknown FMA splits"):
        list_fma(root, exclude_splits=["val"])


def test_fma_tracks_csv_quirks_are_parsed(tmp_path):
    root = write_fma(tmp_path / "fma")
    tracks = read_fma_tracks(root / "fma_metadata" / "tracks.csv")
    assert tracks[140] == {"subset": "large", "split": "validation"}  # multi-line title
    assert len(tracks) == 7


def _edit_tracks(root, edit):
    path = root / "fma_metadata" / "tracks.csv"
    lines = path.read_text(encoding="utf-8").split("\n")
    path.write_text("\n".join(edit(lines)), encoding="utf-8")
    return path


@pytest.mark.parametrize("edit, line, message", [
    (lambda ls: ls[:3] + ["2,0,[]"] + ls[4:], 4, "expected 11 fields"),
    (lambda ls: ls[:3] + ["x" + ls[3]] + ls[4:], 4, "not an integer"),
    (lambda ls: ls[:3] + [ls[3].replace("small", "tiny")] + ls[4:], 4, "subset 'tiny'"),
    (lambda ls: ls[:2] + ls[3:], 3, "three-row FMA header"),
    (lambda ls: ls[:-1] + [ls[3], ""], 12, "duplicate track id 2"),  # 140 spans 2 lines
])
def test_fma_malformed_tracks_csv_names_file_and_line(tmp_path, edit, line, message):
    root = write_fma(tmp_path / "fma")
    path = _edit_tracks(root, edit)
    with pytest.raises(PrepareError, match=message) as info:
        list_fma(root)
    assert (info.value.path, info.value.line) == (str(path), line)


def test_fma_missing_metadata_raises(tmp_path):
    root = write_fma(tmp_path / "fma")
    (root / "fma_metadata" / "tracks.csv").unlink()
    with pytest.raises(PrepareError, match="tracks.csv not found"):
        list_fma(root)


def test_folder_recursive_any_extension_skips_unreadable(tmp_path):
    root = tmp_path / "music"
    for rel in ["a.wav", "sub/b.flac", "sub/deeper/c.ogg", "d.MP3", "e.au"]:
        write_audio(root / rel.lower() if rel.endswith("MP3") else root / rel, seconds=1.5)
    os.rename(root / "d.mp3", root / "d.MP3")
    (root / "notes.txt").write_text("not audio")
    (root / "sub" / "broken.wav").write_bytes(b"RIFF....junk")
    listing = list_folder(root)
    assert [t for t, _ in listing.tracks] == [
        "folder_a.wav", "folder_d.MP3", "folder_e.au", "folder_sub_b.flac",
        "folder_sub_broken.wav", "folder_sub_deeper_c.ogg"]
    folder = prepare_pretrain([{"type": "folder", "path": root}], tmp_path / "out",
                              segment_seconds=1.0, min_segment_seconds=0.5,
                              valid_fraction=0.0)
    assert len(_all_rows(folder)) == 10  # 5 readable files x 2 segments
    assert read_task(folder)["n_unreadable"] == 1


def test_mixed_sources_hold_out_whole_tracks(tmp_path):
    sources = [{"type": "music4all", "path": write_music4all(tmp_path / "m")},
               {"type": "fma", "path": write_fma(tmp_path / "f")},
               {"type": "folder", "path": tmp_path / "f" / "fma_large" / "001"}]
    folder = prepare_pretrain(sources, tmp_path / "out", segment_seconds=1.0,
                              valid_fraction=0.3, seed=3)
    rows = _rows(folder)
    train_groups = {r["group"] for r in rows["train"]}
    valid_groups = {r["group"] for r in rows["valid"]}
    assert train_groups.isdisjoint(valid_groups)
    assert len(valid_groups) == round(0.3 * len(train_groups | valid_groups))
    ids = [r["ID"] for r in rows["train"] + rows["valid"]]
    assert len(ids) == len(set(ids))
    assert {g.split("_")[0] for g in train_groups | valid_groups} == {"m4a", "fma", "folder"}


def test_write_pretrain_task_split_is_seeded_and_by_group(tmp_path):
    rows = [{"ID": f"{g}-{k}", "path": "/a.wav", "duration": 1.0, "group": g}
            for g in "abcdefghij" for k in range(3)]
    a = write_pretrain_task(tmp_path / "a", rows, 0.2, seed=5)
    b = write_pretrain_task(tmp_path / "b", rows, 0.2, seed=5)
    assert (a / "valid.csv").read_text() == (b / "valid.csv").read_text()
    valid = read_manifest(a / "valid.csv")
    assert len(valid) == 6 and len({r["group"] for r in valid}) == 2


def test_up_to_date_output_is_not_rewritten(tmp_path):
    root = write_music4all(tmp_path / "m")
    sources = [{"type": "music4all", "path": root}]
    folder = prepare_pretrain(sources, tmp_path / "out", segment_seconds=2.0)
    stamp = (folder / "task.json").stat().st_mtime_ns
    prepare_pretrain(sources, tmp_path / "out", segment_seconds=2.0)
    assert (folder / "task.json").stat().st_mtime_ns == stamp
    prepare_pretrain(sources, tmp_path / "out", segment_seconds=1.0)  # new config
    assert read_task(folder)["segment_seconds"] == 1.0
    stamp = (folder / "task.json").stat().st_mtime_ns
    future = time.time() + 10
    os.utime(root / "id_information.csv", (future, future))  # annotations changed
    prepare_pretrain(sources, tmp_path / "out", segment_seconds=1.0)
    assert (folder / "task.json").stat().st_mtime_ns != stamp


def test_unknown_source_type_lists_valid_ones(tmp_path):
    with pytest.raises(ValueError, match="expected one of"):
        prepare_pretrain([{"type": "spotify", "path": tmp_path}], tmp_path)


def test_cli_through_dispatcher_and_errors(tmp_path, capsys):
    root = write_fma(tmp_path / "fma")
    status = prepare_cli.main(["fma", "--data_folder", str(root), "--save_folder",
                               str(tmp_path / "out"), "--segment_seconds", "2"])
    assert status == 0 and len(_all_rows(tmp_path / "out" / "pretrain")) == 6
    assert "task pretrain (pretrain)" in capsys.readouterr().out
    (tmp_path / "m").mkdir()
    status = prepare_cli.main(["music4all", "--data_folder", str(tmp_path / "m"),
                               "--save_folder", str(tmp_path / "out2")])
    assert status == 1
    assert "id_information.csv not found" in capsys.readouterr().err


def test_demo_source(tmp_path):
    from muselq_sb.prepare.demo import build_demo_corpus
    from muselq_sb.prepare.pretrain import main

    root = build_demo_corpus(tmp_path / "demo", n_music=2, n_notes=1, n_voice=1,
                             clip_seconds=2.0, workers=1, progress=False)
    assert main(["--source", f"demo:{root}", "--save_folder", str(tmp_path / "out"),
                 "--segment_seconds", "1.5", "--valid_fraction", "0"]) == 0
    folder = tmp_path / "out" / "pretrain"
    ids = sorted(r["ID"] for r in _all_rows(folder))
    assert ids == ["demo_music_music_0000.wav-0000",  # 2 s: the 0.5 s tail is dropped
                   "demo_music_music_0001.wav-0000",
                   "demo_note_note_0000.wav-0000", "demo_note_note_0000.wav-0001",
                   "demo_note_note_0000.wav-0002",
                   "demo_voice_voice_0000.wav-0000", "demo_voice_voice_0000.wav-0001",
                   "demo_voice_voice_0000.wav-0002"]


def test_recipe_keeps_a_demo_corpus_built_with_other_sizes(tmp_path):
    """``--demo_folder`` at a corpus the CLI built bigger: trained on as it
    is, never deleted and rebuilt with the default sizes; another seed there
    is an error naming the folder."""
    from muselq_sb.prepare.demo import build_demo_corpus
    from muselq_sb.pretrain.data import prepare_data

    root = build_demo_corpus(tmp_path / "demo", seed=1, n_music=3, n_notes=2, n_voice=2,
                             clip_seconds=1.0, workers=1, progress=False)
    before = sorted(p.name for p in (root / "audio").rglob("*.wav"))
    hp = {"data_sources": None, "data_folder": None, "demo_folder": str(root),
          "demo_seed": 1, "prepare_folder": str(tmp_path / "prep"),
          "segment_seconds": 10.0, "valid_fraction": 0.0, "seed": 0}
    folder = prepare_data(hp)
    assert sorted(p.name for p in (root / "audio").rglob("*.wav")) == before
    assert len(_all_rows(folder)) == len(before) == 7
    with pytest.raises(ValueError, match=f"demo_folder {root}: .*seed 1.*not seed 0"):
        prepare_data({**hp, "demo_seed": 0, "prepare_folder": str(tmp_path / "prep0")})
    assert sorted(p.name for p in (root / "audio").rglob("*.wav")) == before
