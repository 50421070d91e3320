"""Code hashes of workflow scripts, attached to every script rule as its `code` param.

Snakemake does not see edits of the library a script imports, and it reruns a script's jobs
when the script's modification time changes, also when its content did not (a fresh clone, a
checkout). The workflow therefore turns Snakemake's own code trigger off and gives every script
rule a `code` param: a hash of the *content* of the script and of its import closure within
`weightspace`, found by static analysis, so that no hand-written list can go stale.

The closure of a file holds:
- every `weightspace` module it imports, at any depth of the file (also imports inside
  functions), with the `__init__.py` of each enclosing package;
- for `from package import name` where the package loads `name` lazily
  (`weightspace.lazy.lazy_attributes`), the module that defines `name`; importing such a
  package as a whole counts all its lazy modules;
- the files a module names by a string literal next to it, such as a C source or a YAML
  registry (`"csrc"` counts every C and data file under that folder).
"""

from __future__ import annotations

import ast
import hashlib
from functools import lru_cache
from pathlib import Path

PACKAGE = "weightspace"
DATA_SUFFIXES = (".c", ".h", ".yaml", ".yml", ".json")


def _module_file(src_root: Path, module: str) -> Path | None:
    base = src_root.joinpath(*module.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _is_package(src_root: Path, module: str) -> bool:
    return (src_root.joinpath(*module.split(".")) / "__init__.py").is_file()


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_bytes(), filename=str(path))


@lru_cache(maxsize=None)
def _lazy_map(init_file: Path) -> dict[str, str]:
    """{attribute: submodule} of a package that uses `lazy_attributes(__name__, MAP, ...)`."""
    tree = _parse(init_file)
    assigned = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    assigned[target.id] = node.value
    found = {}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and len(node.args) >= 2):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        if name != "lazy_attributes":
            continue
        mapping = node.args[1]
        if isinstance(mapping, ast.Name):
            mapping = assigned.get(mapping.id)
        if mapping is None:
            raise ValueError(
                f"{init_file}: cannot read the lazy_attributes map statically"
            )
        for module, names in ast.literal_eval(mapping).items():
            found.update({attr: module for attr in names})
    return found


def _imports(path: Path, module: str, is_package: bool) -> list[tuple[str, tuple]]:
    """(module, names) pairs of every import in a file; names is () for `import module`."""
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(_parse(path)):
        if isinstance(node, ast.Import):
            found += [(alias.name, ()) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            found.append((target, tuple(alias.name for alias in node.names)))
    return found


def _named_files(path: Path) -> set[Path]:
    """Data and C files next to a module that it names by a string literal."""
    files = set()
    for node in ast.walk(_parse(path)):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
            continue
        name = node.value
        if not name or len(name) > 200 or name.startswith(("/", ".")) or "\n" in name:
            continue
        candidate = path.parent / name
        if candidate.is_file() and candidate.suffix in DATA_SUFFIXES:
            files.add(candidate)
        elif "/" not in name and candidate.is_dir():
            files |= {
                f
                for f in candidate.rglob("*")
                if f.is_file() and f.suffix in DATA_SUFFIXES
            }
    return files


def import_closure(script: str | Path, src_root: str | Path) -> list[Path]:
    """The script and every file of `weightspace` it depends on (see the module docstring)."""
    src_root = Path(src_root).resolve()
    script = Path(script).resolve()
    files = {script}
    modules_done = set()
    pending = [(script, None, False)]  # (file, its module name, is a package __init__)

    def add_module(module: str, whole_package: bool) -> None:
        parts = module.split(".")
        for depth in range(1, len(parts) + 1):  # enclosing packages run their __init__
            name = ".".join(parts[:depth])
            file = _module_file(src_root, name)
            if file is None:
                raise ModuleNotFoundError(
                    f"{module} is imported but {name} is not under {src_root}"
                )
            if name not in modules_done:
                modules_done.add(name)
                pending.append((file, name, _is_package(src_root, name)))
        if whole_package and _is_package(src_root, module):
            for sub in set(_lazy_map(_module_file(src_root, module)).values()):
                add_module(f"{module}.{sub}", False)

    while pending:
        file, module, is_package = pending.pop()
        files.add(file)
        if module is not None:
            files |= _named_files(file)
        for target, names in _imports(file, module or "", is_package):
            if target != PACKAGE and not target.startswith(PACKAGE + "."):
                continue
            if not names:
                add_module(target, True)
                continue
            add_module(target, False)
            lazy = (
                _lazy_map(_module_file(src_root, target))
                if _is_package(src_root, target)
                else {}
            )
            for name in names:
                if _module_file(src_root, f"{target}.{name}") is not None:
                    add_module(f"{target}.{name}", True)
                elif name in lazy:
                    add_module(f"{target}.{lazy[name]}", False)
                elif name == "*":
                    for sub in set(lazy.values()):
                        add_module(f"{target}.{sub}", False)
    return sorted(files)


def files_hash(files, root: str | Path) -> str:
    """sha256 over (path relative to root, content) of the files, order independent."""
    root = Path(root).resolve()
    digest = hashlib.sha256()
    for f in sorted(Path(f).resolve() for f in files):
        digest.update(str(f.relative_to(root)).encode())
        digest.update(b"\0")
        digest.update(f.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def script_hash(script: str | Path, src_root: str | Path) -> str:
    """The `code` param of a script rule: its closure's content, paths relative to the
    repository (the folder above src/), so that a copy or a clone hashes the same."""
    src_root = Path(src_root).resolve()
    return files_hash(import_closure(script, src_root), src_root.parent)
