"""Prepares VocalSet 1.1 for singing-technique and singer classification.

Native layout (``VocalSet11.zip`` unpacked)::

    <data_folder>/FULL/<singer>/<context>/<technique>/<file>.wav

with singer folders ``female1``-``female9`` and ``male1``-``male11`` and
contexts such as ``arpeggios``, ``scales``, ``long_tones``, ``excerpts``.
Only wav files at exactly that depth are used (as MARBLE does); hidden files
(``._*``) and ``__MACOSX/`` are ignored.

Labels: the singer comes from the singer folder (``female2`` -> ``f2``),
the technique from the technique folder. Recordings whose file name lacks
the singer prefix get it (``scales_straight_a`` in ``female4`` becomes
recording ``f4_scales_straight_a``, MARBLE's renaming), and the duplicates
MARBLE deletes (``DUPLICATES``) are left out.

Every recording is cut into non-overlapping ``chunk_seconds`` (3 s) segments
from its start, the remainder dropped (MARBLE v1; its voice-activity trim of
the leading silence is not reproduced). Each segment is a row with
``start``/``stop`` and ``group`` = the recording id, and segments of one
recording never straddle two splits.

* ``vocalset_technique``: the 10 techniques of ``TECHNIQUES``; test = the
  recordings of the 5 official test singers (f2, f8, m3, m5, m10); the
  recordings of the 15 other singers are split 60:40 into train/valid.
* ``vocalset_singer``: all 17 techniques, 20 singers; recordings split
  20 % test, then 40 % of the rest valid (48:32:20, the paper's 12:8:5).

Both random splits are seeded and stratified by class (per technique, per
singer), so every class with at least 2 (resp. 3) recordings appears in
every split; MARBLE's exact membership depends on its file order and RNG
and cannot be reproduced.

Authors
 * muselq_sb team
"""
from __future__ import annotations

import logging
import math
import os
import random
import re
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from muselq_sb.dataio.manifest import SPLITS
from muselq_sb.prepare.common import (
    Built,
    PrepareError,
    TaskSpec,
    audio_duration,
    prepare_parser,
    prepare_tasks,
    require_dir,
    run_cli,
)

logger = logging.getLogger(__name__)

TECHNIQUES = ("belt", "breathy", "inhaled", "lip_trill", "spoken", "straight",
              "trill", "trillo", "vibrato", "vocal_fry")
ALL_TECHNIQUES = TECHNIQUES + ("fast_forte", "fast_piano", "forte", "messa",
                               "pp", "slow_forte", "slow_piano")
SINGERS = tuple(f"f{i}" for i in range(1, 10)) + tuple(
    f"m{i}" for i in range(1, 12))
TEST_SINGERS = ("f2", "f8", "m3", "m5", "m10")
DUPLICATES = frozenset({
    "f2_scales_vibrato_a(1).wav", "caro_vibrato.wav", "dona_vibrato.wav",
    "row_vibrato.wav", "slow_vibrato_arps.wav",
})
METRICS = ("accuracy",)
TECHNIQUE_TASK = TaskSpec("vocalset_technique", "multiclass", "label",
                          TECHNIQUES, METRICS, columns=("group",))
SINGER_TASK = TaskSpec("vocalset_singer", "multiclass", "label", SINGERS,
                       METRICS, columns=("group",))
SINGER_FOLDER = re.compile(r"^(f)emale(\d+)$|^(m)ale(\d+)$")


def singer_id(folder_name: str) -> str | None:
    """The short singer id of a singer folder, or None if it is not one.

    Example
    -------
    >>> singer_id("female2"), singer_id("male11"), singer_id("male12")
    ('f2', 'm11', None)
    """
    match = SINGER_FOLDER.match(folder_name)
    if match is None:
        return None
    short = "".join(g for g in match.groups() if g)
    return short if short in SINGERS else None


