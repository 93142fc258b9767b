"""The HEAR API module: ``hear-validator muselq_sb.hear -m MODEL``.

The implementation is :mod:`muselq_sb.inference.hear`; this module only
gives it the short name HEAR evaluation kits import.

Example
-------
>>> import muselq_sb.hear as hear
>>> hear.HearModel.sample_rate
48000
"""
from muselq_sb.inference.hear import (  # noqa: F401
    HearModel,
    get_scene_embeddings,
    get_timestamp_embeddings,
    load_model,
)

__all__ = ["HearModel", "load_model", "get_scene_embeddings", "get_timestamp_embeddings"]
