"""Hierarchical matrices: HODLR, HEDLR and H-matrices with a greedy rank allocation (spec §3.5).

A block cluster tree partitions the index set rows × cols into leaf blocks. Splitting halves the row and
column ranges of a leaf (4 children: top-left, bottom-left, top-right, bottom-right, in that order) and
is allowed only for leaves with more than 2·min_block_size rows and columns. The three structures differ
in which leaves are split:

- HODLR: leaves crossing the line from (0, 0) to (rows − 1, cols − 1) (the "diagonal" of a rectangle);
  depth d means d − 1 rounds of splitting.
- HEDLR: every leaf (a uniform quad-tree), d − 1 rounds.
- HMat: leaves that are not admissible, until none changes; (τ, σ) is admissible when
  max(diam τ, diam σ) ≤ 2η·dist(τ, σ), with row and column indices compared in one index space.

Every leaf stores a low-rank pair (L_b, R_b) from its SVD, L_b = U_r Σ_r^{1/2}, R_b = Σ_r^{1/2} V_rᵀ.
Ranks are allocated greedily: repeatedly add one singular triplet to the leaf with the largest error
reduction per parameter, σ²_{r+1}/(rows_b + cols_b), among leaves with r_b < min(rows_b, cols_b) whose
next triplet fits the remaining budget; stop when none fits. Parameters: Σ_b r_b (rows_b + cols_b).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from weightspace.structured.approximation import (
    Approximation,
    as_matrix,
    resolve_budget,
)

# ---------------------------------------------------------------------------------------------
# block cluster trees (as lists of leaves in depth-first order)


@dataclass(frozen=True)
class Block:
    """Index block rows [row_start, row_stop) × cols [col_start, col_stop)."""

    row_start: int
    row_stop: int
    col_start: int
    col_stop: int

    @property
    def n_rows(self) -> int:
        return self.row_stop - self.row_start

    @property
    def n_cols(self) -> int:
        return self.col_stop - self.col_start

    @property
    def rows(self) -> slice:
        return slice(self.row_start, self.row_stop)

    @property
    def cols(self) -> slice:
        return slice(self.col_start, self.col_stop)

    def can_split(self, min_block_size: int) -> bool:
        return self.n_rows > 2 * min_block_size and self.n_cols > 2 * min_block_size

    def split(self) -> tuple["Block", "Block", "Block", "Block"]:
        rm = (self.row_start + self.row_stop) // 2
        cm = (self.col_start + self.col_stop) // 2
        return (
            Block(self.row_start, rm, self.col_start, cm),
            Block(rm, self.row_stop, self.col_start, cm),
            Block(self.row_start, rm, cm, self.col_stop),
            Block(rm, self.row_stop, cm, self.col_stop),
        )

    def on_diagonal(self, shape: tuple[int, int]) -> bool:
        """Whether the block meets the line from (0, 0) to (rows − 1, cols − 1): its lower-left corner is on
        or below the line and its upper-right corner on or above it."""
        rows, cols = shape
        if rows <= 1 or cols <= 1:  # degenerate line: every block touches it
            return True
        slope = (rows - 1) / (cols - 1)
        return (
            self.row_stop - 1 >= self.col_start * slope
            and self.row_start <= (self.col_stop - 1) * slope
        )

    def distance(self) -> int:
        """Gap between the row and the column index range (0 if they touch or overlap)."""
        return max(0, self.row_start - self.col_stop, self.col_start - self.row_stop)

    def admissible(self, eta: float) -> bool:
        return max(self.n_rows, self.n_cols) <= 2 * eta * self.distance()


def _split_round(leaves: list[Block], should_split) -> tuple[list[Block], bool]:
    out, changed = [], False
    for leaf in leaves:
        if should_split(leaf):
            out.extend(leaf.split())
            changed = True
        else:
            out.append(leaf)
    return out, changed


def _check_min_block_size(min_block_size: int) -> None:
    if min_block_size < 2:
        raise ValueError(f"min_block_size must be ≥ 2, got {min_block_size}")


def hodlr_blocks(
    shape: tuple[int, int], depth: int, min_block_size: int = 2
) -> list[Block]:
    """HODLR leaves of a tree of the given depth (1: the whole matrix)."""
    _check_min_block_size(min_block_size)
    leaves = [Block(0, shape[0], 0, shape[1])]
    for _ in range(depth - 1):
        leaves, _ = _split_round(
            leaves, lambda b: b.can_split(min_block_size) and b.on_diagonal(shape)
        )
    return leaves


def hedlr_blocks(
    shape: tuple[int, int], depth: int, min_block_size: int = 2
) -> list[Block]:
    """HEDLR leaves: a uniform quad-tree of the given depth (as far as min_block_size allows)."""
    _check_min_block_size(min_block_size)
    leaves = [Block(0, shape[0], 0, shape[1])]
    for _ in range(depth - 1):
        leaves, _ = _split_round(leaves, lambda b: b.can_split(min_block_size))
    return leaves


def hmat_blocks(
    shape: tuple[int, int], eta: float = 0.5, min_block_size: int = 2
) -> list[Block]:
    """H-matrix leaves: split non-admissible leaves until nothing changes."""
    if not 0 < eta < 1:
        raise ValueError(f"eta must lie in (0, 1), got {eta}")
    _check_min_block_size(min_block_size)
    leaves, changed = [Block(0, shape[0], 0, shape[1])], True
    while changed:
        leaves, changed = _split_round(
            leaves, lambda b: b.can_split(min_block_size) and not b.admissible(eta)
        )
    return leaves


# ---------------------------------------------------------------------------------------------
# the hierarchical matrix and the greedy rank allocation


@dataclass(frozen=True, eq=False)
class LowRankBlock:
    """A leaf block and its factors: W̃[block] = left @ right, left (rows_b × r), right (r × cols_b)."""

    block: Block
    left: np.ndarray
    right: np.ndarray

    def __post_init__(self) -> None:
        if self.left.shape != (self.block.n_rows, self.rank) or self.right.shape != (
            self.rank,
            self.block.n_cols,
        ):
            raise ValueError(
                f"factors {self.left.shape} @ {self.right.shape} do not fit block {self.block}"
            )

    @property
    def rank(self) -> int:
        return int(self.left.shape[1])

    @property
    def n_params(self) -> int:
        return int(self.left.size + self.right.size)


@dataclass(frozen=True, eq=False)
class HMatrix:
    """A matrix given by low-rank factors on the leaves of a block cluster tree (ranks may be 0)."""

    shape: tuple[int, int]
    leaves: tuple[LowRankBlock, ...]

    @property
    def n_params(self) -> int:
        return int(sum(leaf.n_params for leaf in self.leaves))

    @property
    def ranks(self) -> tuple[int, ...]:
        return tuple(leaf.rank for leaf in self.leaves)

    def to_dense(self) -> np.ndarray:
        out = np.zeros(self.shape)
        for leaf in self.leaves:
            out[leaf.block.rows, leaf.block.cols] = leaf.left @ leaf.right
        return out


def allocate_ranks(weight, blocks: list[Block], budget: int) -> HMatrix:
    """Greedy allocation of singular triplets to the leaves within `budget` parameters.

    The gain of the next triplet of a leaf is σ²_{r+1}/(rows_b + cols_b) (its squared Frobenius error
    reduction per parameter); ties go to the earlier leaf. Costs never change and the remaining budget
    only shrinks, so a leaf whose next triplet does not fit never fits again and is dropped.
    """
    mat = as_matrix(weight)
    svds = [np.linalg.svd(mat[b.rows, b.cols], full_matrices=False) for b in blocks]
    ranks = [0] * len(blocks)
    left = int(budget)
    heap = [
        (-(float(s[0]) ** 2) / (b.n_rows + b.n_cols), i)
        for i, (b, (_, s, _)) in enumerate(zip(blocks, svds))
        if min(b.n_rows, b.n_cols) > 0
    ]
    heapq.heapify(heap)
    while heap:
        _, i = heapq.heappop(heap)
        cost = blocks[i].n_rows + blocks[i].n_cols
        if cost > left:
            continue
        ranks[i] += 1
        left -= cost
        s = svds[i][1]
        if ranks[i] < min(blocks[i].n_rows, blocks[i].n_cols):
            heapq.heappush(heap, (-(float(s[ranks[i]]) ** 2) / cost, i))
    leaves = []
    for b, (u, s, vt), r in zip(blocks, svds, ranks):
        root = np.sqrt(s[:r])
        leaves.append(LowRankBlock(b, u[:, :r] * root, root[:, None] * vt[:r]))
    return HMatrix(tuple(int(v) for v in mat.shape), tuple(leaves))


def _best_of(
    mat: np.ndarray, candidates, budget: int, method: str, info: dict
) -> Approximation:
    """Allocate ranks on every (label, blocks) candidate; keep the lowest ‖W − W̃‖_F (first on ties)."""
    best, best_err, tried = None, np.inf, []
    for label, blocks in candidates:
        hmat = allocate_ranks(mat, blocks, budget)
        dense = hmat.to_dense()
        err = float(np.linalg.norm(mat - dense))
        tried.append((label, len(blocks), err))
        if best is None or err < best_err:
            best, best_err = (label, hmat, dense), err
    label, hmat, dense = best
    return Approximation(
        dense,
        hmat.n_params,
        hmat,
        method,
        {**info, "budget": budget, "choice": label, "search": tuple(tried)},
    )


TREES = {"HODLR": hodlr_blocks, "HEDLR": hedlr_blocks}


def approximate_by_depth(
    method: str,
    weight,
    share: float | None = None,
    *,
    depths=(1, 2, 3, 4),
    min_block_size: int = 2,
    budget: int | None = None,
) -> Approximation:
    """HODLR or HEDLR approximation (`method`, a key of TREES): the best tree depth of
    `depths` (the original tries 1…4)."""
    mat = as_matrix(weight)
    limit = resolve_budget(mat.shape, share, budget)
    tree = TREES[method]
    cands = ((("depth", d), tree(mat.shape, d, min_block_size)) for d in depths)
    info = {"share": share, "min_block_size": min_block_size}
    return _best_of(mat, cands, limit, method, info)


def approximate_hodlr(weight, share: float | None = None, **options) -> Approximation:
    """HODLR approximation: the best depth of the tree (options of approximate_by_depth)."""
    return approximate_by_depth("HODLR", weight, share, **options)


def approximate_hedlr(weight, share: float | None = None, **options) -> Approximation:
    """HEDLR approximation: the best depth of a uniform quad-tree (options of
    approximate_by_depth)."""
    return approximate_by_depth("HEDLR", weight, share, **options)


def approximate_hmat(
    weight,
    share: float | None = None,
    *,
    eta: float = 0.5,
    min_block_size: int = 2,
    budget: int | None = None,
) -> Approximation:
    """H-matrix approximation on the η-admissibility tree."""
    mat = as_matrix(weight)
    limit = resolve_budget(mat.shape, share, budget)
    cands = [
        (
            ("min_block_size", min_block_size),
            hmat_blocks(mat.shape, eta, min_block_size),
        )
    ]
    return _best_of(mat, cands, limit, "HMat", {"share": share, "eta": eta})


def approximate_hmat_search(
    weight,
    share: float | None = None,
    *,
    eta: float = 0.5,
    min_block_sizes=(2, 4, 8, 16, 32, 64),
    hedlr_depths=(1, 2, 3, 4, 5),
    budget: int | None = None,
) -> Approximation:
    """The HMat wrapper: HMat for every min_block_size, then HEDLR with depths ≤ 5; lowest error kept.

    info["choice"] is ("min_block_size", b) for an H-matrix or ("hedlr_depth", d) for a HEDLR tree.
    """
    mat = as_matrix(weight)
    limit = resolve_budget(mat.shape, share, budget)
    cands = [
        (("min_block_size", b), hmat_blocks(mat.shape, eta, b)) for b in min_block_sizes
    ]
    cands += [(("hedlr_depth", d), hedlr_blocks(mat.shape, d)) for d in hedlr_depths]
    return _best_of(mat, cands, limit, "HMat", {"share": share, "eta": eta})
