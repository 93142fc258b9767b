"""Debian's game soundtracks -> a pre-training folder and the ``debian_music`` probe.

Real recorded and produced music under free licences, from nine packages of
Debian main (``PACKAGES``): each ``.deb`` is fetched with ``apt-get download``
(no root, nothing installed) into a cache folder outside the repository
(default ``~/.cache/muselq_sb/debian_music``) and unpacked there with
``dpkg-deb -x``; a re-run reuses what is already there.

A *track* is an audio file (``muselq_sb.dataio.audio.AUDIO_EXTENSIONS``) that

* lies under a folder named ``music`` (any case) of the package's tree
  (sound effects live in ``sounds/``, ``sfx/``, ``effects/``...), and
* lasts at least ``min_track_seconds`` (45 s: drops jingles and stingers).

A file with the same bytes as a track already kept (same package order,
then path order) is dropped as a duplicate.

Whole tracks are split, so that no track is on two sides anywhere:

* every source package with at least ``train_tracks + valid_tracks +
  test_tracks`` tracks is a class of the probe task; that many of its tracks
  (drawn with ``seed``) go to the probe's train / valid / test splits, the
  rest to pre-training;
* the other packages go wholly to pre-training, and so do the
  ``pretrain_packages`` (more pre-training audio, the probe task unchanged:
  their tracks come after the classes' in the duplicate check, so no probe
  track reaches pre-training through another package's copy).

Written under ``save_folder``::

    debian_music_pretrain/<package>/<track>.ogg   symlinks into the cache: the
                                                  --data_folder of
                                                  recipes/pretrain/train.py
    debian_music_pretrain/tracks.csv              the same tracks as a manifest
    debian_music/{train,valid,test}.csv, task.json   the probe task

Each probe item is one ``excerpt_seconds`` excerpt of a track (up to
``excerpts_per_track`` of them, evenly spaced and not overlapping, through the
manifest's ``start``/``stop``); ``label`` is the source package, ``track``
the track. ``task.json`` has ``"retrieval": {"key": "track"}`` (same-track
retrieval, ``muselq_sb.downstream.metrics.retrieval_precision_at_1``) and
the track counts per split and class.

Elsewhere than on Debian (no ``apt-get``): download the ``.deb`` files by hand
from ``https://packages.debian.org/stable/all/<package>/download`` into one
folder and pass ``--deb_folder``; without ``dpkg-deb`` either, unpack each
(``ar x <file>.deb && tar xf data.tar.xz``) into ``<folder>/<package>/`` and
pass ``--audio_folder <folder>``.

Authors
 * muselq_sb team
"""
from __future__ import annotations

import hashlib
import logging
import math
import os
import shutil
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Collection, Mapping, Sequence

import numpy as np
from tqdm import tqdm

from muselq_sb.dataio.audio import has_audio_extension
from muselq_sb.dataio.manifest import SPLITS, read_task, write_manifest
from muselq_sb.prepare.common import (
    Built,
    PrepareError,
    TaskSpec,
    audio_duration,
    prepare_parser,
    prepare_tasks,
    run_cli,
)
from muselq_sb.prepare.debian_packages import package_trees
from muselq_sb.prepare.folder import track_id_from_path

logger = logging.getLogger(__name__)

PACKAGES = (
    "supertuxkart-data", "supertux-data", "freedroidrpg-data", "megaglest-data",
    "colobot-common-sounds", "fillets-ng-data", "hyperrogue-music",
    "lincity-ng-data", "extremetuxracer-data",
)
DEFAULT_CACHE = "~/.cache/muselq_sb/debian_music"
MUSIC_FOLDER = "music"
TASK_NAME = "debian_music"
PRETRAIN_FOLDER = "debian_music_pretrain"
PRETRAIN_LIST = "tracks.csv"
TASK = TaskSpec(TASK_NAME, "multiclass", "label", None, ("accuracy",), ("track",))


