"""The package layout holds: no paper package imports another, and shared code imports
none.

Read from the source with ast (nothing is imported), so every import counts: top-level,
function-local, conditional, and relative ones.
"""

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = "weightspace"
SRC = Path(__file__).resolve().parents[1] / "src" / PACKAGE
PAPERS = ("relu", "structured", "teleport", "rbd", "credit")
SHARED = (
    "data",
    "models",
    "training",
    "plotting",
    "provenance",
    "pipeline",
    "native",
    "lazy",
    "archive",
)

PRESENT_PAPERS = [
    p for p in PAPERS if (SRC / p).is_dir() or (SRC / f"{p}.py").is_file()
]
PRESENT_SHARED = [
    s for s in SHARED if (SRC / s).is_dir() or (SRC / f"{s}.py").is_file()
]


def _files(part: str) -> list[Path]:
    root = SRC / part
    return sorted(root.rglob("*.py")) if root.is_dir() else [SRC / f"{part}.py"]


def _module_name(path: Path) -> list[str]:
    """The dotted name of the module at `path`, as a list; a package is its
    __init__.py."""
    parts = [PACKAGE, *path.relative_to(SRC).with_suffix("").parts]
    return parts[:-1] if parts[-1] == "__init__" else parts


def imported_modules(path: Path) -> set[str]:
    """Every module named by an import statement anywhere in the file, relative ones
    resolved to absolute names; ``from X import y`` gives both X and X.y (y may be a
    submodule)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = _module_name(path)
    package = here if path.name == "__init__.py" else here[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                base = base + (node.module.split(".") if node.module else [])
            else:
                base = node.module.split(".")
            found.add(".".join(base))
            found.update(".".join([*base, alias.name]) for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, (ast.Name, ast.Attribute))
            and getattr(node.func, "attr", getattr(node.func, "id", None))
            == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.add(node.args[0].value)  # importlib.import_module("weightspace.x")
    return found


def _papers_in(modules: set[str]) -> set[str]:
    return {
        m.split(".")[1]
        for m in modules
        if m.startswith(f"{PACKAGE}.") and m.split(".")[1] in PAPERS
    }


def _violations(part: str, allowed: set[str]) -> list[str]:
    out = []
    for path in _files(part):
        for paper in sorted(_papers_in(imported_modules(path)) - allowed):
            out.append(f"{path.relative_to(SRC.parent)} imports {PACKAGE}.{paper}")
    return out


@pytest.mark.parametrize("paper", PRESENT_PAPERS)
def test_no_paper_package_imports_another(paper):
    assert _violations(paper, allowed={paper}) == []


@pytest.mark.parametrize("shared", PRESENT_SHARED)
def test_shared_code_imports_no_paper_package(shared):
    assert _violations(shared, allowed=set()) == []


def test_the_import_scan_sees_local_and_relative_imports(tmp_path, monkeypatch):
    fake = tmp_path / PACKAGE
    (fake / "relu").mkdir(parents=True)
    code = (
        "import os\n"
        "from . import criterion\n"
        "def f():\n"
        "    from ..structured import cspeed\n"
        "    import weightspace.teleport.core\n"
        "    if True:\n"
        "        from .. import rbd\n"
        "    importlib.import_module('weightspace.credit')\n"
    )
    (fake / "relu" / "ckernel.py").write_text(code)
    monkeypatch.setattr(sys.modules[__name__], "SRC", fake)
    found = imported_modules(fake / "relu" / "ckernel.py")
    assert {
        "weightspace.relu",
        "weightspace.relu.criterion",
        "weightspace.structured.cspeed",
        "weightspace.teleport.core",
        "weightspace.rbd",
        "weightspace.credit",
    } <= found
    assert _papers_in(found) == {"relu", "structured", "teleport", "rbd", "credit"}
    assert _violations("relu", allowed={"relu"}) == [
        f"{PACKAGE}/relu/ckernel.py imports {PACKAGE}.{p}"
        for p in ("credit", "rbd", "structured", "teleport")
    ]


def test_every_present_package_is_covered():
    """A new top-level module must be declared paper or shared, so that it is
    checked."""
    names = {
        p.stem if p.is_file() else p.name
        for p in SRC.iterdir()
        if (p.is_dir() and (p / "__init__.py").is_file())
        or (p.suffix == ".py" and p.name != "__init__.py")
    }
    assert PRESENT_PAPERS, "no paper package found"
    assert names - set(PAPERS) - set(SHARED) == set()


def test_one_word_names_each_paper_everywhere():
    """Paper key = package = rules file = config key = results folder = rule and target
    prefix; a paper with built targets has its package and its config check."""
    import re

    import yaml

    from weightspace.pipeline.registry import load_registry

    root = SRC.parents[1]
    registry = load_registry()
    assert set(registry.papers) == set(PAPERS)
    snakefile = (root / "Snakefile").read_text()
    scales = [
        yaml.safe_load((root / "config" / f"{s}.yaml").read_text())
        for s in ("quick", "paper", "tiny")
    ]
    for paper in PAPERS:
        rules_file = root / "rules" / f"{paper}.smk"
        assert f'include: "rules/{paper}.smk"' in snakefile
        rules = re.findall(r"^rule (\w+):", rules_file.read_text(), re.M)
        assert [r for r in rules if not r.startswith(f"{paper}_")] == [], paper
        assert all(paper in scale for scale in scales), paper
        for target in registry.of_paper(paper):
            assert target.name.startswith(f"{paper}_")
            assert all(o.startswith(f"RUN/{paper}/") for o in target.outputs("RUN"))
        if registry.of_paper(paper, built_only=True):
            assert paper in PRESENT_PAPERS, f"{paper} has built targets but no package"
            assert (SRC / paper / "config.py").is_file(), f"{paper}: add config.check"
