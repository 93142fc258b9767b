"""muselq_sb: linear-complexity music foundation models for SpeechBrain.

Submodules are imported on use (HyperPyYAML resolves dotted paths itself).
Importing the package checks, once, that torchaudio loads beside the
installed torch (SpeechBrain and the mel front-end need both), so that a
mismatched pair fails here with the versions and the fix
(:mod:`muselq_sb.utils.environment`) rather than deep inside an import.
"""
from muselq_sb.utils.environment import import_torchaudio
from muselq_sb.version import __version__

import_torchaudio()

__all__ = ["__version__"]
