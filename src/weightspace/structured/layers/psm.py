"""The PSM layer: y = S_1 S_2 ⋯ S_J u + b on the fixed sparsity patterns of the factors
(spec §4).

The parameters are the nonzero values of each sparse factor, applied right to left by
gather / index_add (O(nnz) per sample). Gradients are dense in the values, so any
optimiser works (the original's sparse COO parameters restricted training to SGD).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse
import torch
from torch import nn

from weightspace.structured.approximation import Approximation
from weightspace.structured.layers.base import (
    StructuredLayer,
    as_numpy,
    copy_values,
)
from weightspace.structured.psm import (
    SparseFactors,
    approximate_psm_search,
    factor_shapes,
)


class PSMLayer(StructuredLayer):
    """y = S_1 S_2 ⋯ S_J u + b with trainable values on the fixed pattern of each S_j.

    factor_shapes: the (rows, cols) of S_1 … S_J; patterns: (row indices, column
    indices) of the nonzeros of each. `from_dense` runs the PSM wrapper
    (approximate_psm_search).
    """

    methods = ("PSM",)
    describes = "a PSM approximation"
    approximator = staticmethod(approximate_psm_search)

    def __init__(self, factor_shapes, patterns, *, bias=True, **kw):
        shapes = [tuple(int(v) for v in s) for s in factor_shapes]
        for left, right in zip(shapes[:-1], shapes[1:]):
            if left[1] != right[0]:
                raise ValueError(f"factor shapes do not chain: {left} @ {right}")
        super().__init__(shapes[-1][1], shapes[0][0], **kw)
        self._init_bias(bias)
        self.factor_shapes = shapes
        device = self._kw["device"]
        self.values = nn.ParameterList()
        for j, ((rows, cols), shape) in enumerate(zip(patterns, shapes)):
            rows = torch.as_tensor(np.asarray(rows, dtype=np.int64), device=device)
            cols = torch.as_tensor(np.asarray(cols, dtype=np.int64), device=device)
            if rows.shape != cols.shape or (
                rows.numel() and (rows.max() >= shape[0] or cols.max() >= shape[1])
            ):
                raise ValueError(
                    f"pattern of factor {j} does not fit its shape {shape}"
                )
            self.register_buffer(f"rows_{j}", rows)
            self.register_buffer(f"cols_{j}", cols)
            self.values.append(nn.Parameter(torch.zeros(rows.numel(), **self._kw)))

    @classmethod
    def _build(cls, factors: SparseFactors, bias: bool, **kw) -> "PSMLayer":
        coo = [scipy.sparse.coo_matrix(f) for f in factors.factors]
        patterns = [(f.row, f.col) for f in coo]
        layer = cls([f.shape for f in coo], patterns, bias=bias, **kw)
        for param, f in zip(layer.values, coo):
            copy_values(param, f.data)
        return layer

    @classmethod
    def _from_zero(cls, approx: Approximation, bias=None, **kw) -> "PSMLayer":
        """The zero matrix: empty factors."""
        shapes = factor_shapes(approx.shape, int(approx.info.get("n_factors", 2)))
        empty = SparseFactors(tuple(scipy.sparse.csr_matrix(s) for s in shapes))
        return cls.from_structure(empty, bias=bias, **kw)

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
            values = as_numpy(self.values[j])
            pattern = (rows.cpu().numpy(), cols.cpu().numpy())
            factors.append(scipy.sparse.csr_matrix((values, pattern), shape=shape))
        return SparseFactors(tuple(factors))

    def n_weight_params(self) -> int:
        return int(sum(v.numel() for v in self.values))

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"nnz={[v.numel() for v in self.values]}, bias={self.bias is not None}"
        )
