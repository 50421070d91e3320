"""Sequentially semiseparable (SSS) matrices: realisation from Hankel-block SVDs (spec §3.1).

A matrix W (out × in) is split into K stages: input sizes m_k and output sizes p_k are near-equal
splits (the first n mod K stages get one more). It is written as a mixed time-varying system,

    causal (forward):      x_{k+1} = A_k x_k + B_k u_k,      y_k  = C_k x_k + D_k u_k
    anticausal (backward): z_k     = E_k z_{k+1} + F_k u_k,  y_k += G_k z_{k+1}

so block (i, j) of W is D_i (i = j), C_i A_{i-1}⋯A_{j+1} B_j (i > j) or G_i E_{i+1}⋯E_{j-1} F_j (i < j).
States live on the boundaries b = 0..K between stages: x_b has r_b, z_b has s_b components, with
r_0 = r_K = s_0 = s_K = 0 (empty states at both ends). Shapes: A_k (r_{k+1} × r_k), B_k (r_{k+1} × m_k),
C_k (p_k × r_k), D_k (p_k × m_k), E_k (s_k × s_{k+1}), F_k (s_k × m_k), G_k (p_k × s_{k+1}).

Identification (Dewilde–van der Veen, balanced form, as tvsclib's SystemIdentificationSVD): for every
inner boundary b the causal Hankel block H_b = W[outputs of stages ≥ b, inputs of stages < b] and the
anticausal block H'_b = W[outputs < b, inputs ≥ b] are factorised by an SVD truncated to
min(d, numerical rank); O = U_r Σ_r^{1/2}, R = Σ_r^{1/2} V_rᵀ. The stage matrices follow from shift
invariance. Exact when every Hankel block has rank ≤ d; a heuristic (not Frobenius-optimal) otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg

from weightspace.structured.approximation import Approximation, as_matrix, param_budget

DEFAULT_EPS = (
    1e-15  # tvsclib's default: relative singular-value mass that may be dropped
)


# ---------------------------------------------------------------------------------------------
# stage partition and parameter counts


def stage_sizes(n: int, n_stages: int) -> np.ndarray:
    """Near-equal split of n into K parts: ⌊n/K⌋ each, the first n mod K parts one larger."""
    if n_stages < 1:
        raise ValueError(f"number of stages must be >= 1, got {n_stages}")
    if n < 0:
        raise ValueError(f"size must be >= 0, got {n}")
    sizes = np.full(n_stages, n // n_stages, dtype=np.int64)
    sizes[: n - int(sizes.sum())] += 1
    return sizes


def _boundary_limits(
    dims_in: np.ndarray, dims_out: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Largest possible causal / anticausal state dimension at boundaries b = 0..K (Hankel block sizes)."""
    cin = np.concatenate([[0], np.cumsum(dims_in)])
    cout = np.concatenate([[0], np.cumsum(dims_out)])
    n_in, n_out = cin[-1], cout[-1]
    causal = np.minimum(n_out - cout, cin)  # rows: outputs >= b, cols: inputs < b
    anticausal = np.minimum(cout, n_in - cin)  # rows: outputs < b, cols: inputs >= b
    causal[0] = causal[-1] = anticausal[0] = anticausal[-1] = 0
    return causal, anticausal


def _counts(
    shape: tuple[int, int], n_stages: int, state_dims: np.ndarray, exact: bool
) -> np.ndarray:
    """Parameter counts for an array of state dimension caps d (vectorised over d)."""
    rows, cols = shape
    p = stage_sizes(rows, n_stages)
    m = stage_sizes(cols, n_stages)
    d = np.asarray(state_dims, dtype=np.int64)
    diag = int(np.dot(p, m))
    if not exact:
        # The original (conservative) count: B, C, F, G and A/E at full d even where states are empty.
        n_inner = max(n_stages - 2, 0)
        return diag + 2 * d * int(m.sum()) + 2 * d * int(p.sum()) + n_inner * 2 * d * d
    lim_c, lim_a = _boundary_limits(m, p)
    r = np.minimum(d[:, None], lim_c[None, :])  # causal state dims r_0..r_K
    s = np.minimum(d[:, None], lim_a[None, :])  # anticausal state dims s_0..s_K
    causal = r[:, 1:] * m + r[:, :-1] * p + r[:, 1:] * r[:, :-1]  # B_k, C_k, A_k
    anticausal = s[:, :-1] * m + s[:, 1:] * p + s[:, :-1] * s[:, 1:]  # F_k, G_k, E_k
    return diag + causal.sum(axis=1) + anticausal.sum(axis=1)


