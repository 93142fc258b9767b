"""Helpers to run the pre-training recipe tiny and fast in subprocesses.

Shared by the recipe tests, the reliability tests and ``benchmarks/soak.py``.

Authors
 * muselq_sb team
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Sequence

import torch
import yaml
from hyperpyyaml import load_hyperpyyaml

from muselq_sb.utils.checkpoints import latest_checkpoint
from muselq_sb.utils.hparams import load_hparams, resolve_hparams
from tests.fixtures.audio import write_audio

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT / "recipes" / "pretrain" / "train.py"
TINY = [
    "--size=tiny", "--d_model=32", "--nhead=2", "--num_layers=2",
    "--csgu_linear_units=64", "--d_ffn=64", "--kernel_size=5",
    "--subsampling_channels=32", "--cb_vocab=256", "--segment_seconds=2.0",
    "--max_batch_seconds=8.0", "--num_workers=0", "--valid_fraction=0.25",
    "--warmup_steps=1", "--log_interval=1", "--noprogressbar",
]


def env() -> dict[str, str]:
    """The environment of a recipe subprocess: one thread, this checkout."""
    e = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    return e


def args_for(
    hparams: str, data: str | os.PathLike | None, out: str | os.PathLike,
    steps: int, extra: Sequence[str] = (),
) -> list[str]:
    """Arguments of train.py: the HPARAMS file with the TINY options.

    An option of ``extra`` replaces the TINY one of the same name; with
    ``data`` None no ``--data_folder`` is given (the demo corpus is used).
    """
    replaced = {a.split("=")[0] for a in extra}
    opts = [a for a in TINY if a.split("=")[0] not in replaced]
    data_opt = [] if data is None else [f"--data_folder={data}"]
    return [str(ROOT / "hparams" / f"{hparams}.yaml"), *data_opt,
            f"--output_folder={out}", f"--total_steps={steps}", *opts, *extra]


def write_songs(folder: str | os.PathLike, count: int = 4,
                seconds: float = 2.0) -> Path:
    """Writes ``count`` tiny 24 kHz songs ``s<i>.wav`` (tones of different
    pitches) into ``folder``, a pre-training data folder, and returns it."""
    folder = Path(folder)
    for i in range(count):
        write_audio(folder / f"s{i}.wav", seconds, 24000, freq=220 * (i + 1), seed=i)
    return folder


def write_song_shards(folder: str | os.PathLike, count: int = 8,
                      shard_mb: float = 0.05) -> Path:
    """Writes ``count`` songs of 2 to 5 s (flac and mp3) into
    ``folder/music`` and their shards into ``folder/shards`` (2 s
    segments, a quarter of the tracks held out); returns the shard folder.
    """
    from muselq_sb.prepare.shards import write_shards

    folder = Path(folder)
    for i in range(count):
        ext = "mp3" if i % 2 else "flac"
        write_audio(folder / "music" / f"song{i}.{ext}", 2.0 + (i % 4),
                    24000, freq=110 * (i + 1), seed=i)
    write_shards([{"type": "folder", "path": str(folder / "music")}],
                 folder / "shards", shard_mb=shard_mb, segment_seconds=2.0,
                 valid_fraction=0.25)
    return folder / "shards"


def optimizer_steps(out: str | os.PathLike) -> int:
    """``optimizer_step`` saved in the latest complete checkpoint of a run."""
    ckpt = latest_checkpoint(Path(out) / "save")
    with open(ckpt / "brain.ckpt", encoding="utf-8") as f:
        return yaml.safe_load(f)["optimizer_step"]


def log_recoveries(path: str | os.PathLike, describe=None) -> None:
    """Makes every ``AtomicCheckpointer.recover_if_possible`` of this process
    append a line to ``path``: ``describe(checkpoint or None)``, by default
    the recovered checkpoint's folder (``None`` when there was none)."""
    from muselq_sb.utils.checkpoints import AtomicCheckpointer

    describe = describe or (lambda ckpt: ckpt.path if ckpt else None)
    real_recover = AtomicCheckpointer.recover_if_possible

    def logged_recover(self, *args, **kwargs):
        ckpt = real_recover(self, *args, **kwargs)
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"{describe(ckpt)}\n")
        return ckpt

    AtomicCheckpointer.recover_if_possible = logged_recover


def tiny_overrides(**extra: object) -> dict[str, object]:
    """The TINY options as a dict, plus ``extra``.

    Example
    -------
    >>> o = tiny_overrides(total_steps=4)
    >>> o["d_model"], o["size"], o["total_steps"]
    (32, 'tiny', 4)
    """
    options = {}
    for arg in TINY:
        key, _, value = arg[2:].partition("=")
        if value:
            options[key] = yaml.safe_load(value)
    return {**options, **extra}


def write_run_folder(
    run: str | os.PathLike, hparams: str = "brn_sum", **extra: object
) -> Path:
    """A pre-training output folder as ``train.py`` leaves it, untrained.

    ``hyperparams.yaml`` is the TINY HPARAMS file with its references
    resolved (its ``seed_everything`` line kept, as SpeechBrain saves it)
    and ``save/CKPT+*/ssl_model.ckpt`` the state of the model it builds.
    """
    run = Path(run)
    ckpt = run / "save" / "CKPT+2024-01-01+00-00-00+00"
    ckpt.mkdir(parents=True)
    text = resolve_hparams(ROOT / "hparams" / f"{hparams}.yaml",
                           tiny_overrides(output_folder=str(run), **extra))
    (run / "hyperparams.yaml").write_text(text)
    torch.save(load_hyperpyyaml(text)["ssl_model"].state_dict(), ckpt / "ssl_model.ckpt")
    (ckpt / "CKPT.yaml").write_text(yaml.safe_dump({"unixtime": time.time()}))
    return run


def tiny_brain(
    out: str | os.PathLike, data_folder: str | os.PathLike,
    hparams: str = "brn_sum", run_opts: dict | None = None, **extra: object,
):
    """A tiny ``BestRQBrain`` in this process, its data prepared.

    Returns
    -------
    brain, hparams, fit
        ``fit()`` trains as ``recipes/pretrain/train.py`` does.
    """
    from muselq_sb.pretrain.brain import BestRQBrain
    from muselq_sb.pretrain.data import dataio_prepare, prepare_data

    Path(out).mkdir(parents=True, exist_ok=True)
    hp = load_hparams(ROOT / "hparams" / f"{hparams}.yaml", tiny_overrides(
        output_folder=str(out), data_folder=str(data_folder), **extra))
    train, valid, train_kwargs, valid_kwargs = dataio_prepare(hp, prepare_data(hp))
    brain = BestRQBrain(
        modules=hp["modules"], opt_class=hp["optimizer"], hparams=hp,
        run_opts={"device": "cpu", "noprogressbar": True, **(run_opts or {})},
        checkpointer=hp["checkpointer"],
    )

    def fit() -> None:
        brain.fit(hp["epoch_counter"], train, valid,
                  train_loader_kwargs=train_kwargs,
                  valid_loader_kwargs=valid_kwargs)

    return brain, hp, fit