@dataclass(frozen=True)
class Track:
    """One kept track of a source package.

    Arguments
    ---------
    track_id : str
        Unique, CSV-safe id (package + path inside the package).
    package : str
        The source package (the class).
    path : Path
        The audio file.
    duration : float
        Seconds.
    """

    track_id: str
    package: str
    path: Path
    duration: float


def is_music_path(relative: str | os.PathLike) -> bool:
    """True when a folder of ``relative`` (not the file) is named ``music``.

    Example
    -------
    >>> is_music_path("usr/share/games/supertux2/music/forest/a.ogg")
    True
    >>> is_music_path("usr/share/games/supertuxkart/data/sfx/music.ogg")
    False
    """
    return any(part.lower() == MUSIC_FOLDER
               for part in PurePath(relative).parts[:-1])


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def list_tracks(
    trees: Mapping[str, str | os.PathLike], min_track_seconds: float
) -> tuple[list[Track], dict[str, list[str]]]:
    """The tracks of every package tree (see the module docstring).

    Arguments
    ---------
    trees : mapping
        Package -> its unpacked tree, in the order duplicates are resolved.
    min_track_seconds : float
        Shortest track kept.

    Returns
    -------
    (list of Track, dict)
        The tracks (package order, then path order) and the left-out audio
        files by reason: ``not_music``, ``too_short``, ``unreadable``,
        ``duplicate``.

    Example
    -------
    >>> import tempfile, numpy, soundfile
    >>> d = Path(tempfile.mkdtemp())
    >>> for rel, seconds in [("music/a.ogg", 2), ("music/b.ogg", 0.5),
    ...                      ("sounds/c.ogg", 2)]:
    ...     (d / rel).parent.mkdir(exist_ok=True)
    ...     soundfile.write(d / rel, numpy.zeros(int(8000 * seconds)), 8000)
    >>> tracks, skipped = list_tracks({"pkg": d}, 1.0)
    >>> [t.track_id for t in tracks], {k: len(v) for k, v in skipped.items()}
    (['pkg_music_a.ogg'], {'not_music': 1, 'too_short': 1, 'unreadable': 0, 'duplicate': 0})
    """
    skipped: dict[str, list[str]] = {
        "not_music": [], "too_short": [], "unreadable": [], "duplicate": []}
    candidates = []
    for package, tree in trees.items():
        tree = Path(tree)
        for path in sorted(tree.rglob("*")):
            if not has_audio_extension(path) or not path.is_file():
                continue
            relative = path.relative_to(tree)
            if is_music_path(relative):
                candidates.append((package, relative, path))
            else:
                skipped["not_music"].append(str(path))
    tracks: list[Track] = []
    kept: dict[str, Path] = {}
    for package, relative, path in tqdm(candidates, desc="music files",
                                        unit="file", dynamic_ncols=True):
        duration = audio_duration(path)
        if duration is None:
            skipped["unreadable"].append(str(path))
            continue
        if duration < min_track_seconds:
            skipped["too_short"].append(str(path))
            continue
        digest = _sha256(path)
        if digest in kept:
            logger.info("%s: same bytes as %s: dropped", path, kept[digest])
            skipped["duplicate"].append(str(path))
            continue
        kept[digest] = path
        tracks.append(Track(track_id_from_path(relative, package), package,
                            path.absolute(), duration))
    return tracks, skipped


