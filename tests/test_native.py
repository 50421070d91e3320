"""weightspace.native: compiler lookup, cached builds, loading, and errors that name the
fix.

Builds need a C compiler (`cc`, or $CC); without one the build tests are skipped.
"""

import ctypes
import os
import subprocess

import pytest

from weightspace import native

PURPOSE = "the tiny test library"
ALTERNATIVE = "choose kernel='scatter'"

try:
    native.find_compiler(PURPOSE)
    HAVE_COMPILER = True
except native.CompilerNotFoundError:
    HAVE_COMPILER = False

needs_compiler = pytest.mark.skipif(not HAVE_COMPILER, reason="no C compiler")

ADD = "double add(double x, double y) { return x + y; }\n"
MAIN = '#include <stdio.h>\nint main(void) { printf("%d\\n", SIX * 7); return 0; }\n'


@pytest.fixture
def cache(tmp_path, monkeypatch):
    directory = tmp_path / "cache"
    monkeypatch.setenv("WEIGHTSPACE_CACHE", str(directory))
    monkeypatch.delenv("CC", raising=False)
    return directory


def _source(tmp_path, text, name="add.c"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _build(source, **kw):
    return native.build(source, purpose=PURPOSE, stem="add", flags=("-O2",), **kw)


@needs_compiler
def test_shared_library_builds_loads_and_computes(tmp_path, cache):
    path = _build(_source(tmp_path, ADD))
    assert (
        path.parent == cache and path.suffix == ".so" and path.name.startswith("add-")
    )
    assert [p.name for p in cache.iterdir()] == [path.name]  # no temporary file left
    lib = native.load_library(path, PURPOSE)
    lib.add.restype = ctypes.c_double
    lib.add.argtypes = [ctypes.c_double, ctypes.c_double]
    assert lib.add(1.5, 2.25) == 3.75


@needs_compiler
def test_cache_hit_does_not_rebuild(tmp_path, cache, monkeypatch):
    source = _source(tmp_path, ADD)
    first = _build(source)
    mtime = first.stat().st_mtime_ns

    def no_compiling(*args, **kw):
        raise AssertionError("rebuilt although the cache holds the build")

    monkeypatch.setattr(native, "compile_c", no_compiling)
    assert _build(source) == first and first.stat().st_mtime_ns == mtime


@needs_compiler
def test_key_follows_source_and_flags(tmp_path, cache):
    source = _source(tmp_path, ADD)
    first = _build(source)
    other_flags = native.build(source, purpose=PURPOSE, stem="add", flags=("-O0",))
    source.write_text(ADD + "int twice(int x) { return 2 * x; }\n")
    other_source = _build(source)
    assert len({first, other_flags, other_source}) == 3
    assert sorted(cache.iterdir()) == sorted([first, other_flags, other_source])


@needs_compiler
def test_without_a_compiler_the_cached_build_is_used(tmp_path, cache, monkeypatch):
    source = _source(tmp_path, ADD)
    built = _build(source)
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    assert _build(source) == built
    # ... but only a build with the same flags
    with pytest.raises(native.CompilerNotFoundError, match="no earlier build of add.c"):
        native.build(source, purpose=PURPOSE, stem="add", flags=("-O1",))


@needs_compiler
def test_executable_builds_with_flags(tmp_path, cache):
    path = native.build(
        _source(tmp_path, MAIN, "main.c"),
        purpose=PURPOSE,
        stem="main",
        flags=("-O2", "-DSIX=6"),
        shared=False,
    )
    assert path.suffix == "" and os.access(path, os.X_OK)
    assert subprocess.run([str(path)], capture_output=True, text=True).stdout == "42\n"


def test_missing_compiler_names_purpose_and_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    with pytest.raises(native.CompilerNotFoundError) as caught:
        native.find_compiler(PURPOSE, alternative=ALTERNATIVE)
    message = str(caught.value)
    for part in (
        PURPOSE,
        "no-such-cc",
        "install a C compiler",
        "CC environment variable",
        ALTERNATIVE,
    ):
        assert part in message
    monkeypatch.delenv("CC")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("sysconfig.get_config_var", lambda name: None)
    monkeypatch.setenv("WEIGHTSPACE_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(
        native.CompilerNotFoundError,
        match=f"(?s){PURPOSE}.*no C compiler was found.*apt-get install gcc"
        f".*no earlier build of add.c",
    ):
        _build(_source(tmp_path, ADD))


def test_cc_may_carry_arguments(tmp_path):
    assert native.find_compiler(PURPOSE, env={"CC": "sh -c true"})[1:] == ["-c", "true"]


@needs_compiler
def test_compile_error_shows_the_compiler_output(tmp_path, cache):
    broken = _source(tmp_path, "int f(void) { return undefined_name; }\n", "broken.c")
    with pytest.raises(
        native.BuildError,
        match=f"(?s)building {PURPOSE} failed.*broken.c.*undefined_name",
    ):
        _build(broken)
    assert not cache.exists() or not list(cache.iterdir())  # nothing half-built is left


def test_missing_source_and_unloadable_library(tmp_path):
    with pytest.raises(
        native.NativeError, match=f"{tmp_path / 'absent.c'} of {PURPOSE} is missing"
    ):
        _build(tmp_path / "absent.c")
    junk = tmp_path / "junk.so"
    junk.write_bytes(b"not a library")
    with pytest.raises(
        native.NativeError, match=f"cannot load {PURPOSE}.*delete the file"
    ):
        native.load_library(junk, PURPOSE)


def test_cache_dir_follows_the_environment(tmp_path):
    assert native.cache_dir({"WEIGHTSPACE_CACHE": str(tmp_path)}) == tmp_path
    assert (
        native.cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "weightspace"
    )
    assert native.cache_dir({}).parts[-2:] == (".cache", "weightspace")
