"""Model size presets, selected in the hparams files with ``size``.

``large`` and ``small`` are the paper's sizes (Table 2: 12 x 1024 and
4 x 768); ``tiny`` trains on a laptop CPU in minutes. A size also sets the
training scale that suits it (peak learning rate, warm-up and total steps,
seconds of audio per batch). Each value can still be overridden on its own
(``--d_model=256 --total_steps=1000``).

Authors
 * muselq_sb team
"""
from __future__ import annotations

from typing import Any

SIZES: dict[str, dict[str, Any]] = {
    "large": {
        "num_layers": 12, "d_model": 1024, "nhead": 16,
        "csgu_linear_units": 6144, "d_ffn": 4096, "kernel_size": 31,
        "subsampling_channels": 512,
        "lr": 1.0e-4, "warmup_steps": 10000, "total_steps": 400000,
        "max_batch_seconds": 480.0, "segment_seconds": 30.0,
    },
    "small": {
        "num_layers": 4, "d_model": 768, "nhead": 12,
        "csgu_linear_units": 3072, "d_ffn": 3072, "kernel_size": 31,
        "subsampling_channels": 256,
        "lr": 1.0e-4, "warmup_steps": 10000, "total_steps": 400000,
        "max_batch_seconds": 480.0, "segment_seconds": 30.0,
    },
    "tiny": {
        "num_layers": 4, "d_model": 192, "nhead": 4,
        "csgu_linear_units": 768, "d_ffn": 768, "kernel_size": 15,
        "subsampling_channels": 192,
        "lr": 1.0e-3, "warmup_steps": 60, "total_steps": 600,
        "max_batch_seconds": 80.0, "segment_seconds": 10.0,
    },
}


def preset(size: str, key: str) -> Any:
    """The value of ``key`` for model ``size``.

    Example
    -------
    >>> preset("small", "d_model")
    768
    >>> preset("huge", "d_model")
    Traceback (most recent call last):
    ...
    KeyError: "size: unknown size 'huge'; valid: ['large', 'small', 'tiny']"
    """
    if size not in SIZES:
        raise KeyError(f"size: unknown size {size!r}; valid: {list(SIZES)}")
    if key not in SIZES[size]:
        raise KeyError(f"size preset has no key {key!r}; valid: {list(SIZES[size])}")
    return SIZES[size][key]
