"""Trainable layers y = W̃u + b for the PSM, Toeplitz-like, TD-LDR and hierarchical structures (spec §4).

Every forward pass works on the structure's own parameters and never forms W̃:
- PSMLayer: the nonzero values of each sparse factor on a fixed pattern, applied right to left by
  gather / index_add (O(nnz) per sample). Gradients are dense in the values, so any optimiser works
  (the original's sparse COO parameters restricted training to SGD).
- TLLayer: generators G, H; f-circulant products by FFT, O(r·n log n) per sample.
- LDRLayer: operators A, B (tridiagonal plus corners) and generators G, H; Krylov products of the input
  and Horner's rule, O(n² + rn²) per sample.
- HMatLayer: one (L_b, R_b) pair per leaf with rank > 0; out[rows_b] += L_b (R_b u[cols_b]).

Each layer is built from a structure (`from_structure`), an Approximation (`from_approximation`, the
"rebuild" of the original), a dense matrix and a share (`from_dense`), or a random Glorot-uniform start
as the original's constructors without an initial matrix (`from_random`). `to_dense()` realises W̃ from
the current parameters; `structure()` returns them as the approximator's structure type.
Parameter counts: n_weight_params() (the weight matrix only, as the budgets) and
n_params(include_bias=True).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse
import torch
from torch import nn

from weightspace.structured.approximation import Approximation, as_matrix, param_budget
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
from weightspace.structured.hierarchical import Block, HMatrix, LowRankBlock, approximate_hmat
from weightspace.structured.low_rank import low_rank_rank
from weightspace.structured.psm import SparseFactors, approximate_psm_search, factor_shapes as psm_factor_shapes

HIERARCHICAL_METHODS = ("HODLR", "HEDLR", "HMat")


def _glorot(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    limit = np.sqrt(6.0 / sum(shape)) if sum(shape) else 0.0
    return rng.uniform(-limit, limit, size=shape)


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy().copy()


class _StructuredLayer(nn.Module):
    """Shared bias handling and parameter counts."""

    def __init__(self, in_features: int, out_features: int, bias: bool, dtype: torch.dtype, device):
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        self._kw = {"dtype": dtype, "device": device}
        self.bias = nn.Parameter(torch.zeros(out_features, **self._kw)) if bias else None

    def _set_bias(self, bias) -> None:
        if bias is None or bias is False or bias is True:
            return
        values = torch.as_tensor(np.asarray(_numpy(bias) if torch.is_tensor(bias) else bias, dtype=np.float64))
        if values.numel() != self.out_features:
            raise ValueError(f"bias has {values.numel()} entries, expected {self.out_features}")
        with torch.no_grad():
            self.bias.copy_(values.reshape(-1))

    def _check_input(self, u: torch.Tensor) -> None:
        if u.ndim != 2 or u.shape[1] != self.in_features:
            raise ValueError(f"expected input of shape (batch, {self.in_features}), got {tuple(u.shape)}")

    def _add_bias(self, y: torch.Tensor) -> torch.Tensor:
        return y if self.bias is None else y + self.bias

    def n_weight_params(self) -> int:
        raise NotImplementedError

    def n_params(self, include_bias: bool = True) -> int:
        extra = self.bias.numel() if (include_bias and self.bias is not None) else 0
        return int(self.n_weight_params() + extra)

    def to_dense(self) -> torch.Tensor:
        """W̃ (out × in) as float64, realised from the current parameters."""
        return torch.from_numpy(self.structure().to_dense())

    def structure(self):
        raise NotImplementedError


    @classmethod
    def from_random(cls, in_features: int, out_features: int, share: float, rng: np.random.Generator, *,
                    bias: bool = True, dtype: torch.dtype = torch.float32, device=None, **options):
        """The structured approximation of a Glorot-uniform matrix, with a Glorot-uniform bias (as the
        original); square-only structures override this."""
        weight = _glorot(rng, (out_features, in_features))
        b = _glorot(rng, (1, out_features)).ravel() if bias else None
        return cls.from_dense(weight, share, b, dtype=dtype, device=device, **options)

def _has_bias(bias) -> bool:
    return bias is not None and bias is not False


# ---------------------------------------------------------------------------------------------


class PSMLayer(_StructuredLayer):
    """y = S_1 S_2 ⋯ S_J u + b with trainable values on the fixed sparsity pattern of each S_j."""

    def __init__(self, factor_shapes: list[tuple[int, int]], patterns: list[tuple[np.ndarray, np.ndarray]], *,
                 bias: bool = True, dtype: torch.dtype = torch.float32, device=None):
        shapes = [tuple(int(v) for v in s) for s in factor_shapes]
        for left, right in zip(shapes[:-1], shapes[1:]):
            if left[1] != right[0]:
                raise ValueError(f"factor shapes do not chain: {left} @ {right}")
        super().__init__(shapes[-1][1], shapes[0][0], bias, dtype, device)
        self.factor_shapes = shapes
        self.values = nn.ParameterList()
        for j, ((rows, cols), shape) in enumerate(zip(patterns, shapes)):
            rows = torch.as_tensor(np.asarray(rows, dtype=np.int64), device=device)
            cols = torch.as_tensor(np.asarray(cols, dtype=np.int64), device=device)
            if rows.shape != cols.shape or (rows.numel() and (rows.max() >= shape[0] or cols.max() >= shape[1])):
                raise ValueError(f"pattern of factor {j} does not fit its shape {shape}")
            self.register_buffer(f"rows_{j}", rows)
            self.register_buffer(f"cols_{j}", cols)
            self.values.append(nn.Parameter(torch.zeros(rows.numel(), **self._kw)))

    @classmethod
    def from_structure(cls, factors: SparseFactors, bias=None, *, dtype: torch.dtype = torch.float32,
                       device=None) -> "PSMLayer":
        coo = [scipy.sparse.coo_matrix(f) for f in factors.factors]
        layer = cls([f.shape for f in coo], [(f.row, f.col) for f in coo], bias=_has_bias(bias), dtype=dtype,
                    device=device)
        with torch.no_grad():
            for param, f in zip(layer.values, coo):
                param.copy_(torch.from_numpy(np.asarray(f.data, dtype=np.float64)))
        layer._set_bias(bias)
        return layer

    @classmethod
    def from_approximation(cls, approx: Approximation, bias=None, **kw) -> "PSMLayer":
        if approx.method != "PSM":
            raise ValueError(f"expected a PSM approximation, got {approx.method!r}")
        if approx.structure is None:  # the zero matrix: empty factors
            shapes = psm_factor_shapes(approx.shape, int(approx.info.get("n_factors", 2)))
            empty = SparseFactors(tuple(scipy.sparse.csr_matrix(s) for s in shapes))
            return cls.from_structure(empty, bias=bias, **kw)
        return cls.from_structure(approx.structure, bias=bias, **kw)

    @classmethod
    def from_dense(cls, weight, share: float, bias=None, *, dtype: torch.dtype = torch.float32, device=None,
                   **options) -> "PSMLayer":
        """PSM wrapper approximation of W (options go to approximate_psm_search)."""
        return cls.from_approximation(approximate_psm_search(as_matrix(weight), share, **options), bias=bias,
                                      dtype=dtype, device=device)


    def _pattern(self, j: int) -> tuple[torch.Tensor, torch.Tensor]:
        return getattr(self, f"rows_{j}"), getattr(self, f"cols_{j}")

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        self._check_input(u)
        x = u
        for j in range(len(self.factor_shapes) - 1, -1, -1):
            rows, cols = self._pattern(j)
            out = x.new_zeros(x.shape[0], self.factor_shapes[j][0])
            x = out.index_add(1, rows, x[:, cols] * self.values[j])
        return self._add_bias(x)

    def structure(self) -> SparseFactors:
        factors = []
        for j, shape in enumerate(self.factor_shapes):
            rows, cols = self._pattern(j)
            factors.append(scipy.sparse.csr_matrix(
                (_numpy(self.values[j]), (rows.cpu().numpy(), cols.cpu().numpy())), shape=shape))
        return SparseFactors(tuple(factors))

    def n_weight_params(self) -> int:
        return int(sum(v.numel() for v in self.values))

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"nnz={[v.numel() for v in self.values]}, bias={self.bias is not None}")


# ---------------------------------------------------------------------------------------------


class TLLayer(_StructuredLayer):
    """Toeplitz-like y = W̃u + b with Z₁W̃ − W̃Z₋₁ = G H (square, n × n)."""

    def __init__(self, features: int, rank: int, *, bias: bool = True, dtype: torch.dtype = torch.float32,
                 device=None):
        super().__init__(features, features, bias, dtype, device)
        self.rank = int(rank)
        self.G = nn.Parameter(torch.zeros(features, rank, **self._kw))
        self.H = nn.Parameter(torch.zeros(rank, features, **self._kw))

    @classmethod
    def from_structure(cls, tl: ToeplitzLike, bias=None, *, dtype: torch.dtype = torch.float32,
                       device=None) -> "TLLayer":
        layer = cls(tl.shape[0], tl.rank, bias=_has_bias(bias), dtype=dtype, device=device)
        with torch.no_grad():
            layer.G.copy_(torch.from_numpy(np.asarray(tl.G, dtype=np.float64)))
            layer.H.copy_(torch.from_numpy(np.asarray(tl.H, dtype=np.float64)))
        layer._set_bias(bias)
        return layer

    @classmethod
    def from_approximation(cls, approx: Approximation, bias=None, **kw) -> "TLLayer":
        if approx.method != "TL":
            raise ValueError(f"expected a Toeplitz-like approximation, got {approx.method!r}")
        n = approx.shape[0]
        tl = approx.structure if approx.structure is not None else ToeplitzLike(np.zeros((n, 0)), np.zeros((0, n)))
        return cls.from_structure(tl, bias=bias, **kw)

    @classmethod
    def from_dense(cls, weight, share: float, bias=None, **kw) -> "TLLayer":
        return cls.from_approximation(approximate_toeplitz_like(as_matrix(weight), share), bias=bias, **kw)

    @classmethod
    def from_random(cls, features: int, share: float, rng: np.random.Generator, *, bias: bool = True,
                    dtype: torch.dtype = torch.float32, device=None) -> "TLLayer":
        """Glorot-uniform generators of rank ⌊B/2n⌋ and a Glorot-uniform bias (as the original)."""
        rank = low_rank_rank((features, features), param_budget((features, features), share))
        tl = ToeplitzLike(_glorot(rng, (features, rank)), _glorot(rng, (rank, features)))
        b = _glorot(rng, (1, features)).ravel() if bias else None
        return cls.from_structure(tl, b, dtype=dtype, device=device)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        self._check_input(u)
        if self.rank == 0:
            return self._add_bias(u.new_zeros(u.shape[0], self.out_features))
        return self._add_bias(toeplitz_like_matvec(self.G, self.H, u))

    def structure(self) -> ToeplitzLike:
        return ToeplitzLike(_numpy(self.G), _numpy(self.H))

    def n_weight_params(self) -> int:
        return int(self.G.numel() + self.H.numel())

    def extra_repr(self) -> str:
        return f"features={self.in_features}, rank={self.rank}, bias={self.bias is not None}"


# ---------------------------------------------------------------------------------------------


_OPERATOR_PARTS = ("diag", "upper", "lower", "corners")


class LDRLayer(_StructuredLayer):
    """TD-LDR y = W̃u + b, W̃ = Σ_i K(A, g_i) K(Bᵀ, h_i)ᵀ, with trainable operators and generators.

    The operators hold 6n parameters even at rank 0 (a rank-0 layer is over any budget below 6n).
    """

    def __init__(self, features: int, rank: int, *, bias: bool = True, dtype: torch.dtype = torch.float32,
                 device=None):
        if features < 2:
            raise ValueError("the TD-LDR layer needs at least 2 features")
        super().__init__(features, features, bias, dtype, device)
        self.rank = int(rank)
        n = int(features)
        sizes = {"diag": n, "upper": n - 1, "lower": n - 1, "corners": 2}
        for op in ("a", "b"):
            for part in _OPERATOR_PARTS:
                setattr(self, f"{op}_{part}", nn.Parameter(torch.zeros(sizes[part], **self._kw)))
        self.G = nn.Parameter(torch.zeros(n, rank, **self._kw))
        self.H = nn.Parameter(torch.zeros(n, rank, **self._kw))

    def _ops(self, op: str) -> tuple:
        return tuple(getattr(self, f"{op}_{part}") for part in _OPERATOR_PARTS)

    @classmethod
    def from_structure(cls, factors: LDRFactors, bias=None, *, dtype: torch.dtype = torch.float32,
                       device=None) -> "LDRLayer":
        layer = cls(factors.shape[0], factors.rank, bias=_has_bias(bias), dtype=dtype, device=device)
        with torch.no_grad():
            for op, values in (("a", factors.A), ("b", factors.B)):
                for part in _OPERATOR_PARTS:
                    getattr(layer, f"{op}_{part}").copy_(torch.from_numpy(np.asarray(getattr(values, part),
                                                                                      dtype=np.float64)))
            layer.G.copy_(torch.from_numpy(np.asarray(factors.G, dtype=np.float64)))
            layer.H.copy_(torch.from_numpy(np.asarray(factors.H, dtype=np.float64)))
        layer._set_bias(bias)
        return layer

    @classmethod
    def from_approximation(cls, approx: Approximation, bias=None, **kw) -> "LDRLayer":
        if approx.method != "LDR":
            raise ValueError(f"expected a TD-LDR approximation, got {approx.method!r}")
        if approx.structure is None:  # the zero matrix: rank 0, zero operators
            n = approx.shape[0]
            zero = TridiagonalCorners.from_vector(np.zeros(3 * n))
            return cls.from_structure(LDRFactors(zero, zero, np.zeros((n, 0)), np.zeros((n, 0))), bias=bias, **kw)
        return cls.from_structure(approx.structure, bias=bias, **kw)

    @classmethod
    def from_dense(cls, weight, share: float, bias=None, *, dtype: torch.dtype = torch.float32, device=None,
                   **options) -> "LDRLayer":
        """TD-LDR approximation of W (options go to approximate_ldr)."""
        return cls.from_approximation(approximate_ldr(as_matrix(weight), share, **options), bias=bias,
                                      dtype=dtype, device=device)

    @classmethod
    def from_random(cls, features: int, share: float, rng: np.random.Generator, *, bias: bool = True,
                    strict_budget: bool = False, dtype: torch.dtype = torch.float32, device=None) -> "LDRLayer":
        """Glorot-uniform operators and generators of the budget's rank (at least 0), Glorot bias."""
        rank = max(ldr_rank(features, param_budget((features, features), share), strict_budget=strict_budget), 0)
        b = _glorot(rng, (1, features)).ravel() if bias else None
        return cls.from_structure(random_ldr(features, rank, rng), b, dtype=dtype, device=device)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        self._check_input(u)
        if self.rank == 0:
            return self._add_bias(u.new_zeros(u.shape[0], self.out_features))
        return self._add_bias(ldr_matvec(self._ops("a"), self._ops("b"), self.G, self.H, u))

    def structure(self) -> LDRFactors:
        a, b = (TridiagonalCorners(*(_numpy(t) for t in self._ops(op))) for op in ("a", "b"))
        return LDRFactors(a, b, _numpy(self.G), _numpy(self.H))

    def n_weight_params(self) -> int:
        return ldr_param_count(self.in_features, self.rank)

    def extra_repr(self) -> str:
        return f"features={self.in_features}, rank={self.rank}, bias={self.bias is not None}"


