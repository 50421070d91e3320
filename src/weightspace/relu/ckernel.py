"""The fused C step of the 1-D Monte Carlo (``kernel="c"`` of weightspace.relu.mc1d).

``csrc/mc1d_step.c`` runs whole blocks of full-batch GD steps for n nets of width m in one call,
net after net, with the arithmetic of the scatter kernel (see the C source). It is built on first
use by weightspace.native with the system C compiler (``$CC``, else ``cc``, Python's
build compiler, ``gcc`` or ``clang``) at -O2 with -ffp-contract=off and without
-ffast-math, so results are IEEE-deterministic, and cached as a shared library (see
``weightspace.native.build``: keyed by the source, the flags and the compiler's
version, shared by concurrent jobs). Without a compiler, a library already built from
the same source with the same flags is used.

PyTorch's CPU ``addcmul`` is a fused multiply-add on some builds and CPUs and a product and a sum on
others; ``addcmul_mode()`` finds out which, once per process, and the C step does the same, so that
it reproduces the scatter kernel bit for bit.
"""

from __future__ import annotations

import ctypes
import functools
import os
from pathlib import Path

import torch

from weightspace import native
from weightspace.relu.criterion import POINTS

C_SOURCE = Path(__file__).resolve().parent / "csrc" / "mc1d_step.c"
CFLAGS = ("-O2", "-std=c99", "-ffp-contract=off")  # native.SHARED_FLAGS follow
LDFLAGS = ("-lm",)
ABI_VERSION = 2
PURPOSE = "the fused C kernel of the ReLU Monte Carlo (kernel='c', relu_mc_chunk)"
ALTERNATIVE = "choose kernel='scatter'"
_STEM = "mc1d_step"


class CKernelError(RuntimeError):
    """The C step of the 1-D Monte Carlo cannot be built, loaded or called as asked."""


def _load(path: Path) -> ctypes.CDLL:
    lib = native.load_library(path, PURPOSE)
    lib.mc1d_abi_version.restype = ctypes.c_int
    lib.mc1d_abi_version.argtypes = []
    if lib.mc1d_abi_version() != ABI_VERSION:
        raise CKernelError(
            f"{path} has calling convention {lib.mc1d_abi_version()}, "
            f"expected {ABI_VERSION}; delete it"
        )
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    lib.mc1d_gd_steps.restype = ctypes.c_int
    lib.mc1d_gd_steps.argtypes = [
        i64,
        i64,
        i64,
        ptr,
        ptr,
        ptr,
        ptr,
        ptr,
        i64,
        i64,
        ptr,
        i64,
        i64,
        ptr,
        ptr,
        ptr,
        ctypes.c_int,
    ]
    lib.mc1d_sgd_steps.restype = ctypes.c_int
    lib.mc1d_sgd_steps.argtypes = [i64, i64, i64, *[ptr] * 8, ctypes.c_uint64, i64]
    lib.mc1d_sgd_steps.argtypes += [ptr] * 3 + [ctypes.c_int]
    lib.mc1d_use_avx512.restype = ctypes.c_int
    lib.mc1d_use_avx512.argtypes = [ctypes.c_int]
    return lib


_LIBRARIES: dict[tuple, ctypes.CDLL] = {}


def library() -> ctypes.CDLL:
    """The loaded library, built (or taken from the cache) on first use in this process.

    Raises CKernelError, naming the fix, if it can be neither built nor found in the cache.
    """
    directory = native.cache_dir()
    env_key = (str(directory), os.environ.get("CC", ""))
    lib = _LIBRARIES.get(env_key)
    if lib is not None:
        return lib
    try:
        path = native.build(
            C_SOURCE,
            purpose=PURPOSE,
            stem=_STEM,
            flags=CFLAGS,
            ldflags=LDFLAGS,
            alternative=ALTERNATIVE,
            directory=directory,
        )
        lib = _load(path)
    except native.NativeError as exc:
        raise CKernelError(str(exc)) from exc
    _LIBRARIES[env_key] = lib
    return lib


def available() -> bool:
    """Whether the C step can be used here: the library builds (or is cached) and loads."""
    try:
        library()
    except CKernelError:
        return False
    return True


