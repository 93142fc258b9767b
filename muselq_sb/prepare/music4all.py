"""Lists Music4All (``audios/<id>.mp3`` + ``id_information.csv``) for pre-training.

Native layout (datasets.md section 9)::

    music4all/
      audios/<id>.mp3            30 s clips, one per song
      id_information.csv         id, artist, song, album_name

"All CSV files have their attributes/columns separated by a '\\t'
character": the ``.csv`` files are tab-separated. Fields are split on tabs
only (no quote handling), so titles holding quote marks are read verbatim.

Authors
 * muselq_sb team
"""
from __future__ import annotations

import csv
import os
import re

from muselq_sb.prepare.common import (
    PrepareError,
    open_text,
    require_dir,
    require_file,
)
from muselq_sb.prepare.folder import TrackListing

INFO_FILE = "id_information.csv"
AUDIO_DIR = "audios"
_ID = re.compile(r"^[A-Za-z0-9_-]+$")


def read_music4all_ids(info_csv: str | os.PathLike) -> list[str]:
    """The song ids of ``id_information.csv``, in file order.

    Raises ``PrepareError`` naming the file and line for a header without
    ``id`` first, a row with the wrong number of fields, an empty or
    malformed id, or a repeated id.

    Example
    -------
    >>> import tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "id_information.csv")
    >>> _ = open(f, "w").write("id\\tartist\\tsong\\talbum_name\\n"
    ...                        "0009fFIM1eYThaPg\\tCher\\tBelieve\\tBelieve\\n")
    >>> read_music4all_ids(f)
    ['0009fFIM1eYThaPg']
    """
    path = require_file(info_csv, "Music4All id_information.csv")
    ids: list[str] = []
    seen: set[str] = set()
    with open_text(path, newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if not header or header[0].strip() != "id":
            raise PrepareError(
                f"expected a tab-separated header starting with 'id', got {header}",
                path, 1)
        for row in reader:
            line = reader.line_num
            if not row:
                continue
            if len(row) != len(header):
                raise PrepareError(
                    f"expected {len(header)} tab-separated fields "
                    f"({', '.join(header)}), got {len(row)}", path, line)
            song_id = row[0].strip()
            if not _ID.match(song_id):
                raise PrepareError(f"malformed song id {song_id!r}", path, line)
            if song_id in seen:
                raise PrepareError(f"duplicate song id {song_id!r}", path, line)
            seen.add(song_id)
            ids.append(song_id)
    return ids


def list_music4all(root: str | os.PathLike) -> TrackListing:
    """The songs of a Music4All tree that have an audio file.

    Arguments
    ---------
    root : path-like
        The ``music4all`` folder (holding ``audios/`` and the csv files).

    Returns
    -------
    TrackListing
        Track ids ``m4a_<id>``; ids without ``audios/<id>.mp3`` are
        counted in ``n_missing`` and logged.
    """
    root = require_dir(root, "Music4All folder")
    info = require_file(root / INFO_FILE, "Music4All id_information.csv")
    audio_dir = require_dir(root / AUDIO_DIR, "Music4All audios folder")
    listing = TrackListing(inputs=[info])
    for song_id in read_music4all_ids(info):
        listing.add_listed(f"m4a_{song_id}", audio_dir / f"{song_id}.mp3",
                           "Music4All", info)
    return listing

