"""Tests of the Debian game-music preparation on small fake ``.deb`` files."""
import math
import os
import stat
import subprocess

import pytest

import muselq_sb.prepare.__main__ as dispatcher
from muselq_sb.dataio.manifest import SPLITS, read_manifest, read_task
from muselq_sb.prepare.common import PrepareError
from muselq_sb.prepare.debian_music import (
    PRETRAIN_FOLDER,
    PRETRAIN_LIST,
    prepare_debian_music,
)
from muselq_sb.prepare.folder import list_folder, track_id_from_path
from tests.fixtures.debian_music import (
    MIN_SECONDS,
    PACKAGES,
    TRACK_SECONDS,
    write_debian_music_debs,
)

OPTIONS = {"packages": PACKAGES, "min_track_seconds": MIN_SECONDS,
           "train_tracks": 1, "valid_tracks": 1, "test_tracks": 1,
           "excerpts_per_track": 4, "excerpt_seconds": 1.0}


@pytest.fixture(scope="module")
def debs(tmp_path_factory):
    return write_debian_music_debs(tmp_path_factory.mktemp("debian_music"))


def run(debs, out, cache, **options):
    return prepare_debian_music(out, cache_folder=cache,
                                deb_folder=debs["deb_folder"],
                                **{**OPTIONS, **options})


def tree(cache, package):
    return cache / "extracted" / f"{package}_1.0-1_all"


def sides(folder):
    """Track id -> the side it is on (pretrain or a probe split)."""
    where = {}
    pretrain = read_manifest(folder.parent / PRETRAIN_FOLDER / PRETRAIN_LIST)
    for side, tracks in [("pretrain", [r["ID"] for r in pretrain]),
                         *((s, {r["track"] for r in read_manifest(folder / f"{s}.csv")})
                           for s in SPLITS)]:
        for track in tracks:
            assert track not in where, f"{track} on {where.get(track)} and {side}"
            where[track] = side
    return where


def test_tracks_split_by_track(debs, tmp_path):
    cache = tmp_path / "cache"
    folder = run(debs, tmp_path / "out", cache)
    info = read_task(folder)
    assert info["type"] == "multiclass" and info["target"] == "label"
    assert info["retrieval"] == {"key": "track"}
    assert info["classes"] == ["pkg-a", "pkg-b"]  # pkg-c: 2 tracks < 3 needed

    package_of = {track_id_from_path(rel, p): p
                  for p, rels in debs["tracks"].items() for rel in rels}
    where = sides(folder)  # asserts that no track is on two sides
    assert set(where) == set(package_of)
    for package in ("pkg-a", "pkg-b"):
        own = [where[t] for t, p in package_of.items() if p == package]
        assert sorted(own) == ["pretrain", "test", "train", "valid"]
    assert {where[t] for t, p in package_of.items() if p == "pkg-c"} == {"pretrain"}

    duration = {track_id_from_path(rel, p): seconds
                for p, rels in debs["tracks"].items()
                for rel, seconds in zip(rels, TRACK_SECONDS[p])}
    for split in SPLITS:
        rows = read_manifest(folder / f"{split}.csv")
        assert "track" in rows[0]
        for track in {r["track"] for r in rows}:
            own = sorted((float(r["start"]), float(r["stop"])) for r in rows
                         if r["track"] == track)
            assert len(own) == min(4, math.floor(duration[track]))
            assert all(stop - start == pytest.approx(1.0) for start, stop in own)
            assert own[0][0] >= 0 and own[-1][1] <= duration[track] + 1e-3
            assert all(a[1] <= b[0] for a, b in zip(own, own[1:]))  # no overlap
        for row in rows:
            assert row["label"] == package_of[row["track"]]
            rel = next(r for r in debs["tracks"][row["label"]]
                       if track_id_from_path(r, row["label"]) == row["track"])
            assert row["path"] == str(tree(cache, row["label"]) / rel)

    pretrain = folder.parent / PRETRAIN_FOLDER
    listed = list_folder(pretrain).tracks  # what recipes/pretrain reads
    expected = {tree(cache, package_of[t]) / rel
                for t, side in where.items() if side == "pretrain"
                for rel in debs["tracks"][package_of[t]]
                if track_id_from_path(rel, package_of[t]) == t}
    assert {path for _, path in listed} == expected
    assert info["pretrain"]["tracks"] == len(expected) == 4

    def left_out(items):
        return sorted(str(tree(cache, p) / rel) for p, rel in items)
    assert sorted(info["skipped_paths"]["not_music"]) == left_out(debs["effects"])
    assert sorted(info["skipped_paths"]["too_short"]) == left_out(debs["jingles"])
    assert info["skipped_paths"]["duplicate"] == left_out(debs["duplicates"])
    assert info["packages"]["pkg-b"]["tracks"] == 4


