"""muselq_sb: linear-complexity music foundation models for SpeechBrain.

Submodules are imported on use (HyperPyYAML resolves dotted paths itself).
Importing the package checks, once, that torchaudio loads beside the
installed torch (SpeechBrain and the mel front-end need both), so that a
mismatched pair fails here with the versions and the fix
(:mod:`muselq_sb.utils.environment`) rather than deep inside an import.
"""
from muselq_sb.version import __version__

try:
    import torchaudio  # noqa: F401
except (OSError, ImportError) as _error:
    from muselq_sb.utils.environment import (
        IncompatibleTorchaudioError,
        incompatibility_message,
    )

    raise IncompatibleTorchaudioError(incompatibility_message(_error)) from _error

__all__ = ["__version__"]
