"""Aggregates read each expected chunk exactly once (weightspace.pipeline.chunks)."""

import json
import subprocess
import sys

import pytest

from weightspace.pipeline.chunks import (
    check_chunks,
    check_tables,
    read_runs,
    split_runs,
)

EXPECTED = [("gd", "0", 16, 0), ("gd", "0", 16, 1), ("gd", "0.1", 16, 0)]


def test_every_expected_chunk_once_in_any_order_passes():
    check_chunks(list(reversed(EXPECTED)), EXPECTED, "chunks")
    check_chunks(iter(EXPECTED), iter(EXPECTED), "chunks")  # one pass over each
    check_chunks([], [], "chunks")
    check_chunks(["ex-distr", "rad-distr-2"], None, "jobs")  # duplicates only


def test_duplicates_are_named_with_their_count():
    found = EXPECTED + [EXPECTED[1], EXPECTED[1], EXPECTED[2]]
    with pytest.raises(ValueError) as error:
        check_chunks(found, EXPECTED, "relu_mc_aggregate chunks")
    message = str(error.value)
    assert message.startswith("relu_mc_aggregate chunks: read more than once: ")
    assert "(gd, 0, 16, 1) x3" in message and "(gd, 0.1, 16, 0) x2" in message
    assert "missing" not in message and "not asked for" not in message
    with pytest.raises(ValueError, match=r"jobs: read more than once: ex-distr x2"):
        check_chunks(["ex-distr", "ex-distr"], None, "jobs")


def test_every_missing_and_unexpected_chunk_is_named():
    found = [EXPECTED[0], ("gd", "0.2", 16, 0), ("adam", "0", 16, 0)]
    with pytest.raises(ValueError) as error:
        check_chunks(found, EXPECTED, "relu_mc_aggregate chunks")
    message = str(error.value)
    assert "missing: (gd, 0, 16, 1), (gd, 0.1, 16, 0)" in message
    assert "not asked for by the config: (gd, 0.2, 16, 0), (adam, 0, 16, 0)" in message
    assert "read more than once" not in message


def test_all_problems_are_reported_together():
    found = [EXPECTED[0], EXPECTED[0], ("x",)]
    with pytest.raises(ValueError) as error:
        check_chunks(found, EXPECTED[:2], "chunks")
    message = str(error.value)
    assert "read more than once: (gd, 0, 16, 0) x2" in message
    assert "missing: (gd, 0, 16, 1)" in message
    assert "not asked for by the config: (x)" in message


def test_the_module_is_light():
    code = "import sys, weightspace.pipeline.chunks; print(' '.join(sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout.split()
    assert not {"torch", "numpy", "pandas", "snakemake"} & set(out)


def test_check_tables_refuses_a_table_copied_over_another():
    import pandas as pd

    lr, sss = pd.DataFrame({"method": ["LR", "LR"]}), pd.DataFrame({"method": ["SSS"]})
    check_tables([lr, sss], "method", ["LR", "SSS"], "methods")  # one table per name
    with pytest.raises(
        ValueError, match=r"methods: read more than once: LR x2 .*; missing: SSS"
    ):
        check_tables([lr, lr], "method", ["LR", "SSS"], "methods")
    both = pd.concat([lr, sss])
    with pytest.raises(ValueError, match="not asked for by the config: SSS"):
        check_tables([both], "method", ["LR"], "methods")


def test_read_runs_concatenates_the_runs_of_every_file_in_order(tmp_path):
    paths = []
    for name, runs in (("b", [{"i": 2}, {"i": 3}]), ("a", [{"i": 1}])):
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps({"runs": runs}))
    assert read_runs(paths) == [{"i": 2}, {"i": 3}, {"i": 1}]
    assert read_runs([]) == []


def test_split_runs_cuts_in_order_with_a_short_last_job():
    assert split_runs(list(range(7)), 3) == [[0, 1, 2], [3, 4, 5], [6]]
    assert split_runs(list(range(6)), 3) == [[0, 1, 2], [3, 4, 5]]
    assert split_runs([], 3) == []