def test_rerun_reuses_everything_and_is_deterministic(debs, tmp_path):
    folder = run(debs, tmp_path / "out", tmp_path / "cache")
    written = [folder / "task.json", folder / "train.csv",
               folder.parent / PRETRAIN_FOLDER / PRETRAIN_LIST,
               tree(tmp_path / "cache", "pkg-a") / "usr"]
    before = [p.stat().st_mtime_ns for p in written]
    run(debs, tmp_path / "out", tmp_path / "cache")
    assert [p.stat().st_mtime_ns for p in written] == before

    other = run(debs, tmp_path / "out2", tmp_path / "cache2")
    assert sides(other) == sides(folder)
    for split in SPLITS:
        first, second = (read_manifest(f / f"{split}.csv") for f in (folder, other))
        assert [(r["ID"], r["start"], r["stop"]) for r in first] == \
            [(r["ID"], r["start"], r["stop"]) for r in second]

    (folder.parent / PRETRAIN_FOLDER / PRETRAIN_LIST).unlink()
    run(debs, tmp_path / "out", tmp_path / "cache")
    assert (folder.parent / PRETRAIN_FOLDER / PRETRAIN_LIST).is_file()
    assert sides(folder) == sides(other)


def test_pretrain_packages_add_audio_and_leave_the_probe_task(debs, tmp_path):
    cache = tmp_path / "cache"
    alone = run(debs, tmp_path / "alone", cache, packages=("pkg-a", "pkg-c"))
    more = run(debs, tmp_path / "more", cache, packages=("pkg-a", "pkg-c"),
               pretrain_packages=("pkg-b",))  # pkg-b has tracks for a class
    info = read_task(more)
    assert info["classes"] == ["pkg-a"]
    for split in SPLITS:
        assert (more / f"{split}.csv").read_text() == \
            (alone / f"{split}.csv").read_text()
    where = sides(more)
    own_b = {track_id_from_path(rel, "pkg-b") for rel in debs["tracks"]["pkg-b"]}
    assert {where[t] for t in own_b} == {"pretrain"}
    assert set(where) - own_b == set(sides(alone))
    # pkg-b's byte copy of a pkg-a track is dropped, wherever that track is
    assert info["skipped_paths"]["duplicate"] == [
        str(tree(cache, p) / rel) for p, rel in debs["duplicates"]]
    assert info["pretrain"]["tracks"] == read_task(alone)["pretrain"]["tracks"] + 4
    with pytest.raises(ValueError, match="pkg-b"):
        run(debs, tmp_path / "both", cache, pretrain_packages=("pkg-b",))


def test_audio_folder_gives_the_same_split(debs, tmp_path):
    folder = run(debs, tmp_path / "out", tmp_path / "cache")
    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    for package in PACKAGES:
        subprocess.run(["dpkg-deb", "-x", str(debs["deb_folder"] /
                        f"{package}_1.0-1_all.deb"), str(unpacked / package)],
                       check=True)
    by_hand = prepare_debian_music(tmp_path / "out2", tmp_path / "cache2",
                                   audio_folder=unpacked, **OPTIONS)
    assert sides(by_hand) == sides(folder)
    assert not (tmp_path / "cache2").exists()  # nothing fetched


