"""Gaussian directions from a counter-based generator in C (``generator="philox"``).

``csrc/philox_directions.c`` computes element j of row r of the directions of a 64-bit
key from (key, r, j) alone (Philox4x32-10 and Box-Muller in float32, vectorised), and
the RBD passes that use them without ever storing them: the coordinates c = Phi^T g,
the step Phi c, and both at once. On one CPU thread it draws two to three times as
fast as ``torch.randn``, and the fused pass keeps one row of D floats instead of a
chunk.
The numbers are the same on every x86/ARM CPU and compiler that builds it (IEEE
float operations in a fixed order, no libm calls), but they are not torch's: runs
with ``generator="torch"`` see other directions of the same distribution.

Built on first use by weightspace.native with the system C compiler and cached.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import torch

from weightspace import native

C_SOURCE = Path(__file__).resolve().parent / "csrc" / "philox_directions.c"
CFLAGS = ("-O3", "-std=c99", "-ffp-contract=off", "-fno-math-errno")
ABI_VERSION = 2
PURPOSE = "the C direction generator of random bases descent (generator='philox')"
ALTERNATIVE = "set rbd.generator to 'torch'"

_LIBRARIES: dict[str, ctypes.CDLL] = {}


class PhiloxError(RuntimeError):
    """The C generator cannot be built, loaded or called as asked."""


def library() -> ctypes.CDLL:
    """The loaded library, built (or taken from the cache) on first use."""
    directory = str(native.cache_dir())
    if directory in _LIBRARIES:
        return _LIBRARIES[directory]
    try:
        lib = native.build_library(
            C_SOURCE,
            purpose=PURPOSE,
            stem="philox_directions",
            flags=CFLAGS,
            alternative=ALTERNATIVE,
            directory=directory,
        )
    except native.NativeError as exc:
        raise PhiloxError(str(exc)) from exc
    lib.rbd_abi_version.restype = ctypes.c_int
    if lib.rbd_abi_version() != ABI_VERSION:
        raise PhiloxError(
            f"{lib._name} has calling convention {lib.rbd_abi_version()}, expected "
            f"{ABI_VERSION}; delete it"
        )
    u64, i64, ptr, f64 = (
        ctypes.c_uint64,
        ctypes.c_int64,
        ctypes.c_void_p,
        ctypes.c_double,
    )
    lib.rbd_philox_words.argtypes = [u64, ctypes.c_uint32, ctypes.c_uint32, ptr]
    lib.rbd_philox_words.restype = None
    lib.rbd_use_avx512.argtypes = [ctypes.c_int]
    lib.rbd_use_avx512.restype = ctypes.c_int
    lib.rbd_draw.argtypes = [u64, i64, i64, ptr]
    lib.rbd_draw.restype = None
    lib.rbd_project.argtypes = [u64, i64, i64, ptr, f64, ptr]
    lib.rbd_project.restype = None
    lib.rbd_expand.argtypes = [u64, i64, i64, ptr, f64, ptr]
    lib.rbd_expand.restype = None
    lib.rbd_project_expand.argtypes = [u64, i64, i64, ptr, f64, ptr, ptr, ptr]
    lib.rbd_project_expand.restype = ctypes.c_int
    _LIBRARIES[directory] = lib
    return lib


def _vector(name: str, t: torch.Tensor) -> None:
    if t.device.type != "cpu" or t.dtype != torch.float32:
        raise PhiloxError(
            f"generator='philox' runs on float32 CPU tensors; {name} is {t.dtype} on "
            f"{t.device} ({ALTERNATIVE} for other devices and dtypes)"
        )
    if not t.is_contiguous():
        raise PhiloxError(f"{name} must be contiguous")


def words(key: int, c0: int, c1: int) -> list[int]:
    """The four 32-bit words of Philox4x32-10 at counter (c0, c1, 0, 0)."""
    out = (ctypes.c_uint32 * 4)()
    library().rbd_philox_words(key, c0, c1, out)
    return list(out)


def draw(key: int, rows: int, size: int) -> torch.Tensor:
    """rows x size unnormalised N(0, 1) directions of ``key``."""
    out = torch.empty(rows, size, dtype=torch.float32)
    library().rbd_draw(key, rows, size, out.data_ptr())
    return out


def project(key: int, rows: int, g: torch.Tensor, norm: float) -> torch.Tensor:
    """c_r = phi_r . g / norm for the ``rows`` directions of ``key``."""
    _vector("g", g)
    c = torch.empty(rows, dtype=torch.float32)
    library().rbd_project(key, rows, g.numel(), g.data_ptr(), norm, c.data_ptr())
    return c


def expand_into(out: torch.Tensor, key: int, c: torch.Tensor, norm: float) -> None:
    """out += sum_r c_r phi_r / norm."""
    _vector("out", out)
    c = c.contiguous()
    _vector("c", c)
    library().rbd_expand(
        key, c.numel(), out.numel(), c.data_ptr(), norm, out.data_ptr()
    )


def project_expand_into(
    out: torch.Tensor, key: int, rows: int, g: torch.Tensor, norm: float
) -> torch.Tensor:
    """The coordinates of ``g`` along the ``rows`` directions of ``key``, adding their
    step to ``out``; each direction is drawn once."""
    _vector("g", g)
    _vector("out", out)
    c = torch.empty(rows, dtype=torch.float32)
    row = torch.empty(g.numel(), dtype=torch.float32)
    library().rbd_project_expand(
        key,
        rows,
        g.numel(),
        g.data_ptr(),
        norm,
        c.data_ptr(),
        out.data_ptr(),
        row.data_ptr(),
    )
    return c


def use_avx512(enable: bool | None = None) -> bool:
    """Whether the AVX-512 path draws (x86 CPUs that have it; the same numbers as the
    portable path, about twice as fast). ``enable=False`` forces the portable path."""
    return bool(library().rbd_use_avx512(-1 if enable is None else int(enable)))


def available() -> bool:
    """Whether the C generator can be used here (it builds, or is cached, and loads)."""
    try:
        library()
    except PhiloxError:
        return False
    return True
