"""A SpeechBrain ``Checkpointer`` whose checkpoints appear atomically, and
the latest complete checkpoint of a run (:func:`latest_checkpoint`).

SpeechBrain writes ``CKPT.yaml`` first and the parameter files after it, so a
process killed in the middle of a save leaves a folder that looks complete
and is not. Here every checkpoint is written into a hidden staging folder
and renamed to its ``CKPT+...`` name only once every file is on disk; a
rename within one file system is atomic, so a ``CKPT+`` folder is always
whole. Staging folders left by a killed save are removed at the next save.

Authors
 * muselq_sb team
"""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import yaml
from speechbrain.utils.checkpoints import Checkpoint, Checkpointer
from speechbrain.utils.distributed import ddp_barrier, if_main_process

STAGING_PREFIX = ".staging+"


class AtomicCheckpointer(Checkpointer):
    """``Checkpointer`` that never exposes a partially written checkpoint.

    Same arguments and API as ``speechbrain.utils.checkpoints.Checkpointer``.

    Example
    -------
    >>> import tempfile, torch
    >>> d = tempfile.mkdtemp()
    >>> ckpter = AtomicCheckpointer(d, {"lin": torch.nn.Linear(2, 2)})
    >>> ckpt = ckpter.save_checkpoint()
    >>> ckpt.path.name.startswith("CKPT+"), sorted(p.name for p in ckpt.path.iterdir())
    (True, ['CKPT.yaml', 'lin.ckpt'])
    """

    def _staged(self, final: Path) -> Path:
        self._final_dir = final
        for stale in Path(self.checkpoints_dir).glob(STAGING_PREFIX + "*"):
            shutil.rmtree(stale, ignore_errors=True)
        return Path(self.checkpoints_dir) / (STAGING_PREFIX + final.name)

    def _new_checkpoint_dirpath(self):
        return self._staged(super()._new_checkpoint_dirpath())

    def _custom_checkpoint_dirpath(self, name):
        return self._staged(super()._custom_checkpoint_dirpath(name))

    def save_checkpoint(self, meta={}, end_of_epoch=True, name=None,
                        verbosity=logging.INFO):
        """Saves into a staging folder, then renames it into place."""
        ckpt = super().save_checkpoint(
            meta=meta, end_of_epoch=end_of_epoch, name=name,
            verbosity=logging.DEBUG,
        )
        ddp_barrier()  # every process has written its files
        if not if_main_process():
            return None
        final = self._final_dir
        if final.exists():
            shutil.rmtree(final)
        os.replace(ckpt.path, final)
        self._fsync_dir(Path(self.checkpoints_dir))
        logging.getLogger(__name__).log(
            verbosity, "Saved an %s checkpoint in %s",
            "end-of-epoch" if end_of_epoch else "intra-epoch", final,
        )
        return Checkpoint(
            final, ckpt.meta,
            {k: final / Path(v).name for k, v in ckpt.paramfiles.items()},
        )

    @staticmethod
    def _fsync_dir(path: Path) -> None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def latest_checkpoint(save_folder: str | Path) -> Path:
    """The most recent complete checkpoint folder (``CKPT+*``) of a run.

    A folder counts only when its ``CKPT.yaml`` exists (written last by
    SpeechBrain), so a checkpoint cut by a crash is never picked.

    Example
    -------
    >>> import tempfile
    >>> save = Path(tempfile.mkdtemp())
    >>> for name, time in (("CKPT+a", 2), ("CKPT+b", 1)):
    ...     (save / name).mkdir()
    ...     _ = (save / name / "CKPT.yaml").write_text(f"unixtime: {time}")
    >>> (save / "CKPT+c").mkdir()  # newest, but incomplete
    >>> latest_checkpoint(save).name
    'CKPT+a'
    """
    save_folder = Path(save_folder)
    candidates = []
    for folder in save_folder.glob("CKPT+*"):
        meta = folder / "CKPT.yaml"
        if meta.is_file():
            with open(meta, encoding="utf-8") as f:
                info = yaml.safe_load(f) or {}
            candidates.append((float(info.get("unixtime", 0)), folder.name, folder))
    if not candidates:
        raise FileNotFoundError(f"no complete checkpoint in {save_folder}")
    return max(candidates)[2]
