"""``muselq-embed``: embed an audio file or a folder tree into .npy/.pt files.

::

    muselq-embed MODEL INPUT OUTPUT_FOLDER [--layers -1|all|3,6|weighted|log_mel]
        [--weights ...] [--pooling none|mean|max|mean_std] [--format npy|pt]
        [--dtype fp32|bf16] [--device cpu|cuda] [--mode auto|full|window]
        [--window-seconds 30] [--overlap-seconds 5] [--force]
    muselq-embed --info MODEL

MODEL is a packaged model folder, a pre-training run folder or a Hugging
Face Hub repo id (``MusicEncoder.from_pretrained``). ``--info`` prints the
model's facts as JSON (input sample rate, frame rate, maximum input
length, parameters, licence, recommended layers). Every audio
file under INPUT (recursively; ``muselq_sb.dataio.audio.AUDIO_EXTENSIONS``:
wav, flac, ogg, opus, mp3, m4a, aac, wma, mp4, mkv, webm...) gets
``OUTPUT_FOLDER/<relative path>.<format>`` (``a/song.mp3`` ->
``a/song.mp3.npy``, so files that differ only by extension do not clash).
Outputs newer than their input are skipped (re-running resumes).
Unreadable files are logged, skipped and listed at the end; the exit status
is 0 when at least one file is embedded or up to date, 1 when all failed,
2 on bad arguments.

Authors
 * muselq_sb team
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from tqdm import tqdm

from muselq_sb.dataio.audio import AUDIO_EXTENSIONS, AudioError, has_audio_extension
from muselq_sb.dataio.manifest import is_up_to_date
from muselq_sb.inference.embedding import (
    MODES,
    OVERLAP_SECONDS,
    WINDOW_SECONDS,
    select_layers,
)
from muselq_sb.inference.encoder import DTYPES, MusicEncoder
from muselq_sb.utils.hparams import ModelFolderError

logger = logging.getLogger(__name__)


def find_audio(root: Path) -> list[Path]:
    """Audio files under ``root`` (or ``root`` itself), sorted.

    Example
    -------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> for name in ("b/x.MP3", "a.wav", "c.m4a", "notes.txt"):
    ...     (d / name).parent.mkdir(exist_ok=True); (d / name).touch()
    >>> [p.relative_to(d).as_posix() for p in find_audio(d)]
    ['a.wav', 'b/x.MP3', 'c.m4a']
    """
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*")
                  if p.is_file() and has_audio_extension(p))


def output_path(audio: Path, root: Path, out_folder: Path, fmt: str) -> Path:
    """Where the embeddings of ``audio`` go (mirrors the input tree).

    Example
    -------
    >>> output_path(Path("/in/a/s.mp3"), Path("/in"), Path("/out"), "npy")
    PosixPath('/out/a/s.mp3.npy')
    """
    rel = Path(audio.name) if root.is_file() else audio.relative_to(root)
    return out_folder / rel.parent / f"{rel.name}.{fmt}"


def save_embedding(emb: torch.Tensor, path: Path) -> None:
    """Writes ``emb`` as .npy (float32) or .pt atomically.

    Example
    -------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "x" / "e.npy"
    >>> save_embedding(torch.ones(2, 3), p)
    >>> np.load(p).shape
    (2, 3)
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                               suffix=path.suffix)
    os.close(fd)
    try:
        if path.suffix == ".npy":
            np.save(tmp, emb.cpu().numpy().astype(np.float32))
        else:
            torch.save(emb.cpu().contiguous(), tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def parse_layers(text: str):
    """``-1`` -> -1, ``all``/``weighted``/``log_mel`` kept, ``3,6`` -> [3, 6].

    Example
    -------
    >>> parse_layers("-1"), parse_layers("all"), parse_layers("0,2")
    (-1, 'all', [0, 2])
    """
    if text in ("all", "weighted", "log_mel"):
        return text
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--layers {text!r}: expected an int, a comma list, all, weighted "
            "or log_mel"
        ) from None
    return values[0] if len(values) == 1 and "," not in text else values


