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
ABI_VERSION = 2
PURPOSE = "the C inference kernel of the SSS layer"


class Plan(ctypes.Structure):
    """The layer's part of a kernel call (``struct sss_plan``): sizes and pointers."""

    _fields_ = [(name, ctypes.c_int64) for name in ("K", "m", "p", "d")] + [
        (name, ctypes.c_void_p)
        for name in ("dims_in", "dims_out", "w_in", "trans", "w_out", "bias")
    ]


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
    lib.sss_layer_forward_plan.argtypes = [ctypes.POINTER(Plan), i64, ptr, ptr, ptr]
    lib.sss_layer_forward_plan.restype = None
    lib.sss_layer_use_avx512.argtypes = [ctypes.c_int]
    lib.sss_layer_use_avx512.restype = ctypes.c_int
    _LIBRARIES[directory] = lib
    _LOADED.append(lib)
    return lib


def available() -> bool:
    return library() is not None


def use_avx512(enable: bool | None = None) -> bool:
    """Whether one-sample inference runs its AVX-512 products (the portable loop gives
    the same numbers up to float32 rounding); False forces the portable path, True turns
    AVX-512 on where the CPU has it, None only asks."""
    lib = library()
    if lib is None:
        return False
    return bool(lib.sss_layer_use_avx512(-1 if enable is None else int(enable)))


def plan(layer) -> Plan | None:
    """The kernel's view of ``layer`` (an SSSLayer with stages), or None where it cannot
    run in C: no kernel here, or parameters that are not contiguous float32 CPU
    tensors. Kept on the layer while its parameters stay the same tensors, so that a
    call checks them once (their data pointers and dtypes), not at every sample."""
    params = layer._parameters  # not Module.__getattr__: this runs at every call
    tensors = (params["w_in"], params["trans"], params["w_out"], params.get("bias"))
    key = tuple((0, None) if t is None else (t.data_ptr(), t.dtype) for t in tensors)
    cached = layer.__dict__.get("_native_plan")
    if cached is not None and cached[0] == key:
        return cached[1]
    lib, result = library(), None
    if lib is not None and all(
        t.dtype == torch.float32 and t.device.type == "cpu" and t.is_contiguous()
        for t in tensors
        if t is not None
    ):
        dims_in, dims_out = layer.native_dims
        ptrs = [dims_in.data_ptr(), dims_out.data_ptr()]
        ptrs += [None if t is None else t.data_ptr() for t in tensors]
        result = Plan(layer.n_stages, layer.m, layer.p, layer.d, *ptrs)
        result.call = lib.sss_layer_forward_plan
        result.out_features = layer.out_features
        # work floats: one sample needs no transposed copies of input and output
        result.work_one = layer.n_stages * (layer.p + 2 * layer.d) + 2 * layer.d
        result.work_per_sample = (
            layer.in_features + layer.out_features + result.work_one
        )
    layer.__dict__["_native_plan"] = (key, result)
    return result


def run(prepared: Plan, u: torch.Tensor, work: torch.Tensor) -> torch.Tensor:
    """The kernel call for u (N, in) contiguous float32 on the CPU and a float32 work
    buffer of at least ``work_floats(prepared, N)`` floats; unchecked: the layer
    checks the input and ``plan`` the parameters."""
    N = u.shape[0]
    y = torch.empty(N, prepared.out_features, dtype=torch.float32)
    prepared.call(prepared, N, u.data_ptr(), y.data_ptr(), work.data_ptr())
    return y


def work_floats(prepared: Plan, N: int) -> int:
    """Floats of work memory for a batch of N."""
    return prepared.work_one if N == 1 else prepared.work_per_sample * N
