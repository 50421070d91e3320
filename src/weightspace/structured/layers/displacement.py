"""Low displacement rank layers (spec §4): Toeplitz-like and TD-LDR, square n × n.

- TLLayer: generators G, H; f-circulant products by FFT, O(r·n log n) per sample.
- LDRLayer: operators A, B (tridiagonal plus corners) and generators G, H; Krylov
  products of the input and Horner's rule, O(n² + rn²) per sample.

Both are built from a random Glorot-uniform start by `from_random(features, share,
rng)`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from weightspace.structured.approximation import Approximation, param_budget
from weightspace.structured.displacement import (
    LDRFactors,
    ToeplitzLike,
    TridiagonalCorners,
    approximate_ldr,
    approximate_toeplitz_like,
    ldr_matvec,
    ldr_param_count,
    ldr_rank,
    random_ldr,
    toeplitz_like_matvec,
)
from weightspace.structured.layers.base import (
    StructuredLayer,
    as_numpy,
    copy_values,
    glorot,
)
from weightspace.structured.low_rank import low_rank_rank


class _DisplacementLayer(StructuredLayer):
    """A square layer (features × features) whose W̃ has displacement rank `rank`
    (W̃ = 0 at rank 0)."""

    def __init__(self, features: int, rank: int, *, bias: bool = True, **kw):
        super().__init__(features, features, **kw)
        self._init_bias(bias)
        self.rank = int(rank)
        self._init_factors(features, rank)

    def _init_factors(self, features: int, rank: int) -> None:
        """Register the (zero) parameters of W̃."""
        raise NotImplementedError

    def _matvec(self, u: torch.Tensor) -> torch.Tensor:
        """W̃ uᵀ for u (N × n), as (N × n)."""
        raise NotImplementedError

    @staticmethod
    def _zero_structure(n: int):
        """The structure of the n × n zero matrix (displacement rank 0)."""
        raise NotImplementedError

    @classmethod
    def _build(cls, structure, bias: bool, **kw) -> "_DisplacementLayer":
        layer = cls(structure.shape[0], structure.rank, bias=bias, **kw)
        copy_values(layer.G, structure.G)
        copy_values(layer.H, structure.H)
        return layer

    @classmethod
    def _from_zero(cls, approx: Approximation, bias=None, **kw) -> "_DisplacementLayer":
        zero = cls._zero_structure(approx.shape[0])
        return cls.from_structure(zero, bias=bias, **kw)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        self._check_input(u)
        if self.rank == 0:
            return self._add_bias(u.new_zeros(u.shape[0], self.out_features))
        return self._add_bias(self._matvec(u))

    def extra_repr(self) -> str:
        return (
            f"features={self.in_features}, rank={self.rank}, "
            f"bias={self.bias is not None}"
        )


class TLLayer(_DisplacementLayer):
    """Toeplitz-like y = W̃u + b with Z₁W̃ − W̃Z₋₁ = G H (square, n × n)."""

    methods = ("TL",)
    describes = "a Toeplitz-like approximation"
    approximator = staticmethod(approximate_toeplitz_like)

    def _init_factors(self, features: int, rank: int) -> None:
        self.G = nn.Parameter(torch.zeros(features, rank, **self._kw))
        self.H = nn.Parameter(torch.zeros(rank, features, **self._kw))

    @staticmethod
    def _zero_structure(n: int) -> ToeplitzLike:
        return ToeplitzLike(np.zeros((n, 0)), np.zeros((0, n)))

    @classmethod
    def from_random(cls, features, share, rng, *, bias=True, **kw) -> "TLLayer":
        """Glorot-uniform generators of rank ⌊B/2n⌋ and a Glorot-uniform bias (as the
        original)."""
        shape = (features, features)
        rank = low_rank_rank(shape, param_budget(shape, share))
        tl = ToeplitzLike(glorot(rng, (features, rank)), glorot(rng, (rank, features)))
        b = glorot(rng, (1, features)).ravel() if bias else None
        return cls.from_structure(tl, b, **kw)

    def _matvec(self, u: torch.Tensor) -> torch.Tensor:
        return toeplitz_like_matvec(self.G, self.H, u)

    def structure(self) -> ToeplitzLike:
        return ToeplitzLike(as_numpy(self.G), as_numpy(self.H))

    def n_weight_params(self) -> int:
        return int(self.G.numel() + self.H.numel())


_OPERATOR_PARTS = ("diag", "upper", "lower", "corners")


class LDRLayer(_DisplacementLayer):
    """TD-LDR y = W̃u + b, W̃ = Σ_i K(A, g_i) K(Bᵀ, h_i)ᵀ, with trainable operators and
    generators.

    The operators hold 6n parameters even at rank 0 (a rank-0 layer is over any budget
    below 6n).
    """

    methods = ("LDR",)
    describes = "a TD-LDR approximation"
    approximator = staticmethod(approximate_ldr)

    def _init_factors(self, features: int, rank: int) -> None:
        if features < 2:
            raise ValueError("the TD-LDR layer needs at least 2 features")
        n = int(features)
        sizes = {"diag": n, "upper": n - 1, "lower": n - 1, "corners": 2}
        for op in ("a", "b"):
            for part in _OPERATOR_PARTS:
                values = nn.Parameter(torch.zeros(sizes[part], **self._kw))
                setattr(self, f"{op}_{part}", values)
        self.G = nn.Parameter(torch.zeros(n, rank, **self._kw))
        self.H = nn.Parameter(torch.zeros(n, rank, **self._kw))

    def _ops(self, op: str) -> tuple:
        return tuple(getattr(self, f"{op}_{part}") for part in _OPERATOR_PARTS)

    @classmethod
    def _build(cls, factors: LDRFactors, bias: bool, **kw) -> "LDRLayer":
        layer = super()._build(factors, bias, **kw)
        for op, operator in (("a", factors.A), ("b", factors.B)):
            for part in _OPERATOR_PARTS:
                copy_values(getattr(layer, f"{op}_{part}"), getattr(operator, part))
        return layer

    @staticmethod
    def _zero_structure(n: int) -> LDRFactors:
        """Zero operators and generators."""
        zero = TridiagonalCorners.from_vector(np.zeros(3 * n))
        return LDRFactors(zero, zero, np.zeros((n, 0)), np.zeros((n, 0)))

    @classmethod
    def from_random(cls, features, share, rng, *, bias=True, strict_budget=False, **kw):
        """Glorot-uniform operators and generators of the budget's rank (at least 0),
        Glorot bias."""
        budget = param_budget((features, features), share)
        rank = max(ldr_rank(features, budget, strict_budget=strict_budget), 0)
        b = glorot(rng, (1, features)).ravel() if bias else None
        return cls.from_structure(random_ldr(features, rank, rng), b, **kw)

    def _matvec(self, u: torch.Tensor) -> torch.Tensor:
        return ldr_matvec(self._ops("a"), self._ops("b"), self.G, self.H, u)

    def structure(self) -> LDRFactors:
        a, b = (
            TridiagonalCorners(*(as_numpy(t) for t in self._ops(op)))
            for op in ("a", "b")
        )
        return LDRFactors(a, b, as_numpy(self.G), as_numpy(self.H))

    def n_weight_params(self) -> int:
        return ldr_param_count(self.in_features, self.rank)
