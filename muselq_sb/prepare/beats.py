"""Prepares a beats data set (audio + one annotation file per track).

    python -m muselq_sb.prepare beats --data_folder AUDIO --save_folder TASKS \
        [--annotations_folder ANNOTATIONS] [--name beats] [--split_shares 8,1,1]

See :mod:`muselq_sb.prepare.frame_tasks` for the layouts and the matching
of annotation files to audio.

Authors
 * muselq_sb team
"""
from __future__ import annotations

from typing import Sequence

from muselq_sb.prepare.frame_tasks import main_for


def main(argv: Sequence[str] | None = None) -> int:
    """The command line."""
    return main_for("beats", argv)


if __name__ == "__main__":
    main()
