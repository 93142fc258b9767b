"""Hub-style model folders: from_pretrained from a Hub cache (offline, no
network), save_pretrained, push_to_hub (which files go up), and the model
card that machines read (``muselq-embed --info``)."""
import fnmatch
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import huggingface_hub
import numpy as np
import pytest
import torch

from muselq_sb.inference import cli, hub
from muselq_sb.inference.embedding import WINDOW_SECONDS
from muselq_sb.inference.encoder import MusicEncoder
from muselq_sb.inference.package import (
    CARD_KEY,
    FOLDER_FILES,
    INTERFACE_FILE,
    package_model,
    read_card,
)
from muselq_sb.lobes.branchformer import BranchformerEncoder
from muselq_sb.lobes.model import MusicModel
from muselq_sb.utils.hparams import HPARAMS_FILE, ModelFolderError
from tests.fixtures.audio import write_audio
from tests.recipe_utils import ROOT, env, write_run_folder

REPO = "muselq/brn-sum-tiny"
COMMIT = "a" * 40


def put_in_hub_cache(cache: Path, repo_id: str, files: list, commit: str = COMMIT) -> None:
    """Lays ``files`` out as huggingface_hub's cache holds a downloaded repo."""
    storage = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = storage / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for f in files:
        shutil.copy(f, snapshot / Path(f).name)
    (storage / "refs").mkdir()
    (storage / "refs" / "main").write_text(commit)


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    """An empty Hub cache, HF_HUB_OFFLINE on (as the env vars set them at import)."""
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    run = write_run_folder(tmp_path_factory.mktemp("run") / "brn_sum")
    return package_model(run, tmp_path_factory.mktemp("pkg") / "model")


def test_from_pretrained_reads_the_hub_cache_offline(folder, offline_cache, tmp_path, capsys):
    put_in_hub_cache(offline_cache, REPO, sorted(folder.iterdir()))
    wav = torch.randn(1, 36000)
    enc = MusicEncoder.from_pretrained(REPO)
    assert enc.source.parent.name == "snapshots" and enc.source.name == COMMIT
    assert torch.equal(enc.encode_batch(wav), MusicEncoder.from_path(folder).encode_batch(wav))
    with pytest.raises(ModelFolderError, match="no Hub repo of that id"):
        MusicEncoder.from_pretrained("muselq/not-cached")
    song = write_audio(tmp_path / "song.wav", 1.0)
    assert cli.main(["muselq/not-cached", str(song), str(tmp_path / "out")]) == 2
    assert "muselq/not-cached: not a local folder" in capsys.readouterr().err


