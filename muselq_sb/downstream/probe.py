"""The probe trained on frozen, pooled embeddings: layer choice + small MLP.

Authors
 * muselq_sb team
"""
from __future__ import annotations

from typing import Optional, Type

import torch
from torch import nn

from muselq_sb.lobes.frontend import FeatureNormalizer

LAYER_MODES = ("mean", "weighted")


class LayerSelector(nn.Module):
    """Reduces per-layer embeddings [B, L, d] to [B, d].

    Arguments
    ---------
    num_layers : int
        L, the number of stacked layers in the input (hidden states + 1).
    layer : int or str
        A layer index (negative counts from the end), ``"mean"`` (average
        of all layers) or ``"weighted"`` (learned softmax weights, starting
        uniform).

    Example
    -------
    >>> x = torch.arange(6.0).reshape(1, 3, 2)
    >>> LayerSelector(3, -1)(x).tolist()
    [[4.0, 5.0]]
    >>> LayerSelector(3, "mean")(x).tolist()
    [[2.0, 3.0]]
    >>> LayerSelector(3, "weighted")(x).tolist()
    [[2.0, 3.0]]
    """

    def __init__(self, num_layers: int, layer: int | str = "weighted") -> None:
        super().__init__()
        self.num_layers = num_layers
        self.mode = layer if isinstance(layer, str) else "index"
        if isinstance(layer, str) and layer not in LAYER_MODES:
            raise ValueError(
                f"unknown layer option {layer!r}; expected an integer index or "
                f"one of {list(LAYER_MODES)}"
            )
        if self.mode == "index" and not -num_layers <= layer < num_layers:
            raise ValueError(
                f"layer index {layer} out of range for {num_layers} layers "
                f"(valid: {-num_layers}..{num_layers - 1})"
            )
        self.index = layer % num_layers if self.mode == "index" else None
        if self.mode == "weighted":
            self.layer_logits = nn.Parameter(torch.zeros(num_layers))

    def weights(self) -> Optional[list[float]]:
        """The learned layer weights (softmax) of ``"weighted"``, else None.

        Example
        -------
        >>> LayerSelector(4, "weighted").weights(), LayerSelector(4, 1).weights()
        ([0.25, 0.25, 0.25, 0.25], None)
        """
        if self.mode != "weighted":
            return None
        return torch.softmax(self.layer_logits.detach(), dim=0).tolist()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Selects or mixes the layers of ``x`` [B, L, d]."""
        if x.shape[1] != self.num_layers:
            raise ValueError(f"expected {self.num_layers} layers, got {x.shape[1]}")
        if self.mode == "index":
            return x[:, self.index]
        if self.mode == "mean":
            return x.mean(dim=1)
        weights = torch.softmax(self.layer_logits, dim=0)
        return torch.einsum("l,bld->bd", weights, x)


class Probe(nn.Module):
    """The paper's probe: layer choice, Linear(d, 512), ReLU, dropout, Linear.

    With ``standardize``, every dimension of every layer is first brought to
    zero mean and unit variance with statistics of the training split
    (``fit_standardizer``; HEAR's and s3prl's probes do the same), so that
    layers of very different scales weigh alike in the layer mix and the
    probe's learning rate means the same for every encoder.

    Arguments
    ---------
    num_layers : int
        Number of stacked layers of the cached embeddings.
    input_dim : int
        Embedding size d.
    n_outputs : int
        Classes or regression targets.
    layer : int or str
        See :class:`LayerSelector`.
    hidden_dim : int
        Width of the hidden layer (paper: 512).
    dropout : float
        Dropout after the hidden layer (paper: 0.25).
    activation : type
        Hidden activation class.
    standardize : bool
        Standardise the input with the statistics given to
        ``fit_standardizer`` (saved with the probe).

    Example
    -------
    >>> probe = Probe(num_layers=5, input_dim=16, n_outputs=10, layer=2)
    >>> probe(torch.randn(4, 5, 16)).shape
    torch.Size([4, 10])
    >>> probe = Probe(5, 16, 10, standardize=True)
    >>> probe.fit_standardizer(torch.randn(100, 5, 16) * 50 + 3)
    >>> (probe.normalizer.std / 50).mean().round().item()
    1.0
    """

    def __init__(
        self,
        num_layers: int,
        input_dim: int,
        n_outputs: int,
        layer: int | str = "weighted",
        hidden_dim: int = 512,
        dropout: float = 0.25,
        activation: Type[nn.Module] = nn.ReLU,
        standardize: bool = False,
    ) -> None:
        super().__init__()
        self.normalizer = FeatureNormalizer(num_layers * input_dim) if standardize else None
        self.select = LayerSelector(num_layers, layer)
        self.mlp = nn.Sequential(
            nn.Linear(input_dim, hidden_dim),
            activation(),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, n_outputs),
        )

    @property
    def standardize(self) -> bool:
        """Whether the input is standardised (see ``fit_standardizer``)."""
        return self.normalizer is not None

    def fit_standardizer(self, train: torch.Tensor) -> None:
        """Sets the per-layer, per-dimension mean and std from the training
        embeddings ``train`` [N, L, d]."""
        if self.normalizer is None:
            raise ValueError("this probe was built with standardize=False")
        self.normalizer.update(train.float().reshape(1, len(train), -1), torch.tensor([len(train)]))
        self.normalizer.freeze()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (or regression outputs) [B, n_outputs] of ``x`` [B, L, d]."""
        x = x.float()
        if self.normalizer is not None:
            b = x.shape[0]
            x = self.normalizer(x.reshape(1, b, -1), torch.tensor([b])).view_as(x)
        return self.mlp(self.select(x))


class FrameProbe(nn.Module):
    """A per-frame head: layer choice, then a linear layer or a small MLP.

    The same weights classify every frame; nothing mixes frames, so a
    frame's output depends only on its own hidden states.

    Arguments
    ---------
    num_layers : int
        Number of stacked layers of the cached frames.
    input_dim : int
        Frame feature size d.
    n_outputs : int
        Classes per frame.
    layer : int or str
        See :class:`LayerSelector`.
    hidden_dim : int
        Width of the hidden layer; 0 for a linear probe.
    dropout : float
        Dropout after the hidden layer.

    Example
    -------
    >>> probe = FrameProbe(num_layers=3, input_dim=8, n_outputs=25, hidden_dim=0)
    >>> probe(torch.randn(2, 50, 3, 8)).shape
    torch.Size([2, 50, 25])
    >>> sum(p.numel() for p in probe.parameters())  # 3 layer weights + 8 x 25 + 25
    228
    """

    def __init__(
        self,
        num_layers: int,
        input_dim: int,
        n_outputs: int,
        layer: int | str = "weighted",
        hidden_dim: int = 0,
        dropout: float = 0.25,
    ) -> None:
        super().__init__()
        self.select = LayerSelector(num_layers, layer)
        self.head = nn.Linear(input_dim, n_outputs) if hidden_dim == 0 else nn.Sequential(
            nn.Linear(input_dim, hidden_dim), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden_dim, n_outputs),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [B, T, n_outputs] of frames ``x`` [B, T, L, d]."""
        b, t, n_layers, d = x.shape
        return self.head(self.select(x.float().reshape(b * t, n_layers, d))).view(b, t, -1)