def sss_param_count(
    shape: tuple[int, int], n_stages: int, state_dim: int, *, exact: bool = False
) -> int:
    """Parameters of a K-stage SSS matrix with state dimension cap d.

    exact=False: the original count Σ_k [m_k p_k + 2d m_k + 2d p_k] + Σ_{k=2}^{K-1} 2d² (conservative).
    exact=True:  numbers actually stored when every state has its largest possible dimension
                 min(d, Hankel block rows, Hankel block cols); empty boundary states cost nothing.
    """
    if state_dim < 0:
        raise ValueError(f"state dimension must be >= 0, got {state_dim}")
    return int(_counts(tuple(shape), n_stages, np.array([state_dim]), exact)[0])


def max_state_dim(
    shape: tuple[int, int],
    n_stages: int,
    budget: int,
    *,
    esann_off_by_one: bool = False,
    exact_count: bool = False,
) -> int:
    """State dimension chosen for a parameter budget B.

    Default: the largest d with count(d) < B (strict, as the original at HEAD); 0 if no d >= 1 fits.
    esann_off_by_one=True: the ESANN-era loop, which returns the first d >= 0 with count(d) >= B,
    i.e. one state more than the budget allows (spec §11.3).
    exact_count=True: use the exact count; d is then capped where more states change nothing.
    """
    rows, cols = shape
    p = stage_sizes(rows, n_stages)
    m = stage_sizes(cols, n_stages)
    lim_c, lim_a = _boundary_limits(m, p)
    d_sat = int(
        max(lim_c.max(), lim_a.max())
    )  # beyond this every state is already full
    # count(d) >= 2d(rows + cols) for the original count, so d_hi bounds the search for both rules.
    d_hi = max(budget, 0) // max(2 * (rows + cols), 1) + 2
    if exact_count:
        d_hi = min(d_hi, d_sat + 1)
    d = np.arange(0, d_hi + 1)
    counts = _counts((rows, cols), n_stages, d, exact_count)
    below = counts < budget
    if esann_off_by_one:
        over = np.flatnonzero(~below)
        # With the exact count, count saturates; the loop would then never stop: cap at d_sat.
        return int(over[0]) if over.size else d_sat
    fits = np.flatnonzero(below)
    best = int(fits[-1]) if fits.size else 0
    return min(best, d_sat) if exact_count else best


# ---------------------------------------------------------------------------------------------
# the realisation


