#!/usr/bin/env python3
"""Runs every prepared MIR task for a checkpoint and the two baselines.

    python recipes/downstream/run_suite.py --encoder=results/brn_sum/1234 \
        --tasks_root=data/tasks [--tasks=gtzan,emomusic] [--n_seeds=5] \
        [--output_folder=results/downstream_suite] [--device=cuda:0] \
        [--number_of_epochs=20 ...]

Several checkpoints (an ablation) go into one table with ``--encoder``
repeated, each as ``NAME=PATH`` (baselines from the first):

    python recipes/downstream/run_suite.py --encoder=paper=runs/paper \
        --encoder=unm05=runs/unm05 --tasks_root=data/tasks

Every probe runs with ``--n_seeds`` seeds (``--first_seed`` and the next
ones; random weights: one encoder per seed). Any other ``--key=value`` is a
yaml override applied to every task. Writes ``results.md``, ``results.csv``,
``results.png`` (mean ± std and 95 % intervals over seeds; Table 3 layout,
the paper's rows beside ours) and ``results.json`` (every seed) into the
output folder.

Authors
 * muselq_sb team
"""
import argparse
import sys
import time

from muselq_sb.downstream.suite import run_suite


def parse_args(argv):
    """Suite options, run options and yaml overrides from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--encoder", required=True, action="append",
        help="pre-training output folder; repeat it (NAME=PATH) to compare several",
    )
    parser.add_argument("--tasks_root", required=True, help="prepared task folders")
    parser.add_argument("--tasks", default="", help="comma-separated task names")
    parser.add_argument("--output_folder", default="results/downstream_suite")
    parser.add_argument("--hparams_dir", default="hparams/downstream")
    parser.add_argument("--no_baselines", action="store_true")
    parser.add_argument("--n_seeds", type=int, default=5, help="probe seeds per run")
    parser.add_argument("--first_seed", type=int, default=1234)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--debug", action="store_true", help="2 batches x 2 epochs")
    parser.add_argument("--noprogressbar", action="store_true")
    args, extra = parser.parse_known_args(argv)
    overrides = ""
    for item in extra:
        key, sep, value = item[2:].partition("=")
        if not item.startswith("--") or not sep:
            parser.error(f"unrecognised argument {item!r}: expected --key=value")
        overrides += f"{key}: {value}\n"
    return args, overrides


if __name__ == "__main__":
    args, overrides = parse_args(sys.argv[1:])
    started = time.time()
    run_suite(
        encoder=args.encoder,
        tasks_root=args.tasks_root,
        output_folder=args.output_folder,
        hparams_dir=args.hparams_dir,
        tasks=[t for t in args.tasks.split(",") if t] or None,
        baselines=not args.no_baselines,
        run_opts={"device": args.device, "debug": args.debug,
                  "noprogressbar": args.noprogressbar},
        overrides=overrides,
        n_seeds=args.n_seeds,
        first_seed=args.first_seed,
    )
    print(f"suite done in {time.time() - started:.0f} s; "
          f"results written to {args.output_folder}/results.md")
