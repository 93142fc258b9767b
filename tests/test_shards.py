"""WebDataset shards: the writer, the stream, its position, bad shards."""
from __future__ import annotations

import io
import json
import tarfile
from collections import Counter
from pathlib import Path

import pytest
import soundfile as sf

from muselq_sb.dataio.audio import load_audio
from muselq_sb.dataio.batching import DurationBatcher
from muselq_sb.dataio.manifest import read_manifest
from muselq_sb.dataio.shards import ShardLoader, ShardStream, find_shards
from muselq_sb.pretrain.checks import check_hparams
from muselq_sb.utils.hparams import load_plain_hparams
from muselq_sb.pretrain.report import read_metrics
from muselq_sb.prepare import __main__ as prepare_cli
from muselq_sb.prepare.shards import write_shards
from muselq_sb.utils.checkpoints import AtomicCheckpointer
from tests.recipe_utils import ROOT, tiny_brain, tiny_overrides, write_song_shards


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return write_song_shards(tmp_path_factory.mktemp("shards"))


def manifest(shards, split):
    return read_manifest(shards / "pretrain" / f"{split}.csv")


def members(path):
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def stats(folder):
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in sorted(folder.glob("*.tar"))}


def test_shards_hold_the_original_bytes_clips_and_hours(shards):
    index = json.loads((shards / "index.json").read_text())
    assert index["complete"] and index["format"] == 1
    for split in ("train", "valid"):
        rows = {r["ID"]: r for r in manifest(shards, split)}
        seen = {}
        names = sorted(p.name for p in shards.glob(f"{split}-*.tar"))
        assert names == [e["name"] for e in index["shards"] if e["split"] == split]
        for name in names:
            files = members(shards / name)
            offsets = []
            for fname, data in files.items():
                if not fname.endswith(".json"):
                    continue
                meta = json.loads(data)
                key = fname[:-len(".json")]
                audio = [f for f in files if f.startswith(key + ".") and f != fname]
                assert len(audio) == 1
                assert files[audio[0]] == Path(meta["source"]).read_bytes()
                offsets.append((meta["clip_offset"], len(meta["clips"])))
                for clip_id, start, stop in meta["clips"]:
                    seen[clip_id] = (float(start), float(stop))
            # clip positions 0..n-1 in each shard, as the index counts them
            offsets.sort()
            assert [o for o, _ in offsets] == [sum(n for _, n in offsets[:i])
                                               for i in range(len(offsets))]
            entry = next(e for e in index["shards"] if e["name"] == name)
            assert entry["n_clips"] == sum(n for _, n in offsets)
        assert seen == {i: (float(r["start"]), float(r["stop"])) for i, r in rows.items()}
        seconds = sum(float(r["stop"]) - float(r["start"]) for r in rows.values())
        assert index["splits"][split]["hours"] == pytest.approx(seconds / 3600, abs=1e-3)
        assert index["splits"][split]["clips"] == len(rows)
    assert not list(shards.glob(".*.part"))


def test_rerun_skips_finished_shards(tmp_path):
    shards = write_song_shards(tmp_path)
    before = stats(shards)
    again = lambda: write_shards(  # noqa: E731
        [{"type": "folder", "path": str(tmp_path / "music")}], shards,
        shard_mb=0.05, segment_seconds=2.0, valid_fraction=0.25)
    again()
    assert stats(shards) == before  # nothing rewritten
    gone = sorted(before)[1]
    (shards / gone).unlink()  # as if the run had died before writing it
    again()
    after = stats(shards)
    assert sorted(after) == sorted(before)
    assert [n for n in before if after[n] != before[n]] == [gone]


def test_pattern_matching_no_shard_or_too_few_fails_before_training(
        shards, monkeypatch):
    pattern = str(shards / "train-*.tar")
    n = len(list(shards.glob("train-*.tar")))
    with pytest.raises(FileNotFoundError, match="data_shards: pattern '/nowhere/x-"):
        find_shards("/nowhere/x-{000..009}.tar")
    hparams = load_plain_hparams(ROOT / "hparams" / "brn_sum.yaml", tiny_overrides(
        data_shards=pattern, num_workers=n))
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError) as err:
        check_hparams(hparams)  # the recipe's first call
    assert str(err.value).startswith(
        f"data_shards: pattern {pattern!r} matches {n} shards, fewer than "
        f"2 ranks x {n} loader workers = {2 * n} readers")


def loader(shards, workers=2, buffer=4, seed=0):
    found = find_shards(str(shards / "train-*.tar"), num_workers=workers)
    stream = ShardStream(found, DurationBatcher(8.0, 10), 24000, 2.0,
                         shuffle_buffer=buffer, seed=seed)
    return ShardLoader(stream, num_workers=workers)