def test_offline_env_vars_and_the_command_line(folder, tmp_path):
    cache = tmp_path / "hub"
    put_in_hub_cache(cache, REPO, sorted(folder.iterdir()))
    song = write_audio(tmp_path / "song.flac", 1.5, 44100, seed=2)
    e = dict(env(), HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(cache))
    proc = subprocess.run(
        [sys.executable, "-m", "muselq_sb.inference.cli", REPO, str(song),
         str(tmp_path / "out"), "--pooling", "mean", "--no-progress"],
        env=e, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = np.load(tmp_path / "out" / "song.flac.npy")
    expected = MusicEncoder.from_path(folder).encode_file(song, pooling="mean")
    assert np.allclose(got, expected.numpy(), atol=1e-6)


def test_save_pretrained_round_trip_and_errors(folder, tmp_path):
    enc = MusicEncoder.from_pretrained(folder)
    saved = enc.save_pretrained(tmp_path / "saved")
    assert sorted(p.name for p in saved.iterdir()) == sorted(FOLDER_FILES)
    assert read_card(saved) == read_card(folder)  # training facts kept
    wav = torch.randn(2, 30000)
    again = MusicEncoder.from_hparams(source=str(saved), savedir=str(tmp_path / "sb"))
    assert torch.equal(again.encode_batch(wav), enc.encode_batch(wav))
    model = MusicModel(BranchformerEncoder(1, d_model=16, nhead=2, kernel_size=3,
                                           csgu_linear_units=32), 16,
                       subsampling_channels=16)
    with pytest.raises(ValueError, match="not loaded from a folder"):
        MusicEncoder(model).save_pretrained(tmp_path / "nope")


def test_save_pretrained_upgrades_an_old_folder(folder, tmp_path):
    """A folder packaged before this layout (no modules/pretrainer, no
    front matter) loads as before and is rewritten in the current one."""
    old = tmp_path / "old"
    shutil.copytree(folder, old)
    text = (old / HPARAMS_FILE).read_text()
    (old / HPARAMS_FILE).write_text(text[:text.index("modules:")])
    card = (old / "README.md").read_text()
    (old / "README.md").write_text(card[card.index("# muselq_sb"):])
    (old / INTERFACE_FILE).unlink()
    assert read_card(old) == {}
    with pytest.raises(KeyError, match="pretrainer"):
        MusicEncoder.from_hparams(source=str(old), savedir=str(tmp_path / "a"))
    enc = MusicEncoder.from_path(old)
    enc.save_pretrained(old)
    wav = torch.randn(1, 30000)
    sb = MusicEncoder.from_hparams(source=str(old), savedir=str(tmp_path / "b"))
    assert torch.equal(sb.encode_batch(wav), enc.encode_batch(wav))
    assert read_card(old)[CARD_KEY]["parameters"] == sum(
        p.numel() for p in enc.model.parameters())


class FakeHubApi:
    """Stands in for HfApi: records the calls; an upload puts the files
    that ``allow_patterns`` selects into a local Hub cache."""

    calls: list = []
    cache: Path

    def __init__(self, token=None):
        self.token = token

    def create_repo(self, repo_id, private=False, exist_ok=False):
        self.calls.append(("create_repo", repo_id, private, exist_ok))

    def upload_folder(self, repo_id, folder_path, commit_message, allow_patterns):
        files = sorted(p for p in Path(folder_path).iterdir()
                       if any(fnmatch.fnmatch(p.name, pat) for pat in allow_patterns))
        self.calls.append(("upload_folder", repo_id, [p.name for p in files]))
        put_in_hub_cache(self.cache, repo_id, files)
        return SimpleNamespace(commit_url=f"https://hub/{repo_id}/commit/{COMMIT}")


def test_push_to_hub_uploads_what_from_pretrained_needs(folder, offline_cache, monkeypatch):
    FakeHubApi.calls, FakeHubApi.cache = [], offline_cache
    monkeypatch.setattr(hub, "HfApi", FakeHubApi)
    enc = MusicEncoder.from_pretrained(folder)
    url = enc.push_to_hub(REPO, private=True, token="t")
    assert url.endswith(COMMIT)
    assert FakeHubApi.calls[0] == ("create_repo", REPO, True, True)
    assert FakeHubApi.calls[1] == ("upload_folder", REPO, sorted(FOLDER_FILES))
    wav = torch.randn(1, 30000)
    pulled = MusicEncoder.from_pretrained(REPO)
    assert torch.equal(pulled.encode_batch(wav), enc.encode_batch(wav))


def test_info_states_rates_length_size_licence(folder, capsys):
    assert cli.main(["--info", str(folder)]) == 0
    info = json.loads(capsys.readouterr().out)
    model = MusicEncoder.from_path(folder).model
    assert info["sample_rate"] == model.frontend.sample_rate == 24000
    assert info["frame_rate"] == 25.0
    assert info["max_input_seconds"] is None  # SummaryMixing: whole tracks
    assert info["parameters"] == sum(p.numel() for p in model.parameters())
    assert info["license"] == "apache-2.0" and info["recommended_layers"] == {}
    assert cli.main(["--info", "/nowhere/model"]) == 2
    assert "/nowhere/model: not a local folder" in capsys.readouterr().err


def test_card_recommends_layers_from_suite_results(tmp_path):
    run = write_run_folder(tmp_path / "run", hparams="brn_att")
    weights = {"demo_key": [[0.1, 0.6, 0.3], [0.2, 0.5, 0.3]],
               "demo_genre": [[0.2, 0.2, 0.6]], "demo_tempo": [[0.5, 0.3, 0.2]]}
    families = {"demo_key": "tonal", "demo_genre": "semantic", "demo_tempo": "rhythm"}
    suite = {"checkpoint": {task: {"runs": [
        {"task": task, "task_family": families[task], "layer_weights": w} for w in ws]}
        for task, ws in weights.items()}, "random": {}}
    (tmp_path / "results.json").write_text(json.dumps(suite))
    folder = package_model(run, tmp_path / "model", license="cc-by-nc-4.0",
                           suite_results=tmp_path / "results.json")
    with pytest.raises(ValueError, match="no variant 'ours'; found"):
        package_model(run, tmp_path / "x", suite_results=tmp_path / "results.json",
                      suite_variant="ours")
    info = MusicEncoder.from_pretrained(folder).info
    assert info["max_input_seconds"] == WINDOW_SECONDS  # attention: windows
    assert info["license"] == "cc-by-nc-4.0"
    rec = info["recommended_layers"]
    assert {f: r["layer"] for f, r in rec.items()} == {
        "tonal": 1, "semantic": 2, "rhythm": 0}
    assert rec["tonal"]["weights"] == pytest.approx([0.15, 0.55, 0.3])
    card = (folder / "README.md").read_text()
    assert card.startswith("---\nlicense: cc-by-nc-4.0\n")
    assert "| tonal | 1 (weights" in card and "30 s per pass" in card
    assert huggingface_hub.metadata_load(folder / "README.md")["license"] == "cc-by-nc-4.0"
