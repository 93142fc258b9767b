"""MTG-Jamendo: the native layout -> four auto-tagging task folders.

Layout read::

    <data_folder>/data/splits/split-<k>/autotagging_<subset>-{train,validation,test}.tsv
        (the mtg-jamendo-dataset git repository; CRLF line ends; header
        TRACK_ID ARTIST_ID ALBUM_ID PATH DURATION TAGS, then one track per
        row with its tags as extra tab-separated columns from column 6 on)
    <audio_folder>/NN/<track>.low.mp3     scripts/download/download.py --type audio-low
    <audio_folder>/NN/<track>.mp3         --type audio (full quality)

``audio_folder`` defaults to ``<data_folder>/audio-low`` (``audio_quality``
"low", the one MARBLE uses) or ``<data_folder>/audio`` ("full").

Tasks (standard ``split-0``): ``mtg_top50`` (autotagging_top50tags, 50 tags),
``mtg_genre`` (87), ``mtg_instrument`` (40), ``mtg_moodtheme`` (56); classes
are the full tag names (``genre---rock``) in sorted order, ``tags`` is the
``;``-joined tag list, metrics ROC-AUC and AP (macro).

The manifests hold **whole tracks** (one row per track, empty start/stop,
``group`` = the track id): the protocol's 30-s windows (predictions averaged
per track) are cut by the embedding extractor.

Authors
 * muselq_sb team
"""
from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Sequence

from muselq_sb.prepare.common import (
    Built,
    ListedAudio,
    PrepareError,
    TaskSpec,
    audio_duration,
    listed_audio_rows,
    prepare_parser,
    prepare_tasks,
    require_file,
    run_cli,
    tsv_rows,
)

GENRES = """60s 70s 80s 90s acidjazz alternative alternativerock ambient
atmospheric blues bluesrock bossanova breakbeat celtic chanson chillout choir
classical classicrock club contemporary country dance darkambient darkwave
deephouse disco downtempo drumnbass dub dubstep easylistening edm electronic
electronica electropop ethno eurodance experimental folk funk fusion groove
grunge hard hardrock hiphop house idm improvisation indie industrial
instrumentalpop instrumentalrock jazz jazzfusion latin lounge medieval metal
minimal newage newwave orchestral pop popfolk poprock postrock progressive
psychedelic punkrock rap reggae rnb rock rocknroll singersongwriter soul
soundtrack swing symphonic synthpop techno trance triphop world worldfusion"""
INSTRUMENTS = """accordion acousticbassguitar acousticguitar bass beat bell
bongo brass cello clarinet classicalguitar computer doublebass drummachine
drums electricguitar electricpiano flute guitar harmonica harp horn keyboard
oboe orchestra organ pad percussion piano pipeorgan rhodes sampler saxophone
strings synthesizer trombone trumpet viola violin voice"""
MOODS = """action adventure advertising background ballad calm children
christmas commercial cool corporate dark deep documentary drama dramatic dream
emotional energetic epic fast film fun funny game groovy happy heavy holiday
hopeful inspiring love meditative melancholic melodic motivational movie
nature party positive powerful relaxing retro romantic sad sexy slow soft
soundscape space sport summer trailer travel upbeat uplifting"""
TOP50_GENRES = """alternative ambient atmospheric chillout classical dance
downtempo easylistening electronic experimental folk funk hiphop house indie
instrumentalpop jazz lounge metal newage orchestral pop popfolk poprock reggae
rock soundtrack techno trance triphop world"""
TOP50_INSTRUMENTS = """acousticguitar bass computer drummachine drums
electricguitar electricpiano guitar keyboard piano strings synthesizer violin
voice"""
TOP50_MOODS = "emotional energetic film happy relaxing"


def _tags(category: str, names: str) -> tuple[str, ...]:
    return tuple(f"{category}---{n}" for n in names.split())


# task -> (subset file prefix, classes)
TASKS = {
    "mtg_top50": ("autotagging_top50tags", _tags("genre", TOP50_GENRES)
                  + _tags("instrument", TOP50_INSTRUMENTS)
                  + _tags("mood/theme", TOP50_MOODS)),
    "mtg_genre": ("autotagging_genre", _tags("genre", GENRES)),
    "mtg_instrument": ("autotagging_instrument", _tags("instrument", INSTRUMENTS)),
    "mtg_moodtheme": ("autotagging_moodtheme", _tags("mood/theme", MOODS)),
}
SPLIT_FILES = {"train": "train", "valid": "validation", "test": "test"}
HEADER = ["TRACK_ID", "ARTIST_ID", "ALBUM_ID", "PATH", "DURATION", "TAGS"]
AUDIO_QUALITIES = {"low": ("audio-low", ".low.mp3"), "full": ("audio", ".mp3")}
_TRACK = re.compile(r"^track_\d+$")
_PATH = re.compile(r"^\d{2}/\d+\.mp3$")