@dataclass(frozen=True, eq=False)
class SSSRealisation:
    """Per-stage matrices of a mixed (causal + anticausal) time-varying system; see the module doc.

    All lists have K entries (float64 arrays, possibly with zero rows/columns at the boundaries).
    causal_hankel_sv / anticausal_hankel_sv: singular values of the Hankel blocks at b = 1..K-1 when the
    realisation came from an identification (a measure of compressibility), else None.
    """

    dims_in: tuple[int, ...]
    dims_out: tuple[int, ...]
    A: tuple[np.ndarray, ...]
    B: tuple[np.ndarray, ...]
    C: tuple[np.ndarray, ...]
    D: tuple[np.ndarray, ...]
    E: tuple[np.ndarray, ...]
    F: tuple[np.ndarray, ...]
    G: tuple[np.ndarray, ...]
    causal_hankel_sv: tuple[np.ndarray, ...] | None = None
    anticausal_hankel_sv: tuple[np.ndarray, ...] | None = None

    def __post_init__(self) -> None:
        K = len(self.dims_in)
        if K < 1 or len(self.dims_out) != K:
            raise ValueError("dims_in and dims_out must have the same length K >= 1")
        for name in "ABCDEFG":
            if len(getattr(self, name)) != K:
                raise ValueError(f"{name} must have {K} stage matrices")
        r, s = self.causal_dims, self.anticausal_dims
        if r[0] != 0 or r[-1] != 0 or s[0] != 0 or s[-1] != 0:
            raise ValueError(
                "boundary states (before the first and after the last stage) must be empty"
            )
        for k in range(K):
            m, p = self.dims_in[k], self.dims_out[k]
            expected = {
                "A": (r[k + 1], r[k]),
                "B": (r[k + 1], m),
                "C": (p, r[k]),
                "D": (p, m),
                "E": (s[k], s[k + 1]),
                "F": (s[k], m),
                "G": (p, s[k + 1]),
            }
            for name, shp in expected.items():
                got = getattr(self, name)[k].shape
                if got != shp:
                    raise ValueError(f"{name}_{k} has shape {got}, expected {shp}")

    # -- sizes -------------------------------------------------------------------------------
    @property
    def n_stages(self) -> int:
        return len(self.dims_in)

    @property
    def shape(self) -> tuple[int, int]:
        return (int(sum(self.dims_out)), int(sum(self.dims_in)))

    @property
    def causal_dims(self) -> tuple[int, ...]:
        """r_0..r_K: causal state dimension on each boundary (read off C_k and B_{K-1})."""
        return tuple(int(c.shape[1]) for c in self.C) + (int(self.B[-1].shape[0]),)

    @property
    def anticausal_dims(self) -> tuple[int, ...]:
        """s_0..s_K: anticausal state dimension on each boundary."""
        return (int(self.F[0].shape[0]),) + tuple(int(g.shape[1]) for g in self.G)

    @property
    def max_state_dim(self) -> int:
        return int(max(max(self.causal_dims), max(self.anticausal_dims)))

    @property
    def n_stored(self) -> int:
        """Exact count of stored numbers (the anticausal D, identically zero, is not stored)."""
        return int(sum(a.size for name in "ABCDEFG" for a in getattr(self, name)))

    def n_params_original(self, state_dim: int | None = None) -> int:
        """The original conservative count at state dimension d (default: the largest state)."""
        d = self.max_state_dim if state_dim is None else state_dim
        return sss_param_count(self.shape, self.n_stages, d, exact=False)

    # -- evaluation ----------------------------------------------------------------------------
    def to_dense(self) -> np.ndarray:
        """The matrix, built with O(K) products: column block j of the causal part is O_{j+1} B_j,
        where O_b = [C_b; O_{b+1} A_b] maps x_b to all outputs of stages >= b (anticausal mirrored)."""
        K = self.n_stages
        cin = np.concatenate([[0], np.cumsum(self.dims_in)])
        cout = np.concatenate([[0], np.cumsum(self.dims_out)])
        out = np.zeros(self.shape)
        for k in range(K):
            out[cout[k] : cout[k + 1], cin[k] : cin[k + 1]] = self.D[k]
        obs = None  # O_b, rows = outputs of stages b..K-1
        for b in range(K - 1, 0, -1):
            obs = self.C[b] if obs is None else np.vstack([self.C[b], obs @ self.A[b]])
            out[cout[b] :, cin[b - 1] : cin[b]] = obs @ self.B[b - 1]
        obs = None  # Q_b, rows = outputs of stages 0..b-1
        for b in range(1, K):
            obs = (
                self.G[0]
                if obs is None
                else np.vstack([obs @ self.E[b - 1], self.G[b - 1]])
            )
            out[: cout[b], cin[b] : cin[b + 1]] = obs @ self.F[b]
        return out

    def apply(self, u: np.ndarray) -> np.ndarray:
        """y = W u by the plain stage recursions (reference); u has shape (in,) or (in, N)."""
        u = np.asarray(u, dtype=np.float64)
        vec = u.ndim == 1
        u2 = u[:, None] if vec else u
        cin = np.concatenate([[0], np.cumsum(self.dims_in)])
        K, N = self.n_stages, u2.shape[1]
        uk = [u2[cin[k] : cin[k + 1]] for k in range(K)]
        y = [self.D[k] @ uk[k] for k in range(K)]
        x = np.zeros((0, N))
        for k in range(K):  # causal, forward
            y[k] = y[k] + self.C[k] @ x
            x = self.A[k] @ x + self.B[k] @ uk[k]
        z = np.zeros((0, N))
        for k in range(K - 1, -1, -1):  # anticausal, backward
            y[k] = y[k] + self.G[k] @ z
            z = self.E[k] @ z + self.F[k] @ uk[k]
        out = np.vstack(y) if K else np.zeros((0, N))
        return out[:, 0] if vec else out


