"""Fetches and unpacks Debian packages (``.deb`` files) into a cache folder.

``apt-get download`` needs no root and installs nothing; ``dpkg-deb -x``
unpacks a ``.deb`` anywhere. Both are done once: a re-run reuses the files
already in the cache. Where they are not available, the ``.deb`` files can be
downloaded by hand (``DEB_URL``) or the packages unpacked by hand
(``ar x <file>.deb && tar xf data.tar.xz``).

Authors
 * muselq_sb team
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Sequence

from muselq_sb.prepare.common import PrepareError, require_dir

logger = logging.getLogger(__name__)

DEB_URL = "https://packages.debian.org/stable/all/{package}/download"


def _run_tool(command: Sequence[str], what: str, path: str | os.PathLike | None,
              cwd: str | os.PathLike | None = None) -> str:
    """Runs a command line; a failure raises ``PrepareError`` naming ``path``.

    The message quotes the tool's last error line (apt's ``E:`` lines first:
    warnings may follow them).
    """
    done = subprocess.run(list(command), cwd=cwd, capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        lines = [line for line in lines if line.startswith("E:")] or lines
        detail = lines[-1] if lines else f"exit status {done.returncode}"
        raise PrepareError(f"{what} failed: {detail}", path)
    return done.stdout


def _require_tool(name: str, instead: str) -> None:
    if shutil.which(name) is None:
        raise PrepareError(f"{name} not found on this machine; {instead}")


def find_deb(folder: str | os.PathLike, package: str) -> Path | None:
    """The ``<package>_<version>_<arch>.deb`` file of ``folder``, if any.

    Its ``Package`` field is checked (``dpkg-deb --field``); two files for
    one package raise ``PrepareError`` naming them.

    Example
    -------
    >>> import tempfile
    >>> find_deb(tempfile.mkdtemp(), "supertux-data") is None
    True
    """
    found = sorted(Path(folder).glob(f"{package}_*.deb"))
    if not found:
        return None
    if len(found) > 1:
        raise PrepareError(
            f"several .deb files of {package}: {[p.name for p in found]}; "
            "keep one", folder)
    deb = found[0]
    name = _run_tool(["dpkg-deb", "--field", str(deb), "Package"],
                     "dpkg-deb --field", deb).strip()
    if name != package:
        raise PrepareError(f"holds package {name!r}, not {package!r}", deb)
    return deb


def download_deb(package: str, folder: str | os.PathLike) -> Path:
    """``apt-get download package`` into ``folder`` (no root needed).

    The file is fetched into a temporary sub-folder, then moved, so an
    interrupted download leaves nothing behind.
    """
    _require_tool("apt-get", (
        f"download {DEB_URL.format(package=package)} by hand into a folder "
        "and pass --deb_folder (or unpack the packages and pass "
        "--audio_folder; see docs/real_music.md)"))
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".download-") as tmp:
        logger.info("apt-get download %s", package)
        try:
            _run_tool(["apt-get", "download", package],
                      f"apt-get download {package}", None, cwd=tmp)
        except PrepareError as err:
            raise PrepareError(
                f"{err}; run 'apt-get update' (as root) if the package is "
                f"unknown, or download {DEB_URL.format(package=package)} by "
                "hand and pass --deb_folder") from None
        found = list(Path(tmp).glob(f"{package}_*.deb"))
        if len(found) != 1:
            raise PrepareError(f"apt-get download {package} left "
                               f"{[p.name for p in found]}, not one .deb file")
        target = folder / found[0].name
        os.replace(found[0], target)
    return target


def extract_deb(deb: str | os.PathLike, folder: str | os.PathLike) -> Path:
    """Unpacks ``deb`` (``dpkg-deb -x``) into ``folder/<deb name>/`` once.

    Example
    -------
    >>> import tempfile
    >>> extract_deb("/nonexistent/x_1_all.deb", tempfile.mkdtemp())
    Traceback (most recent call last):
    ...
    muselq_sb.prepare.common.PrepareError: /nonexistent/x_1_all.deb: .deb file not found
    """
    deb = Path(deb)
    if not deb.is_file():
        raise PrepareError(".deb file not found", deb)
    target = Path(folder) / deb.stem
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=target.parent, prefix=f".{deb.stem}.")
    try:
        logger.info("dpkg-deb -x %s", deb)
        _run_tool(["dpkg-deb", "-x", str(deb), tmp], "dpkg-deb -x", deb)
        os.replace(tmp, target)
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp)
    return target


def package_trees(
    packages: Sequence[str],
    cache_folder: str | os.PathLike,
    deb_folder: str | os.PathLike | None = None,
    audio_folder: str | os.PathLike | None = None,
) -> tuple[dict[str, Path], list[Path]]:
    """The unpacked tree of every package, fetching and unpacking as needed.

    Arguments
    ---------
    packages : sequence of str
        The source packages.
    cache_folder : path-like
        Holds ``deb/`` (downloads) and ``extracted/`` (unpacked trees).
    deb_folder : path-like, optional
        Take the ``.deb`` files from there instead of downloading them.
    audio_folder : path-like, optional
        The trees are already unpacked, one ``<package>/`` each: nothing is
        fetched.

    Returns
    -------
    (dict, list)
        Package -> its tree; the input files (``.deb`` files, or the trees).

    Example
    -------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> (d / "supertux-data" / "music").mkdir(parents=True)
    >>> trees, _ = package_trees(["supertux-data"], d / "cache", audio_folder=d)
    >>> trees["supertux-data"] == d / "supertux-data"
    True
    >>> package_trees(["hyperrogue-music"], d / "cache", audio_folder=d)
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    muselq_sb.prepare.common.PrepareError: .../hyperrogue-music: unpacked package hyperrogue-music not found
    """
    if deb_folder is not None and audio_folder is not None:
        raise ValueError("pass deb_folder or audio_folder, not both")
    if audio_folder is not None:
        trees = {p: require_dir(Path(audio_folder) / p, f"unpacked package {p}")
                 for p in packages}
        return trees, list(trees.values())
    _require_tool("dpkg-deb", (
        "install dpkg, or unpack each .deb (ar x <file>.deb && tar xf "
        "data.tar.xz) into <folder>/<package>/ and pass --audio_folder "
        "<folder>"))
    cache_folder = Path(cache_folder)
    if deb_folder is not None:
        require_dir(deb_folder, ".deb folder")
    debs = {}
    for package in packages:
        if deb_folder is not None:
            deb = find_deb(deb_folder, package)
            if deb is None:
                raise PrepareError(
                    f"no {package}_*.deb file; download it from "
                    f"{DEB_URL.format(package=package)}", deb_folder)
        else:
            deb = find_deb(cache_folder / "deb", package) or download_deb(
                package, cache_folder / "deb")
        debs[package] = deb
    trees = {p: extract_deb(deb, cache_folder / "extracted")
             for p, deb in debs.items()}
    return trees, list(debs.values())
