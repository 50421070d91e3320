"""Jobs start fast: heavy libraries are imported only by the modules that use them."""

import subprocess
import sys

import pytest

from weightspace.lazy import lazy_attributes


def _imported_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    return set(out.split())


@pytest.mark.parametrize(
    "statement, absent",
    [
        ("import weightspace.structured.summaries", {"torch", "pyfaust"}),
        ("import weightspace.data.seeds", {"sklearn", "torchvision"}),
        (
            "from weightspace.structured import approximate_low_rank",
            {"pyfaust", "torchvision"},
        ),
    ],
)
def test_modules_do_not_import_what_they_do_not_use(statement, absent):
    assert not absent & _imported_after(statement)


def test_lazy_attributes_load_on_first_use_and_cache():
    namespace = {}
    getattr_ = lazy_attributes("weightspace.relu", {"criterion": ["points"]}, namespace)
    from weightspace.relu.criterion import points

    assert getattr_("points") is points and namespace["points"] is points
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        getattr_("nope")


@pytest.mark.parametrize(
    "module", ["weightspace.relu.mc_summary", "weightspace.relu.star_summary"]
)
def test_relu_summaries_do_not_import_torch(module):
    assert "torch" not in _imported_after(f"import {module}")


@pytest.mark.parametrize(
    "module",
    [
        "weightspace.teleport.jobs",
        "weightspace.teleport.config",
        "weightspace.teleport.summaries",
        "weightspace.teleport.convergence",
    ],
)
def test_teleport_workflow_and_summaries_do_not_import_torch(module):
    assert "torch" not in _imported_after(f"import {module}")


@pytest.mark.parametrize(
    "module",
    ["weightspace.rbd.jobs", "weightspace.rbd.config", "weightspace.rbd.table1"],
)
def test_rbd_workflow_and_summaries_do_not_import_torch(module):
    assert "torch" not in _imported_after(f"import {module}")