def split_tracks(
    tracks: Sequence[Track], split_sizes: Mapping[str, int], seed: int,
    pretrain_only: Collection[str] = (),
) -> tuple[dict[str, list[Track]], list[Track]]:
    """Draws the probe tracks of every class; the rest is for pre-training.

    A package with at least ``sum(split_sizes.values())`` tracks gives
    ``split_sizes[split]`` of them to each probe split; the others, and the
    packages of ``pretrain_only``, give all theirs to pre-training. The draw
    of a package depends only on ``seed``, the package name and its tracks.

    Arguments
    ---------
    tracks : sequence of Track
        All the tracks.
    split_sizes : mapping
        Probe split -> tracks per class.
    seed : int
        Seed of the draw.
    pretrain_only : collection of str
        Packages that are never a probe class.

    Returns
    -------
    (dict, list)
        Probe split -> its tracks; the pre-training tracks.

    Example
    -------
    >>> tracks = [Track(f"{p}{i}", p, Path("/x"), 60.0)
    ...           for p, n in [("a", 5), ("b", 2)] for i in range(n)]
    >>> probe, pretrain = split_tracks(tracks, {"train": 2, "valid": 1,
    ...                                         "test": 1}, seed=0)
    >>> {s: len(t) for s, t in probe.items()}
    {'train': 2, 'valid': 1, 'test': 1}
    >>> sorted(t.track_id for t in pretrain)  # one of a; b is too small
    ['a4', 'b0', 'b1']
    >>> probe, pretrain = split_tracks(tracks, {"train": 2, "valid": 1,
    ...                                         "test": 1}, 0, pretrain_only={"a"})
    >>> len(pretrain), probe["train"]
    (7, [])
    """
    needed = sum(split_sizes.values())
    probe: dict[str, list[Track]] = {split: [] for split in split_sizes}
    pretrain: list[Track] = []
    for package in sorted({t.package for t in tracks}):
        own = sorted((t for t in tracks if t.package == package),
                     key=lambda t: t.track_id)
        if package in pretrain_only:
            pretrain += own
            continue
        if len(own) < needed:
            logger.info("%s: %d tracks, fewer than the %d of a probe class: "
                        "all for pre-training", package, len(own), needed)
            pretrain += own
            continue
        rng = np.random.default_rng([seed, zlib.crc32(package.encode())])
        order = [own[i] for i in rng.permutation(len(own))]
        for split, size in split_sizes.items():
            probe[split] += order[:size]
            order = order[size:]
        pretrain += order
    return probe, pretrain


def excerpt_bounds(
    duration: float, count: int, seconds: float
) -> list[tuple[float, float]]:
    """Up to ``count`` evenly spaced, non-overlapping excerpts of a track.

    Excerpt ``k`` of ``n`` is centred on ``(k + 0.5) / n`` of the track;
    ``n`` is ``count``, or fewer when ``count`` excerpts do not fit.

    Example
    -------
    >>> excerpt_bounds(60.0, 3, 10.0)
    [(5.0, 15.0), (25.0, 35.0), (45.0, 55.0)]
    >>> len(excerpt_bounds(45.0, 8, 10.0))
    4
    """
    n = min(count, math.floor(duration / seconds))
    bounds = []
    for k in range(n):
        start = (k + 0.5) * duration / n - seconds / 2
        start = round(min(max(start, 0.0), duration - seconds), 3)
        bounds.append((start, round(start + seconds, 3)))
    return bounds


def excerpt_rows(
    tracks: Sequence[Track], count: int, seconds: float
) -> list[dict]:
    """The manifest rows of the excerpts of ``tracks``.

    Example
    -------
    >>> rows = excerpt_rows([Track("t", "pkg", Path("/t.ogg"), 50.0)], 2, 10.0)
    >>> [(r["ID"], r["start"], r["stop"], r["label"], r["track"]) for r in rows]
    [('t-e00', 7.5, 17.5, 'pkg', 't'), ('t-e01', 32.5, 42.5, 'pkg', 't')]
    """
    return [
        {"ID": f"{t.track_id}-e{k:02d}", "path": str(t.path),
         "duration": round(stop - start, 6), "start": start, "stop": stop,
         "label": t.package, "track": t.track_id}
        for t in tracks
        for k, (start, stop) in enumerate(excerpt_bounds(t.duration, count, seconds))
    ]


