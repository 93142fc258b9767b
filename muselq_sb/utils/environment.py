"""Checks that torch and torchaudio load together, with a message that
names the installed pair and the fix.

torchaudio ships a compiled library built against one torch release; a
torchaudio built for another torch fails at import with an undefined
symbol (torchaudio 2.11.1 beside torch 2.11.0 does). Every module of this
package that needs torchaudio imports it through :func:`import_torchaudio`,
so such an environment fails once, with the versions and the command that
repairs it, instead of an ``OSError`` per module.

Run ``python -m muselq_sb.utils.environment`` to check an environment.

Authors
 * muselq_sb team
"""
from __future__ import annotations

import importlib
from importlib import metadata
from types import ModuleType

#: The pair the lock file installs and CI tests (requirements/lock.txt).
TESTED_PAIR = ("2.11.0", "2.11.0")


class IncompatibleTorchaudioError(ImportError):
    """torch and torchaudio are installed but do not work together."""


def installed_version(distribution: str) -> str:
    """The installed version of ``distribution`` (``"not installed"`` if
    absent), read from package metadata without importing it.

    Example
    -------
    >>> installed_version("torch") != "not installed"
    True
    >>> installed_version("no-such-distribution-xyz")
    'not installed'
    """
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def incompatibility_message(cause: BaseException) -> str:
    """The error text for a torch/torchaudio pair that does not work.

    Example
    -------
    >>> msg = incompatibility_message(OSError("undefined symbol: x"))
    >>> "pip install -c requirements/lock.txt" in msg
    True
    """
    torch_v = installed_version("torch")
    audio_v = installed_version("torchaudio")
    want_torch, want_audio = TESTED_PAIR
    return (
        f"torchaudio {audio_v} does not work with torch {torch_v}: "
        f"{type(cause).__name__}: {cause}\n"
        f"muselq_sb is tested with torch {want_torch} + torchaudio "
        f"{want_audio} (torchaudio 2.11.1 is built for a newer torch and "
        f"fails to load beside torch 2.11.0). Fix: from the project root, "
        f"pip install -c requirements/lock.txt -e . "
        f"(or pip install torch=={want_torch} torchaudio=={want_audio})."
    )


def import_torchaudio() -> ModuleType:
    """Imports torchaudio, raising :class:`IncompatibleTorchaudioError`
    with the installed pair and the fix when its library does not load.

    Example
    -------
    >>> import_torchaudio().__name__
    'torchaudio'
    """
    try:
        return importlib.import_module("torchaudio")
    except (OSError, ImportError, RuntimeError) as exc:
        raise IncompatibleTorchaudioError(incompatibility_message(exc)) from exc


def check_torch_audio() -> str:
    """Imports torchaudio and computes one mel spectrogram with it; returns
    a one-line summary of the working pair.

    Raises
    ------
    IncompatibleTorchaudioError
        When torchaudio does not load, or its mel spectrogram fails.

    Example
    -------
    >>> check_torch_audio().startswith("torch ")
    True
    """
    torchaudio = import_torchaudio()
    import torch

    try:
        mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=24000, n_fft=2048, hop_length=240, n_mels=128
        )(torch.randn(1, 2400))
    except (OSError, RuntimeError) as exc:
        raise IncompatibleTorchaudioError(incompatibility_message(exc)) from exc
    if mel.shape[-2] != 128 or not torch.isfinite(mel).all():
        raise IncompatibleTorchaudioError(
            incompatibility_message(
                RuntimeError(f"mel spectrogram came out as {tuple(mel.shape)}")
            )
        )
    return (
        f"torch {torch.__version__} + torchaudio {torchaudio.__version__}: "
        f"mel spectrogram OK"
    )


if __name__ == "__main__":
    try:
        print(check_torch_audio())
    except IncompatibleTorchaudioError as error:
        raise SystemExit(str(error)) from None
