"""How the relu experiments are cut into jobs, and what each job reads of the config
(weightspace.relu.jobs): a job's config slice changes exactly with what the job uses."""

import copy
from pathlib import Path

import pytest
import yaml

from weightspace.relu.jobs import (
    chunk_count,
    chunk_size,
    examples_job_config,
    mc_chunks,
    mc_job_config,
    setups_job_config,
    star_chunks,
    star_job_config,
)

CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"


@pytest.fixture
def config():
    return yaml.safe_load((CONFIG_DIR / "quick.yaml").read_text())


@pytest.mark.parametrize("total, per_chunk", [(1, 1), (10, 3), (12, 4), (5, 100)])
def test_chunks_hold_every_item_once(total, per_chunk):
    sizes = [
        chunk_size(total, per_chunk, c) for c in range(chunk_count(total, per_chunk))
    ]
    assert sum(sizes) == total
    assert all(0 < s <= per_chunk for s in sizes)


def test_every_mc_chunk_is_its_own_job_and_runs_add_up(config):
    mc = config["relu"]["mc"]
    chunks = mc_chunks(mc)
    assert len(set(chunks)) == len(chunks)
    for variant in {c[0] for c in chunks}:
        for width in mc["widths"]:
            ids = [c[3] for c in chunks if c[0] == variant and c[2] == width]
            runs = sum(mc_job_config(config, variant, c)["runs"] for c in set(ids))
            assert runs == mc["runs"]


def test_an_mc_job_reads_only_its_own_variant(config):
    name = config["relu"]["mc"]["variants"][0]["name"]
    before = mc_job_config(config, name, 0)
    other = copy.deepcopy(config)
    other["relu"]["mc"]["variants"][1]["lr"] = 123.0  # another variant
    other["relu"]["mc"]["widths"].append(4096)  # another width
    assert mc_job_config(other, name, 0) == before
    other["relu"]["mc"]["variants"][0]["lr"] = 123.0
    assert mc_job_config(other, name, 0) != before


def test_star_jobs_split_each_width_and_unknown_chunks_are_named(config):
    star = config["relu"]["star"]
    for entry in star["widths"]:
        nets = [n for w, _, n in star_chunks(star) if w == entry["width"]]
        assert sum(nets) == entry["nets"]
        assert star_job_config(config, entry["width"], 0)["nets"] == nets[0]
    with pytest.raises(ValueError, match="no chunk 999 of width 8 in relu.star.widths"):
        star_job_config(config, 8, 999)


def test_setups_and_examples_jobs_ignore_what_only_the_figure_reads(config):
    setups, examples = setups_job_config(config), examples_job_config(config)
    other = copy.deepcopy(config)
    other["relu"]["setups"]["distributions"] = other["relu"]["setups"]["distributions"][
        :1
    ]
    other["relu"]["setups"]["figure_bias_inits"] = []
    assert setups_job_config(other) == setups
    assert examples_job_config(other) == examples
    other["relu"]["setups"]["width"] += 1  # the protocol both retrain with
    assert setups_job_config(other) != setups
    assert examples_job_config(other) != examples
