"""The hierarchical layer (HODLR, HEDLR, H-matrix), spec §4: one (L_b, R_b) pair per
leaf with rank > 0, out[rows_b] += L_b (R_b u[cols_b])."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from weightspace.structured.hierarchical import (
    HMatrix,
    LowRankBlock,
    approximate_hmat,
)
from weightspace.structured.layers.base import (
    StructuredLayer,
    as_numpy,
    copy_values,
)

HIERARCHICAL_METHODS = ("HODLR", "HEDLR", "HMat")


class HMatLayer(StructuredLayer):
    """Hierarchical y = W̃u + b: out[rows_b] += L_b (R_b u[cols_b]) for every leaf with
    rank > 0.

    shape: (rows, cols) of W̃; blocks: the leaves (hierarchical.Block); ranks: one rank
    per leaf. `from_dense` builds an H-matrix (approximate_hmat).
    """

    methods = HIERARCHICAL_METHODS
    describes = f"a hierarchical approximation ({HIERARCHICAL_METHODS})"
    approximator = staticmethod(approximate_hmat)

    def __init__(self, shape, blocks, ranks, *, bias=True, **kw):
        rows, cols = (int(v) for v in shape)
        super().__init__(cols, rows, **kw)
        self._init_bias(bias)
        if len(blocks) != len(ranks):
            raise ValueError("one rank per block is needed")
        self.blocks = tuple(blocks)
        self.ranks = tuple(int(r) for r in ranks)
        self.lefts, self.rights = nn.ParameterList(), nn.ParameterList()
        self._active = []
        for i, (b, r) in enumerate(zip(self.blocks, self.ranks)):
            if b.row_stop > rows or b.col_stop > cols or r < 0:
                raise ValueError(
                    f"block {b} with rank {r} does not fit a {rows} × {cols} matrix"
                )
            if r > 0:
                self._active.append(i)
                self.lefts.append(nn.Parameter(torch.zeros(b.n_rows, r, **self._kw)))
                self.rights.append(nn.Parameter(torch.zeros(r, b.n_cols, **self._kw)))

    @classmethod
    def _build(cls, hmat: HMatrix, bias: bool, **kw) -> "HMatLayer":
        blocks = [leaf.block for leaf in hmat.leaves]
        layer = cls(hmat.shape, blocks, list(hmat.ranks), bias=bias, **kw)
        for k, i in enumerate(layer._active):
            copy_values(layer.lefts[k], hmat.leaves[i].left)
            copy_values(layer.rights[k], hmat.leaves[i].right)
        return layer

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        self._check_input(u)
        out = u.new_zeros(u.shape[0], self.out_features)
        for k, i in enumerate(self._active):
            b = self.blocks[i]
            out[:, b.rows] += (u[:, b.cols] @ self.rights[k].T) @ self.lefts[k].T
        return self._add_bias(out)

    def structure(self) -> HMatrix:
        factors = {
            i: (as_numpy(self.lefts[k]), as_numpy(self.rights[k]))
            for k, i in enumerate(self._active)
        }
        leaves = []
        for i, b in enumerate(self.blocks):
            empty = (np.zeros((b.n_rows, 0)), np.zeros((0, b.n_cols)))
            left, right = factors.get(i, empty)
            leaves.append(LowRankBlock(b, left, right))
        return HMatrix((self.out_features, self.in_features), tuple(leaves))

    def n_weight_params(self) -> int:
        return int(
            sum(p.numel() for p in self.lefts) + sum(p.numel() for p in self.rights)
        )

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"leaves={len(self.blocks)}, active={len(self._active)}, "
            f"bias={self.bias is not None}"
        )