def read_split_tsv(
    path: Path, classes: Sequence[str]
) -> list[tuple[int, str, str, list[str]]]:
    """Reads one split TSV of the mtg-jamendo-dataset repository.

    Arguments
    ---------
    path : Path
        ``autotagging_<subset>-<split>.tsv``.
    classes : sequence of str
        The tags allowed in this subset.

    Returns
    -------
    list of (line, TRACK_ID, PATH, tags in ``classes`` order)

    Example
    -------
    >>> import tempfile
    >>> f = Path(tempfile.mkdtemp()) / "x.tsv"
    >>> _ = f.write_bytes(b"\\t".join(h.encode() for h in HEADER) + b"\\r\\n"
    ...     b"track_0000241\\tartist_000005\\talbum_000033\\t41/241.mp3\\t340.1"
    ...     b"\\tgenre---rock\\tgenre---pop\\r\\n")
    >>> read_split_tsv(f, TASKS["mtg_genre"][1])
    [(2, 'track_0000241', '41/241.mp3', ['genre---pop', 'genre---rock'])]
    """
    known = set(classes)
    tracks = []
    for line_no, fields in tsv_rows(path, HEADER, "MTG-Jamendo split file",
                                    more_fields=True):
        track_id, rel_path, tags = fields[0], fields[3], fields[5:]
        if not _TRACK.match(track_id) or not _PATH.match(rel_path):
            raise PrepareError(
                f"bad TRACK_ID {track_id!r} or PATH {rel_path!r}; expected "
                "'track_<n>' and 'NN/<n>.mp3'", path, line_no,
            )
        unknown = sorted(set(tags) - known)
        if unknown:
            raise PrepareError(
                f"unknown tags {unknown} for this subset", path, line_no)
        tracks.append((line_no, track_id, rel_path,
                       [t for t in classes if t in tags]))
    return tracks


def prepare_mtg_jamendo(
    data_folder: str | os.PathLike,
    save_folder: str | os.PathLike,
    audio_folder: str | os.PathLike | None = None,
    audio_quality: str = "low",
    split: int = 0,
    tasks: Sequence[str] = tuple(TASKS),
    allow_missing: bool = False,
) -> list[Path]:
    """Prepares the MTG-Jamendo task folders (``mtg_top50`` ... by default).

    Arguments
    ---------
    data_folder : path-like
        The mtg-jamendo-dataset repository (holds ``data/splits``).
    save_folder : path-like
        Task folders are written to ``<save_folder>/<task>``.
    audio_folder : path-like, optional
        The downloaded audio (``NN/`` folders); default
        ``<data_folder>/audio-low`` or ``<data_folder>/audio``.
    audio_quality : str
        ``"low"`` (``<n>.low.mp3``) or ``"full"`` (``<n>.mp3``).
    split : int
        Which of the five official splits (0 is the standard one).
    tasks : sequence of str
        Among ``TASKS``.
    allow_missing : bool
        Skip (and count) listed tracks whose audio is absent.

    Returns
    -------
    list of Path
        The task folders, in the order of ``tasks``.

    Example
    -------
    >>> import tempfile, numpy, soundfile
    >>> d = Path(tempfile.mkdtemp())
    >>> splits = d / "data" / "splits" / "split-0"
    >>> splits.mkdir(parents=True)
    >>> for s in SPLIT_FILES.values():
    ...     _ = (splits / f"autotagging_genre-{s}.tsv").write_text(
    ...         "\\t".join(HEADER) + "\\n" + "track_0000241\\tartist_000005\\t"
    ...         "album_000033\\t41/241.mp3\\t340.1\\tgenre---rock\\n")
    >>> (d / "audio-low" / "41").mkdir(parents=True)
    >>> soundfile.write(d / "audio-low/41/241.low.mp3", numpy.zeros(800), 8000)
    >>> [f.name for f in prepare_mtg_jamendo(d, d / "out", tasks=["mtg_genre"])]
    ... # doctest: +ELLIPSIS
    task mtg_genre (multilabel) in ...
    ['mtg_genre']
    """
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or audio_quality not in AUDIO_QUALITIES:
        raise ValueError(
            f"unknown tasks {unknown} or audio_quality {audio_quality!r}; "
            f"expected tasks among {list(TASKS)} and audio_quality in "
            f"{list(AUDIO_QUALITIES)}"
        )
    data_folder = Path(data_folder)
    audio_subfolder, suffix = AUDIO_QUALITIES[audio_quality]
    audio_root = Path(audio_folder or data_folder / audio_subfolder)
    split_folder = data_folder / "data" / "splits" / f"split-{split}"
    options = {
        "split_folder": os.path.abspath(split_folder),
        "audio_folder": os.path.abspath(audio_root),
        "audio_quality": audio_quality,
        "allow_missing": allow_missing,
    }
    duration_of = functools.lru_cache(maxsize=None)(audio_duration)
    folders = []
    for task in tasks:
        subset, classes = TASKS[task]
        spec = TaskSpec(task, "multilabel", "tags", classes, ("roc_auc", "ap"),
                        columns=("group",))
        tsvs = {s: require_file(split_folder / f"{subset}-{name}.tsv",
                                "MTG-Jamendo split file")
                for s, name in SPLIT_FILES.items()}

        def build(tsvs=tsvs, classes=classes, task=task) -> Built:
            listed = {
                s: [ListedAudio(
                    {"ID": track_id, "tags": tags, "group": track_id},
                    audio_root / rel_path.replace(".mp3", suffix), tsv, line)
                    for line, track_id, rel_path, tags in read_split_tsv(tsv, classes)]
                for s, tsv in tsvs.items()
            }
            rows, skipped = listed_audio_rows(listed, allow_missing, duration_of)
            return Built({task: rows}, skipped)

        folders += prepare_tasks(save_folder, [spec], list(tsvs.values()),
                                 options, build)
    return folders


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``python -m muselq_sb.prepare mtg_jamendo --data_folder D ...``."""
    parser = prepare_parser("mtg_jamendo", __doc__.splitlines()[0])
    parser.add_argument("--audio_folder", default=None,
                        help="downloaded audio with NN/ folders "
                             "(default: DATA_FOLDER/audio-low or DATA_FOLDER/audio)")
    parser.add_argument("--audio_quality", choices=list(AUDIO_QUALITIES),
                        default="low")
    parser.add_argument("--split", type=int, default=0,
                        help="official split number (0 is the standard)")
    parser.add_argument("--tasks", nargs="+", choices=list(TASKS),
                        default=list(TASKS))
    return run_cli(parser, prepare_mtg_jamendo, argv)


if __name__ == "__main__":
    raise SystemExit(main())
