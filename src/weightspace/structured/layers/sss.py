"""The SSS layer: y = W̃u + b computed from the stage matrices of an SSS realisation
(spec §4).

SSSLayer evaluates the SSS realisation (see weightspace.structured.sss) without forming
W̃. Stages are padded to equal size (m = max m_k inputs, p = max p_k outputs, d states)
and stacked, so the D_k, B_k, F_k products of all stages are one bmm and the C_k, G_k
products two more. Only the d-dimensional state recursions are sequential: causal and
anticausal run side by side as one scan (layers.scan), directly for training and larger
batches, chunked with cached transfer operators for small inference batches. The
backward of the scan is its adjoint recursion.

Padding entries start at zero and get exactly zero gradients (they only ever multiply
zero inputs or zero states, or feed discarded outputs), so gradient-based training keeps
them at zero.
"""

from __future__ import annotations

import threading

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from weightspace.structured.layers import sss_native
from weightspace.structured.layers.base import StructuredLayer, copy_values, has_bias
from weightspace.structured.layers.scan import StateScan, chunk_operators, default_chunk
from weightspace.structured.sss import SSSRealisation, approximate_sss, sss_param_count

# the largest stage input block m x (p + 2d) whose batches run in C (measured: 41 x 36
# and 32 x 46 are faster in C, 64 x 96 in PyTorch)
_NATIVE_MAX_STAGE = 4096


