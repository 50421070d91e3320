"""Semantic checks of the structured config (weightspace.structured.config), without
Snakemake: the shipped scales pass, and each broken setting gets a message naming the
key."""

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from weightspace.structured.approximators import METHODS
from weightspace.structured.config import (
    APPROXIMATOR_OPTIONS,
    TRAINABLE_METHODS,
    check,
)

ROOT = Path(__file__).resolve().parents[1]


def load(scale):
    return yaml.safe_load((ROOT / "config" / f"{scale}.yaml").read_text())


@pytest.mark.parametrize("scale", ["quick", "paper", "tiny"])
def test_shipped_configs_pass(scale):
    assert check(load(scale)) == []


def _broken(change):
    config = load("quick")
    change(config["structured"])
    return check(config)


def _duplicate_first(key):
    """A second entry with the name of the first (the schema's uniqueItems only refuses
    identical entries; the copy's other fields are irrelevant here)."""

    def change(s):
        section, entries = key.split(".")
        s[section][entries].append(copy.deepcopy(s[section][entries][0]))

    return change


@pytest.mark.parametrize(
    "key",
    [
        "speed.shapes",
        "approximation.methods",
        "finetune_table.methods",
        "testmatrices.approximators",
        "pretrained.class_lists",
    ],
)
def test_names_must_be_unique(key):
    problems = _broken(_duplicate_first(key))
    assert len(problems) == 1
    assert f"'structured.{key}'" in problems[0]
    assert "is given to several" in problems[0] and "own name" in problems[0]


def test_every_problem_is_reported_at_once():
    def change(s):
        s["speed"]["shapes"].append(dict(s["speed"]["shapes"][0]))
        s["approximation"]["methods"].append(dict(s["approximation"]["methods"][0]))
        s["finetune_table"]["methods"].append(dict(s["finetune_table"]["methods"][0]))

    problems = _broken(change)
    assert len(problems) == 3
    for key in ("speed.shapes", "approximation.methods", "finetune_table.methods"):
        assert any(f"'structured.{key}'" in p for p in problems)


@pytest.mark.parametrize(
    "section, features",
    [
        ("finetune_table", ["small_cnn", "resnet18/mammals"]),
        ("approximation", "inception_v3/mammals"),
        ("finetune", "resnet18/mammals"),
    ],
)
def test_feature_sets_name_known_class_subsets(section, features):
    problems = _broken(lambda s: s[section].__setitem__("features", features))
    assert len(problems) == 1
    assert f"'structured.{section}.features'" in problems[0]
    assert "'mammals'" in problems[0] and "animal, object" in problems[0]
    assert "class_lists" in problems[0]


def test_known_class_subsets_pass():
    def change(s):
        s["finetune_table"]["features"] = ["small_cnn", "resnet18/object"]

    assert _broken(change) == []


def test_approximator_options_are_required():
    def change(s):
        del s["approximation"]["methods"][0]["n_stages"]  # SSS_K16, method sss
        del s["testmatrices"]["approximators"][3]["factor_counts"]  # PSM, psm_search

    problems = _broken(change)
    assert len(problems) == 2
    assert "'structured.testmatrices.approximators'" in problems[0]
    assert "'PSM' (method psm_search) needs factor_counts" in problems[0]
    assert "'structured.approximation.methods'" in problems[1]
    assert "'SSS_K16' (method sss) needs n_stages" in problems[1]


@pytest.mark.parametrize(
    "section, message",
    [
        ("finetune_table", "'TL' (method tl) has no trainable layer"),
        ("approximation", "'TL' (method tl) approximates square matrices only"),
    ],
)
def test_methods_must_suit_the_target(section, message):
    tl = {"name": "TL", "method": "tl"}
    problems = _broken(lambda s: s[section]["methods"].append(tl))
    assert len(problems) == 1
    assert f"'structured.{section}.methods'" in problems[0] and message in problems[0]


def test_finetune_shares_need_distinct_labels():
    problems = _broken(lambda s: s["finetune"]["shares"].append(0.1000000001))
    assert len(problems) == 1
    assert "'structured.finetune.shares'" in problems[0]
    assert "print as 0.1" in problems[0]


def test_test_matrix_sizes_fit_together():
    def change(s):
        s["testmatrices"]["sss_stage_size"] = 7
        s["testmatrices"]["low_rank"] = 101

    problems = _broken(change)
    assert len(problems) == 2
    assert "'structured.testmatrices.sss_stage_size' = 7 does not divide" in problems[0]
    assert "'structured.testmatrices.low_rank' = 101 exceeds" in problems[1]


def test_tables_agree_with_the_library():
    from weightspace.structured.approximators import LABELS
    from weightspace.structured.finetuning import TRAINABLE

    assert set(APPROXIMATOR_OPTIONS) == set(METHODS)
    assert set(TRAINABLE_METHODS) == {m for m in METHODS if LABELS[m] in TRAINABLE}


def test_check_imports_neither_torch_nor_pyfaust():
    code = (
        "import sys; import weightspace.structured.config; "
        "print(' '.join(sorted({'torch', 'pyfaust', 'snakemake'} & set(sys.modules))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert out.strip() == ""
