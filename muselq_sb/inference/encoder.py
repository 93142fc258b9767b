"""``MusicEncoder``: embeddings of any audio file or batch, whole tracks included.

A SpeechBrain ``Pretrained`` interface around the one embedding path of
:mod:`muselq_sb.inference.embedding`:

* ``MusicEncoder.from_pretrained(name_or_path)`` loads a packaged model
  folder (safetensors + yaml, no pickle), a pre-training run (its latest
  checkpoint, ``weights_only``) or a Hugging Face Hub repo id (its cached
  snapshot, :mod:`muselq_sb.inference.hub`), with
  :func:`~muselq_sb.inference.embedding.load_model`; ``save_pretrained`` and
  ``push_to_hub`` write and upload the packaged folder;
* SpeechBrain's own habits work too: ``MusicEncoder.from_hparams(source=...)``
  and ``foreign_class(source, pymodule_file="custom_interface.py",
  classname="MusicEncoder")`` on a packaged folder or repo;
* ``encode_file`` / ``encode_batch`` return one layer, several layers, all
  layers or a weighted sum of layers, per frame or pooled over time; long
  inputs of attention encoders are embedded in overlapping windows;
* ``info`` (also ``muselq-embed --info``): input rate, frame rate, maximum
  input length, size, licence, recommended layers.

Authors
 * muselq_sb team
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Optional

import torch
from speechbrain.inference.interfaces import Pretrained

from muselq_sb.dataio.audio import load_audio
from muselq_sb.inference.embedding import (
    PRECISIONS,
    embed,
    hidden_states,
    load_model,
    resolve_mode,
)
from muselq_sb.inference.hub import push_folder, resolve_model
from muselq_sb.inference.package import (
    CARD_KEY,
    model_facts,
    read_card,
    save_model_folder,
)
from muselq_sb.lobes.model import MusicModel

logger = logging.getLogger(__name__)

DTYPES = tuple(PRECISIONS)


class MusicEncoder(Pretrained):
    """Frozen music encoder: waveforms or files -> embeddings.

    Arguments
    ---------
    model : MusicModel, optional
        The encoder (weights loaded).
    device : str
        ``cpu``, ``cuda``, ``cuda:1``...
    dtype : str
        ``fp32``, or ``bf16`` (autocast on CPU and CUDA) or ``fp16``
        (CUDA). Outputs are always float32.
    modules, hparams, run_opts, freeze_params
        SpeechBrain's ``Pretrained`` arguments, instead of ``model``
        (``from_hparams`` passes them: ``modules["model"]`` is the
        encoder; ``run_opts`` may hold ``device`` and ``precision``).

    Example
    -------
    >>> from muselq_sb.lobes.branchformer import BranchformerEncoder
    >>> enc = BranchformerEncoder(2, d_model=16, nhead=2, kernel_size=3,
    ...                           csgu_linear_units=32)
    >>> encoder = MusicEncoder(MusicModel(enc, 16, subsampling_channels=16))
    >>> wavs = torch.randn(2, 48000)
    >>> encoder.encode_batch(wavs, torch.tensor([1.0, 0.5])).shape
    torch.Size([2, 51, 16])
    >>> encoder.encode_batch(wavs, layers="all", pooling="mean").shape
    torch.Size([2, 3, 16])
    >>> encoder.frame_rate
    25.0
    """

    def __init__(
        self,
        model: Optional[MusicModel] = None,
        device: str = "cpu",
        dtype: str = "fp32",
        *,
        modules: Optional[dict] = None,
        hparams: Optional[dict] = None,
        run_opts: Optional[dict] = None,
        freeze_params: bool = True,
    ) -> None:
        if (model is None) == (modules is None):
            raise ValueError("MusicEncoder needs model, or SpeechBrain's modules "
                             "(with a 'model' entry), not both")
        if modules is None:
            modules, run_opts = {"model": model}, {"device": device, "precision": dtype}
        elif not isinstance(modules.get("model"), MusicModel):
            raise ValueError("modules['model'] must be a muselq_sb MusicModel "
                             "(a packaged folder's hyperparams.yaml has it)")
        run_opts = {"precision": "fp32", **(run_opts or {})}
        if run_opts["precision"] not in DTYPES:
            raise ValueError(f"dtype={run_opts['precision']!r}; valid: {list(DTYPES)}")
        super().__init__(
            modules=modules,
            hparams={**(hparams or {}), "audio_normalizer": None},
            run_opts=run_opts,
            freeze_params=freeze_params,
        )
        self._warned_window = False
        #: The folder loaded (a packaged folder or a run), for save_pretrained.
        self.source: Optional[Path] = None

    @classmethod
    def from_path(
        cls, path: str | Path, device: str = "cpu", dtype: str = "fp32"
    ) -> "MusicEncoder":
        """A packaged model folder or a pre-training run (:func:`load_model`).

        A run checkpoint holding pickled code is refused with
        ``ModelFolderError``, as is a model yaml naming anything but model
        constructors.
        """
        encoder = cls(load_model(path), device=device, dtype=dtype)
        encoder.source = Path(path)
        return encoder

    from_folder = from_path
    from_run = from_path

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | Path, device: str = "cpu", dtype: str = "fp32",
        revision: Optional[str] = None, cache_dir: Optional[str | Path] = None,
        token: Optional[str | bool] = None,
    ) -> "MusicEncoder":
        """A local folder (packaged or a run) or a Hugging Face Hub repo id.

        A repo is downloaded once into the Hub cache (``HF_HUB_CACHE``,
        or ``cache_dir``) and read from there; with ``HF_HUB_OFFLINE=1``
        only the cache is used. The folder is then loaded as by
        :meth:`from_path` (checked yaml, safetensors, nothing unpickled).

        Arguments
        ---------
        name_or_path : str or path-like
            A folder, or ``org/name`` on the Hub.
        device, dtype
            As the constructor.
        revision : str, optional
            Branch, tag or commit of the repo.
        cache_dir : path-like, optional
            Hub cache folder.
        token : str or bool, optional
            Hub token (private repos).
        """
        folder = resolve_model(name_or_path, revision, cache_dir, token)
        return cls.from_path(folder, device=device, dtype=dtype)

    @classmethod
    def from_hparams(cls, source, hparams_file: str = "hyperparams.yaml", **kwargs):
        """SpeechBrain's loader (``speechbrain.inference``): a packaged
        folder or Hub repo through its ``hyperparams.yaml``'s ``modules``
        and ``pretrainer``; ``run_opts={"device": ..., "precision": ...}``,
        ``savedir`` and the other arguments as SpeechBrain's. The yaml is
        built as SpeechBrain builds it (unchecked: load only folders you
        trust, or use :meth:`from_pretrained`, which checks it)."""
        encoder = super().from_hparams(source, hparams_file, **kwargs)
        if encoder is not None and isinstance(source, (str, Path)) and Path(source).is_dir():
            encoder.source = Path(source)
        return encoder

    def save_pretrained(self, folder: str | Path) -> Path:
        """Writes the packaged folder of this encoder's source into ``folder``
        (``model.safetensors``, ``hyperparams.yaml``, the card...): a run is
        packaged, a packaged folder rewritten in the current layout.

        Raises
        ------
        ValueError
            The encoder was not loaded from a folder (built from a model
            object, or from a Hub repo by ``from_hparams``).
        """
        if self.source is None:
            raise ValueError(
                "save_pretrained: this encoder was not loaded from a folder; "
                "load it with from_pretrained/from_path, or package a run with "
                "muselq_sb.inference.package.package_model")
        return save_model_folder(self.source, folder)

    def push_to_hub(
        self, repo_id: str, private: bool = False, token: Optional[str] = None,
        commit_message: str = "Upload muselq_sb model",
    ) -> str:
        """Uploads :meth:`save_pretrained`'s folder to the Hub repo
        ``repo_id`` (created if needed); returns the commit URL."""
        with tempfile.TemporaryDirectory() as tmp:
            folder = self.save_pretrained(Path(tmp) / "model")
            return push_folder(folder, repo_id, private=private, token=token,
                               commit_message=commit_message)

    @property
    def info(self) -> dict:
        """Input sample rate, frame rate, maximum input length (None: whole
        tracks), parameters, licence and recommended layers: the model
        card's facts when the source folder has a card, else the model's."""
        card = read_card(self.source) if self.source is not None else {}
        return {**model_facts(self.model),
                "license": card.get("license"),
                "recommended_layers": card.get(CARD_KEY, {}).get(
                    "recommended_layers", {})}

    @property
    def model(self) -> MusicModel:
        """The wrapped ``MusicModel``."""
        return self.mods.model

    @property
    def frame_rate(self) -> float:
        """Embeddings per second (25 for the paper's models)."""
        return self.model.frame_rate

    @property
    def sample_rate(self) -> int:
        """Input sample rate (files are resampled to it)."""
        return self.model.frontend.sample_rate

    @property
    def attention_type(self) -> str:
        """The encoder's token mixer."""
        return getattr(self.model.encoder, "attention_type", "unknown")

    def load_audio(self, path: str | Path, savedir=None) -> torch.Tensor:
        """Decodes a file (soundfile) as mono float32 at ``sample_rate``."""
        return load_audio(path, sample_rate=self.sample_rate).to(self.device)

    def _options(self, options: dict) -> dict:
        """``options`` with this encoder's precision; logs the first time an
        attention encoder falls back to windows."""
        mode = options.get("mode", "auto")
        if (mode == "auto" and resolve_mode(self.model, mode) == "window"
                and not self._warned_window):
            logger.info(
                "attention_type %s is quadratic in the length: long inputs "
                "are embedded in overlapping windows (mode='full' forces one "
                "pass)", self.attention_type)
            self._warned_window = True
        return {"precision": self.precision, **options}

    def hidden_states(
        self, wavs: torch.Tensor, wav_lens: Optional[torch.Tensor] = None, **options
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """All hidden states of a batch (``mode``, ``window_seconds``,
        ``overlap_seconds``, ``window_batch``: see
        :func:`~muselq_sb.inference.embedding.hidden_states`)."""
        return hidden_states(self.model, wavs, wav_lens, **self._options(options))

    def encode_batch(
        self, wavs: torch.Tensor, wav_lens: Optional[torch.Tensor] = None, **options
    ) -> torch.Tensor:
        """Embeddings of a batch of waveforms [B, N] at ``sample_rate``.

        Options and result as :func:`~muselq_sb.inference.embedding.embed`
        (``layers``: an index, 0 = subsampled input, -1 = last; a list,
        ``"all"``, ``"weighted"`` with ``weights``, or ``"log_mel"``;
        ``pooling``: None, ``"mean"``, ``"max"``, ``"mean_std"``; ``mode``,
        ``window_seconds``, ``overlap_seconds``, ``window_batch``).
        """
        return embed(self.model, wavs, wav_lens, **self._options(options))

    def encode_file(self, path: str | Path, **kwargs) -> torch.Tensor:
        """Embeddings of one audio file (any format soundfile decodes),
        as :meth:`encode_batch` without the batch axis.

        Raises
        ------
        muselq_sb.dataio.audio.AudioError
            The file cannot be decoded.
        """
        return self.encode_batch(self.load_audio(path)[None], None, **kwargs)[0]

    def forward(self, wavs: torch.Tensor, wav_lens: Optional[torch.Tensor] = None):
        """Last hidden state [B, T, d] (``encode_batch`` defaults)."""
        return self.encode_batch(wavs, wav_lens)