def _index_with_padding(
    sizes: list[int], width: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gather index (K·width,) into a vector padded with one trailing zero, and its
    inverse."""
    total = int(sum(sizes))
    gather = np.full(
        (len(sizes), width), total, dtype=np.int64
    )  # `total` points at the zero pad
    scatter = np.empty(total, dtype=np.int64)
    start = 0
    for k, size in enumerate(sizes):
        gather[k, :size] = np.arange(start, start + size)
        scatter[start : start + size] = k * width + np.arange(size)
        start += size
    return torch.from_numpy(gather.reshape(-1)), torch.from_numpy(scatter)


def _same_values(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype or a.device != b.device:
        return False
    if a.device.type == "cpu" and a.dtype in (torch.float32, torch.float64):
        return bool(
            np.array_equal(a.numpy(), b.numpy())
        )  # several times cheaper than torch.equal here
    return torch.equal(a, b)


class SSSLayer(StructuredLayer):
    """y = W̃u + b with W̃ an SSS matrix held as its (padded, stacked) stage matrices.

    Parameters (K stages, padded sizes m = max m_k, p = max p_k, d = max state dim.):
      w_in  (K, m, p + 2d):  [D_kᵀ | B_kᵀ | F_kᵀ]  one bmm: every input-side product
      trans (K-1, 2, d, d):  [A_tᵀ, E_{K-1-t}ᵀ]    transitions in scan order
                                                  (A_{K-1}, E_0 are empty)
      w_out (K, 2d, p):      [C_kᵀ; G_kᵀ]          one bmm: all state-to-output products
      bias  (out,) or None
    Build it as every structured layer (layers.base; `from_dense` needs `n_stages`) or
    with `zero`. scan_chunk: None picks the scan schedule (see layers.scan); an int
    forces chunks of that length. Inference at batch >= 16 reuses per-thread buffers for
    its intermediates (fresh multi-megabyte buffers on every call cost page faults
    comparable to the arithmetic); `clear_caches` frees them.

    Inference in float32 on the CPU runs the C kernel of layers.sss_native (one call
    instead of 2K small products): always for one sample, and for a batch when a stage's
    input block m x (p + 2d) holds at most 4,096 numbers and PyTorch runs on one thread
    or the batch is below 64 (larger stages are faster as PyTorch's batched products;
    benchmarks/README.md). `native_inference = False` keeps the PyTorch path.
    """

    methods = ("SSS",)
    native_inference = True
    describes = "an SSS approximation"
    approximator = staticmethod(approximate_sss)

    def __init__(
        self,
        dims_in,
        dims_out,
        causal_dims,
        anticausal_dims,
        *,
        bias: bool = True,
        scan_chunk: int | None = None,
        **kw,
    ):
        dims_in = tuple(int(v) for v in dims_in)
        dims_out = tuple(int(v) for v in dims_out)
        causal_dims = tuple(int(v) for v in causal_dims)
        anticausal_dims = tuple(int(v) for v in anticausal_dims)
        K = len(dims_in)
        if (
            len(dims_out) != K
            or len(causal_dims) != K + 1
            or len(anticausal_dims) != K + 1
        ):
            raise ValueError(
                "need K input sizes, K output sizes and K+1 causal/anticausal state "
                "dimensions"
            )
        if (
            causal_dims[0]
            or causal_dims[-1]
            or anticausal_dims[0]
            or anticausal_dims[-1]
        ):
            raise ValueError(
                "boundary states (before the first and after the last stage) must be "
                "empty"
            )
        super().__init__(sum(dims_in), sum(dims_out), **kw)
        self.dims_in, self.dims_out = dims_in, dims_out
        self.causal_dims, self.anticausal_dims = causal_dims, anticausal_dims
        self.n_stages = K
        self.m = max(dims_in, default=0)
        self.p = max(dims_out, default=0)
        self.d = max(causal_dims + anticausal_dims)
        self.scan_chunk = scan_chunk
        m, p, d = self.m, self.p, self.d
        self.w_in = nn.Parameter(torch.zeros(K, m, p + 2 * d, **self._kw))
        self.trans = nn.Parameter(torch.zeros(max(K - 1, 0), 2, d, d, **self._kw))
        self.w_out = nn.Parameter(torch.zeros(K, 2 * d, p, **self._kw))
        self._init_bias(bias)
        self._ops_cache = None
        self._last_trans = None
        self._uniform_in = len(set(dims_in)) <= 1
        self._uniform_out = len(set(dims_out)) <= 1
        self.native_dims = (
            torch.tensor(dims_in, dtype=torch.int64),
            torch.tensor(dims_out, dtype=torch.int64),
        )
        gather, _ = _index_with_padding(list(dims_in), m)
        _, scatter = _index_with_padding(list(dims_out), p)
        device = self._kw["device"]
        self.register_buffer("in_index", gather.to(device), persistent=False)
        self.register_buffer("out_index", scatter.to(device), persistent=False)

    # -- construction ------------------------------------------------------------------
    @classmethod
    def _build(cls, realisation: SSSRealisation, bias: bool, **kw) -> "SSSLayer":
        R = realisation
        dims = (R.dims_in, R.dims_out, R.causal_dims, R.anticausal_dims)
        layer = cls(*dims, bias=bias, **kw)
        K, p, d = layer.n_stages, layer.p, layer.d
        w_in = np.zeros((K, layer.m, p + 2 * d))
        trans = np.zeros((max(K - 1, 0), 2, d, d))
        w_out = np.zeros((K, 2 * d, p))
        for k in range(K):
            mk, pk = R.dims_in[k], R.dims_out[k]
            w_in[k, :mk, :pk] = R.D[k].T
            w_in[k, :mk, p : p + R.B[k].shape[0]] = R.B[k].T
            w_in[k, :mk, p + d : p + d + R.F[k].shape[0]] = R.F[k].T
            w_out[k, : R.C[k].shape[1], :pk] = R.C[k].T
            w_out[k, d : d + R.G[k].shape[1], :pk] = R.G[k].T
            if k < K - 1:  # causal step t = k
                trans[k, 0, : R.A[k].shape[1], : R.A[k].shape[0]] = R.A[k].T
            if k > 0:  # anticausal step t = K-1-k
                trans[K - 1 - k, 1, : R.E[k].shape[1], : R.E[k].shape[0]] = R.E[k].T
        for name, val in (("w_in", w_in), ("trans", trans), ("w_out", w_out)):
            copy_values(getattr(layer, name), val)
        return layer

    @classmethod
    def _from_zero(cls, approx, bias=None, **kw) -> "SSSLayer":
        return cls.zero(approx.shape[1], approx.shape[0], bias=bias, **kw)

    @classmethod
    def zero(cls, in_features: int, out_features: int, bias=None, **kw) -> "SSSLayer":
        """No stages and no weight parameters: the zero matrix (plus bias)."""
        kw.pop("scan_chunk", None)  # no stages, nothing to scan
        layer = cls((), (), (0,), (0,), bias=False, **kw)
        layer.in_features, layer.out_features = int(in_features), int(out_features)
        layer._init_bias(has_bias(bias))
        layer._set_bias(bias)
        return layer

    # -- evaluation --------------------------------------------------------------------
    def forward(self, u: torch.Tensor) -> torch.Tensor:
        lead = u.shape[:-1]
        flat = u.dim() == 2 and u.shape[1] == self.in_features
        u2 = u if flat else u.reshape(-1, self.in_features)
        N = u2.shape[0]
        if self.n_stages == 0:
            y = u2.new_zeros(N, self.out_features)
            return (y + self.bias if self.bias is not None else y).reshape(
                *lead, self.out_features
            )
        K, m, p, d = self.n_stages, self.m, self.p, self.d
        grad = torch.is_grad_enabled() and any(
            t is not None and t.requires_grad
            for t in (u2, self.w_in, self.trans, self.w_out, self.bias)
        )
        if not grad and self.native_inference and self._native_batch(u2):
            prepared = sss_native.plan(self)
            if prepared is not None:
                work = self._native_work(sss_native.work_floats(prepared, N))
                y = sss_native.run(prepared, u2.contiguous(), work)
                return y if flat else y.reshape(*lead, self.out_features)
        # Inference at larger batches reuses per-thread buffers for the multi-megabyte
        # intermediates: fresh ones cost page faults that can exceed the arithmetic.
        reuse = not grad and N >= 16
        if self._uniform_in:
            us = u2.reshape(N, K, m).transpose(0, 1)
        else:
            us = (
                F.pad(u2, (0, 1))
                .index_select(1, self.in_index)
                .reshape(N, K, m)
                .transpose(0, 1)
            )
        # (K, N, p + 2d): D_k u_k, B_k u_k, F_k u_k for all stages at once
        h = torch.bmm(
            us,
            self.w_in,
            out=self._buffer("h", (K, N, p + 2 * d), u2) if reuse else None,
        )
        if d == 0 or K == 1:
            y = h[..., :p]
        else:
            n = K - 1
            chunk, ops = self.scan_chunk, None
            if chunk is None:
                chunk = n
                if (N < 16 or h.device.type != "cpu") and n > 4:
                    # Small batches (any batch on accelerators, where every product is a
                    # kernel launch): the chunked scan with cached operators, where n
                    # sequential products would be pure call overhead; but not while the
                    # transitions keep changing (training), where rebuilding the
                    # operators costs more than it saves.
                    ops = self._chunk_ops(default_chunk(n), only_if_settled=grad)
                    chunk = default_chunk(n) if ops is not None else n
            elif chunk < n:
                ops = self._chunk_ops(chunk)
            c_out, g_out = self.w_out[:, :d], self.w_out[:, d:]
            if grad:
                X, Z = StateScan.apply(h, self.trans, p, d, chunk, ops)
                y = torch.baddbmm(torch.baddbmm(h[..., :p], X, c_out), Z, g_out)
            else:
                bufs = (
                    (self._buffer("x", (K, N, d), u2), self._buffer("z", (K, N, d), u2))
                    if reuse
                    else None
                )
                X, Z = StateScan.states(h, self.trans, p, d, chunk, ops, bufs)
                y_buf = self._buffer("y", (K, N, p), u2) if reuse else None
                y = torch.baddbmm(h[..., :p], X, c_out, out=y_buf).baddbmm_(Z, g_out)
        if grad or not self._uniform_out:
            y = y.transpose(0, 1).reshape(N, K * p)
            if not self._uniform_out:
                y = y.index_select(1, self.out_index)
            if self.bias is not None:
                y = y + self.bias
        else:
            # Reorder to (N, K·p) and add the bias in one pass into the (fresh) result.
            out = y.new_empty(N, K, p)
            if self.bias is not None:
                torch.add(y.transpose(0, 1), self.bias.view(K, p), out=out)
            else:
                out.copy_(y.transpose(0, 1))
            y = out.view(N, K * p)
        return y.reshape(*lead, self.out_features)

    def _runs_natively(self, u2: torch.Tensor) -> bool:
        """Whether this inference call runs the C kernel (see the class doc)."""
        return (
            self.native_inference
            and self._native_batch(u2)
            and sss_native.plan(self) is not None
        )

    def _native_batch(self, u2: torch.Tensor) -> bool:
        """Whether the input and its batch size suit the C kernel (the parameters are
        ``sss_native.plan``'s to check)."""
        N = u2.shape[0]
        return (
            u2.dtype is torch.float32
            and u2.device.type == "cpu"
            and 0 < N
            and (
                N == 1
                or (
                    self.m * (self.p + 2 * self.d) <= _NATIVE_MAX_STAGE
                    and (N < 64 or torch.get_num_threads() == 1)
                )
            )
        )

    def _native_work(self, size: int) -> torch.Tensor:
        """The calling thread's float32 work buffer of the C kernel, at least ``size``
        floats (only the kernel writes it)."""
        local = self.__dict__.get("_local")
        if local is None:
            local = self.__dict__["_local"] = threading.local()
        work = getattr(local, "native_work", None)
        if work is None or work.numel() < size:
            work = local.native_work = torch.empty(size, dtype=torch.float32)
        return work

    def _buffer(self, name: str, shape: tuple, like: torch.Tensor) -> torch.Tensor:
        """A reusable per-thread inference buffer (never returned to callers, never seen
        by autograd)."""
        local = self.__dict__.get("_local")
        if local is None:
            local = self.__dict__["_local"] = threading.local()
        store = local.__dict__.setdefault("buffers", {})
        buf = store.get(name)
        # Tensors made in inference mode cannot be written outside it (and vice versa is
        # fine, but keep one kind per mode).
        if (
            buf is None
            or buf.shape != shape
            or buf.dtype != like.dtype
            or buf.device != like.device
            or buf.is_inference() != torch.is_inference_mode_enabled()
        ):
            buf = store[name] = like.new_empty(shape)
        return buf

    def clear_caches(self) -> None:
        """Drop the cached scan operators and the inference buffers of the calling
        thread."""
        self._ops_cache = self._last_trans = None
        local = self.__dict__.get("_local")
        if local is not None:
            local.__dict__.pop("buffers", None)
            local.__dict__.pop("native_work", None)

    def _chunk_ops(self, chunk: int, only_if_settled: bool = False):
        """Chunk operators for the current transitions, cached.

        They depend on `trans` only and are reused while it holds exactly the values
        they were built from (values are compared, not version counters, which writes
        through `.data` bypass; one pass over the small tensor). only_if_settled: build
        new operators only if `trans` is unchanged since the previous call, else return
        None; so training steps never pay for operators that the next update makes
        stale, while repeated evaluation of fixed weights gets them.
        """
        trans = self.trans.detach()
        cached = self._ops_cache
        if cached is not None and cached[1] == chunk and _same_values(cached[0], trans):
            return cached[2]
        if only_if_settled:
            seen, self._last_trans = self._last_trans, trans.clone()
            if seen is None or not _same_values(seen, trans):
                return None
        with torch.no_grad():
            ops = chunk_operators(trans, chunk)
        self._ops_cache = (trans.clone(), chunk, ops)
        return ops

    def __getstate__(self):
        state = (
            super().__getstate__()
            if hasattr(super(), "__getstate__")
            else self.__dict__
        )
        state = dict(state)
        state["_ops_cache"] = state["_last_trans"] = None
        # per-thread buffers and the C kernel's view of the parameters: neither
        # picklable nor worth copying (a copy has its own tensors)
        state.pop("_local", None)
        state.pop("_native_plan", None)
        return state

    def forward_reference(self, u: torch.Tensor) -> torch.Tensor:
        """The plain stage loop (2K sequential small products, autograd throughout), for
        checks."""
        u2 = u.reshape(-1, self.in_features)
        N = u2.shape[0]
        if self.n_stages == 0:
            y = u2.new_zeros(N, self.out_features)
        else:
            K, p, d = self.n_stages, self.p, self.d
            cin = np.concatenate([[0], np.cumsum(self.dims_in)])
            uk = [u2[:, cin[k] : cin[k + 1]] for k in range(K)]
            win = [self.w_in[k, : self.dims_in[k]] for k in range(K)]
            ys = [uk[k] @ win[k][:, : self.dims_out[k]] for k in range(K)]
            x = u2.new_zeros(N, d)
            for k in range(K):
                ys[k] = ys[k] + x @ self.w_out[k, :d, : self.dims_out[k]]
                if k < K - 1:
                    x = x @ self.trans[k, 0] + uk[k] @ win[k][:, p : p + d]
            z = u2.new_zeros(N, d)
            for k in range(K - 1, -1, -1):
                ys[k] = ys[k] + z @ self.w_out[k, d:, : self.dims_out[k]]
                if k > 0:
                    z = z @ self.trans[K - 1 - k, 1] + uk[k] @ win[k][:, p + d :]
            y = torch.cat(ys, dim=1)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*u.shape[:-1], self.out_features)

    # -- inspection --------------------------------------------------------------------
    def structure(self) -> SSSRealisation:
        """The current stage matrices (float64, padding dropped)."""
        if self.n_stages == 0:
            raise ValueError("a zero layer has no realisation")
        K, p, d = self.n_stages, self.p, self.d
        w_in = self.w_in.detach().cpu().double().numpy()
        trans = self.trans.detach().cpu().double().numpy()
        w_out = self.w_out.detach().cpu().double().numpy()
        r, s = self.causal_dims, self.anticausal_dims
        mats = {name: [] for name in "ABCDEFG"}
        for k in range(K):
            mk, pk = self.dims_in[k], self.dims_out[k]
            mats["D"].append(w_in[k, :mk, :pk].T.copy())
            mats["B"].append(w_in[k, :mk, p : p + r[k + 1]].T.copy())
            mats["F"].append(w_in[k, :mk, p + d : p + d + s[k]].T.copy())
            mats["C"].append(w_out[k, : r[k], :pk].T.copy())
            mats["G"].append(w_out[k, d : d + s[k + 1], :pk].T.copy())
            mats["A"].append(
                trans[k, 0, : r[k], : r[k + 1]].T.copy()
                if k < K - 1
                else np.zeros((0, r[k]))
            )
            mats["E"].append(
                trans[K - 1 - k, 1, : s[k + 1], : s[k]].T.copy()
                if k > 0
                else np.zeros((0, s[1]))
            )
        return SSSRealisation(
            self.dims_in, self.dims_out, **{n: tuple(v) for n, v in mats.items()}
        )

    def to_dense(self) -> torch.Tensor:
        """W̃ (out × in), float64, from the current parameters (for checks, not for the
        forward pass)."""
        if self.n_stages == 0:
            return torch.zeros(self.out_features, self.in_features, dtype=torch.float64)
        return super().to_dense()

    def n_weight_params(self, original_count: bool = False) -> int:
        """Weight parameters: the exact stored count (padding excluded), or the original
        conservative formula (original_count=True; also for n_params)."""
        if self.n_stages == 0:
            return 0
        if original_count:
            return sss_param_count(
                (self.out_features, self.in_features),
                self.n_stages,
                self.d,
                exact=False,
            )
        r, s = self.causal_dims, self.anticausal_dims
        total = 0
        for k in range(self.n_stages):
            mk, pk = self.dims_in[k], self.dims_out[k]
            total += (
                pk * mk
                + r[k + 1] * (mk + r[k])
                + pk * r[k]
                + s[k] * (mk + s[k + 1])
                + pk * s[k + 1]
            )
        return total

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"stages={self.n_stages}, state_dim={self.d}, bias={self.bias is not None}"
        )
