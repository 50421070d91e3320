"""Code hashes from the static import closure of a workflow script."""

from pathlib import Path

import pytest

from weightspace.pipeline.codehash import import_closure, script_hash

ROOT = Path(__file__).resolve().parents[1]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def tree(tmp_path):
    """A small weightspace package: eager, relative, function-local and lazy imports, C."""
    src = tmp_path / "src"
    ws = src / "weightspace"
    write(ws / "__init__.py", "")
    write(ws / "lazy.py", "def lazy_attributes(package, modules, namespace): ...\n")
    write(ws / "seeds.py", "def derive_seed(*a): return 1\n")
    write(ws / "unrelated.py", "x = 1\n")
    write(
        ws / "paper" / "__init__.py",
        "from weightspace.lazy import lazy_attributes\n"
        "_LAZY = {'heavy': ['Heavy'], 'other': ['Other']}\n"
        "__getattr__ = lazy_attributes(__name__, _LAZY, globals())\n",
    )
    write(ws / "paper" / "heavy.py", "from .kernel import run\nclass Heavy: ...\n")
    write(ws / "paper" / "other.py", "class Other: ...\n")
    write(
        ws / "paper" / "kernel.py",
        "from pathlib import Path\n"
        "SOURCE = Path(__file__).parent / 'csrc' / 'step.c'\n"
        "def run():\n    from weightspace.seeds import derive_seed\n    return derive_seed()\n",
    )
    write(ws / "paper" / "csrc" / "step.c", "int f(void) { return 1; }\n")
    write(ws / "paper" / "csrc" / "notes.txt", "not code\n")
    script = write(
        tmp_path / "workflow" / "scripts" / "paper_job.py",
        "import numpy\nfrom weightspace.paper import Heavy\n",
    )
    return src, script


def names(files, src):
    return sorted(str(Path(f).relative_to(src.parent)) for f in files)


def test_closure_follows_lazy_relative_and_local_imports_and_c_sources(tree):
    src, script = tree
    assert names(import_closure(script, src), src) == [
        "src/weightspace/__init__.py",
        "src/weightspace/lazy.py",
        "src/weightspace/paper/__init__.py",
        "src/weightspace/paper/csrc/step.c",
        "src/weightspace/paper/heavy.py",
        "src/weightspace/paper/kernel.py",
        "src/weightspace/seeds.py",
        "workflow/scripts/paper_job.py",
    ]


def test_importing_a_lazy_package_whole_counts_all_its_modules(tree):
    src, script = tree
    script.write_text("import weightspace.paper\n")
    files = names(import_closure(script, src), src)
    assert "src/weightspace/paper/other.py" in files
    assert "src/weightspace/paper/heavy.py" in files


@pytest.mark.parametrize(
    "edited, changes",
    [
        (
            "src/weightspace/seeds.py",
            True,
        ),  # imported inside a function, two levels down
        ("src/weightspace/paper/csrc/step.c", True),  # C source the kernel builds
        ("workflow/scripts/paper_job.py", True),  # the script itself
        ("src/weightspace/unrelated.py", False),
        ("src/weightspace/paper/other.py", False),  # another lazy attribute's module
        ("src/weightspace/paper/csrc/notes.txt", False),
    ],
)
def test_hash_changes_exactly_with_the_closure(tree, edited, changes):
    src, script = tree
    before = script_hash(script, src)
    path = src.parent / edited
    path.write_text(path.read_text() + "\n# edited\n")
    assert (script_hash(script, src) != before) is changes


def test_hash_depends_on_content_not_location_or_mtime(tree, tmp_path):
    import os
    import shutil

    src, script = tree
    before = script_hash(script, src)
    for path in src.rglob("*"):
        os.utime(path, (1e9, 1e9))
    copy = tmp_path / "clone"
    shutil.copytree(src.parent, copy, ignore=shutil.ignore_patterns("clone"))
    assert script_hash(copy / "workflow/scripts/paper_job.py", copy / "src") == before


def test_missing_weightspace_module_is_named(tree):
    src, script = tree
    script.write_text("from weightspace.nope import x\n")
    with pytest.raises(ModuleNotFoundError, match="weightspace.nope"):
        script_hash(script, src)


def test_every_workflow_script_resolves():
    for script in sorted((ROOT / "workflow" / "scripts").glob("*.py")):
        files = import_closure(script, ROOT / "src")
        assert script in files
