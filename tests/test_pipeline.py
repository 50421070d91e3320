"""Target registry, config schema and scales, README table, code hashes."""

from pathlib import Path

import pytest
import yaml

from weightspace.pipeline.config import (
    ConfigError,
    check_config,
    config_slice_json,
    leaf_keys,
)
from weightspace.pipeline.registry import load_registry, render_readme

ROOT = Path(__file__).resolve().parents[1]
SCALES = ("quick", "paper", "tiny")
SPEC_TARGETS = {
    "teleport": [
        "teleport_fig4_micro",
        "teleport_fig5_flatness",
        "teleport_fig6_convergence",
        "teleport_fig7_gradients",
        "teleport_fig8_activations",
        "teleport_fig9_initializers",
        "teleport_fig10_pseudo",
        "teleport_fig11_histograms",
    ],
    "rbd": [
        "rbd_table1",
        "rbd_fig_dimensions",
        "rbd_fig_compartments",
        "rbd_fig_correlation",
        "rbd_table_distributed",
    ],
    "credit": ["credit_table_rules", "credit_fig_alignment", "credit_fig_noise"],
    "relu": [
        "relu_fig_mc",
        "relu_fig_star",
        "relu_fig_setups",
        "relu_table_setups",
        "relu_fig_kink_distributions",
        "relu_fig_examples",
    ],
    "structured": [
        "structured_fig_approximation",
        "structured_fig_finetune",
        "structured_fig_speed",
        "structured_table_testmatrices",
        "structured_table_finetune",
    ],
}


def load(scale):
    return yaml.safe_load((ROOT / "config" / f"{scale}.yaml").read_text())


def test_registry_lists_every_spec_target_once():
    registry = load_registry()
    for paper, names in SPEC_TARGETS.items():
        assert sorted(t.name for t in registry.of_paper(paper)) == sorted(names)
    assert len(registry.targets) == sum(map(len, SPEC_TARGETS.values()))


def test_readme_table_is_up_to_date():
    readme = (ROOT / "README.md").read_text()
    assert render_readme(readme, load_registry()) == readme, (
        "README target table is out of date: run `make readme`"
    )


def test_registry_outputs_follow_convention():
    t = load_registry().by_name("relu_fig_kink_distributions")
    assert t.outputs("results/quick") == [
        f"results/quick/relu/relu_fig_kink_distributions.{e}"
        for e in ("pdf", "png", "csv", "claims.json")
    ]
    with pytest.raises(KeyError, match="unknown target"):
        load_registry().by_name("relu_fig_nonexistent")


@pytest.mark.parametrize("scale", SCALES)
def test_every_scale_config_is_valid(scale):
    config = load(scale)
    check_config(config)
    assert config["run_name"] == scale and config["scale"] == scale


def test_scales_set_the_same_keys():
    # A later --configfile replaces every value of an earlier one only if both set every key.
    keys = {scale: leaf_keys(load(scale)) for scale in SCALES}
    assert keys["quick"] == keys["paper"] == keys["tiny"]


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda c: c.update(device="gpu"),
            r"'device' = \"gpu\" is invalid.*auto, cpu, cuda",
        ),
        (
            lambda c: c["relu"]["kink_distributions"].update(samples=5),
            r"relu\.kink_distributions\.samples.*>= 100",
        ),
        (
            lambda c: c["relu"]["kink_distributions"].update(sample=5),
            r"unknown config key 'relu\.kink_distributions\.sample'.*allowed keys here: "
            r"dims, grid_points, samples",
        ),
        (lambda c: c["data"].pop("download"), r"missing config key 'data\.download'"),
        (
            lambda c: c.update(scale="huge"),
            r"'scale'.*one of \"tiny\", \"quick\", \"paper\"",
        ),
    ],
)
def test_bad_config_names_key_and_allowed_values(edit, message):
    config = load("quick")
    edit(config)
    with pytest.raises(ConfigError, match=message):
        check_config(config)


def test_config_slice_is_canonical():
    a = {"seed": 1, "relu": {"k": {"b": 2, "a": [1, 2]}}}
    b = {"relu": {"k": {"a": [1, 2], "b": 2}}, "seed": 1}
    assert config_slice_json(a, ["seed", "relu.k"]) == config_slice_json(
        b, ["relu.k", "seed"]
    )
    assert config_slice_json(a, ["relu.k"]) != config_slice_json(
        {"relu": {"k": {"b": 3}}}, ["relu.k"]
    )


def test_conda_environment_has_the_same_pins_as_pyproject():
    import tomllib

    pins = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "dependencies"
    ]
    env = yaml.safe_load((ROOT / "envs" / "weightspace.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert sorted(pip) == sorted(pins)


def test_readme_claims_cell_counts_decided_claims_apart_from_inapplicable_ones():
    from weightspace.pipeline.claims import claim
    from weightspace.pipeline.registry import _reproduced_cell

    holds, fails, na = (claim(x, "p", x, v) for x, v in zip("abc", (True, False, None)))
    cell = _reproduced_cell("t", {"t": [holds, fails, na]})
    assert (
        cell == "quick: a; b; c (1 of 2 claims hold, 1 not applicable at quick scale)"
    )
    only_na = _reproduced_cell("t", {"t": [na]})
    assert only_na == "quick: c (1 not applicable at quick scale)"
    assert _reproduced_cell("t", {}) == "not run yet"