def write_pretrain_folder(folder: str | os.PathLike, tracks: Sequence[Track]) -> Path:
    """A folder of symlinks ``<package>/<track id>`` to ``tracks`` (+ list).

    The folder is built beside its final place and swapped in, so it is
    never half written; ``tracks.csv`` lists the tracks as a manifest
    (``label`` = the package).

    Example
    -------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "a.ogg").write_bytes(b"")
    >>> f = write_pretrain_folder(d / "pre", [Track("pkg_a.ogg", "pkg", d / "a.ogg", 50.)])
    >>> os.readlink(f / "pkg" / "pkg_a.ogg") == str(d / "a.ogg")
    True
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    new = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(new, 0o777 & ~umask)  # mkdtemp makes 0700; honour the umask
    try:
        for track in tracks:
            (new / track.package).mkdir(exist_ok=True)
            os.symlink(track.path, new / track.package / track.track_id)
        write_manifest(new / PRETRAIN_LIST, [
            {"ID": t.track_id, "path": str(t.path), "duration": t.duration,
             "label": t.package} for t in tracks], ["label"])
        if folder.exists():
            old = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.old."))
            os.replace(folder, old / folder.name)
            os.replace(new, folder)
            shutil.rmtree(old)
        else:
            os.replace(new, folder)
    finally:
        if new.exists():
            shutil.rmtree(new)
    return folder


def _hours(tracks: Sequence[Track]) -> float:
    return round(sum(t.duration for t in tracks) / 3600, 4)


def _counts(tracks: Sequence[Track]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for track in tracks:
        counts[track.package] = counts.get(track.package, 0) + 1
    return counts


def package_table(task_folder: str | os.PathLike) -> str:
    """Tracks and hours per package and side, from the probe's ``task.json``."""
    info = read_task(task_folder)
    sides = ["pretrain", *SPLITS]
    lines = ["  package                 tracks  hours  " + "  ".join(
        f"{s:>8}" for s in sides)]
    for package, stats in info["packages"].items():
        lines.append(f"  {package:<22} {stats['tracks']:>7} {stats['hours']:>6.2f}  "
                     + "  ".join(f"{info['tracks'][s].get(package, 0):>8}"
                                 for s in sides))
    lines.append(f"  pre-training folder: {info['pretrain']['folder']} "
                 f"({info['pretrain']['tracks']} tracks, "
                 f"{info['pretrain']['hours']:.2f} h)")
    return "\n".join(lines)


