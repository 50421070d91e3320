"""The fused C step of the 1-D Monte Carlo (``kernel="c"`` of weightspace.relu.mc1d).

``csrc/mc1d_step.c`` runs whole blocks of full-batch GD steps for n nets of width m in one call,
net after net, with the arithmetic of the scatter kernel (see the C source). It is built on first
use with the system C compiler (``$CC``, else ``cc``, Python's build compiler, ``gcc`` or
``clang``) at -O2 with -ffp-contract=off and without -ffast-math, so results are IEEE-
deterministic, and cached as a shared library in ``$WEIGHTSPACE_CACHE`` (default
``$XDG_CACHE_HOME/weightspace`` or ``~/.cache/weightspace``) under a name keyed by the SHA-256 of
the source, the build flags and the compiler's version; the library is written to a temporary file
and renamed into place, so concurrent jobs can share the cache. Without a compiler, a library
already built from the same source is used.

PyTorch's CPU ``addcmul`` is a fused multiply-add on some builds and CPUs and a product and a sum on
others; ``addcmul_mode()`` finds out which, once per process, and the C step does the same, so that
it reproduces the scatter kernel bit for bit.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import subprocess
import tempfile
from pathlib import Path

import torch

from weightspace.relu.criterion import POINTS

C_SOURCE = Path(__file__).resolve().parent / "csrc" / "mc1d_step.c"
CFLAGS = ("-O2", "-std=c99", "-ffp-contract=off", "-fPIC", "-shared")
LDFLAGS = ("-lm",)
ABI_VERSION = 1
_STEM = "mc1d_step"


class CKernelError(RuntimeError):
    """The C step of the 1-D Monte Carlo cannot be built, loaded or called as asked."""


def cache_dir(env: dict | None = None) -> Path:
    """Where built libraries are kept: $WEIGHTSPACE_CACHE, else $XDG_CACHE_HOME/weightspace, else
    ~/.cache/weightspace."""
    env = os.environ if env is None else env
    given = env.get("WEIGHTSPACE_CACHE", "").strip()
    if given:
        return Path(given).expanduser()
    xdg = env.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "weightspace"


def _source_hash(source: bytes) -> str:
    return hashlib.sha256(source).hexdigest()


def _library_path(directory: Path, source: bytes, compiler: list[str], version: str) -> Path:
    build = "\0".join([*compiler, version, *CFLAGS, *LDFLAGS, platform.machine(), platform.system()])
    key = hashlib.sha256(source + b"\0" + build.encode()).hexdigest()
    return directory / f"{_STEM}-{_source_hash(source)[:16]}-{key[:16]}.so"


def _compile(compiler: list[str], source_path: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}-", suffix=".so.tmp", dir=target.parent)
    os.close(fd)
    cmd = [*compiler, *CFLAGS, "-o", tmp, str(source_path), *LDFLAGS]
    try:
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise CKernelError(f"cannot run the C compiler {compiler[0]!r} ({exc}); install a C compiler "
                               "(e.g. gcc) or point the CC environment variable at one, or use "
                               "kernel='scatter'") from exc
        if proc.returncode != 0:
            raise CKernelError(f"building the C kernel failed (exit {proc.returncode}): {' '.join(cmd)}\n"
                               f"{(proc.stderr or proc.stdout)[-3000:]}")
        os.replace(tmp, target)  # atomic: a concurrent job sees the old state or the whole library
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _cached_libraries(directory: Path, source: bytes) -> list[Path]:
    found = directory.glob(f"{_STEM}-{_source_hash(source)[:16]}-*.so")
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def _load(path: Path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(path))
    lib.mc1d_abi_version.restype = ctypes.c_int
    lib.mc1d_abi_version.argtypes = []
    if lib.mc1d_abi_version() != ABI_VERSION:
        raise CKernelError(f"{path} has calling convention {lib.mc1d_abi_version()}, "
                           f"expected {ABI_VERSION}; delete it")
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    lib.mc1d_gd_steps.restype = ctypes.c_int
    lib.mc1d_gd_steps.argtypes = [i64, i64, i64, ptr, ptr, ptr, ptr, ptr, i64, i64, ptr, i64, i64,
                                  ptr, ptr, ptr, ctypes.c_int]
    return lib


_LIBRARIES: dict[tuple, ctypes.CDLL] = {}


def library() -> ctypes.CDLL:
    """The loaded library, built (or taken from the cache) on first use in this process.

    Raises CKernelError, naming the fix, if it can be neither built nor found in the cache.
    """
    directory = cache_dir()
    env_key = (str(directory), os.environ.get("CC", ""))
    lib = _LIBRARIES.get(env_key)
    if lib is not None:
        return lib
    if not C_SOURCE.is_file():
        raise CKernelError(f"C source {C_SOURCE} is missing; reinstall weightspace (the package ships it)")
    source = C_SOURCE.read_bytes()
    # The compiler finder of the C speed benchmark (imported here: its module pulls in scipy).
    from weightspace.structured.cspeed import CompilerNotFoundError, compiler_version, find_compiler

    try:
        compiler = find_compiler()
        version = compiler_version(compiler)
    except CompilerNotFoundError as exc:
        cached = _cached_libraries(directory, source) if directory.is_dir() else []
        if not cached:
            raise CKernelError(
                f"kernel='c' of the 1-D Monte Carlo needs a C compiler to build {C_SOURCE.name} "
                f"(no built copy in {directory}): {exc}. Or use kernel='scatter'.") from exc
        path = cached[0]
    else:
        path = _library_path(directory, source, compiler, version)
        if not path.is_file():
            try:
                _compile(compiler, C_SOURCE, path)
            except OSError as exc:
                raise CKernelError(f"cannot write the C kernel into {directory} ({exc}); point "
                                   "WEIGHTSPACE_CACHE at a writable directory") from exc
    try:
        lib = _load(path)
    except OSError as exc:
        raise CKernelError(f"cannot load the C kernel {path} ({exc}); delete it to rebuild") from exc
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
        probes.append(torch.addcmul(ones, torch.full((n,), y, dtype=f64), torch.full((n,), z, dtype=f64),
                                    value=-1.0))
    wide = torch.ones(67, 2, dtype=f64)
    probes.append(torch.addcmul(wide[:, 0], torch.full((67,), y, dtype=f64),
                                torch.full((67, 2), z, dtype=f64)[:, 1], value=-1.0))  # strided
    probes.append(torch.addcmul(torch.ones(9, 6, dtype=f64), torch.full((9, 6), y, dtype=f64),
                                torch.full((6,), z, dtype=f64), value=-1.0))  # broadcast row
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
        raise CKernelError(f"{name} must be contiguous (it is updated in place); pass t.contiguous()")


def _rows(name: str, t: torch.Tensor, n: int, steps: int | None) -> tuple[torch.Tensor, int, int, int]:
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


def gd_steps(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, w: torch.Tensor, coef: torch.Tensor,
             ncy: torch.Tensor, vmax: torch.Tensor, vmin: torch.Tensor, steps: int | None = None) -> None:
    """Full-batch GD steps in place on n nets of width m, as ``_ScatterKernel.gd_step`` would do them.

    a, b, w: (n, m), c, vmax, vmin: (n,), contiguous float64 CPU tensors, updated in place. coef and
    ncy: (n, 6) (or (6,)) rows used by every one of ``steps`` steps, or (n, steps, 6) with one row
    per step. Before every step, max_i |b_i/a_i| is folded into vmax and its negative into vmin.
    """
    if not isinstance(a, torch.Tensor) or a.dim() != 2:
        raise CKernelError(f"a must be an (n, m) tensor, got {getattr(a, 'shape', type(a).__name__)}")
    if steps is not None and int(steps) < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    n, m = a.shape
    for name, t, shape in (("a", a, (n, m)), ("b", b, (n, m)), ("w", w, (n, m)), ("c", c, (n,)),
                           ("vmax", vmax, (n,)), ("vmin", vmin, (n,))):
        _check(name, t, shape)
    coef, k, coef_net, coef_step = _rows("coef", coef, n, steps)
    ncy, _, ncy_net, ncy_step = _rows("ncy", ncy, n, k)
    if n == 0 or m == 0 or k == 0:
        return
    x = _points()
    rc = library().mc1d_gd_steps(n, m, k, a.data_ptr(), b.data_ptr(), w.data_ptr(), c.data_ptr(),
                                 coef.data_ptr(), coef_net, coef_step, ncy.data_ptr(), ncy_net, ncy_step,
                                 x.data_ptr(), vmax.data_ptr(), vmin.data_ptr(),
                                 0 if addcmul_mode() == "separate" else 1)
    if rc != 0:
        raise MemoryError(f"the C kernel could not allocate its {4 * m}-byte scratch array")


@functools.lru_cache(maxsize=1)
def _points() -> torch.Tensor:
    return torch.tensor(POINTS, dtype=torch.float64)


__all__ = ["C_SOURCE", "CKernelError", "addcmul_mode", "available", "cache_dir", "gd_steps", "library"]