def build_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    p = argparse.ArgumentParser(
        prog="muselq-embed",
        description="Embed audio files with a muselq_sb music encoder.",
    )
    p.add_argument("model", nargs="?",
                   help="packaged model folder, pre-training run folder or "
                        "Hub repo id")
    p.add_argument("input", type=Path, nargs="?",
                   help="audio file or folder (recursive)")
    p.add_argument("output", type=Path, nargs="?",
                   help="output folder (mirrors input)")
    p.add_argument("--info", metavar="MODEL",
                   help="print MODEL's facts (JSON) and exit")
    p.add_argument("--layers", type=parse_layers, default=-1,
                   help="-1 (last), an index, a list '3,6', 'all', "
                        "'weighted' (with --weights) or 'log_mel' (the "
                        "normalised log-mel); 0 is the input layer")
    p.add_argument("--weights", type=float, nargs="+",
                   help="one weight per hidden state for --layers weighted")
    p.add_argument("--pooling", choices=("none", "mean", "max", "mean_std"),
                   default="none",
                   help="pool over time (none keeps 25 frames per second)")
    p.add_argument("--format", choices=("npy", "pt"), default="npy")
    p.add_argument("--dtype", choices=DTYPES, default="fp32")
    p.add_argument("--device", default="cpu")
    p.add_argument("--mode", choices=MODES, default="auto",
                   help="auto: one pass for SummaryMixing, windows for attention")
    p.add_argument("--window-seconds", type=float, default=WINDOW_SECONDS)
    p.add_argument("--overlap-seconds", type=float, default=OVERLAP_SECONDS)
    p.add_argument("--force", action="store_true",
                   help="re-embed files whose output is up to date")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the command line; returns the exit status.

    Arguments
    ---------
    argv : list of str, optional
        Arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        0 if at least one file is embedded or up to date, 1 if all failed,
        2 on bad arguments or model.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if args.info is not None:
        try:
            info = MusicEncoder.from_pretrained(args.info).info
        except (ModelFolderError, FileNotFoundError) as err:
            print(f"muselq-embed: {err}", file=sys.stderr)
            return 2
        print(json.dumps(info, indent=2))
        return 0
    if args.output is None:
        parser.print_usage(sys.stderr)
        print("muselq-embed: MODEL, INPUT and OUTPUT_FOLDER are required "
              "(or --info MODEL)", file=sys.stderr)
        return 2
    if not args.input.exists():
        print(f"muselq-embed: {args.input}: no such file or folder", file=sys.stderr)
        return 2
    files = find_audio(args.input)
    if not files:
        print(f"muselq-embed: {args.input}: no audio files "
              f"({', '.join(AUDIO_EXTENSIONS)})", file=sys.stderr)
        return 2
    try:
        encoder = MusicEncoder.from_pretrained(args.model, args.device, args.dtype)
    except (ModelFolderError, FileNotFoundError) as err:
        print(f"muselq-embed: {err}", file=sys.stderr)
        return 2
    options = {
        "layers": args.layers, "weights": args.weights,
        "pooling": None if args.pooling == "none" else args.pooling,
        "mode": args.mode, "window_seconds": args.window_seconds,
        "overlap_seconds": args.overlap_seconds,
    }
    try:  # bad --layers / --weights fail here, not once per file
        n_states = encoder.model.num_layers + 1
        if args.layers != "log_mel":
            select_layers([torch.zeros(1, 1, 1)] * n_states, args.layers, args.weights)
    except ValueError as err:
        print(f"muselq-embed: {err}", file=sys.stderr)
        return 2
    done, skipped, failed = 0, 0, []
    for audio in tqdm(files, desc="embedding", unit="file",
                      disable=args.no_progress):
        target = output_path(audio, args.input, args.output, args.format)
        if not args.force and is_up_to_date([target], [audio]):
            skipped += 1
            continue
        try:
            emb = encoder.encode_file(audio, **options)
        except AudioError as err:
            logger.warning("skipping unreadable audio %s (%s)", audio, err.reason)
            failed.append(audio)
            continue
        save_embedding(emb, target)
        done += 1
    print(f"muselq-embed: {done} embedded, {skipped} up to date, "
          f"{len(failed)} unreadable -> {args.output}")
    if failed:
        print(f"unreadable files ({len(failed)}):", file=sys.stderr)
        for path in failed:
            print(f"  {path}", file=sys.stderr)
    return 0 if done + skipped > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
