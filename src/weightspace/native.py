"""C code built where it runs: find the compiler, build, cache and load.

Two papers time or run C code that ships as source with the package: the fused step
of the ReLU Monte Carlo (a shared library, called through ctypes) and the C reference
of the SSS speed figure (executables). Both are built here with the system C compiler.

- ``find_compiler``: ``$CC`` if set (it must exist), else ``cc``, Python's build
  compiler (sysconfig CC), ``gcc`` or ``clang``, whichever is found first.
- ``compile_c``: one build into a given path; the compiler writes a temporary file
  next to it, which is renamed into place, so nobody sees a half-written program.
- ``build``: a cached build in ``cache_dir()`` (``$WEIGHTSPACE_CACHE``, else
  ``$XDG_CACHE_HOME/weightspace`` or ``~/.cache/weightspace``), under a name keyed by
  the SHA-256 of the source, the flags, the compiler and its version; concurrent jobs
  share the cache. Without a compiler, an earlier build of the same source with the
  same flags is used.
- ``load_library``: a shared library through ctypes.

Every error names what needed the C code (the ``purpose`` the caller passes, e.g. "the
C reference of structured_fig_speed") and the fix: install a compiler or set CC, or
the caller's ``alternative`` (e.g. "choose kernel='scatter'").
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import secrets
import shlex
import shutil
import subprocess
import sysconfig
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = [
    "COMPILER_HELP",
    "SHARED_FLAGS",
    "BuildError",
    "CompilerNotFoundError",
    "NativeError",
    "build",
    "build_library",
    "cache_dir",
    "compile_c",
    "compiler_version",
    "find_compiler",
    "load_library",
]

COMPILER_HELP = (
    "install a C compiler (Debian/Ubuntu: `apt-get install gcc`; macOS: "
    "`xcode-select --install`) or point the CC environment variable at one"
)
#: Added after the caller's flags when ``build`` makes a shared library.
SHARED_FLAGS = ("-fPIC", "-shared")
COMPILE_TIMEOUT_S = 120
_OUTPUT_CHARS = 3000


class NativeError(RuntimeError):
    """C code could not be built or loaded; the message names what needed it and the
    fix."""


class CompilerNotFoundError(NativeError):
    """No C compiler can be run here."""


class BuildError(NativeError):
    """The compiler ran but made no program; the message holds its command and
    output."""


def _fix(alternative: str | None) -> str:
    return COMPILER_HELP + (f", or {alternative}" if alternative else "")


def find_compiler(
    purpose: str,
    *,
    alternative: str | None = None,
    env: Mapping[str, str] | None = None,
) -> list[str]:
    """The C compiler command: $CC if set (it must exist), else ``cc``, Python's build
    compiler (sysconfig CC), ``gcc`` or ``clang``, whichever is found first."""
    env = os.environ if env is None else env
    given = env.get("CC", "").strip()
    if given:
        argv = shlex.split(given)
        found = shutil.which(argv[0])
        if not found:
            raise CompilerNotFoundError(
                f"{purpose} needs a C compiler, but CC={given!r} is not an executable "
                f"C compiler; {_fix(alternative)}"
            )
        return [found, *argv[1:]]
    candidates = ["cc"]
    build_cc = sysconfig.get_config_var("CC")
    if build_cc:
        candidates.append(shlex.split(build_cc)[0])
    candidates += ["gcc", "clang"]
    for name in candidates:
        found = shutil.which(name)
        if found:
            return [found]
    tried = ", ".join(dict.fromkeys(candidates))
    raise CompilerNotFoundError(
        f"{purpose} needs a C compiler, but no C compiler was found (tried {tried}); "
        f"{_fix(alternative)}"
    )


def _cannot_run(
    compiler: Sequence[str], exc: BaseException, purpose: str, alternative: str | None
) -> CompilerNotFoundError:
    return CompilerNotFoundError(
        f"{purpose} needs a C compiler, but {compiler[0]!r} cannot be run ({exc}); "
        f"{_fix(alternative)}"
    )


def compiler_version(
    compiler: Sequence[str], purpose: str, *, alternative: str | None = None
) -> str:
    """First line of ``<compiler> --version`` (for run records and cache keys); '' if it
    says nothing."""
    try:
        proc = subprocess.run(
            [*compiler, "--version"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise _cannot_run(compiler, exc, purpose, alternative) from exc
    said = (proc.stdout or proc.stderr).strip()
    return said.splitlines()[0] if said else ""


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where built programs are kept: $WEIGHTSPACE_CACHE, else
    $XDG_CACHE_HOME/weightspace, else ~/.cache/weightspace."""
    env = os.environ if env is None else env
    given = env.get("WEIGHTSPACE_CACHE", "").strip()
    if given:
        return Path(given).expanduser()
    xdg = env.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "weightspace"


def _check_source(source: Path, purpose: str) -> None:
    if not source.is_file():
        raise NativeError(
            f"the C source {source} of {purpose} is missing; reinstall weightspace "
            "(the package ships it)"
        )