def find_recordings(data_folder: str | os.PathLike) -> list[dict]:
    """Lists the recordings of ``<data_folder>/FULL`` with their labels.

    Arguments
    ---------
    data_folder : path-like
        The unpacked VocalSet 1.1 folder (holding ``FULL/``).

    Returns
    -------
    list of dict
        One dict per recording, sorted by id: ``id``, ``path``, ``singer``,
        ``technique``. Raises ``PrepareError`` naming the folder for an
        unknown singer or technique folder, or for two files that map to
        one recording id.

    Example
    -------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> os.makedirs(os.path.join(d, "FULL", "male3", "scales", "belt"))
    >>> _ = open(os.path.join(d, "FULL", "male3", "scales", "belt",
    ...                       "scales_belt_a.wav"), "wb")
    >>> [(r["id"], r["singer"], r["technique"]) for r in find_recordings(d)]
    [('m3_scales_belt_a', 'm3', 'belt')]
    """
    full = require_dir(Path(data_folder) / "FULL", "VocalSet FULL folder")
    recordings: dict[str, dict] = {}
    for path in sorted(full.glob("*/*/*/*.wav")):
        if path.name.startswith(".") or path.name in DUPLICATES:
            continue
        singer_folder, technique = path.parts[-4], path.parts[-2]
        singer = singer_id(singer_folder)
        if singer is None:
            raise PrepareError(
                "unknown singer folder; expected femaleN (N = 1..9) or maleN"
                " (N = 1..11)", full / singer_folder,
            )
        if technique not in ALL_TECHNIQUES:
            raise PrepareError(
                f"unknown technique folder; expected one of "
                f"{list(ALL_TECHNIQUES)}", path.parent,
            )
        stem = path.stem
        rec_id = stem if stem.startswith(f"{singer}_") else f"{singer}_{stem}"
        if rec_id in recordings:
            raise PrepareError(
                f"recording id {rec_id!r} already used by "
                f"{recordings[rec_id]['path']}", path,
            )
        recordings[rec_id] = {"id": rec_id, "path": path, "singer": singer,
                              "technique": technique}
    return [recordings[k] for k in sorted(recordings)]


def chunk_rows(
    recording: Mapping[str, object], label: str, duration: float,
    chunk_seconds: float,
) -> list[dict]:
    """Manifest rows of the whole ``chunk_seconds`` segments of a recording.

    Arguments
    ---------
    recording : mapping
        Has ``id`` and ``path``.
    label : str
        The class of every segment.
    duration : float
        Length of the recording in seconds.
    chunk_seconds : float
        Segment length; a shorter remainder is dropped.

    Returns
    -------
    list of dict
        Rows with ``start``/``stop``, ``label`` and ``group`` = recording id.

    Example
    -------
    >>> rows = chunk_rows({"id": "f1_x", "path": "/x.wav"}, "belt", 7.5, 3.0)
    >>> [(r["ID"], r["start"], r["stop"]) for r in rows]
    [('f1_x_00', 0.0, 3.0), ('f1_x_01', 3.0, 6.0)]
    """
    count = math.floor(duration / chunk_seconds + 1e-9)
    return [
        {"ID": f"{recording['id']}_{k:02d}", "path": str(recording["path"]),
         "duration": chunk_seconds, "start": k * chunk_seconds,
         "stop": (k + 1) * chunk_seconds, "label": label,
         "group": recording["id"]}
        for k in range(count)
    ]


def hold_out(
    groups: Mapping[str, Sequence[str]], fraction: float, rng: random.Random
) -> tuple[set[str], dict[str, list[str]]]:
    """Draws ``fraction`` of the items of every class, keeping one of each.

    Arguments
    ---------
    groups : mapping
        class -> item ids.
    fraction : float
        Share of each class's items drawn (rounded); a class with at least
        2 items gives at least 1 and keeps at least 1.
    rng : random.Random
        The seeded generator.

    Returns
    -------
    tuple
        The drawn ids, and class -> remaining ids.

    Example
    -------
    >>> held, rest = hold_out({"a": ["1", "2", "3"], "b": ["4"]}, 0.4,
    ...                       random.Random(0))
    >>> len(held), sorted(len(v) for v in rest.values())
    (1, [1, 2])
    """
    held: set[str] = set()
    rest: dict[str, list[str]] = {}
    for cls in sorted(groups):
        items = sorted(groups[cls])
        rng.shuffle(items)
        count = round(fraction * len(items))
        if len(items) >= 2:
            count = min(max(count, 1), len(items) - 1)
        held.update(items[:count])
        rest[cls] = items[count:]
    return held, rest


def _by_class(recordings: Iterable[Mapping], key: str) -> dict[str, list[str]]:
    """Recording ids grouped by ``recording[key]``."""
    groups: dict[str, list[str]] = {}
    for rec in recordings:
        groups.setdefault(rec[key], []).append(rec["id"])
    return groups


def technique_split(
    recordings: Sequence[Mapping], seed: int
) -> dict[str, str]:
    """Recording id -> split for ``vocalset_technique`` (10 techniques).

    Test = the official test singers; the others' recordings are split
    60:40 into train/valid, stratified by technique.

    Example
    -------
    >>> recs = [{"id": f"{s}_{i}", "singer": s, "technique": "belt"}
    ...         for s in ("f1", "f2") for i in range(3)]
    >>> sorted(technique_split(recs, seed=0).values())
    ['test', 'test', 'test', 'train', 'train', 'valid']
    """
    used = [r for r in recordings if r["technique"] in TECHNIQUES]
    split = {r["id"]: "test" for r in used if r["singer"] in TEST_SINGERS}
    pool = [r for r in used if r["singer"] not in TEST_SINGERS]
    valid, _ = hold_out(_by_class(pool, "technique"), 0.4, random.Random(seed))
    split.update({r["id"]: "valid" if r["id"] in valid else "train"
                  for r in pool})
    return split


