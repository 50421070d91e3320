"""What each structured job reads of the config (weightspace.structured.jobs): a job's
config slice changes exactly with what the job uses."""

import copy
from pathlib import Path

import pytest
import yaml

from weightspace.structured.jobs import (
    approximation_job_config,
    class_list_file,
    share_label,
    speed_job_config,
    table_job_config,
)

CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"


@pytest.fixture
def config():
    return yaml.safe_load((CONFIG_DIR / "paper.yaml").read_text())


def _with_another(config, *keys):
    """A copy of the config with one more entry in the list at `keys`; the first entry's name."""
    other = copy.deepcopy(config)
    entries = other
    for key in keys:
        entries = entries[key]
    entries.append({**entries[0], "name": "another"})
    return other, entries[0]["name"]


def test_a_speed_job_reads_only_its_own_shape(config):
    other, name = _with_another(config, "structured", "speed", "shapes")
    before = speed_job_config(config, name)
    assert before["shape"]["name"] == name and "shapes" not in before
    assert speed_job_config(other, name) == before


def test_an_approximation_job_reads_only_its_own_method(config):
    other, name = _with_another(config, "structured", "approximation", "methods")
    before = approximation_job_config(config, name)
    assert approximation_job_config(other, name) == before
    other["structured"]["psm_iterations"] += 1  # read by every approximation
    assert approximation_job_config(other, name) != before


def test_a_table_job_reads_its_method_and_feature_set(config):
    other, name = _with_another(config, "structured", "finetune_table", "methods")
    before = table_job_config(config, name, "small_cnn")
    assert before["finetune_table"]["features"] == "small_cnn"
    assert table_job_config(other, name, "small_cnn") == before
    assert table_job_config(config, name, "resnet50/subset") != before


def test_labels_and_class_lists(config):
    assert [share_label(s) for s in (0.05, 0.2, 1.0)] == ["0.05", "0.2", "1"]
    entry = config["structured"]["pretrained"]["class_lists"][0]
    assert class_list_file(config, entry["name"]) == entry["file"]
    with pytest.raises(
        ValueError, match="'nope' is not in structured.pretrained.class_lists"
    ):
        class_list_file(config, "nope")