@functools.lru_cache(maxsize=1)
def addcmul_mode() -> str:
    """How PyTorch's CPU ``addcmul`` rounds on float64: "fused" (one rounding, as fma), "separate"
    (product, then sum) or "mixed" (depends on the layout; the C step then uses fma and agrees
    with the scatter kernel only to rounding)."""
    y, z = 1.0 + 2.0**-52, 1.0 - 2.0**-52  # y z = 1 − 2^-104: rounds to 1 unless fused
    f64 = torch.float64
    probes = []
    for n in (1, 3, 67, 1031):  # scalar, tail and vectorised loops
        ones = torch.ones(n, dtype=f64)
        probes.append(
            torch.addcmul(
                ones,
                torch.full((n,), y, dtype=f64),
                torch.full((n,), z, dtype=f64),
                value=-1.0,
            )
        )
    wide = torch.ones(67, 2, dtype=f64)
    probes.append(
        torch.addcmul(
            wide[:, 0],
            torch.full((67,), y, dtype=f64),
            torch.full((67, 2), z, dtype=f64)[:, 1],
            value=-1.0,
        )
    )  # strided
    probes.append(
        torch.addcmul(
            torch.ones(9, 6, dtype=f64),
            torch.full((9, 6), y, dtype=f64),
            torch.full((6,), z, dtype=f64),
            value=-1.0,
        )
    )  # broadcast row
    values = torch.cat([p.flatten() for p in probes])
    fused = values == 2.0**-104
    if bool(fused.all()):
        return "fused"
    if bool((values == 0.0).all()):
        return "separate"
    return "mixed"


def _check(name: str, t: torch.Tensor, shape: tuple, contiguous: bool = True) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.device.type != "cpu":
        raise CKernelError(f"the C kernel runs on the CPU; {name} is on {t.device}")
    if t.dtype != torch.float64:
        raise CKernelError(f"the C kernel needs float64; {name} is {t.dtype}")
    if tuple(t.shape) != shape:
        raise CKernelError(f"{name} has shape {tuple(t.shape)}, expected {shape}")
    if contiguous and not t.is_contiguous():
        raise CKernelError(
            f"{name} must be contiguous (it is updated in place); pass t.contiguous()"
        )


def _check_nets(a, b, c, w, vmax, vmin) -> tuple[int, int]:
    """(n, m) of the nets' parameters, after checking them (see gd_steps)."""
    if not isinstance(a, torch.Tensor) or a.dim() != 2:
        raise CKernelError(
            f"a must be an (n, m) tensor, got {getattr(a, 'shape', type(a).__name__)}"
        )
    n, m = a.shape
    for name, t, shape in (
        ("a", a, (n, m)),
        ("b", b, (n, m)),
        ("w", w, (n, m)),
        ("c", c, (n,)),
        ("vmax", vmax, (n,)),
        ("vmin", vmin, (n,)),
    ):
        _check(name, t, shape)
    return n, m


