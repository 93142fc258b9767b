"""The pre-training recipe end to end: every config, DDP, kill -9 resume."""
import os
import signal
import subprocess
import sys
import time

import pytest

from muselq_sb.inference.embedding import load_model
from muselq_sb.pretrain.report import read_metrics
from tests.fixtures.audio import write_audio
from tests.recipe_utils import TRAIN, args_for, env, optimizer_steps, write_songs


@pytest.fixture(scope="module")
def audio_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("music")
    for i in range(8):
        write_audio(folder / f"song{i}.wav", 3.0, 24000, freq=110 * (i + 1), seed=i)
    return folder


@pytest.mark.parametrize("hparams", ["brn_sum", "brn_att", "cnf_sum", "cnf_att"])
def test_each_config_pretrains(hparams, audio_folder, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, str(TRAIN), *args_for(hparams, audio_folder, out, 3)],
        env=env(), capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert optimizer_steps(out) == 3
    records = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in records if r["stage"] == "train_step"] == [1, 2, 3]
    valid = [r for r in records if r["stage"] == "valid"]
    assert valid and all(v["skipped_files"] == 0 for v in valid)
    assert (out / "report.md").is_file() and (out / "report.png").is_file()
    assert any((out / "tensorboard").iterdir())
    model = load_model(out)
    assert model.num_layers == 2 and float(model.normalizer.count) > 0


@pytest.mark.parametrize("songs", [8, 4])  # 4: one batch per rank (RankBatchSampler)
def test_two_process_ddp_gloo(songs, audio_folder, tmp_path):
    folder = audio_folder if songs == 8 else write_songs(tmp_path / "few", count=songs)
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           "--nproc_per_node=2", str(TRAIN),
           *args_for("brn_sum", folder, out, 2,
                     ["--distributed_backend=gloo", "--device=cpu"])]
    proc = subprocess.run(cmd, env=env(), capture_output=True, text=True,
                          timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert optimizer_steps(out) == 2
    model = load_model(out)  # the rank-0 checkpoint loads
    assert model.d_model == 32


def test_kill_9_mid_epoch_then_resume(audio_folder, tmp_path):
    out = tmp_path / "resume"
    # one batch per step: 6 training songs x 2 s in 8 s batches -> 2 steps
    # per epoch; a checkpoint after every step
    args = args_for("brn_sum", audio_folder, out, 8,
                    ["--ckpt_interval_steps=1"])
    proc = subprocess.Popen([sys.executable, str(TRAIN), *args], env=env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.time() + 240
    steps_seen = 0
    while time.time() < deadline and proc.poll() is None:
        try:
            steps_seen = optimizer_steps(out)
        except (FileNotFoundError, OSError, KeyError, TypeError):
            steps_seen = 0
        if steps_seen >= 3:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 3 <= optimizer_steps(out) < 8
    again = subprocess.run([sys.executable, str(TRAIN), *args], env=env(),
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Loading a checkpoint" in again.stderr + again.stdout
    assert optimizer_steps(out) == 8
    train_steps = sorted({r["step"] for r in read_metrics(out / "metrics.jsonl")
                          if r["stage"] == "train_step"})
    assert train_steps == list(range(1, 9))
