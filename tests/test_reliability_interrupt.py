"""Interrupted pre-training: kill -9 at random moments and during checkpoint
writes; every rerun resumes from the last complete checkpoint.

The runs are forked from the test process (no interpreter start-up or
imports per run), so many kills fit in a few seconds.
"""
import multiprocessing
import os
import random
import signal
import time

import pytest
import speechbrain.utils.checkpoints as sb_ckpt

from muselq_sb.utils.checkpoints import latest_checkpoint
from muselq_sb.pretrain.report import read_metrics
from muselq_sb.utils.checkpoints import STAGING_PREFIX
from tests.recipe_utils import log_recoveries, optimizer_steps, tiny_brain, write_songs

STEPS = 16
FORK = multiprocessing.get_context("fork")


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    return write_songs(tmp_path_factory.mktemp("songs"))


def _train(out, songs, die_in_save=None):
    """Trains to STEPS with a checkpoint after every step; appends the
    checkpoint each recovery loaded to ``out/loaded.txt``. With
    ``die_in_save=n`` the process dies half-way through the n-th file save.
    """
    if die_in_save is not None:
        saves, real_save = [0], sb_ckpt.torch_save

        def dying_save(obj, path):
            saves[0] += 1
            if saves[0] == die_in_save:
                with open(path, "wb") as f:
                    f.write(b"PK\x03\x04 half a file")
                os._exit(137)
            real_save(obj, path)

        sb_ckpt.DEFAULT_SAVE_HOOKS[sb_ckpt.torch.nn.Module] = dying_save
    log_recoveries(os.path.join(out, "loaded.txt"))
    _, _, fit = tiny_brain(out, songs, total_steps=STEPS, max_batch_seconds=4.0,
                           ckpt_interval_steps=1, keep_checkpoints=2)
    fit()


def run(out, songs, kill_after=None, die_in_save=None):
    """Runs ``_train`` in a forked child; SIGKILLs it ``kill_after`` s after
    it has recovered (or not) its checkpoint. Returns the exit code."""
    proc = FORK.Process(target=_train, args=(str(out), songs, die_in_save))
    before = len(loaded(out))
    proc.start()
    if kill_after is not None:
        deadline = time.time() + 120
        while len(loaded(out)) == before and proc.is_alive() \
                and time.time() < deadline:
            time.sleep(0.01)
    proc.join(kill_after if kill_after is not None else 300)
    if proc.is_alive():
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
    return proc.exitcode


def loaded(out):
    path = out / "loaded.txt"
    return path.read_text().splitlines() if path.exists() else []


def latest(out):
    """The latest complete checkpoint, as ``_train`` logs it."""
    try:
        return str(latest_checkpoint(out / "save"))
    except FileNotFoundError:
        return "None"


def check_every_checkpoint_loads(verifier):
    """Each ``CKPT+`` folder loads in full into a fresh Brain."""
    checkpoints = verifier.checkpointer.list_checkpoints()
    for ckpt in checkpoints:
        assert not ckpt.path.name.startswith(STAGING_PREFIX)
        verifier.checkpointer.load_checkpoint(ckpt)
    return checkpoints


def test_random_kills_then_resume(songs, tmp_path):
    out = tmp_path / "run"
    verifier, _, _ = tiny_brain(tmp_path / "verify", songs, total_steps=STEPS,
                                max_batch_seconds=4.0)
    verifier.checkpointer.checkpoints_dir = out / "save"
    rng = random.Random(8)
    steps_at_kill = []
    for _ in range(6):
        expected, before = latest(out), len(loaded(out))
        exitcode = run(out, songs, kill_after=rng.uniform(0.0, 0.8))
        # every attempt resumed from the last complete checkpoint before it
        assert loaded(out)[before:] == [expected]
        check_every_checkpoint_loads(verifier)
        if exitcode == 0:  # finished before the kill
            break
        assert exitcode == -signal.SIGKILL
        steps_at_kill.append(optimizer_steps(out) if latest(out) != "None" else 0)
    assert steps_at_kill == sorted(steps_at_kill)  # progress is never lost
    # at least one kill in the middle of training (on a fast machine the last
    # one may land after the final step, during the closing validation)
    assert len(steps_at_kill) >= 3 and any(0 < s < STEPS for s in steps_at_kill)
    expected = latest(out)
    assert run(out, songs) == 0
    assert loaded(out)[-1] == expected
    assert not any(line.split("/")[-1].startswith(STAGING_PREFIX)
                   for line in loaded(out))
    # the same number of optimizer steps as an uninterrupted run
    assert optimizer_steps(out) == STEPS
    steps = {r["step"] for r in read_metrics(out / "metrics.jsonl")
             if r["stage"] == "train_step"}
    assert steps == set(range(1, STEPS + 1))


@pytest.mark.parametrize("die_in_save", [1, 7])
def test_kill_during_checkpoint_write(songs, tmp_path, die_in_save):
    out = tmp_path / "run"
    assert run(out, songs, die_in_save=die_in_save) == 137
    staging = [p for p in (out / "save").iterdir()
               if p.name.startswith(STAGING_PREFIX)]
    assert staging, "the process did not die inside a save"
    complete = latest(out)
    assert (complete == "None") == (die_in_save == 1)
    assert run(out, songs) == 0
    assert loaded(out)[-1] == complete
    assert optimizer_steps(out) == STEPS
    assert not any(p.name.startswith(STAGING_PREFIX)
                   for p in (out / "save").iterdir())