def _rows(
    name: str, t: torch.Tensor, n: int, steps: int | None
) -> tuple[torch.Tensor, int, int, int]:
    """(tensor, steps, net stride, step stride) of per-net coefficient rows: (6,), (n, 6) for every
    step, or (n, steps, 6) for one row per step."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() == 3:
        _check(name, t, (n, t.shape[1], 6), contiguous=False)
        if steps is not None and steps != t.shape[1]:
            raise CKernelError(f"{name} holds {t.shape[1]} steps, asked for {steps}")
        steps, step_stride = int(t.shape[1]), t.stride(1)
    else:
        t = t.expand(n, 6) if t.dim() < 2 or t.shape[0] == 1 else t
        _check(name, t, (n, 6), contiguous=False)
        steps, step_stride = (1 if steps is None else int(steps)), 0
    if t.stride(-1) != 1:
        raise CKernelError(f"{name} needs unit stride along its last (points) axis")
    return t, steps, t.stride(0), step_stride


def gd_steps(
    a: torch.Tensor,
    b: torch.Tensor,
    c: torch.Tensor,
    w: torch.Tensor,
    coef: torch.Tensor,
    ncy: torch.Tensor,
    vmax: torch.Tensor,
    vmin: torch.Tensor,
    steps: int | None = None,
) -> None:
    """Full-batch GD steps in place on n nets of width m, as ``_ScatterKernel.gd_step`` would do them.

    a, b, w: (n, m), c, vmax, vmin: (n,), contiguous float64 CPU tensors, updated in place. coef and
    ncy: (n, 6) (or (6,)) rows used by every one of ``steps`` steps, or (n, steps, 6) with one row
    per step. Before every step, max_i |b_i/a_i| is folded into vmax and its negative into vmin.
    """
    if steps is not None and int(steps) < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    n, m = _check_nets(a, b, c, w, vmax, vmin)
    coef, k, coef_net, coef_step = _rows("coef", coef, n, steps)
    ncy, _, ncy_net, ncy_step = _rows("ncy", ncy, n, k)
    if n == 0 or m == 0 or k == 0:
        return
    x = _points()
    rc = library().mc1d_gd_steps(
        n,
        m,
        k,
        a.data_ptr(),
        b.data_ptr(),
        w.data_ptr(),
        c.data_ptr(),
        coef.data_ptr(),
        coef_net,
        coef_step,
        ncy.data_ptr(),
        ncy_net,
        ncy_step,
        x.data_ptr(),
        vmax.data_ptr(),
        vmin.data_ptr(),
        0 if addcmul_mode() == "separate" else 1,
    )
    if rc != 0:
        raise MemoryError(
            f"the C kernel could not allocate its {4 * m}-byte scratch array"
        )


def sgd_steps(
    a: torch.Tensor,
    b: torch.Tensor,
    c: torch.Tensor,
    w: torch.Tensor,
    weights: torch.Tensor,
    h: torch.Tensor,
    y: torch.Tensor,
    ids: torch.Tensor,
    key: int,
    size: int,
    steps: int,
    vmax: torch.Tensor,
    vmin: torch.Tensor,
) -> None:
    """``steps`` minibatch SGD steps in place, with the minibatches of
    ``mc1d.minibatches`` (``key``, the nets' chunk indices ``ids``, ``size`` draws from
    the point weights ``weights`` (n, 6) per step, step sizes h (n,)) drawn in C: the
    numbers of the scatter kernel fed with ``minibatch_frequencies``. Shapes and
    layout as in ``gd_steps``; y: the six labels."""
    n, _ = _check_nets(a, b, c, w, vmax, vmin)
    for name, t, shape in (
        ("weights", weights, (n, 6)),
        ("h", h, (n,)),
        ("y", y, (6,)),
    ):
        _check(name, t, shape)
    if ids.dtype != torch.int64 or tuple(ids.shape) != (n,) or not ids.is_contiguous():
        raise CKernelError(f"ids must be a contiguous int64 ({n},) tensor")
    if a.numel() == 0 or steps <= 0:
        return
    rc = library().mc1d_sgd_steps(
        *a.shape,
        int(steps),
        *(t.data_ptr() for t in (a, b, w, c, weights, h, y, ids)),
        int(key) % (1 << 64),
        int(size),
        _points().data_ptr(),
        vmax.data_ptr(),
        vmin.data_ptr(),
        0 if addcmul_mode() == "separate" else 1,
    )
    if rc == 2:
        raise CKernelError(
            f"minibatch counters need ids < 2^24, steps <= 2^24 and 1 <= size <= 2^16; "
            f"got ids up to {int(ids.max())}, steps {steps}, size {size}"
        )
    if rc != 0:
        raise MemoryError("the C kernel could not allocate its scratch arrays")


def use_avx512(enable: bool | None = None) -> bool:
    """Whether the C kernel runs its AVX-512 path (steps eight neurons per vector for nets
    of width 16 and more, and the SGD draws; the same numbers as the portable path);
    ``enable`` False forces the portable path, True turns AVX-512 on where the CPU has
    AVX512F and AVX512DQ."""
    return bool(library().mc1d_use_avx512(-1 if enable is None else int(enable)))


@functools.lru_cache(maxsize=1)
def _points() -> torch.Tensor:
    return torch.tensor(POINTS, dtype=torch.float64)


__all__ = [
    "C_SOURCE",
    "CKernelError",
    "addcmul_mode",
    "available",
    "gd_steps",
    "library",
    "sgd_steps",
    "use_avx512",
]