def compile_c(
    source: str | os.PathLike,
    target: str | os.PathLike,
    *,
    purpose: str,
    flags: Sequence[str],
    ldflags: Sequence[str] = (),
    compiler: Sequence[str] | None = None,
    alternative: str | None = None,
    timeout: float = COMPILE_TIMEOUT_S,
) -> Path:
    """Run ``<compiler> <flags> -o <target> <source> <ldflags>``; returns the target.

    The compiler writes a temporary file beside the target, renamed onto it on success
    (a failed build leaves nothing behind). ``compiler`` defaults to ``find_compiler``.
    """
    source, target = Path(source), Path(target)
    _check_source(source, purpose)
    cc = (
        find_compiler(purpose, alternative=alternative)
        if compiler is None
        else list(compiler)
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    cmd = [*cc, *flags, "-o", str(tmp), str(source), *ldflags]
    try:
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except OSError as exc:
            raise _cannot_run(cc, exc, purpose, alternative) from exc
        except subprocess.TimeoutExpired as exc:
            raise BuildError(
                f"building {purpose} took more than {timeout:g} s: {shlex.join(cmd)}"
            ) from exc
        if proc.returncode != 0 or not tmp.is_file():
            output = (proc.stderr or proc.stdout)[-_OUTPUT_CHARS:]
            raise BuildError(
                f"building {purpose} failed (exit {proc.returncode}): "
                f"{shlex.join(cmd)}\n{output}"
            )
        os.replace(tmp, target)  # atomic: others see no program or the whole program
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _digest(*parts: bytes) -> str:
    return hashlib.sha256(b"\0".join(parts)).hexdigest()


def build(
    source: str | os.PathLike,
    *,
    purpose: str,
    stem: str,
    flags: Sequence[str],
    ldflags: Sequence[str] = (),
    shared: bool = True,
    alternative: str | None = None,
    directory: str | os.PathLike | None = None,
    env: Mapping[str, str] | None = None,
) -> Path:
    """The path of ``source`` built with ``flags`` (a shared library unless ``shared``
    is false: then an executable), from the cache or built into it now.

    The name is ``<stem>-<source>-<flags>-<build>[.so]``, three hash prefixes: of the
    source, of the flags and platform, and of all of these with the compiler and its
    version. Without a compiler, the newest cached build of the same source and flags
    is returned; with none, ``CompilerNotFoundError`` names the purpose and the fix.
    """
    source = Path(source)
    _check_source(source, purpose)
    directory = cache_dir(env) if directory is None else Path(directory)
    code = source.read_bytes()
    all_flags = [*flags, *(SHARED_FLAGS if shared else ()), *ldflags]
    where = [platform.machine(), platform.system()]
    suffix = ".so" if shared else ""
    prefix = (
        f"{stem}-{_digest(code)[:16]}-"
        f"{_digest(*(s.encode() for s in [*all_flags, *where]))[:8]}-"
    )
    try:
        compiler = find_compiler(purpose, alternative=alternative, env=env)
        version = compiler_version(compiler, purpose, alternative=alternative)
    except CompilerNotFoundError as exc:
        found = sorted(
            directory.glob(f"{prefix}*{suffix}") if directory.is_dir() else [],
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
        if not found:
            raise CompilerNotFoundError(
                f"{exc} (no earlier build of {source.name} is cached in {directory})"
            ) from exc
        return found[0]
    described = "\0".join([*compiler, version, *all_flags, *where]).encode()
    target = directory / f"{prefix}{_digest(code, described)[:16]}{suffix}"
    if target.is_file():
        return target
    flags_out = [*flags, *SHARED_FLAGS] if shared else list(flags)
    try:
        return compile_c(
            source,
            target,
            purpose=purpose,
            flags=flags_out,
            ldflags=ldflags,
            compiler=compiler,
            alternative=alternative,
        )
    except OSError as exc:
        raise NativeError(
            f"cannot write {purpose} into {directory} ({exc}); point "
            "WEIGHTSPACE_CACHE at a writable directory"
        ) from exc


def build_library(
    source: str | os.PathLike,
    *,
    purpose: str,
    stem: str,
    flags: Sequence[str],
    alternative: str | None = None,
    directory: str | os.PathLike | None = None,
) -> ctypes.CDLL:
    """``build`` a shared library (or take it from the cache) and load it."""
    path = build(
        source,
        purpose=purpose,
        stem=stem,
        flags=flags,
        alternative=alternative,
        directory=directory,
    )
    return load_library(path, purpose)


def load_library(path: str | os.PathLike, purpose: str) -> ctypes.CDLL:
    """The shared library at ``path``, loaded with ctypes."""
    try:
        return ctypes.CDLL(str(path))
    except OSError as exc:
        raise NativeError(
            f"cannot load {purpose} from {path} ({exc}); delete the file to rebuild it"
        ) from exc
