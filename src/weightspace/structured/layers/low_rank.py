"""The low-rank layer: y = L(Ru) + b with the factors of the truncated SVD (spec §4)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from weightspace.structured.layers.base import (
    StructuredLayer,
    as_numpy,
    copy_values,
)
from weightspace.structured.low_rank import LowRankFactors, approximate_low_rank


class LowRankLayer(StructuredLayer):
    """y = L(Ru) + b with L (out_features × rank) and R (rank × in_features)."""

    methods = ("LR",)
    describes = "a low-rank approximation"
    approximator = staticmethod(approximate_low_rank)

    def __init__(self, in_features, out_features, rank, *, bias=True, **kw):
        super().__init__(in_features, out_features, **kw)
        self.rank = int(rank)
        self.left = nn.Parameter(torch.zeros(out_features, rank, **self._kw))
        self.right = nn.Parameter(torch.zeros(rank, in_features, **self._kw))
        self._init_bias(bias)

    @classmethod
    def _build(cls, factors: LowRankFactors, bias: bool, **kw) -> "LowRankLayer":
        rows, cols = factors.shape
        layer = cls(cols, rows, factors.rank, bias=bias, **kw)
        copy_values(layer.left, factors.left)
        copy_values(layer.right, factors.right)
        return layer

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return F.linear(F.linear(u, self.right), self.left, self.bias)

    def structure(self) -> LowRankFactors:
        return LowRankFactors(as_numpy(self.left), as_numpy(self.right))

    def n_weight_params(self) -> int:
        return self.left.numel() + self.right.numel()

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"rank={self.rank}, bias={self.bias is not None}"
        )