def test_an_epoch_streams_every_clip_once_with_crops_of_its_length(shards):
    rows = {r["ID"]: float(r["stop"]) - float(r["start"]) for r in manifest(shards, "train")}
    seen = Counter()
    for batch in loader(shards):
        assert batch.n_skipped == 0
        for clip_id, length in zip(batch.id, batch.sig.lengths * batch.sig.data.shape[1]):
            seen[clip_id] += 1
            assert int(round(float(length))) == int(min(rows[clip_id], 2.0) * 24000)
    assert seen == Counter(list(rows))


def test_resume_from_a_checkpoint_skips_exactly_what_was_trained(shards, tmp_path):
    first = loader(shards)
    ckpt = AtomicCheckpointer(tmp_path, {"train_stream": first})
    trained = []
    for k, batch in enumerate(first):
        trained += batch.id
        if k == 2:
            ckpt.save_checkpoint()
            break
    second = loader(shards, seed=5)  # another shuffle: the position is by clip
    AtomicCheckpointer(tmp_path, {"train_stream": second}).recover_if_possible()
    trained += [i for batch in second for i in batch.id]
    assert Counter(trained) == Counter(r["ID"] for r in manifest(shards, "train"))
    # the next epoch starts afresh
    assert len([i for batch in second for i in batch.id]) == len(manifest(shards, "train"))


def corrupt(path, suffix):
    """Overwrites the first member ending in ``suffix`` with zeros (the tar
    stays readable); returns the JSON of its sample, as it was."""
    with tarfile.open(path) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith(suffix))
        key = member.name.rsplit(".", 1)[0]
        meta = json.loads(tar.extractfile(key + ".json").read())
    with open(path, "r+b") as f:
        f.seek(member.offset_data)
        f.write(b"\0" * member.size)
    return meta


def test_corrupt_members_are_skipped_and_counted(tmp_path):
    shards = write_song_shards(tmp_path)
    names = sorted(p.name for p in shards.glob("train-*.tar"))
    bad_audio = corrupt(shards / names[0], (".flac", ".mp3"))
    bad_json = corrupt(shards / names[1], ".json")
    ids = []
    brain, hp, fit = tiny_brain(tmp_path / "run", tmp_path / "music",
                                data_shards=str(shards / "train-*.tar"),
                                number_of_epochs=1, total_steps=100)
    real_fit_batch = brain.fit_batch

    def recording_fit_batch(batch):
        ids.extend(getattr(batch, "id", []))
        return real_fit_batch(batch)

    brain.fit_batch = recording_fit_batch
    fit()
    valid = [r for r in read_metrics(hp["metrics_file"]) if r["stage"] == "valid"]
    # each clip of the bad audio, plus the member whose JSON is unreadable
    assert valid[0]["train_skipped_files"] == len(bad_audio["clips"]) + 1
    lost = {c[0] for c in bad_audio["clips"] + bad_json["clips"]}
    expected = Counter(r["ID"] for r in manifest(shards, "train") if r["ID"] not in lost)
    assert Counter(ids) == expected



def test_pcm_shards_hold_decoded_mono_int16_and_stream_the_same_clips(tmp_path):
    write_song_shards(tmp_path / "a")
    shards = tmp_path / "a" / "pcm"
    write_shards([{"type": "folder", "path": str(tmp_path / "a" / "music")}], shards,
                 shard_mb=0.05, segment_seconds=2.0, valid_fraction=0.25,
                 pcm_rate=24000)
    for path in shards.glob("train-*.tar"):
        files = members(path)
        for fname, data in files.items():
            if fname.endswith(".json"):
                meta = json.loads(data)
                wav = files[fname[:-len("json")] + "wav"]
                info = sf.info(io.BytesIO(wav))
                assert (info.samplerate, info.channels, info.subtype) == (24000, 1, "PCM_16")
                pcm, _ = sf.read(io.BytesIO(wav), dtype="float32")
                ref = load_audio(meta["source"], sample_rate=24000).numpy()
                assert len(pcm) == len(ref) and abs(pcm - ref).max() < 1e-3
    ids = Counter(i for batch in loader(shards) for i in batch.id)
    assert ids == Counter(r["ID"] for r in manifest(shards, "train"))


def test_command_line(shards, tmp_path, capsys):
    music = shards.parent / "music"
    out = tmp_path / "cli"
    assert prepare_cli.main(["shards", "--source", f"folder:{music}", "--save_folder",
                             str(out), "--shard_mb", "0.05", "--segment_seconds", "2",
                             "--valid_fraction", "0.25"]) == 0
    index = json.loads((out / "index.json").read_text())
    assert index["splits"] == json.loads((shards / "index.json").read_text())["splits"]
    capsys.readouterr()
    assert prepare_cli.main(["shards", "--source", f"folder:{tmp_path / 'nowhere'}",
                             "--save_folder", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "nowhere" in err and err.count("\n") == 1