def singer_split(recordings: Sequence[Mapping], seed: int) -> dict[str, str]:
    """Recording id -> split for ``vocalset_singer`` (all techniques).

    20 % of each singer's recordings go to test, then 40 % of the rest to
    valid.

    Example
    -------
    >>> recs = [{"id": f"f1_{i}", "singer": "f1"} for i in range(5)]
    >>> sorted(singer_split(recs, seed=0).values())
    ['test', 'train', 'train', 'valid', 'valid']
    """
    rng = random.Random(seed)
    test, rest = hold_out(_by_class(recordings, "singer"), 0.2, rng)
    valid, _ = hold_out(rest, 0.4, rng)
    return {r["id"]: "test" if r["id"] in test
            else "valid" if r["id"] in valid else "train"
            for r in recordings}


def prepare_vocalset(
    data_folder: str | os.PathLike,
    save_folder: str | os.PathLike,
    chunk_seconds: float = 3.0,
    seed: int = 1234,
) -> tuple[Path, Path]:
    """Writes the ``vocalset_technique`` and ``vocalset_singer`` tasks.

    Arguments
    ---------
    data_folder : path-like
        The unpacked VocalSet 1.1 folder (holding ``FULL/``).
    save_folder : path-like
        The tasks are written to ``<save_folder>/vocalset_technique`` and
        ``<save_folder>/vocalset_singer``.
    chunk_seconds : float
        Segment length (MARBLE: 3 s).
    seed : int
        Seed of the train/valid/test draws.

    Returns
    -------
    tuple of Path
        The technique and the singer task folders.

    Example
    -------
    >>> import tempfile
    >>> prepare_vocalset(tempfile.mkdtemp(), tempfile.mkdtemp())
    Traceback (most recent call last):
    ...
    muselq_sb.prepare.common.PrepareError: .../FULL: VocalSet FULL folder not found
    """
    data_folder = Path(data_folder).resolve()
    options = {"data_folder": str(data_folder),
               "chunk_seconds": chunk_seconds, "seed": seed}
    recordings = find_recordings(data_folder)
    # A file added or removed changes the mtime of its folder.
    inputs = [r["path"] for r in recordings] + sorted(
        {r["path"].parent for r in recordings})

    def build() -> Built:
        skipped: dict[str, list[str]] = {"unreadable": [], "too_short": []}
        durations = {}
        for rec in recordings:
            duration = audio_duration(rec["path"])
            if duration is None:
                skipped["unreadable"].append(str(rec["path"]))
            elif duration < chunk_seconds:
                logger.info("%s is shorter than %s s: skipped", rec["path"],
                            chunk_seconds)
                skipped["too_short"].append(str(rec["path"]))
            else:
                durations[rec["id"]] = duration
        usable = [r for r in recordings if r["id"] in durations]
        rows = {}
        for task, split_of, key in (
            (TECHNIQUE_TASK, technique_split(usable, seed), "technique"),
            (SINGER_TASK, singer_split(usable, seed), "singer"),
        ):
            rows[task.name] = {s: [] for s in SPLITS}
            for rec in usable:
                if rec["id"] in split_of:
                    rows[task.name][split_of[rec["id"]]] += chunk_rows(
                        rec, rec[key], durations[rec["id"]], chunk_seconds)
        return Built(rows, skipped, {"chunk_seconds": chunk_seconds})

    technique, singer = prepare_tasks(
        save_folder, [TECHNIQUE_TASK, SINGER_TASK], inputs, options, build)
    return technique, singer


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m muselq_sb.prepare vocalset --data_folder X
    --save_folder Y [--chunk_seconds S] [--seed N]``.

    Arguments
    ---------
    argv : sequence of str, optional
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success (a ``PrepareError`` exits with status 1).

    Example
    -------
    >>> main(["--help"])
    Traceback (most recent call last):
    ...
    SystemExit: 0
    """
    parser = prepare_parser("vocalset", __doc__.split("\n")[0],
                            allow_missing=False)
    parser.add_argument("--chunk_seconds", type=float, default=3.0,
                        help="segment length in seconds (default 3)")
    parser.add_argument("--seed", type=int, default=1234,
                        help="seed of the split draws (default 1234)")
    return run_cli(parser, prepare_vocalset, argv)


if __name__ == "__main__":
    raise SystemExit(main())