# ---------------------------------------------------------------------------------------------
# identification


def _svd(mat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    try:
        return scipy.linalg.svd(
            mat, full_matrices=False, lapack_driver="gesdd", check_finite=False
        )
    except (
        np.linalg.LinAlgError
    ):  # gesdd occasionally fails to converge; gesvd is slower but robust
        return scipy.linalg.svd(
            mat, full_matrices=False, lapack_driver="gesvd", check_finite=False
        )


def numerical_rank(
    sv: np.ndarray, eps: float = DEFAULT_EPS, relative: bool = True
) -> int:
    """tvsclib's rule, decision for decision: relative -> the smallest r whose leading
    singular values hold at least (1 - eps) of the total, both sums taken left to right
    as tvsclib's ``sum(S[0:r]) / sum(S)`` does; absolute -> the number of singular values
    > eps. A zero block has rank 0.

    The sequential sums matter: singular values below the last bit of the running sum
    (the numerically zero tail of a low-rank block) leave it unchanged, so r stops at the
    numerical rank. A pairwise-summed total (``sv.sum()``) counts that tail and can keep
    every singular value of a rank-10 block."""
    if sv.size == 0:
        return 0
    if not relative:
        return int(np.count_nonzero(sv > eps))
    partial = np.concatenate(([0.0], np.cumsum(sv)))  # partial[r] = sum(S[0:r])
    total = partial[-1]
    if total <= 0.0:
        return 0
    enough = partial / total >= 1.0 - eps
    return int(np.argmax(enough)) if enough.any() else int(sv.size)


def _factorise(block: np.ndarray, cap: int | None, eps: float, relative: bool):
    """Balanced rank-r factors O = U_r Σ^{1/2}, R = Σ^{1/2} V_rᵀ, plus 1/√σ for pinv(O) and all σ."""
    u, sv, vt = _svd(block)
    r = numerical_rank(sv, eps, relative)
    if cap is not None:
        r = min(r, cap)
    root = np.sqrt(sv[:r])
    inv_root = np.divide(1.0, root, out=np.zeros_like(root), where=root > 0)
    return u[:, :r] * root, root[:, None] * vt[:r], (u[:, :r], inv_root), sv


def _pinv_apply(pinv_data, rhs: np.ndarray) -> np.ndarray:
    # O = U_r diag(√σ) has orthonormal columns up to scaling, so pinv(O) = diag(1/√σ) U_rᵀ exactly.
    u, inv_root = pinv_data
    return inv_root[:, None] * (u.T @ rhs)


def _factorise_step(kept, new, new_first: bool, cap, eps, relative):
    """One boundary of a sweep over the Hankel blocks, by compression: the block is
    [kept | new] ([new | kept] when ``new_first``), where ``kept`` = U S of the previous
    block's SVD restricted to this block's rows carries all the columns the two blocks
    share. Since the previous right singular vectors are orthonormal, this small matrix
    has the block's singular values and left singular vectors, and its right singular
    vectors on ``new`` are the block's there. Returns the balanced left factor O, the
    columns of R = √σ V_rᵀ that belong to ``new``, pinv data of O, all σ, and U S at
    the numerical rank (the next step's ``kept``)."""
    t = np.hstack((new, kept) if new_first else (kept, new))
    if t.size == 0:
        u, sv, vt = np.zeros((t.shape[0], 0)), np.zeros(0), np.zeros((0, t.shape[1]))
    else:
        u, sv, vt = _svd(t)
    rank = numerical_rank(sv, eps, relative)
    r = rank if cap is None else min(rank, cap)
    root = np.sqrt(sv[:r])
    inv_root = np.divide(1.0, root, out=np.zeros_like(root), where=root > 0)
    m = new.shape[1]
    cols = slice(0, m) if new_first else slice(t.shape[1] - m, t.shape[1])
    return (
        u[:, :r] * root,
        root[:, None] * vt[:r, cols],
        (u[:, :r], inv_root),
        sv,
        u[:, :rank] * sv[:rank],
    )


def identify_sss(
    weight,
    n_stages: int | None = None,
    state_dim: int | None = None,
    *,
    dims_in=None,
    dims_out=None,
    eps: float = DEFAULT_EPS,
    relative: bool = True,
    hankel: str = "compressed",
) -> SSSRealisation:
    """Realise W as a K-stage SSS matrix with state dimensions min(d, numerical Hankel rank).

    Stages: near-equal splits for n_stages, or explicit dims_in/dims_out. state_dim=None: no cap.
    The diagonal blocks D_k are copied from W exactly.

    ``hankel``: "full" takes one SVD of every Hankel block (as tvsclib does);
    "compressed" (default) sweeps the boundaries and takes the SVD of each block from
    the previous block's factors at its numerical rank plus the new stage's columns
    (``_factorise_step``): the same singular values and factors up to what the rank
    rule drops (at most eps of the singular-value mass) and round-off, at a cost that
    grows with the numerical rank instead of the block size.
    """
    if hankel not in ("compressed", "full"):
        raise ValueError(f'hankel must be "compressed" or "full", got {hankel!r}')
    mat = as_matrix(weight)
    n_out, n_in = mat.shape
    if dims_in is None or dims_out is None:
        if n_stages is None:
            raise ValueError("give n_stages or both dims_in and dims_out")
        dims_in, dims_out = stage_sizes(n_in, n_stages), stage_sizes(n_out, n_stages)
    dims_in = np.asarray(dims_in, dtype=np.int64)
    dims_out = np.asarray(dims_out, dtype=np.int64)
    if (
        dims_in.sum() != n_in
        or dims_out.sum() != n_out
        or len(dims_in) != len(dims_out)
        or len(dims_in) < 1
    ):
        raise ValueError(
            f"stage sizes {dims_in.tolist()} / {dims_out.tolist()} do not partition {mat.shape}"
        )
    if state_dim is not None and state_dim < 0:
        raise ValueError(f"state dimension must be >= 0, got {state_dim}")
    K = len(dims_in)
    cin = np.concatenate([[0], np.cumsum(dims_in)])
    cout = np.concatenate([[0], np.cumsum(dims_out)])

    # Causal: H_b = O_b R_b for b = 1..K-1; O_b rows = outputs of stages b.., R_b cols = inputs of stages ..b-1.
    obs, con, pinv, csv = [None] * (K + 1), [None] * (K + 1), [None] * (K + 1), []
    kept = np.zeros((n_out, 0))
    for b in range(1, K):
        if hankel == "full":
            obs[b], con[b], pinv[b], sv = _factorise(
                mat[cout[b] :, : cin[b]], state_dim, eps, relative
            )
            con[b] = con[b][:, cin[b - 1] : cin[b]]  # the columns B reads
        else:  # H_b = [H_{b-1} below stage b-1's rows | input stage b-1]
            obs[b], con[b], pinv[b], sv, kept = _factorise_step(
                kept[dims_out[b - 1] :],
                mat[cout[b] :, cin[b - 1] : cin[b]],
                False,
                state_dim,
                eps,
                relative,
            )
        csv.append(sv)
    r = [0] + [obs[b].shape[1] for b in range(1, K)] + [0]
    A, B, C = [], [], []
    for k in range(K):
        m, p = dims_in[k], dims_out[k]
        C.append(obs[k][:p] if 0 < k else np.zeros((p, 0)))
        # R_{k+1}'s last column block belongs to input stage k (the one next to the boundary).
        B.append(con[k + 1] if k < K - 1 else np.zeros((0, m)))
        if 0 < k < K - 1:
            # Shift invariance: O_k without its first block row equals O_{k+1} A_k.
            A.append(_pinv_apply(pinv[k + 1], obs[k][p:]))
        else:
            A.append(np.zeros((r[k + 1], r[k])))

    # Anticausal: H'_b = O'_b R'_b; O'_b rows = outputs of stages ..b-1, R'_b cols = inputs of stages b...
    aobs, acon, apinv, asv = [None] * (K + 1), [None] * (K + 1), [None] * (K + 1), []
    kept = np.zeros((n_out, 0))
    for b in range(K - 1, 0, -1):  # from the last boundary, so that rows drop off
        if hankel == "full":
            aobs[b], acon[b], apinv[b], sv = _factorise(
                mat[: cout[b], cin[b] :], state_dim, eps, relative
            )
            acon[b] = acon[b][:, : dims_in[b]]  # the columns F reads
        else:  # H'_b = [input stage b | H'_{b+1} above stage b's rows]
            aobs[b], acon[b], apinv[b], sv, kept = _factorise_step(
                kept[: cout[b]],
                mat[: cout[b], cin[b] : cin[b + 1]],
                True,
                state_dim,
                eps,
                relative,
            )
        asv.append(sv)
    asv.reverse()
    s = [0] + [aobs[b].shape[1] for b in range(1, K)] + [0]
    E, F, G = [], [], []
    for k in range(K):
        m, p = dims_in[k], dims_out[k]
        G.append(aobs[k + 1][cout[k] : cout[k + 1]] if k < K - 1 else np.zeros((p, 0)))
        F.append(acon[k] if 0 < k else np.zeros((0, m)))
        if 0 < k < K - 1:
            # O'_{k+1} without its last block row (stage k) equals O'_k E_k.
            E.append(_pinv_apply(apinv[k], aobs[k + 1][: cout[k]]))
        else:
            E.append(np.zeros((s[k], s[k + 1])))

    D = [mat[cout[k] : cout[k + 1], cin[k] : cin[k + 1]].copy() for k in range(K)]
    return SSSRealisation(
        dims_in=tuple(int(v) for v in dims_in),
        dims_out=tuple(int(v) for v in dims_out),
        A=tuple(A),
        B=tuple(B),
        C=tuple(C),
        D=tuple(D),
        E=tuple(E),
        F=tuple(F),
        G=tuple(G),
        causal_hankel_sv=tuple(csv),
        anticausal_hankel_sv=tuple(asv),
    )


# ---------------------------------------------------------------------------------------------
# approximators


def approximate_sss(
    weight,
    share: float,
    n_stages: int,
    *,
    esann_off_by_one: bool = False,
    exact_count: bool = False,
    eps: float = DEFAULT_EPS,
) -> Approximation:
    """SSS approximation with the largest state dimension d that fits ⌊share·size⌋ parameters.

    If no d >= 1 fits, the result is the zero matrix with 0 parameters (as the original at HEAD).
    With esann_off_by_one=True a chosen d = 0 gives the block-diagonal D-only matrix, as the ESANN-era
    code did. n_params is the count the budget uses (original formula unless exact_count=True);
    info holds both counts and the exact number of stored values.
    """
    mat = as_matrix(weight)
    budget = param_budget(mat.shape, share)
    d = max_state_dim(
        mat.shape,
        n_stages,
        budget,
        esann_off_by_one=esann_off_by_one,
        exact_count=exact_count,
    )
    info = {
        "n_stages": int(n_stages),
        "state_dim": int(d),
        "budget": budget,
        "share": float(share),
        "exact_count": bool(exact_count),
        "esann_off_by_one": bool(esann_off_by_one),
    }
    if d <= 0 and not esann_off_by_one:
        info.update(n_params_original=0, n_params_exact=0, n_stored=0)
        return Approximation(np.zeros_like(mat), 0, None, "SSS", info)
    real = identify_sss(mat, n_stages, d, eps=eps)
    original = sss_param_count(mat.shape, n_stages, d, exact=False)
    exact = sss_param_count(mat.shape, n_stages, d, exact=True)
    info.update(
        n_params_original=original, n_params_exact=exact, n_stored=real.n_stored
    )
    return Approximation(
        real.to_dense(), exact if exact_count else original, real, "SSS", info
    )


def stage_grid(shape: tuple[int, int], n_steps: int) -> list[int]:
    """The wrapper's K values: int(linspace(min/10, min/2, steps)), without K < 1 and duplicates."""
    smallest = min(shape)
    grid = np.linspace(smallest / 10, smallest / 2, n_steps).astype(int)
    return sorted({int(k) for k in grid if k >= 1}) or [1]


def approximate_sss_search(
    weight,
    share: float,
    n_steps: int = 5,
    *,
    stages: list[int] | None = None,
    esann_off_by_one: bool = False,
    exact_count: bool = False,
    eps: float = DEFAULT_EPS,
) -> Approximation:
    """The SSS wrapper: try every K of the grid (or `stages`), keep the lowest ‖W − W̃‖_F
    (the first one on ties). info["search"] lists (K, d, error) for every candidate."""
    mat = as_matrix(weight)
    grid = (
        stage_grid(mat.shape, n_steps) if stages is None else [int(k) for k in stages]
    )
    best, best_err, tried = None, np.inf, []
    for k in grid:
        approx = approximate_sss(
            mat,
            share,
            k,
            esann_off_by_one=esann_off_by_one,
            exact_count=exact_count,
            eps=eps,
        )
        err = float(np.linalg.norm(mat - approx.dense))
        tried.append((k, int(approx.info["state_dim"]), err))
        if best is None or err < best_err:
            best, best_err = approx, err
    return Approximation(
        best.dense,
        best.n_params,
        best.structure,
        best.method,
        {**best.info, "search": tuple(tried)},
    )


# ---------------------------------------------------------------------------------------------
# random SSS matrices (test matrices and benchmarks)


def random_realisation(
    dims_in, dims_out, state_dim: int, rng: np.random.Generator, decay: float = 1.0
) -> SSSRealisation:
    """A random SSS realisation with state dimension min(d, Hankel block size) on every inner boundary.

    Transitions A_k, E_k are `decay` times matrices with orthonormal rows or columns, so products of
    many stages neither explode nor vanish; the other blocks are Gaussian scaled by 1/√(fan-in).
    """
    dims_in = [int(v) for v in dims_in]
    dims_out = [int(v) for v in dims_out]
    K = len(dims_in)
    lim_c, lim_a = _boundary_limits(np.array(dims_in), np.array(dims_out))
    r = np.minimum(state_dim, lim_c)
    s = np.minimum(state_dim, lim_a)

    def gauss(rows, cols):
        return rng.standard_normal((rows, cols)) / np.sqrt(max(cols, 1))

    def transition(rows, cols):
        if rows == 0 or cols == 0:
            return np.zeros((rows, cols))
        q, _ = np.linalg.qr(rng.standard_normal((max(rows, cols), min(rows, cols))))
        return decay * (q if rows >= cols else q.T)

    A = tuple(transition(r[k + 1], r[k]) for k in range(K))
    E = tuple(transition(s[k], s[k + 1]) for k in range(K))
    B = tuple(gauss(r[k + 1], dims_in[k]) for k in range(K))
    C = tuple(gauss(dims_out[k], r[k]) for k in range(K))
    D = tuple(gauss(dims_out[k], dims_in[k]) for k in range(K))
    F = tuple(gauss(s[k], dims_in[k]) for k in range(K))
    G = tuple(gauss(dims_out[k], s[k + 1]) for k in range(K))
    return SSSRealisation(tuple(dims_in), tuple(dims_out), A, B, C, D, E, F, G)
