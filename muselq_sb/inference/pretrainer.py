"""SpeechBrain's ``Pretrainer`` for a packaged model folder.

A packaged folder's ``hyperparams.yaml`` has the ``modules`` and
``pretrainer`` keys that ``speechbrain.inference`` expects, so
``MusicEncoder.from_hparams(source=folder)`` (and ``foreign_class``) load
it the SpeechBrain way. Stock SpeechBrain reads ``<loadable>.ckpt`` files
with ``torch.load`` and resolves a bare file name in ``paths`` against the
working directory; :class:`FolderPretrainer` reads the folder's own
safetensors files (``paths`` are names inside the ``source`` given to
``from_hparams``: a local folder or a Hub repo id) with
:func:`~muselq_sb.inference.embedding.load_weights`.

Authors
 * muselq_sb team
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional

from speechbrain.utils.fetching import FetchSource
from speechbrain.utils.parameter_transfer import Pretrainer

from muselq_sb.inference.embedding import load_weights


def _inside(source, name: str):
    """``name`` inside ``source`` (a folder, a Hub id or a FetchSource)."""
    if isinstance(source, FetchSource):
        return FetchSource(source.FetchFrom, f"{source.path}/{name}")
    return f"{source}/{name}"


class FolderPretrainer(Pretrainer):
    """``Pretrainer`` whose ``paths`` are safetensors files of the model folder.

    Arguments
    ---------
    loadables : mapping
        Loadable name -> module (``model``, ``quantizer``).
    paths : mapping
        Loadable name -> file name inside the folder
        (``model.safetensors``); a path with a ``/`` is used as given.
    collect_in : path-like, optional
        Where SpeechBrain links the files (``from_hparams(savedir=...)``).

    Example
    -------
    >>> import tempfile, torch
    >>> from safetensors.torch import save_file
    >>> folder = Path(tempfile.mkdtemp())
    >>> save_file(torch.nn.Linear(2, 2).state_dict(), str(folder / "lin.safetensors"))
    >>> lin = torch.nn.Linear(2, 2)
    >>> pre = FolderPretrainer({"lin": lin}, {"lin": "lin.safetensors"})
    >>> _ = pre.collect_files(default_source=str(folder))
    >>> pre.load_collected()
    """

    def __init__(
        self,
        loadables: Mapping,
        paths: Mapping[str, str],
        collect_in: Optional[str | Path] = None,
    ) -> None:
        super().__init__(
            collect_in=collect_in, loadables=dict(loadables), paths=dict(paths),
            custom_hooks={name: load_weights for name in loadables},
        )

    def collect_files(self, default_source=None, **kwargs) -> dict:
        """Finds each file inside ``default_source`` (SpeechBrain's
        ``collect_files`` otherwise)."""
        if default_source is None:
            raise ValueError(
                "FolderPretrainer needs default_source: the model folder or "
                "Hub repo id (from_hparams(source=...) passes it)")
        for name, path in list(self.paths.items()):
            if name not in self.is_local and "/" not in str(path):
                self.paths[name] = _inside(default_source, str(path))
        return super().collect_files(default_source=default_source, **kwargs)
