"""Runs the preparation script of one data set by name.

Usage::

    python -m muselq_sb.prepare <dataset> --data_folder X --save_folder Y [...]
    python -m muselq_sb.prepare <dataset> --help

``<dataset>`` names a module ``muselq_sb.prepare.<dataset>``; it is imported
only when asked for, so a data set whose module fails to import does not
affect the others. The pre-training sources ``music4all``, ``fma`` and
``folder`` run ``muselq_sb.prepare.pretrain.source_cli``. A ``PrepareError`` is reported as one line (exit status
1) instead of a traceback, as ``python -m muselq_sb.prepare.<dataset>``
does (``muselq_sb.prepare.common.run_cli``).

Authors
 * muselq_sb team
"""
from __future__ import annotations

import functools
import importlib
import sys
from types import ModuleType, SimpleNamespace
from typing import Sequence

from muselq_sb.prepare.common import PrepareError, PrepareExit, report_error
from muselq_sb.prepare.pretrain import source_cli

DATASETS = ("music4all", "fma", "folder", "mtat", "mtg_jamendo", "giantsteps",
            "gtzan", "emomusic", "nsynth", "vocalset", "debian_music", "shards",
            "demo", "beats", "chords")
#: Pre-training sources (one ``pretrain`` task folder) and their description.
SOURCES = {"music4all": "Prepare Music4All for pre-training.",
           "fma": "Prepare FMA large/full for pre-training.",
           "folder": "Prepare a plain folder of audio for pre-training."}
USAGE = (
    "usage: python -m muselq_sb.prepare <dataset> --data_folder X "
    "--save_folder Y [options]\n"
    "       python -m muselq_sb.prepare shards --source TYPE:PATH "
    "--save_folder Y [options]\n"
    f"datasets: {', '.join(DATASETS)}\n"
    "'python -m muselq_sb.prepare <dataset> --help' lists its options\n"
)


def load_module(name: str) -> ModuleType | SimpleNamespace:
    """Imports the preparation module of data set ``name``.

    Arguments
    ---------
    name : str
        One of ``DATASETS``.

    Returns
    -------
    module
        ``muselq_sb.prepare.<name>``, which has ``main(argv)``; for a
        pre-training source, a namespace whose ``main`` is ``source_cli``.

    Example
    -------
    >>> load_module("nsynth").__name__
    'muselq_sb.prepare.nsynth'
    >>> load_module("fma").main.func.__name__
    'source_cli'
    >>> load_module("timit")
    Traceback (most recent call last):
    ...
    SystemExit: unknown dataset 'timit'; expected one of: music4all, fma, folder, mtat, mtg_jamendo, giantsteps, gtzan, emomusic, nsynth, vocalset, debian_music, shards, demo, beats, chords
    """
    if name not in DATASETS:
        raise SystemExit(
            f"unknown dataset {name!r}; expected one of: {', '.join(DATASETS)}"
        )
    if name in SOURCES:
        return SimpleNamespace(main=functools.partial(source_cli, name, SOURCES[name]))
    module_name = f"{__package__}.{name}"
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name != module_name:
            raise
        raise SystemExit(
            f"the preparation of {name!r} is not available in this "
            f"installation ({module_name} not found)"
        ) from None


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatches ``<dataset> [options]`` to that data set's ``main``.

    Arguments
    ---------
    argv : sequence of str, optional
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The data set's exit status (0 when its ``main`` returns no int);
        1 after a ``PrepareError``, whose message is printed to stderr.

    Example
    -------
    >>> main(["--help"])  # doctest: +ELLIPSIS
    usage: python -m muselq_sb.prepare <dataset> ...
    0
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE, end="", file=sys.stdout if args else sys.stderr)
        return 0 if args else 2
    module = load_module(args[0])
    try:
        status = module.main(args[1:])
    except PrepareExit as reported:  # by the data set's run_cli
        return reported.code
    except PrepareError as err:
        return report_error(err)
    return status if isinstance(status, int) else 0


if __name__ == "__main__":
    raise SystemExit(main())