def prepare_debian_music(
    save_folder: str | os.PathLike,
    cache_folder: str | os.PathLike = DEFAULT_CACHE,
    deb_folder: str | os.PathLike | None = None,
    audio_folder: str | os.PathLike | None = None,
    packages: Sequence[str] = PACKAGES,
    pretrain_packages: Sequence[str] = (),
    min_track_seconds: float = 45.0,
    train_tracks: int = 3,
    valid_tracks: int = 2,
    test_tracks: int = 3,
    excerpts_per_track: int = 8,
    excerpt_seconds: float = 10.0,
    seed: int = 0,
) -> Path:
    """Builds the pre-training folder and the ``debian_music`` probe task.

    Arguments
    ---------
    save_folder : path-like
        Gets ``debian_music/`` (the probe task) and ``debian_music_pretrain/``.
    cache_folder : path-like
        Downloads and unpacked packages (outside the repository).
    deb_folder : path-like, optional
        Take the ``.deb`` files from there (no download).
    audio_folder : path-like, optional
        Already unpacked trees ``<audio_folder>/<package>/`` (no dpkg-deb).
    packages : sequence of str
        The source packages (the classes).
    pretrain_packages : sequence of str
        More packages whose tracks all go to pre-training (never a class).
    min_track_seconds : float
        Shortest track kept.
    train_tracks, valid_tracks, test_tracks : int
        Tracks of each probe class in each probe split.
    excerpts_per_track : int
        Most excerpts (probe items) taken from one track.
    excerpt_seconds : float
        Length of an excerpt (at most ``min_track_seconds``).
    seed : int
        Seed of the split.

    Returns
    -------
    Path
        The probe task folder.
    """
    split_sizes = {"train": train_tracks, "valid": valid_tracks,
                   "test": test_tracks}
    if min(split_sizes.values()) < 1 or excerpts_per_track < 1:
        raise ValueError(f"need at least one track per probe split and one "
                         f"excerpt per track, got {split_sizes} and "
                         f"excerpts_per_track={excerpts_per_track}")
    if not 0 < excerpt_seconds <= min_track_seconds:
        raise ValueError(f"excerpt_seconds={excerpt_seconds} must be in "
                         f"(0, min_track_seconds={min_track_seconds}]")
    both = sorted(set(packages) & set(pretrain_packages))
    if both:
        raise ValueError(f"{both} given both as packages (probe classes) and "
                         f"as pretrain_packages")
    cache_folder = Path(cache_folder).expanduser().absolute()
    every = [*packages, *pretrain_packages]
    trees, inputs = package_trees(every, cache_folder, deb_folder, audio_folder)
    pretrain_folder = Path(save_folder) / PRETRAIN_FOLDER
    options = {
        "packages": list(packages),
        "pretrain_packages": list(pretrain_packages),
        "cache_folder": str(cache_folder),
        "deb_folder": deb_folder and os.path.abspath(deb_folder),
        "audio_folder": audio_folder and os.path.abspath(audio_folder),
        "min_track_seconds": min_track_seconds, "split_tracks": split_sizes,
        "excerpts_per_track": excerpts_per_track,
        "excerpt_seconds": excerpt_seconds, "seed": seed,
    }

    def build() -> Built:
        tracks, skipped = list_tracks(trees, min_track_seconds)
        probe, pretrain = split_tracks(tracks, split_sizes, seed,
                                       set(pretrain_packages))
        classes = sorted({t.package for t in probe["train"]})
        if not classes:
            raise PrepareError(
                f"no package has the {sum(split_sizes.values())} tracks a "
                f"probe class needs (tracks per package: {_counts(tracks)})",
                save_folder)
        write_pretrain_folder(pretrain_folder, pretrain)
        by_package = {p: [t for t in tracks if t.package == p] for p in every}
        extra = {
            "retrieval": {"key": "track"},
            "packages": {p: {"tracks": len(own), "hours": _hours(own)}
                         for p, own in by_package.items()},
            "tracks": {"pretrain": _counts(pretrain),
                       **{s: _counts(own) for s, own in probe.items()}},
            "pretrain": {"folder": str(pretrain_folder.absolute()),
                         "tracks": len(pretrain), "hours": _hours(pretrain)},
        }
        rows = {s: excerpt_rows(own, excerpts_per_track, excerpt_seconds)
                for s, own in probe.items()}
        return Built({TASK.name: rows}, skipped, extra, {TASK.name: classes})

    [folder] = prepare_tasks(save_folder, [TASK], inputs, options, build,
                             outputs=[pretrain_folder / PRETRAIN_LIST])
    print(package_table(folder))
    return folder


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``python -m muselq_sb.prepare debian_music --save_folder S ...``."""
    parser = prepare_parser("debian_music", __doc__.splitlines()[0],
                            allow_missing=False, data_folder=False)
    parser.add_argument("--cache_folder", default=DEFAULT_CACHE,
                        help="downloads and unpacked packages (default: "
                             "%(default)s)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--deb_folder", default=None,
                        help="take the .deb files from this folder instead of "
                             "apt-get download")
    source.add_argument("--audio_folder", default=None,
                        help="already unpacked packages, one <package>/ "
                             "sub-folder each (no apt-get, no dpkg-deb)")
    parser.add_argument("--packages", nargs="+", default=list(PACKAGES),
                        help="the source packages (default: the nine of "
                             "docs/real_music.md)")
    parser.add_argument("--pretrain_packages", nargs="+", default=[],
                        help="more packages, all of whose music goes to "
                             "pre-training (never a probe class)")
    parser.add_argument("--min_track_seconds", type=float, default=45.0)
    parser.add_argument("--train_tracks", type=int, default=3,
                        help="tracks per class in the probe's train split")
    parser.add_argument("--valid_tracks", type=int, default=2)
    parser.add_argument("--test_tracks", type=int, default=3)
    parser.add_argument("--excerpts_per_track", type=int, default=8)
    parser.add_argument("--excerpt_seconds", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    return run_cli(parser, prepare_debian_music, argv)


if __name__ == "__main__":
    raise SystemExit(main())
