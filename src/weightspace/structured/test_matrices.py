"""Test-matrix families of the survey's approximation benchmark (spec §7, item 5), at any size, seeded.

Families (n × n, entries drawn from U(−1, 1) unless said otherwise):
- orthogonal: U Vᵀ from the SVD of a random matrix.
- random: i.i.d. U(−1, 1).
- low_rank: product of (n × r) and (r × n) random factors (rank r; the survey uses r = 100 for n = 300).
- linear_sv: singular values linspace(0.1, 1), singular vectors from the SVD of a random matrix.
- sss: a random matrix realised as an SSS matrix with stages of `stage_size` and state dimension d
  (every Hankel block has rank ≤ d).
- psm: product of 3 random sparse matrices of density 0.1 (values U(0, 1), as scipy.sparse.random).
- hierarchical: every leaf of the η = 0.5 H-matrix tree holds the best rank-1 approximation of a random
  block.
- ldr: Hankel, Toeplitz and Cauchy 1/(a_i + b_j) matrices in turn (matrix i gets kind i mod 3).

Original quirk: the survey's "Hankel" matrix is the transpose of a Toeplitz matrix, which is again
Toeplitz; `hankel_as_transpose=True` reproduces that, the default builds a true Hankel matrix.
The Cauchy kind has a_i, b_j ~ U(−1, 1), so a_i + b_j can come close to 0 and entries can be large, as
in the original. The original stores matrices as float32; so does `family_matrices` by default.
Each matrix is drawn from its own stream, SeedSequence(seed, spawn_key=(crc32(family), index)), so a
matrix does not depend on how many matrices of its family are drawn.
"""

from __future__ import annotations

import zlib

import numpy as np
import scipy.linalg
import scipy.sparse

from weightspace.structured.hierarchical import hmat_blocks
from weightspace.structured.sss import identify_sss, stage_sizes

LDR_KINDS = ("hankel", "toeplitz", "cauchy")


def orthogonal_matrix(n: int, rng: np.random.Generator) -> np.ndarray:
    u, _, vt = np.linalg.svd(rng.uniform(-1, 1, size=(n, n)))
    return u @ vt


def random_matrix(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(-1, 1, size=(n, n))


def low_rank_matrix(n: int, rng: np.random.Generator, rank: int = 100) -> np.ndarray:
    if not 0 <= rank <= n:
        raise ValueError(f"rank must lie in [0, {n}], got {rank}")
    return rng.uniform(-1, 1, size=(n, rank)) @ rng.uniform(-1, 1, size=(rank, n))


def linear_sv_matrix(
    n: int, rng: np.random.Generator, smallest: float = 0.1, largest: float = 1.0
) -> np.ndarray:
    u, _, vt = np.linalg.svd(rng.uniform(-1, 1, size=(n, n)))
    s = np.linspace(smallest, largest, n)[::-1]
    return (u * s) @ vt


def sss_matrix(
    n: int, rng: np.random.Generator, stage_size: int = 10, state_dim: int = 5
) -> np.ndarray:
    if stage_size < 1 or n % stage_size:
        raise ValueError(
            f"the size {n} must be a multiple of the stage size {stage_size}"
        )
    dims = stage_sizes(n, n // stage_size)
    return identify_sss(
        rng.uniform(-1, 1, size=(n, n)),
        state_dim=state_dim,
        dims_in=dims,
        dims_out=dims,
    ).to_dense()


def psm_matrix(
    n: int, rng: np.random.Generator, n_factors: int = 3, density: float = 0.1
) -> np.ndarray:
    prod = scipy.sparse.identity(n, format="csr")
    for _ in range(n_factors):
        prod = prod @ scipy.sparse.random(
            n, n, density=density, format="csr", random_state=rng
        )
    return prod.toarray()


def hierarchical_matrix(
    n: int, rng: np.random.Generator, eta: float = 0.5, min_block_size: int = 2
) -> np.ndarray:
    base = rng.uniform(-1, 1, size=(n, n))
    out = np.zeros((n, n))
    for b in hmat_blocks((n, n), eta, min_block_size):
        u, s, vt = np.linalg.svd(base[b.rows, b.cols], full_matrices=False)
        out[b.rows, b.cols] = s[0] * np.outer(u[:, 0], vt[0])
    return out


def toeplitz_matrix(n: int, rng: np.random.Generator) -> np.ndarray:
    column = rng.uniform(-1, 1, size=n)
    row = rng.uniform(-1, 1, size=n)
    row[0] = column[0]
    return scipy.linalg.toeplitz(column, row)


def hankel_matrix(
    n: int, rng: np.random.Generator, as_transpose: bool = False
) -> np.ndarray:
    """A Hankel matrix (constant anti-diagonals): a Toeplitz matrix with its rows reversed.
    as_transpose=True: the original's transposed Toeplitz matrix (Toeplitz, not Hankel)."""
    mat = toeplitz_matrix(n, rng)
    return mat.T if as_transpose else mat[::-1]


def cauchy_matrix(n: int, rng: np.random.Generator) -> np.ndarray:
    a = rng.uniform(-1, 1, size=n)
    b = rng.uniform(-1, 1, size=n)
    return 1.0 / (a[:, None] + b[None, :])


FAMILIES = (
    "orthogonal",
    "random",
    "low_rank",
    "linear_sv",
    "sss",
    "psm",
    "hierarchical",
    "ldr",
)


def family_matrix(
    family: str,
    size: int,
    index: int,
    seed: int,
    *,
    rank: int = 100,
    stage_size: int = 10,
    state_dim: int = 5,
    hankel_as_transpose: bool = False,
) -> np.ndarray:
    """Matrix `index` of a family (float64), deterministic for (family, size, index, seed, options)."""
    if family not in FAMILIES:
        raise ValueError(
            f"unknown test-matrix family {family!r}; known: {', '.join(FAMILIES)}"
        )
    if size < 1:
        raise ValueError(f"size must be ≥ 1, got {size}")
    rng = np.random.default_rng(
        np.random.SeedSequence(
            int(seed), spawn_key=(zlib.crc32(family.encode()), int(index))
        )
    )
    if family == "orthogonal":
        return orthogonal_matrix(size, rng)
    if family == "random":
        return random_matrix(size, rng)
    if family == "low_rank":
        return low_rank_matrix(size, rng, rank)
    if family == "linear_sv":
        return linear_sv_matrix(size, rng)
    if family == "sss":
        return sss_matrix(size, rng, stage_size, state_dim)
    if family == "psm":
        return psm_matrix(size, rng)
    if family == "hierarchical":
        return hierarchical_matrix(size, rng)
    kind = LDR_KINDS[index % len(LDR_KINDS)]
    if kind == "hankel":
        return hankel_matrix(size, rng, hankel_as_transpose)
    return (
        toeplitz_matrix(size, rng) if kind == "toeplitz" else cauchy_matrix(size, rng)
    )


def family_matrices(
    family: str, size: int, count: int, seed: int, *, dtype=np.float32, **options
) -> list[np.ndarray]:
    """`count` matrices of a family, stored as `dtype` (float32 as the original by default)."""
    return [
        family_matrix(family, size, i, seed, **options).astype(dtype)
        for i in range(count)
    ]
