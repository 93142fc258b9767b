"""Frozen random-projection quantizer (BEST-RQ targets), memory-bounded.

``token = argmin_i || l2norm(c_i) - l2norm(A x) ||`` with a Xavier-initialised
projection ``A`` and a standard-normal codebook ``C`` (Chiu et al., 2022).
Both sides are unit vectors, so the argmin of the distance is the argmax of
the dot product; it is computed over row chunks, so memory is bounded by
``chunk_size x codebook_size`` instead of SpeechBrain's
``batch x codebook x time x dim`` tensor.

Authors
 * muselq_sb team
"""
from __future__ import annotations

import math

import torch
from torch import nn


class RandomProjectionQuantizer(nn.Module):
    """BEST-RQ target generator with frozen buffers and its own RNG.

    Arguments
    ---------
    input_dim : int
        Size of the (normalised, stacked) input frames.
    cb_dim : int
        Projection / codebook dimension.
    cb_vocab : int
        Number of codewords per codebook.
    num_codebooks : int
        Independent codebooks (each gives one token per frame).
    seed : int
        Seed of the private generator (the global RNG is not touched).
    chunk_size : int
        Rows quantised at once (bounds memory at ``chunk_size * cb_vocab``).

    Example
    -------
    >>> q = RandomProjectionQuantizer(input_dim=8, cb_vocab=32, seed=0)
    >>> tokens = q(torch.randn(2, 5, 8))
    >>> tokens.shape, int(tokens.max()) < 32
    (torch.Size([2, 5, 1]), True)
    >>> x = torch.randn(2, 5, 8)
    >>> torch.equal(q(x), q.brute_force(x))
    True
    """

    def __init__(
        self,
        input_dim: int = 512,
        cb_dim: int = 16,
        cb_vocab: int = 8192,
        num_codebooks: int = 1,
        seed: int = 0,
        chunk_size: int = 4096,
    ) -> None:
        super().__init__()
        self.input_dim = input_dim
        self.cb_vocab = cb_vocab
        self.num_codebooks = num_codebooks
        self.chunk_size = chunk_size
        gen = torch.Generator().manual_seed(seed)
        bound = math.sqrt(6.0 / (input_dim + cb_dim))  # Xavier uniform
        proj = (torch.rand(num_codebooks, input_dim, cb_dim, generator=gen)
                * 2 - 1) * bound
        codebook = torch.randn(num_codebooks, cb_vocab, cb_dim, generator=gen)
        self.register_buffer("projection", proj)
        self.register_buffer(
            "codebook", nn.functional.normalize(codebook, dim=-1)
        )

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        """[N, input_dim] -> unit vectors [G, N, cb_dim] (float32)."""
        z = torch.einsum("nd,gdk->gnk", x.float(), self.projection)
        return nn.functional.normalize(z, dim=-1)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens [B, T, num_codebooks] (int64) of frames ``x`` [B, T, D]."""
        B, T, D = x.shape
        if D != self.input_dim:
            raise ValueError(
                f"quantizer expects {self.input_dim}-dim frames, got {D}"
            )
        flat = x.reshape(B * T, D)
        out = torch.empty(
            self.num_codebooks, B * T, dtype=torch.long, device=x.device
        )
        with torch.autocast(x.device.type, enabled=False):
            for i in range(0, B * T, self.chunk_size):
                z = self._project(flat[i:i + self.chunk_size])
                sims = torch.bmm(z, self.codebook.transpose(1, 2))
                out[:, i:i + self.chunk_size] = sims.argmax(dim=-1)
        return out.permute(1, 0).reshape(B, T, self.num_codebooks)

    @torch.no_grad()
    def brute_force(self, x: torch.Tensor) -> torch.Tensor:
        """Reference tokens by explicit distances (memory-hungry; tests)."""
        B, T, D = x.shape
        z = self._project(x.reshape(B * T, D))  # [G, N, k]
        dists = torch.cdist(z, self.codebook)  # [G, N, V]
        return dists.argmin(dim=-1).permute(1, 0).reshape(B, T, -1)


@torch.no_grad()
def codebook_usage(tokens: torch.Tensor, cb_vocab: int) -> dict[str, float]:
    """Used fraction and perplexity of the token distribution.

    Arguments
    ---------
    tokens : torch.Tensor
        Token ids (any shape) of one codebook.
    cb_vocab : int
        Codebook size.

    Returns
    -------
    dict
        ``used_fraction`` (distinct tokens / vocab) and ``perplexity``
        (exp of the entropy, between 1 and the vocabulary size).

    Example
    -------
    >>> codebook_usage(torch.tensor([0, 1, 2, 3]), 8)
    {'used_fraction': 0.5, 'perplexity': 4.0}
    """
    counts = torch.bincount(tokens.reshape(-1), minlength=cb_vocab).double()
    p = counts / counts.sum().clamp(min=1)
    nz = p[p > 0]
    entropy = -(nz * nz.log()).sum()
    return {
        "used_fraction": float((counts > 0).sum()) / cb_vocab,
        "perplexity": round(float(entropy.exp()), 6),
    }
