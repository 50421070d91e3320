"""Package attributes that load their module on first use.

Importing torch, torchvision or pyfaust takes seconds; jobs that only plot or tabulate results
should not pay for the modules of a package they never touch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence


def lazy_attributes(
    package: str, modules: Mapping[str, Sequence[str]], namespace: dict
) -> Callable[[str], object]:
    """A module ``__getattr__`` for ``package`` that imports ``.<module>`` when one of its
    listed names is first asked for, and caches the value in the package's ``namespace``."""
    where = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str):
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{module}", package), name)
        namespace[name] = value
        return value

    return __getattr__
