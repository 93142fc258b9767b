"""Hugging Face Hub: a packaged model folder is a Hub model repository.

* :func:`resolve_model` turns a local folder or a Hub repo id into a local
  folder (``huggingface_hub.snapshot_download``: cached, offline with
  ``HF_HUB_OFFLINE=1``, cache in ``HF_HUB_CACHE``);
* :func:`push_folder` uploads a packaged folder's files to a repo.

``MusicEncoder.from_pretrained`` / ``save_pretrained`` / ``push_to_hub``
are built on these.

Authors
 * muselq_sb team
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from huggingface_hub import HfApi, snapshot_download
from huggingface_hub.errors import HFValidationError

from muselq_sb.inference.package import FOLDER_FILES
from muselq_sb.utils.hparams import ModelFolderError


def resolve_model(
    name_or_path: str | Path,
    revision: Optional[str] = None,
    cache_dir: Optional[str | Path] = None,
    token: Optional[str | bool] = None,
) -> Path:
    """A local model folder: ``name_or_path`` itself, or its Hub snapshot.

    Arguments
    ---------
    name_or_path : str or path-like
        An existing folder (a packaged folder or a pre-training run), or a
        Hub repo id ``org/name``.
    revision : str, optional
        Branch, tag or commit of the repo (default ``main``).
    cache_dir : path-like, optional
        Hub cache (default ``HF_HUB_CACHE``).
    token : str or bool, optional
        Hub token for private repos.

    Returns
    -------
    Path
        The folder (for a repo id, its snapshot in the cache).

    Raises
    ------
    ModelFolderError
        Neither a folder nor a repo that could be found (offline: not in
        the cache).

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> resolve_model(d) == Path(d)
    True
    """
    if Path(name_or_path).is_dir():
        return Path(name_or_path)
    try:
        folder = snapshot_download(
            str(name_or_path), revision=revision, cache_dir=cache_dir,
            token=token, allow_patterns=list(FOLDER_FILES),
        )
    except (HFValidationError, OSError, ValueError) as err:
        # huggingface_hub's not-found, offline and connection errors are
        # OSErrors; an invalid repo id is an HFValidationError
        raise ModelFolderError(
            name_or_path, "not a local folder, and no Hub repo of that id could "
            f"be fetched or found in the cache ({type(err).__name__}: {err})"
        ) from err
    return Path(folder)


def push_folder(
    folder: str | Path, repo_id: str, private: bool = False,
    token: Optional[str] = None, commit_message: str = "Upload muselq_sb model",
    api: Optional[HfApi] = None,
) -> str:
    """Uploads a packaged folder's files (``FOLDER_FILES``) to a Hub repo,
    creating the repo if needed.

    Arguments
    ---------
    folder : path-like
        A packaged model folder.
    repo_id : str
        ``org/name``.
    private : bool
        Create the repo private.
    token : str, optional
        Hub token (default: the logged-in user's).
    commit_message : str
        The commit's message.
    api : HfApi, optional
        The client (default ``HfApi(token=token)``).

    Returns
    -------
    str
        The commit's URL.
    """
    api = api or HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    info = api.upload_folder(
        repo_id=repo_id, folder_path=str(folder), commit_message=commit_message,
        allow_patterns=list(FOLDER_FILES),
    )
    return str(info.commit_url)
