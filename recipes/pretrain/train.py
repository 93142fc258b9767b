#!/usr/bin/env python3
"""BEST-RQ music pre-training (Branchformer / Conformer, attention or
SummaryMixing).

Single process::

    python recipes/pretrain/train.py hparams/brn_sum.yaml --size=tiny

Several GPUs / nodes (the same command under torchrun)::

    torchrun --standalone --nproc_per_node=8 recipes/pretrain/train.py \
        hparams/brn_sum.yaml --data_folder=/data/music

With no data folder the built-in demo corpus is generated and used. The
hparams file is read by ``muselq_sb.utils.hparams`` (a model file on top of
``hparams/pretrain/base.yaml``, ``--size`` picking
``hparams/pretrain/sizes/<size>.yaml``); the run saves it resolved and
self-contained as ``<output_folder>/hyperparams.yaml``.

Streaming from WebDataset shards (``python -m muselq_sb.prepare shards``),
on one node or several (the shards split across all ranks and loader
workers; a killed run resumes with the clips it had not trained on)::

    torchrun --nnodes=8 --nproc_per_node=8 --rdzv_backend=c10d \
        --rdzv_endpoint=HOST:29500 --max_restarts=3 recipes/pretrain/train.py \
        hparams/brn_sum.yaml --data_shards='/data/shards/train-*.tar'

Authors
 * muselq_sb team
"""
import gc
import sys

import muselq_sb  # noqa: F401  (first: checks that torch and torchaudio load together)
import speechbrain as sb
import torch
from speechbrain.utils.distributed import run_on_main

from muselq_sb.pretrain.brain import BestRQBrain
from muselq_sb.pretrain.checks import check_hparams
from muselq_sb.pretrain.data import dataio_prepare, prepare_data
from muselq_sb.pretrain.report import write_report
from muselq_sb.utils.hparams import load_hparams, load_plain_hparams, save_hparams

if __name__ == "__main__":
    hparams_file, run_opts, overrides = sb.parse_arguments(sys.argv[1:])
    check_hparams(load_plain_hparams(hparams_file, overrides))  # fail fast
    sb.utils.distributed.ddp_init_group(run_opts)
    hparams = load_hparams(hparams_file, overrides)
    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"], overrides=overrides
    )
    run_on_main(save_hparams, args=[hparams["output_folder"], hparams_file, overrides])
    task_folder = run_on_main(prepare_data, kwargs={"hparams": hparams})
    train_set, valid_set, train_kwargs, valid_kwargs = dataio_prepare(
        hparams, task_folder
    )
    brain = BestRQBrain(
        modules=hparams["modules"],
        opt_class=hparams["optimizer"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    brain.fit(
        brain.hparams.epoch_counter,
        train_set,
        valid_set,
        train_loader_kwargs=train_kwargs,
        valid_loader_kwargs=valid_kwargs,
    )
    run_on_main(write_report, args=[hparams["output_folder"], hparams["cb_vocab"]])
    del brain  # its DDP wrappers hold the process group
    gc.collect()
    if torch.distributed.is_initialized():  # PyTorch asks for it before exit
        torch.distributed.destroy_process_group()
