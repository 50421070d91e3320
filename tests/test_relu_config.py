"""Semantic checks of the relu config (weightspace.relu.config.check), no Snakemake."""

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from weightspace.relu.config import check

CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"


def _load(scale: str) -> dict:
    return yaml.safe_load((CONFIG_DIR / f"{scale}.yaml").read_text())


@pytest.mark.parametrize("scale", ["quick", "paper", "tiny"])
def test_the_shipped_configs_pass(scale):
    assert check(_load(scale)) == []


def _broken(change) -> list[str]:
    config = copy.deepcopy(_load("quick"))
    change(config["relu"])
    return check(config)


def _variant(relu, **kw):
    return {**relu["mc"]["variants"][0], **kw}


@pytest.mark.parametrize(
    "change, expected",
    [
        (
            lambda r: r["mc"]["variants"].append(_variant(r)),
            "relu.mc.variants: the name 'gd_large_sufficient' is given to more than one",
        ),
        (
            lambda r: r["mc"].update(widths=[16, 32, 16]),
            "relu.mc.widths: m = 16 is listed more than once",
        ),
        (
            lambda r: r["mc"].update(offsets=[0, 0.0, 0.1]),
            "relu.mc.offsets: 0, 0.0 are one offset (label '0')",
        ),
        (
            lambda r: r["mc"].update(offsets=[0.0, -0.0]),
            "relu.mc.offsets: 0.0, -0.0 are one offset; list it once",
        ),
        (
            lambda r: r["mc"].update(offsets=[0.1234567]),
            "relu.mc.offsets: 0.1234567 is written '0.123457' in paths and seeds",
        ),
        (
            lambda r: r["mc"].update(offsets=[float("inf")]),
            "relu.mc.offsets: inf is not a finite number",
        ),
        (
            lambda r: r["kink_distributions"].update(dims=[1, 4, 1]),
            "relu.kink_distributions.dims: d = 1 is listed more than once",
        ),
        (
            lambda r: r["star"]["widths"].append(
                {"width": 64, "nets": 8, "chunk_nets": 8}
            ),
            "relu.star.widths: m = 64 has more than one entry",
        ),
        (
            lambda r: r["star"].update(stage_epochs=10_000),
            "relu.star.stage_epochs = 10000 exceeds relu.star.epochs = 6000",
        ),
        (
            lambda r: r["setups"].update(distributions=["ex-distr", "rad-distr-1"] * 2),
            "relu.setups.distributions: rad-distr-1 is listed more than once",
        ),
        (
            lambda r: r["setups"].update(figure_bias_inits=["zero", "unif-pos"]),
            "relu.setups.figure_bias_inits ['unif-pos'] are not in relu.setups.bias_inits",
        ),
        (
            lambda r: r["setups"].update(figure_bias_inits=["unif"]),
            "relu.setups.figure_bias_inits must contain zero",
        ),
        (
            lambda r: r["setups"].update(distributions=["ex-distr"]),
            "relu.setups.distributions needs at least one rad-distr-<d>",
        ),
        (
            lambda r: r["setups"].update(distributions=["rad-distr-1", "rad-distr-2"]),
            "relu.setups.distributions must contain ex-distr",
        ),
        (
            lambda r: r["setups"].update(
                distributions=["ex-distr", "rad-distr-1", "rad-x"]
            ),
            "relu.setups.distributions: 'rad-x' is neither ex-distr nor rad-distr-<d>",
        ),
        (
            lambda r: r["setups"].update(batch_size=512),
            "relu.setups: n_train = train_per_dim * d = 256 for ex-distr is not a multiple of "
            "batch_size = 512",
        ),
        (
            lambda r: r["setups"].update(max_batch_nets=3),
            "relu.setups.max_batch_nets = 3 is below relu.setups.nets = 4",
        ),
        (
            lambda r: r["examples"]["configs"].append(
                dict(r["examples"]["configs"][0])
            ),
            "relu.examples.configs: kaiming/gd/zero is listed more than once",
        ),
        (
            lambda r: r["examples"]["configs"].append(
                {"parameterisation": "ntk", "optimizer": "gd-mom", "bias_init": "zero"}
            ),
            "relu.examples.configs entry {'parameterisation': 'ntk', 'optimizer': 'gd-mom', "
            "'bias_init': 'zero'} is not part of the relu.setups grid",
        ),
        (
            lambda r: r["examples"]["reference"].update(width=15),
            "relu.examples.reference.width = 15 must be even",
        ),
    ],
)
def test_each_problem_is_named(change, expected):
    problems = _broken(change)
    assert any(p.startswith(expected) for p in problems), problems


def test_every_problem_is_reported_at_once():
    def change(relu):
        relu["mc"]["widths"] = [16, 16]
        relu["star"]["stage_epochs"] = 10_000
        relu["examples"]["reference"]["width"] = 15

    problems = _broken(change)
    assert len(problems) == 3
    assert [p.split(" ")[0].split(":")[0] for p in problems] == [
        "relu.mc.widths",
        "relu.star.stage_epochs",
        "relu.examples.reference.width",
    ]


def test_the_check_imports_neither_torch_nor_snakemake():
    code = "import sys, weightspace.relu.config; print(' '.join(sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout.split()
    assert not {"torch", "snakemake", "numpy"} & set(out)
