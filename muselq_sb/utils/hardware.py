"""What the CPU offers for reduced precision.

Authors
 * muselq_sb team
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


@lru_cache(maxsize=None)
def cpu_flags(cpuinfo: Path = CPUINFO) -> frozenset[str]:
    """The ``flags`` of the first CPU in ``cpuinfo`` (empty if unreadable).

    Example
    -------
    >>> isinstance(cpu_flags(), frozenset)
    True
    """
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def bf16_is_slow_on_cpu(cpuinfo: Path = CPUINFO) -> bool:
    """True when the CPU has no AMX tiles for bf16 matrix products.

    Without AMX, oneDNN runs bf16 products on AVX512-BF16 (or emulates
    them), which measured slower than fp32 here (docs/benchmarks.md,
    section 5). Unknown CPUs (no ``/proc/cpuinfo``) count as slow.

    Example
    -------
    >>> isinstance(bf16_is_slow_on_cpu(), bool)
    True
    """
    return "amx_bf16" not in cpu_flags(cpuinfo)
