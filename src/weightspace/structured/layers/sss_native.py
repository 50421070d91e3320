"""The SSS layer's inference in C (``csrc/sss_layer.c``), for float32 on the CPU.

Without gradients the layer's forward pass is 2K small sequential products; in PyTorch
each is a call of a few microseconds, which at batch 1 costs several times a dense
``nn.Linear`` of the same shape. The C kernel runs the same recursion in one call, on
one thread, with the batch as the innermost (vectorised) loop, or for one sample the
feature dimensions. It gives the numbers of ``SSSLayer.forward_reference`` up to
float32 rounding (another summation order).

Built on first use by weightspace.native with the system C compiler and cached; where
no compiler is found, ``available()`` is False and the layer keeps its PyTorch path.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import torch

from weightspace import native

C_SOURCE = Path(__file__).resolve().parent.parent / "csrc" / "sss_layer.c"
CFLAGS = ("-O3", "-std=c99")
ABI_VERSION = 1
PURPOSE = "the C inference kernel of the SSS layer"

_LIBRARIES: dict[str, ctypes.CDLL | None] = {}
_LOADED: list[ctypes.CDLL] = []  # the library once loaded in this process


def library() -> ctypes.CDLL | None:
    """The loaded kernel, built (or taken from the cache) on first use; None if it
    cannot be built or loaded here."""
    if _LOADED:  # the per-call path: no cache-directory lookup
        return _LOADED[0]
    directory = str(native.cache_dir())
    if directory in _LIBRARIES:
        return _LIBRARIES[directory]
    try:
        lib = native.build_library(
            C_SOURCE,
            purpose=PURPOSE,
            stem="sss_layer",
            flags=CFLAGS,
            alternative="the layer runs its PyTorch path",
            directory=directory,
        )
    except native.NativeError:
        _LIBRARIES[directory] = None
        return None
    lib.sss_layer_abi_version.restype = ctypes.c_int
    if lib.sss_layer_abi_version() != ABI_VERSION:
        _LIBRARIES[directory] = None
        return None
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    lib.sss_layer_forward.argtypes = [i64] * 5 + [ptr] * 9
    lib.sss_layer_forward.restype = None
    _LIBRARIES[directory] = lib
    _LOADED.append(lib)
    return lib


def available() -> bool:
    return library() is not None


def forward(layer, u: torch.Tensor, work: torch.Tensor) -> torch.Tensor:
    """y = W̃u + b of ``layer`` (an SSSLayer with stages, float32 parameters on the CPU)
    for u (N, in) float32 on the CPU, without autograd; ``work`` is a float32 buffer of
    at least ``work_size(layer, N)`` floats."""
    lib = library()
    if lib is None:
        raise RuntimeError(f"{PURPOSE} is not available here")
    u = u.contiguous()
    N = u.shape[0]
    if work.numel() < work_size(layer, N):
        raise ValueError("the work buffer is smaller than work_size(layer, N)")
    w_in, trans, w_out = layer.w_in, layer.trans, layer.w_out
    bias = layer.bias
    for t in (w_in, trans, w_out) if bias is None else (w_in, trans, w_out, bias):
        if t.dtype != torch.float32 or t.device.type != "cpu" or not t.is_contiguous():
            raise ValueError(f"{PURPOSE} needs contiguous float32 CPU parameters")
    dims_in, dims_out = layer.native_dims
    y = torch.empty(N, layer.out_features, dtype=torch.float32)
    lib.sss_layer_forward(
        N,
        layer.n_stages,
        layer.m,
        layer.p,
        layer.d,
        dims_in.data_ptr(),
        dims_out.data_ptr(),
        w_in.data_ptr(),
        trans.data_ptr(),
        w_out.data_ptr(),
        None if bias is None else bias.data_ptr(),
        u.data_ptr(),
        y.data_ptr(),
        work.data_ptr(),
    )
    return y


def work_size(layer, N: int) -> int:
    """Floats of work memory for a batch of N (a single sample needs no transposed
    copies)."""
    per_sample = layer.n_stages * (layer.p + 2 * layer.d) + 2 * layer.d
    if N == 1:
        return per_sample
    return (layer.in_features + layer.out_features + per_sample) * N
