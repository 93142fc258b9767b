"""muselq_sb: linear-complexity music foundation models for SpeechBrain.

Submodules are imported on use (HyperPyYAML resolves dotted paths itself), so
importing the package has no side effects.
"""
from muselq_sb.version import __version__

__all__ = ["__version__"]
