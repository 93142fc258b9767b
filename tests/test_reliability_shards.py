"""Streaming from shards under DDP and under kill -9.

* Two gloo processes of the recipe, two loader workers each (four readers),
  see every clip of an epoch exactly once across the ranks, and take the
  same number of steps.
* A checkpoint taken by two gloo ranks holds the clips of both.
* Killed with SIGKILL at random moments and resumed, a run trains on every
  clip of the epoch exactly once, counting for each interrupted run only
  the batches its resumed checkpoint had recorded: the stated bound is
  zero clips replayed or skipped relative to the checkpoint.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import torch.distributed as dist
import torch.multiprocessing as tmp
import yaml

from muselq_sb.dataio.batching import DurationBatcher
from muselq_sb.dataio.manifest import read_manifest
from muselq_sb.dataio.shards import ShardLoader, ShardStream, StreamPosition, find_shards
from muselq_sb.pretrain.brain import BestRQBrain
from muselq_sb.utils.checkpoints import AtomicCheckpointer
from tests.recipe_utils import (
    TRAIN, args_for, env, log_recoveries, tiny_brain, write_song_shards,
)
from tests.test_reliability_distributed import free_port

FORK = multiprocessing.get_context("fork")

WRAPPER = """
import os, runpy, sys
from muselq_sb.pretrain.brain import BestRQBrain

fit_batch = BestRQBrain.fit_batch


def recording_fit_batch(self, batch):
    with open({log!r} + os.environ["RANK"], "a") as f:
        f.write(" ".join(["step"] + list(getattr(batch, "id", []))) + "\\n")
    return fit_batch(self, batch)


BestRQBrain.fit_batch = recording_fit_batch
sys.argv = [{train!r}, *sys.argv[1:]]
runpy.run_path({train!r}, run_name="__main__")
"""


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return write_song_shards(tmp_path_factory.mktemp("shards"), count=12)


def train_ids(shards):
    return Counter(r["ID"] for r in read_manifest(shards / "pretrain" / "train.csv"))


def test_two_gloo_ranks_see_every_clip_once(shards, tmp_path):
    assert len(list(shards.glob("train-*.tar"))) >= 4
    wrapper = tmp_path / "recording_train.py"
    wrapper.write_text(WRAPPER.format(train=str(TRAIN), log=str(tmp_path / "rank")))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           "--nproc_per_node=2", str(wrapper),
           *args_for("brn_sum", None, tmp_path / "run", 100, [
               "--distributed_backend=gloo", "--device=cpu", "--precision=fp32",
               f"--data_shards={shards / 'train-*.tar'}", "--num_workers=2",
               "--number_of_epochs=1", "--shuffle_buffer=4",
               # the statistics pass reads part of the epoch: those clips
               # must still be trained on
               "--normalizer_batches=1"])]
    proc = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = {rank: (tmp_path / f"rank{rank}").read_text().splitlines()
             for rank in (0, 1)}
    assert len(lines[0]) == len(lines[1])  # the ranks stayed in step
    seen = Counter(i for rank in lines.values() for line in rank
                   for i in line.split()[1:])
    assert seen == train_ids(shards)


def _save_two_ranks(rank, port, shards, folder):
    """Rank ``rank`` of 2 (gloo): two batches, then a checkpoint together;
    writes the positions it saw to ``folder/seen<rank>.json``."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        found = find_shards(str(shards / "train-*.tar"), world_size=2)
        loader = ShardLoader(ShardStream(found, DurationBatcher(4.0, 10), 24000, 2.0,
                                         rank=rank, world_size=2))
        seen = []
        for k, batch in enumerate(loader):
            seen += batch.positions
            if k == 1:
                break
        (Path(folder) / f"seen{rank}.json").write_text(json.dumps(seen))
        AtomicCheckpointer(folder, {"train_stream": loader}).save_checkpoint()
    finally:
        dist.destroy_process_group()


def test_a_checkpoint_holds_the_positions_of_every_rank(shards, tmp_path):
    tmp.start_processes(_save_two_ranks, args=(free_port(), shards, str(tmp_path)),
                        nprocs=2, start_method="fork")
    seen = [[tuple(p) for p in json.loads((tmp_path / f"seen{r}.json").read_text())]
            for r in (0, 1)]
    assert seen[0] and seen[1]
    saved = json.loads(next(tmp_path.glob("CKPT+*/train_stream.ckpt")).read_text())
    union = StreamPosition()
    union.add(seen[0] + seen[1],
              {s.name: s.n_clips for s in find_shards(str(shards / "train-*.tar"))})
    assert saved == union.to_dict()


def _train(out, shards):
    """One epoch with a checkpoint after every step; logs each batch's step
    and clips to ``out/batches.txt`` and the step of each recovered
    checkpoint (0: none) to ``out/loaded.txt``."""
    fit_batch = BestRQBrain.fit_batch

    def logged_fit_batch(self, batch):
        loss = fit_batch(self, batch)
        with open(os.path.join(out, "batches.txt"), "a") as f:
            f.write(" ".join([str(self.optimizer_step), *getattr(batch, "id", [])]) + "\n")
        return loss

    BestRQBrain.fit_batch = logged_fit_batch
    log_recoveries(os.path.join(out, "loaded.txt"),
                   lambda ckpt: checkpoint_step(ckpt.path) if ckpt else 0)
    _, _, fit = tiny_brain(out, shards.parent / "music", data_shards=str(shards / "train-*.tar"),
                           num_workers=2, shuffle_buffer=4, number_of_epochs=1,
                           total_steps=100, ckpt_interval_steps=1, keep_checkpoints=2,
                           max_batch_seconds=4.0)
    fit()


def lines(path):
    return path.read_text().splitlines() if path.exists() else []


def run(out, shards, kill=None):
    """``_train`` in a forked child; with ``kill=(n, delay)`` SIGKILLed
    ``delay`` s after it logged its n-th batch. Returns (exit code, its
    batch lines)."""
    before = len(lines(out / "batches.txt"))
    proc = FORK.Process(target=_train, args=(str(out), shards))
    proc.start()
    if kill is not None:
        deadline = time.time() + 120
        while len(lines(out / "batches.txt")) < before + kill[0] and proc.is_alive() \
                and time.time() < deadline:
            time.sleep(0.005)
        time.sleep(kill[1])
        if proc.is_alive():
            os.kill(proc.pid, signal.SIGKILL)
    proc.join(300)
    return proc.exitcode, lines(out / "batches.txt")[before:]


def checkpoint_step(path):
    with open(os.path.join(path, "brain.ckpt"), encoding="utf-8") as f:
        return yaml.safe_load(f)["optimizer_step"]


def test_kill_9_and_resume_trains_every_clip_once(shards, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    rng = random.Random(3)
    runs, kills = [], 0
    while kills < 3:  # killed during a step or a checkpoint save
        code, batches = run(out, shards, kill=(rng.randint(1, 3), rng.uniform(0, 0.3)))
        runs.append(batches)
        if code == 0:
            break
        assert code == -signal.SIGKILL
        kills += 1
    if kills == 3:
        code, batches = run(out, shards)
        runs.append(batches)
        assert code == 0
    assert kills >= 2, "the runs finished before being killed twice"
    # a killed run counts up to the step of the checkpoint the next run loaded
    resumed = [int(step) for step in lines(out / "loaded.txt")[1:]]
    trained = Counter()
    for k, batches in enumerate(runs):
        upto = resumed[k] if k < len(resumed) else float("inf")
        for line in batches:
            step, *ids = line.split()
            if int(step) <= upto:
                trained.update(ids)
    assert trained == train_ids(shards)
