"""Frozen-encoder embedding cache: extract once per split, probe many times.

Each item of a split (its ``start``/``stop`` range) is cut into fixed windows
(MARBLE: non-overlapping, a last window shorter than ``min_last_seconds``
dropped); every window goes through the frozen encoder and each hidden state
is mean-pooled over time (:func:`muselq_sb.inference.embedding.embed`, the
path of the inference API and the command line too), giving a float16
tensor ``[n_windows, L+1, d]`` per item. A split is stored as one ``<split>.pt`` holding the item IDs, their
tensors, the skipped items and a fingerprint of encoder checkpoint + task +
window settings: a changed checkpoint (or manifest) re-extracts. An
:class:`ItemStore` shares single items between tasks cut from the same
clips. Frame-level tasks (beats, chords) cache every frame instead: one
whole-track window per item, ``[1, L+1, T, d]``, and the split's
``frame_rate`` (``load_embedder(..., frames=...)``).

Encoders are named by a spec string: ``<folder>`` (a pre-training output
folder), ``random:<folder>`` (same architecture, random weights drawn from
the given seed, saved input statistics) or ``logmel:<folder>`` (mean and std
over time of the model's normalised log-mel: one 256-dim "layer"), all
loaded by :func:`muselq_sb.inference.embedding.load_model`.

Authors
 * muselq_sb team
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch
from tqdm import tqdm

from muselq_sb.dataio.audio import AudioError, load_audio, window_bounds
from muselq_sb.dataio.manifest import read_manifest
from muselq_sb.inference.embedding import embed, frame_embed, load_model
from muselq_sb.utils.checkpoints import latest_checkpoint

logger = logging.getLogger(__name__)

CACHE_VERSION = 1
ENCODER_KINDS = ("checkpoint", "random", "logmel")


@dataclass(frozen=True)
class WindowConfig:
    """How items are cut into encoder windows.

    Arguments
    ---------
    window_seconds : float or None
        Window length; None feeds the whole item as one window.
    min_last_seconds : float
        A last window shorter than this is dropped (an item shorter than
        this still gives one window: the whole item).
    crop_seconds : float or None
        Keep only the first seconds of each item (MARBLE's EMO crop).
    sample_rate : int
        Encoder sample rate.

    Example
    -------
    >>> WindowConfig(30.0).windows(24000 * 70, 24000)
    [(0, 720000), (720000, 1440000), (1440000, 1680000)]
    """

    window_seconds: float | None = 30.0
    min_last_seconds: float = 1.0
    crop_seconds: float | None = None
    sample_rate: int = 24000

    def windows(self, n_samples: int, sample_rate: int) -> list[tuple[int, int]]:
        """Sample ranges of the windows of a signal of ``n_samples``."""
        if self.window_seconds is None:
            return [(0, n_samples)]
        ranges = window_bounds(n_samples, round(self.window_seconds * sample_rate),
                               min_last=round(self.min_last_seconds * sample_rate))
        return ranges or [(0, n_samples)]


def parse_encoder(spec: str) -> tuple[str, Path]:
    """Splits an encoder spec into (kind, folder).

    Example
    -------
    >>> parse_encoder("random:/runs/brn")
    ('random', PosixPath('/runs/brn'))
    >>> parse_encoder("/runs/brn")
    ('checkpoint', PosixPath('/runs/brn'))
    """
    kind, sep, folder = spec.partition(":")
    if sep and kind in ENCODER_KINDS[1:]:
        return kind, Path(folder)
    if sep and kind.isalpha() and len(kind) > 1:
        raise ValueError(
            f"encoder spec {spec!r}: unknown kind {kind!r}; expected a folder, "
            "'random:<folder>' or 'logmel:<folder>'"
        )
    return "checkpoint", Path(spec)


def checkpoint_fingerprint(folder: str | os.PathLike) -> str:
    """Hash of a pre-training run's ``hyperparams.yaml`` and latest checkpoint.

    The latest complete ``save/CKPT+*`` folder (as the model loader picks
    it) is identified by its files' names, sizes and mtimes, so a new save
    (or a copied run) changes the hash; nothing large is read.

    Example
    -------
    >>> d = Path(tempfile.mkdtemp())
    >>> (d / "save" / "CKPT+1").mkdir(parents=True)
    >>> _ = (d / "save" / "CKPT+1" / "CKPT.yaml").write_text("unixtime: 1")
    >>> _ = (d / "hyperparams.yaml").write_text("d_model: 8")
    >>> len(checkpoint_fingerprint(d))
    40
    """
    folder = Path(folder)
    hparams = folder / "hyperparams.yaml"
    if not hparams.is_file():
        raise FileNotFoundError(
            f"{hparams} not found: expected a pre-training output folder"
        )
    digest = hashlib.sha1(hparams.read_bytes())
    for f in sorted(latest_checkpoint(folder / "save").iterdir()):
        stat = f.stat()
        digest.update(f"{f.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def encoder_identity(spec: str, seed: int = 0, pooling: str = "mean") -> dict:
    """What identifies the encoder named by ``spec`` and its time pooling
    (cheap: loads nothing).

    Example
    -------
    >>> encoder_identity("random:/nowhere", seed=3)
    Traceback (most recent call last):
    ...
    FileNotFoundError: /nowhere/hyperparams.yaml not found: expected a pre-training output folder
    """
    kind, folder = parse_encoder(spec)
    identity = {"kind": kind, "checkpoint": checkpoint_fingerprint(folder)}
    if kind == "random":
        identity["seed"] = seed
    if kind != "logmel":
        identity["pooling"] = pooling
    return identity


def load_embedder(
    spec: str,
    device: str = "cpu",
    seed: int = 0,
    model_loader: Callable[..., torch.nn.Module] = load_model,
    precision: str = "fp32",
    pooling: str = "mean",
    frames: Mapping | None = None,
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The frozen encoder named by ``spec``, as ``(wavs, wav_lens) -> [B, K, d]``.

    Arguments
    ---------
    spec : str
        ``<folder>``, ``random:<folder>`` or ``logmel:<folder>``.
    device : str
        Where the encoder runs.
    seed : int
        Seed of the random weights (``random:``), for reproducible baselines.
    model_loader : callable
        ``model_loader(folder, random_seed=..., device=...)``; default
        :func:`~muselq_sb.inference.embedding.load_model`.
    precision : str
        ``fp32``, or autocast to ``bf16``.
    pooling : str
        Time pooling of every hidden state: ``mean`` ([B, L+1, d]) or
        ``mean_std`` (mean and standard deviation, [B, L+1, 2d]).
    frames : mapping, optional
        Frame-level output instead (the frame-level tasks; ``pooling`` does
        not apply): the ``window_seconds`` and ``overlap_seconds`` of
        :func:`~muselq_sb.inference.embedding.frame_embed`'s windows for
        attention encoders (SummaryMixing: one pass, ``mode="auto"``).

    Returns
    -------
    callable
        Every hidden state pooled over time, or for ``logmel:`` the mean and
        std of the normalised log-mel ([B, 1, 2 n_mels]). With ``frames``:
        every frame ([B, L+1, T, d]; ``logmel:`` [B, 1, T, 2 n_mels]), and
        the callable's ``frame_rate`` attribute is the encoder's.

    Example
    -------
    >>> from muselq_sb.lobes.branchformer import BranchformerEncoder
    >>> from muselq_sb.lobes.model import MusicModel
    >>> def loader(folder, random_seed, device):
    ...     enc = BranchformerEncoder(1, d_model=8, nhead=2, kernel_size=3,
    ...                               csgu_linear_units=16)
    ...     return MusicModel(enc, 8, subsampling_channels=8).eval()
    >>> embedder = load_embedder("logmel:/runs/x", model_loader=loader)
    >>> embedder(torch.randn(2, 24000), torch.ones(2)).shape
    torch.Size([2, 1, 256])
    """
    kind, folder = parse_encoder(spec)
    model = model_loader(folder, random_seed=seed if kind == "random" else None,
                         device=device)
    if frames is not None:
        layers = "log_mel" if kind == "logmel" else "all"

        def frame_embedder(wavs: torch.Tensor, wav_lens: torch.Tensor) -> torch.Tensor:
            return frame_embed(model, wavs, wav_lens, layers=layers, mode="auto",
                               precision=precision, **frames)[0]

        frame_embedder.frame_rate = model.frame_rate
        return frame_embedder
    if kind == "logmel":
        return functools.partial(embed, model, layers="log_mel", pooling="mean_std")
    return functools.partial(embed, model, layers="all", pooling=pooling, mode="full",
                             precision=precision)


def _file_sha1(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def cache_fingerprint(
    task_folder: str | os.PathLike, split: str, identity: Mapping, config: WindowConfig
) -> str:
    """Hash of everything an extracted split depends on.

    Example
    -------
    >>> from muselq_sb.dataio.manifest import write_task
    >>> d = tempfile.mkdtemp()
    >>> rows = [{"ID": "a", "path": "/a.wav", "duration": 1.0, "label": "x"}]
    >>> _ = write_task(d, "toy", "multiclass", "label", {"train": rows},
    ...                classes=["x"], metrics=["accuracy"])
    >>> a = cache_fingerprint(d, "train", {"kind": "logmel"}, WindowConfig())
    >>> a == cache_fingerprint(d, "train", {"kind": "random"}, WindowConfig())
    False
    """
    task_folder = Path(task_folder)
    parts = {
        "version": CACHE_VERSION,
        "encoder": dict(identity),
        "windows": asdict(config),
        "manifest": _file_sha1(task_folder / f"{split}.csv"),
        "task": _file_sha1(task_folder / "task.json"),
    }
    return hashlib.sha1(json.dumps(parts, sort_keys=True).encode()).hexdigest()


class _ItemWindows(torch.utils.data.Dataset):
    """Decodes one item and cuts it into windows (None if unreadable)."""

    def __init__(self, rows: Sequence[Mapping[str, str]], config: WindowConfig):
        self.rows, self.config = rows, config

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int):
        row, cfg = self.rows[index], self.config
        start = float(row["start"]) if row.get("start") else None
        stop = float(row["stop"]) if row.get("stop") else None
        if cfg.crop_seconds is not None:
            end = (start or 0.0) + cfg.crop_seconds
            stop = end if stop is None else min(stop, end)
        try:
            wav = load_audio(row["path"], start, stop, cfg.sample_rate)
        except AudioError as err:
            logger.warning("skipping item %s: %s", row["ID"], err)
            return index, None
        return index, [wav[a:b] for a, b in cfg.windows(len(wav), cfg.sample_rate)]


@torch.no_grad()
def extract_split(
    rows: Sequence[Mapping[str, str]],
    embedder: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    config: WindowConfig,
    batch_size: int = 8,
    num_workers: int = 0,
    device: str = "cpu",
    desc: str = "extract",
) -> dict:
    """Pooled embeddings of every readable item of ``rows``.

    Arguments
    ---------
    rows : sequence of mappings
        Manifest rows (``ID``, ``path``, ``start``, ``stop``).
    embedder : callable
        ``(wavs [B, N], wav_lens [B]) -> [B, L+1, d]`` (:func:`load_embedder`).
    config : WindowConfig
        Windowing.
    batch_size : int
        Windows per encoder forward. Only windows of equal length share a
        batch (windows of several items do), so no padding ever changes an
        embedding and the result does not depend on the batching.
    num_workers : int
        DataLoader workers that decode audio.
    device : str
        Where the windows go (the embedder's device).
    desc : str
        Progress-bar label.

    Returns
    -------
    dict
        ``ids`` (kept items, manifest order), ``embeddings`` (one float16
        [n_windows, L+1, d] per kept item) and ``skipped`` (unreadable IDs).

    Example
    -------
    >>> import numpy as np, soundfile as sf
    >>> f = os.path.join(tempfile.mkdtemp(), "a.wav")
    >>> sf.write(f, np.zeros(24000 * 5, "float32"), 24000)
    >>> def toy(wavs, wav_lens):  # one "layer": the window length in seconds
    ...     return torch.full((len(wavs), 1, 1), wavs.shape[1] / 24000)
    >>> rows = [{"ID": "a", "path": f}, {"ID": "b", "path": f + ".gone"}]
    >>> out = extract_split(rows, toy, WindowConfig(2.0), desc="doc")
    >>> out["ids"], out["embeddings"][0].flatten().tolist(), out["skipped"]
    (['a'], [2.0, 2.0, 1.0], ['b'])
    """
    loader = torch.utils.data.DataLoader(
        _ItemWindows(rows, config), batch_size=None, num_workers=num_workers
    )
    pooled: dict[int, dict[int, torch.Tensor]] = {}  # item -> window -> emb
    pending: dict[int, list[tuple[int, int, torch.Tensor]]] = {}  # by length
    skipped: list[str] = []

    def flush(length: int) -> None:
        batch = pending.pop(length)
        wavs = torch.stack([w for _, _, w in batch]).to(device)
        out = embedder(wavs, torch.ones(len(batch), device=device))
        for (item, k, _), emb in zip(batch, out.float().cpu().half()):
            pooled.setdefault(item, {})[k] = emb

    for index, windows in tqdm(loader, desc=desc, total=len(rows), dynamic_ncols=True):
        if windows is None:
            skipped.append(rows[index]["ID"])
            continue
        for k, w in enumerate(windows):
            pending.setdefault(len(w), []).append((index, k, w))
            if len(pending[len(w)]) >= batch_size:
                flush(len(w))
    for length in list(pending):
        flush(length)
    kept = sorted(pooled)
    return {
        "ids": [rows[i]["ID"] for i in kept],
        "embeddings": [torch.stack([e for _, e in sorted(pooled[i].items())])
                       for i in kept],
        "skipped": skipped,
    }


def _atomic_torch_save(obj: object, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class ItemStore:
    """Pooled embeddings of single items, shared by every task holding them.

    Tasks cut from the same clips (the six music tasks of the demo corpus,
    MTG's four subsets) need each clip's embeddings once per encoder. An
    item is stored as ``<folder>/<key[:2]>/<key>.pt`` where ``key`` hashes
    the encoder identity, the window settings, the audio file (absolute
    path, size, mtime) and the item's ``start``/``stop``: any change is a
    miss, never a stale hit. Files are written atomically.

    Arguments
    ---------
    folder : path-like
        Where the items live (one folder may serve several encoders).
    identity : mapping
        Identifies the encoder (:func:`encoder_identity`).
    config : WindowConfig
        Windowing.

    Example
    -------
    >>> import numpy as np, soundfile as sf
    >>> d = Path(tempfile.mkdtemp())
    >>> sf.write(str(d / "a.wav"), np.zeros(2400, "float32"), 24000)
    >>> store = ItemStore(d / "items", {"kind": "logmel"}, WindowConfig())
    >>> row = {"ID": "a", "path": str(d / "a.wav")}
    >>> store.get(row) is None
    True
    >>> store.put(row, torch.ones(1, 1, 4))
    >>> store.get(row).shape
    torch.Size([1, 1, 4])
    """

    def __init__(
        self, folder: str | os.PathLike, identity: Mapping, config: WindowConfig
    ) -> None:
        self.folder = Path(folder)
        self.prefix = json.dumps(
            {"version": CACHE_VERSION, "encoder": dict(identity),
             "windows": asdict(config)}, sort_keys=True,
        )

    def _path(self, row: Mapping[str, str]) -> Path | None:
        try:
            stat = os.stat(row["path"])
        except OSError:  # unreadable: extraction logs and skips it
            return None
        item = [os.path.abspath(row["path"]), stat.st_size, stat.st_mtime_ns,
                row.get("start") or "", row.get("stop") or ""]
        key = hashlib.sha1((self.prefix + json.dumps(item)).encode()).hexdigest()
        return self.folder / key[:2] / f"{key}.pt"

    def get(self, row: Mapping[str, str]) -> torch.Tensor | None:
        """The stored embeddings of ``row`` ([n_windows, L+1, d]), or None."""
        path = self._path(row)
        if path is None or not path.is_file():
            return None
        return torch.load(path, map_location="cpu", weights_only=True)

    def put(self, row: Mapping[str, str], embeddings: torch.Tensor) -> None:
        """Stores the embeddings of ``row``."""
        path = self._path(row)
        if path is not None:
            _atomic_torch_save(embeddings, path)


def load_or_extract(
    task_folder: str | os.PathLike,
    split: str,
    cache_folder: str | os.PathLike,
    get_embedder: Callable[[], Callable],
    identity: Mapping,
    config: WindowConfig,
    store: ItemStore | None = None,
    meta: Callable[[], Mapping] | None = None,
    **extract_kwargs,
) -> dict:
    """The cached embeddings of one split, extracting them if stale.

    Arguments
    ---------
    task_folder : path-like
        A prepared task folder (``<split>.csv`` and ``task.json``).
    split : str
        ``train``, ``valid`` or ``test``.
    cache_folder : path-like
        Where ``<split>.pt`` lives.
    get_embedder : callable
        Returns the frozen encoder (:func:`load_embedder`); called only
        when an item must be extracted.
    identity : mapping
        Identifies the encoder (:func:`encoder_identity`).
    config : WindowConfig
        Windowing.
    store : ItemStore, optional
        Items already extracted for another task are taken from it, and the
        new ones are added to it.
    meta : callable, optional
        More fields saved with the split (e.g. the frame rate of frame
        features), asked for only when the split is extracted.
    **extract_kwargs
        Passed to :func:`extract_split`.

    Returns
    -------
    dict
        As :func:`extract_split`, plus ``fingerprint`` and ``reused`` (True
        when read from the split cache).
    """
    fingerprint = cache_fingerprint(task_folder, split, identity, config)
    path = Path(cache_folder) / f"{split}.pt"
    if path.is_file():
        cached = torch.load(path, map_location="cpu", weights_only=True)
        if cached.get("fingerprint") == fingerprint:
            logger.info("embedding cache %s is up to date: reused", path)
            return cached | {"reused": True}
        logger.info("embedding cache %s is stale: re-extracting", path)
    rows = read_manifest(Path(task_folder) / f"{split}.csv")
    stored = {}
    if store is not None:
        stored = {i: e for i, row in enumerate(rows) if (e := store.get(row)) is not None}
    todo = [row for i, row in enumerate(rows) if i not in stored]
    fresh = {"ids": [], "embeddings": [], "skipped": []}
    if todo:
        fresh = extract_split(todo, get_embedder(), config, desc=split, **extract_kwargs)
    if store is not None:
        by_id = {row["ID"]: row for row in todo}
        for item_id, emb in zip(fresh["ids"], fresh["embeddings"]):
            store.put(by_id[item_id], emb)
    found = dict(zip(fresh["ids"], fresh["embeddings"]))
    found.update({rows[i]["ID"]: e for i, e in stored.items()})
    kept = [row["ID"] for row in rows if row["ID"] in found]
    result = {"ids": kept, "embeddings": [found[i] for i in kept],
              "skipped": fresh["skipped"], "fingerprint": fingerprint,
              **(meta() if meta is not None else {})}
    _atomic_torch_save(result, path)
    n_windows = sum(len(e) for e in result["embeddings"])
    logger.info(
        "%s: %d items (%d from the item store), %d windows, %d unreadable "
        "items skipped", split, len(kept), len(stored), n_windows,
        len(result["skipped"]),
    )
    return result | {"reused": False}
