"""Whether the code is being traced, exported or compiled.

Authors
 * muselq_sb team
"""
import torch


def is_tracing() -> bool:
    """True under TorchScript tracing, ``torch.export`` and ``torch.compile``.

    Fast paths that branch on tensor values, or that use custom autograd
    functions, step aside then so exported graphs hold standard ops only.

    Example
    -------
    >>> is_tracing()
    False
    """
    return (torch.jit.is_tracing() or torch.compiler.is_compiling()
            or torch.compiler.is_exporting())
