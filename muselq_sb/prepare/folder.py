"""Lists a plain folder of audio files (recursively) as pre-training tracks.

Also defines ``TrackListing``, what every pre-training source lister
(``music4all``, ``fma``, ``folder``) returns.

Authors
 * muselq_sb team
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from muselq_sb.dataio.audio import has_audio_extension
from muselq_sb.prepare.common import require_dir

logger = logging.getLogger(__name__)


@dataclass
class TrackListing:
    """The tracks of one source, before any audio is read.

    Arguments
    ---------
    tracks : list of (str, pathlib.Path)
        Unique track id and audio file.
    inputs : list of pathlib.Path
        Annotation files the listing was read from (for ``is_up_to_date``).
    n_missing : int
        Tracks the annotations list but whose audio file is absent.
    """

    tracks: list[tuple[str, Path]] = field(default_factory=list)
    inputs: list[Path] = field(default_factory=list)
    n_missing: int = 0

    def add_listed(self, track_id: str, path: Path, source: str,
                   listed_in: Path) -> None:
        """Adds a track its annotations list, or counts it missing.

        Arguments
        ---------
        track_id : str
            Unique track id.
        path : pathlib.Path
            Its audio file; when absent, the track is logged and counted in
            ``n_missing`` instead of added.
        source : str
            The source's name, for the log message.
        listed_in : pathlib.Path
            The annotation file listing the track, for the log message.

        Example
        -------
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (d / "a.mp3").write_bytes(b"")
        >>> listing = TrackListing()
        >>> listing.add_listed("x_a", d / "a.mp3", "X", d / "ids.csv")
        >>> listing.add_listed("x_b", d / "b.mp3", "X", d / "ids.csv")
        >>> [t for t, _ in listing.tracks], listing.n_missing
        (['x_a'], 1)
        """
        if path.is_file():
            self.tracks.append((track_id, path.resolve()))
        else:
            logger.warning("%s: %s listed in %s but absent: skipped", source,
                           path, listed_in)
            self.n_missing += 1


def track_id_from_path(relative: str | os.PathLike, prefix: str) -> str:
    """A CSV-safe track id from a path relative to the folder root.

    Example
    -------
    >>> track_id_from_path("Live at X/01 intro.flac", "folder")
    'folder_Live_at_X_01_intro.flac'
    """
    text = Path(relative).as_posix()
    return f"{prefix}_" + re.sub(r"[^\w.-]+", "_", text)


def list_folder(root: str | os.PathLike, prefix: str = "folder") -> TrackListing:
    """Every file with an audio extension under ``root`` (recursive, sorted;
    ``muselq_sb.dataio.audio.AUDIO_EXTENSIONS``).

    Unreadable files are not detected here: they are skipped (and counted)
    when their duration is read.

    Arguments
    ---------
    root : path-like
        The folder.
    prefix : str
        Prepended to the track ids (keeps ids of mixed sources unique).

    Returns
    -------
    TrackListing

    Example
    -------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> (d / "a").mkdir(); (d / "a" / "x.MP3").write_bytes(b"")
    0
    >>> (d / "b.opus").write_bytes(b"")
    0
    >>> (d / "notes.txt").write_text("no audio")
    8
    >>> [t for t, _ in list_folder(d).tracks]
    ['folder_a_x.MP3', 'folder_b.opus']
    """
    root = require_dir(root, "audio folder")
    files = sorted(
        p for p in root.rglob("*")
        if has_audio_extension(p) and p.is_file()
    )
    tracks = [(track_id_from_path(p.relative_to(root), prefix), p.resolve()) for p in files]
    return TrackListing(tracks=tracks, inputs=[])