def test_missing_package_is_named(debs, tmp_path, capsys):
    code = dispatcher.main([
        "debian_music", "--save_folder", str(tmp_path / "out"),
        "--cache_folder", str(tmp_path / "cache"),
        "--deb_folder", str(debs["deb_folder"]), "--packages", "pkg-a", "pkg-z"])
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {debs['deb_folder']}: no pkg-z_*.deb file")
    assert "https://packages.debian.org/stable/all/pkg-z/download" in err
    assert not (tmp_path / "out" / "debian_music" / "task.json").exists()


def test_cli_fetches_the_pretrain_packages(debs, tmp_path, capsys):
    code = dispatcher.main([
        "debian_music", "--save_folder", str(tmp_path / "out"),
        "--cache_folder", str(tmp_path / "cache"),
        "--deb_folder", str(debs["deb_folder"]), "--packages", "pkg-a",
        "--pretrain_packages", "pkg-y"])
    assert code == 1
    assert "no pkg-y_*.deb file" in capsys.readouterr().err


def test_deb_of_another_package_is_named(debs, tmp_path):
    (tmp_path / "debs").mkdir()
    wrong = tmp_path / "debs" / "pkg-z_1.0-1_all.deb"
    os.symlink(debs["deb_folder"] / "pkg-a_1.0-1_all.deb", wrong)
    with pytest.raises(PrepareError, match="holds package 'pkg-a', not 'pkg-z'") as err:
        prepare_debian_music(tmp_path / "out", tmp_path / "cache",
                             deb_folder=tmp_path / "debs",
                             **{**OPTIONS, "packages": ["pkg-z"]})
    assert err.value.path == str(wrong)


def fake_apt_get(folder, debs):
    """An ``apt-get`` that 'downloads' the fixture .deb files (or fails)."""
    folder.mkdir()
    script = folder / "apt-get"
    script.write_text(
        "#!/bin/sh\n"
        f'for f in "{debs}/$2"_*.deb; do\n'
        '  [ -f "$f" ] || { echo "E: Unable to locate package $2" >&2;\n'
        '                   echo "W: a warning after the error" >&2; exit 100; }\n'
        '  cp "$f" .\n'
        "done\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


def test_download_into_the_cache(debs, tmp_path, monkeypatch):
    fake_apt_get(tmp_path / "bin", debs["deb_folder"])
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    cache = tmp_path / "cache"
    folder = prepare_debian_music(tmp_path / "out", cache, **OPTIONS)
    assert sorted(p.name for p in (cache / "deb").iterdir()) == \
        sorted(f"{p}_1.0-1_all.deb" for p in PACKAGES)  # no partial download left
    assert read_task(folder)["classes"] == ["pkg-a", "pkg-b"]
    with pytest.raises(PrepareError, match=r"apt-get download pkg-z failed: "
                       r"E: Unable to locate package pkg-z; run 'apt-get update'"):
        prepare_debian_music(tmp_path / "out", cache,
                             **{**OPTIONS, "packages": ["pkg-a", "pkg-z"]})


@pytest.mark.parametrize("tools,expected", [
    ((), "dpkg-deb not found on this machine; install dpkg, or unpack each .deb"),
    (("dpkg-deb",), "apt-get not found on this machine; download "
     "https://packages.debian.org/stable/all/pkg-a/download by hand into a "
     "folder and pass --deb_folder"),
])
def test_elsewhere_than_debian_says_what_to_do(tmp_path, monkeypatch, tools, expected):
    (tmp_path / "bin").mkdir()
    for tool in tools:
        os.symlink(subprocess.check_output(["which", tool], text=True).strip(),
                   tmp_path / "bin" / tool)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with pytest.raises(PrepareError) as err:
        prepare_debian_music(tmp_path / "out", tmp_path / "cache", **OPTIONS)
    assert str(err.value).startswith(expected)