# ---------------------------------------------------------------------------------------------


class HMatLayer(_StructuredLayer):
    """Hierarchical y = W̃u + b: out[rows_b] += L_b (R_b u[cols_b]) for every leaf with rank > 0."""

    def __init__(self, shape: tuple[int, int], blocks: list[Block], ranks: list[int], *, bias: bool = True,
                 dtype: torch.dtype = torch.float32, device=None):
        rows, cols = (int(v) for v in shape)
        super().__init__(cols, rows, bias, dtype, device)
        if len(blocks) != len(ranks):
            raise ValueError("one rank per block is needed")
        self.blocks = tuple(blocks)
        self.ranks = tuple(int(r) for r in ranks)
        self.lefts, self.rights = nn.ParameterList(), nn.ParameterList()
        self._active = []
        for i, (b, r) in enumerate(zip(self.blocks, self.ranks)):
            if b.row_stop > rows or b.col_stop > cols or r < 0:
                raise ValueError(f"block {b} with rank {r} does not fit a {rows} × {cols} matrix")
            if r > 0:
                self._active.append(i)
                self.lefts.append(nn.Parameter(torch.zeros(b.n_rows, r, **self._kw)))
                self.rights.append(nn.Parameter(torch.zeros(r, b.n_cols, **self._kw)))

    @classmethod
    def from_structure(cls, hmat: HMatrix, bias=None, *, dtype: torch.dtype = torch.float32,
                       device=None) -> "HMatLayer":
        layer = cls(hmat.shape, [leaf.block for leaf in hmat.leaves], list(hmat.ranks), bias=_has_bias(bias),
                    dtype=dtype, device=device)
        with torch.no_grad():
            for k, i in enumerate(layer._active):
                layer.lefts[k].copy_(torch.from_numpy(np.asarray(hmat.leaves[i].left, dtype=np.float64)))
                layer.rights[k].copy_(torch.from_numpy(np.asarray(hmat.leaves[i].right, dtype=np.float64)))
        layer._set_bias(bias)
        return layer

    @classmethod
    def from_approximation(cls, approx: Approximation, bias=None, **kw) -> "HMatLayer":
        if approx.method not in HIERARCHICAL_METHODS:
            raise ValueError(f"expected a hierarchical approximation ({HIERARCHICAL_METHODS}), got {approx.method!r}")
        return cls.from_structure(approx.structure, bias=bias, **kw)

    @classmethod
    def from_dense(cls, weight, share: float, bias=None, *, dtype: torch.dtype = torch.float32, device=None,
                   **options) -> "HMatLayer":
        """H-matrix approximation of W (options go to approximate_hmat)."""
        return cls.from_approximation(approximate_hmat(as_matrix(weight), share, **options), bias=bias,
                                      dtype=dtype, device=device)


    def forward(self, u: torch.Tensor) -> torch.Tensor:
        self._check_input(u)
        out = u.new_zeros(u.shape[0], self.out_features)
        for k, i in enumerate(self._active):
            b = self.blocks[i]
            out[:, b.rows] += (u[:, b.cols] @ self.rights[k].T) @ self.lefts[k].T
        return self._add_bias(out)

    def structure(self) -> HMatrix:
        factors = {i: (_numpy(self.lefts[k]), _numpy(self.rights[k])) for k, i in enumerate(self._active)}
        leaves = []
        for i, b in enumerate(self.blocks):
            left, right = factors.get(i, (np.zeros((b.n_rows, 0)), np.zeros((0, b.n_cols))))
            leaves.append(LowRankBlock(b, left, right))
        return HMatrix((self.out_features, self.in_features), tuple(leaves))

    def n_weight_params(self) -> int:
        return int(sum(p.numel() for p in self.lefts) + sum(p.numel() for p in self.rights))

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, leaves={len(self.blocks)}, "
                f"active={len(self._active)}, bias={self.bias is not None}")
