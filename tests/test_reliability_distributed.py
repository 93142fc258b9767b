"""Distributed training: two gloo processes match one process, and a rank
that dies takes the whole run down instead of leaving the others hanging.

Equivalence (in-process, forked workers, ``BestRQModel`` under DDP): DDP
averages the gradients of the ranks and our loss is a mean over the masked
frames of each rank, so DDP computes the mean of the per-rank means. It
equals the single-process mean over the global batch when every rank masks
the same number of frames, which the fixed masks below ensure (each rank
gets the same mask rows, permuted). Dropout is off; the input normaliser
has frozen statistics, the same on both sides. Tolerance: float32
round-off of the all-reduce, ``rtol=1e-4, atol=1e-6``.

The statistics pass (``compute_input_statistics``) run by two gloo
processes on different batches leaves both with bit-identical statistics,
those of all their batches together.
"""
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as tmp
from torch.nn.parallel import DistributedDataParallel

from speechbrain.dataio.batch import PaddedBatch

from muselq_sb.dataio.batching import EmptyBatch
from muselq_sb.nnet.heads import masked_ssl_loss
from muselq_sb.pretrain.normalization import compute_input_statistics
from muselq_sb.pretrain.report import read_metrics
from muselq_sb.utils.hparams import load_hparams
from tests.fixtures.audio import write_audio
from tests.recipe_utils import ROOT, TRAIN, args_for, env, tiny_overrides

WORLD = 2
TOL = {"rtol": 1e-4, "atol": 1e-6}


def build_ssl():
    return load_hparams(ROOT / "hparams" / "brn_sum.yaml",
                        tiny_overrides(dropout=0.0))["ssl_model"]


def step(ssl, wavs, mask, ddp=False):
    """One training step (forward, loss, backward, Adam) with a fixed mask;
    returns the loss (averaged over ranks under DDP) and the gradients."""
    ssl.masker.forward = lambda lens, max_len, generator=None: mask
    model = DistributedDataParallel(ssl) if ddp else ssl
    optimizer = torch.optim.Adam(ssl.parameters(), lr=1e-3)
    out = model(wavs, torch.ones(len(wavs)))
    loss = masked_ssl_loss(out["logits"], out["tokens"], out["mel_pred"],
                           out["mel_target"], out["mask"])["loss"]
    loss.backward()
    grads = {n: p.grad.clone() for n, p in ssl.named_parameters()}
    optimizer.step()
    if ddp:
        loss = loss.detach().clone()
        dist.all_reduce(loss)
        loss /= WORLD
    return loss.item(), grads


def _worker(rank, port, state, wavs, mask, result):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        ssl = build_ssl().train()
        ssl.load_state_dict(state)
        share = len(wavs) // WORLD
        part = slice(rank * share, (rank + 1) * share)
        loss, grads = step(ssl, wavs[part], mask[part], ddp=True)
        if rank == 0:
            torch.save({"loss": loss, "grads": grads, "params": ssl.state_dict()},
                       result)
    finally:
        dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_match_one_process():
    torch.manual_seed(0)
    ssl = build_ssl().train()
    wavs = 0.1 * torch.randn(4, 48000)
    compute_input_statistics(ssl.model, [PaddedBatch([{"sig": w} for w in wavs])], 1)
    state = {k: v.clone() for k, v in ssl.state_dict().items()}
    frames = ssl.model.output_lengths(wavs, torch.ones(4))[0].item()
    half = ssl.masker(torch.full((2,), frames), frames)
    mask = torch.cat([half, half.flip(0)])  # same masked count on each rank
    loss, grads = step(ssl, wavs, mask)

    result = Path(tempfile.mkdtemp()) / "rank0.pt"
    tmp.start_processes(_worker, args=(free_port(), state, wavs, mask, str(result)),
                        nprocs=WORLD, start_method="fork")
    ddp = torch.load(result, weights_only=True)
    assert abs(ddp["loss"] - loss) <= TOL["rtol"] * abs(loss)
    assert grads.keys() == ddp["grads"].keys()
    for name, grad in grads.items():
        assert torch.allclose(ddp["grads"][name], grad, **TOL), name
    for name, value in ssl.state_dict().items():  # after one Adam step
        assert torch.allclose(ddp["params"][name].float(), value.float(), **TOL), name


def _stats_worker(rank, port, shards, result):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        model = build_ssl().model
        info = compute_input_statistics(model, shards[rank], n_batches=5)
        torch.save({"stats": model.normalizer.state_dict(), "info": info},
                   f"{result}.{rank}")
    finally:
        dist.destroy_process_group()


def batch_of(*seconds):
    return PaddedBatch([{"sig": 0.1 * torch.randn(int(s * 24000)) + 0.05 * i}
                        for i, s in enumerate(seconds)])


def test_ranks_compute_the_same_input_statistics():
    torch.manual_seed(0)
    # the ranks read different batches, rank 1 fewer and an unreadable one
    shards = [[batch_of(1.0, 0.5), batch_of(2.0)],
              [batch_of(1.5), EmptyBatch(2)]]
    result = Path(tempfile.mkdtemp()) / "stats"
    tmp.start_processes(_stats_worker, args=(free_port(), shards, str(result)),
                        nprocs=WORLD, start_method="fork")
    ranks = [torch.load(f"{result}.{r}", weights_only=True) for r in range(WORLD)]
    for key, value in ranks[0]["stats"].items():
        assert torch.equal(ranks[1]["stats"][key], value), key
    assert [r["info"]["skipped_files"] for r in ranks] == [0, 2]
    one = build_ssl().model  # one process reading every batch
    compute_input_statistics(one, [b for shard in shards for b in shard], 5)
    assert ranks[0]["info"]["frames"] == int(one.normalizer.count)
    for key, value in one.normalizer.state_dict().items():
        assert torch.allclose(ranks[0]["stats"][key], value, rtol=1e-6), key


WRAPPER = """
import os, runpy, sys
from muselq_sb.pretrain.brain import BestRQBrain

fit_batch = BestRQBrain.fit_batch


def dying_fit_batch(self, batch):
    if os.environ.get("RANK") == "1" and self.step == 2:
        os._exit(1)
    return fit_batch(self, batch)


BestRQBrain.fit_batch = dying_fit_batch
sys.argv = [{train!r}, *sys.argv[1:]]
runpy.run_path({train!r}, run_name="__main__")
"""


def test_a_dying_rank_stops_the_whole_run(tmp_path):
    data = tmp_path / "music"
    for i in range(8):
        write_audio(data / f"song{i}.wav", 3.0, 24000, freq=110 * (i + 1), seed=i)
    wrapper = tmp_path / "dying_train.py"
    wrapper.write_text(WRAPPER.format(train=str(TRAIN)))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={WORLD}", str(wrapper),
           *args_for("brn_sum", data, tmp_path / "run", 50,
                     ["--distributed_backend=gloo", "--device=cpu"])]
    start = time.time()
    proc = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=240)
    assert proc.returncode != 0
    # rank 1 died at its second batch; torchrun stopped rank 0 (SIGTERM)
    cause = proc.stderr.split("Root Cause", 1)[-1]
    assert "rank      : 1" in cause and "exitcode  : 1 " in cause, proc.stderr[-3000:]
    assert "rank      : 0" in proc.stderr and "exitcode  : -15" in proc.stderr
    steps = [r["step"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl")]
    assert steps == [1]  # it had been training
    assert time.time() - start < 240
