#!/usr/bin/env python3
"""Trains and tests one frozen-encoder probe on one prepared MIR task.

    python recipes/downstream/train.py hparams/downstream/gtzan.yaml \
        --task_folder=data/tasks/gtzan --encoder=results/brn_sum/1234

``--encoder`` is a pre-training output folder, ``random:<folder>`` (same
architecture, random weights) or ``logmel:<folder>`` (pooled log-mel
baseline). The embeddings are extracted once into ``<output_folder>/embeddings``
and reused while the checkpoint and the task are unchanged; the test metrics
of the best validation checkpoint go to ``<output_folder>/results.json``.

Authors
 * muselq_sb team
"""
import json
import sys

import muselq_sb  # noqa: F401  (first: checks that torch and torchaudio load together)
import speechbrain as sb

from muselq_sb.downstream.experiment import run_probe_experiment

if __name__ == "__main__":
    hparams_file, run_opts, overrides = sb.parse_arguments(sys.argv[1:])
    results = run_probe_experiment(hparams_file, run_opts, overrides)
    print(json.dumps({"task": results["task"], "test": results["test"]}, indent=2))
