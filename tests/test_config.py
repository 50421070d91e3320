"""The config rule: strict YAML, complete files or `extends`, integers, NaN, safe paths,
unique job lists, each paper's semantic checks; every problem named with its fix."""

import math
from pathlib import Path

import pytest
import yaml

from weightspace.pipeline.config import (
    ConfigError,
    check_config,
    load_config_file,
    resolve_config,
)

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "config"


def quick():
    return yaml.safe_load((CONFIG_DIR / "quick.yaml").read_text())


def resolve(*paths, overrides=None):
    return resolve_config([str(p) for p in paths], overrides, CONFIG_DIR)


@pytest.mark.parametrize("scale", ["quick", "paper", "tiny"])
def test_shipped_scales_are_complete_and_valid(scale):
    config = resolve(CONFIG_DIR / f"{scale}.yaml")
    assert config["scale"] == scale and "extends" not in config


@pytest.mark.parametrize(
    "text, message",
    [
        ("run_name: x\nseed: [1, 2\nthreads: 1\n", r"line 3, column \d+: invalid YAML"),
        (
            "extends: quick\nrelu:\n  mc:\n    runs: 10\n    runs: 20\n",
            r"line 5: key 'runs' is given twice.*line 4",
        ),
    ],
    ids=["syntax-error", "duplicate-key"],
)
def test_yaml_problems_name_file_and_line(tmp_path, text, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(ConfigError, match=r"bad\.yaml, " + message):
        resolve(bad)


def test_partial_file_without_extends_is_reported_never_filled_from_quick(tmp_path):
    partial = tmp_path / "mine.yaml"
    partial.write_text("seed: 5\nrelu:\n  mc:\n    runs: 10\n")
    with pytest.raises(ConfigError) as error:
        resolve(partial)
    message = str(error.value)
    assert "mine.yaml is incomplete" in message and "run_name" in message
    assert "extends: quick" in message


def test_extends_merges_over_the_named_scale(tmp_path):
    mine = tmp_path / "mine.yaml"
    mine.write_text("extends: paper\nrun_name: mine\ndevice: cpu\n")
    config = resolve(mine)
    paper = resolve(CONFIG_DIR / "paper.yaml")
    assert config["run_name"] == "mine" and config["device"] == "cpu"
    assert config["relu"] == paper["relu"] and config["scale"] == "paper"


def test_extends_by_relative_path_and_cycles(tmp_path):
    (tmp_path / "base.yaml").write_text((CONFIG_DIR / "tiny.yaml").read_text())
    child = tmp_path / "child.yaml"
    child.write_text("extends: base.yaml\nrun_name: child\n")
    assert resolve(child)["run_name"] == "child"
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("extends: b.yaml\n")
    b.write_text("extends: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config_file(a, CONFIG_DIR)
    missing = tmp_path / "m.yaml"
    missing.write_text("extends: nonexistent_scale\n")
    with pytest.raises(
        ConfigError, match="nonexistent_scale.yaml, which does not exist"
    ):
        resolve(missing)


def test_overrides_apply_last():
    config = resolve(CONFIG_DIR / "quick.yaml", overrides={"seed": 9})
    assert config["seed"] == 9


@pytest.mark.parametrize(
    "edit, message",
    [
        # integers are integers (JSON Schema alone takes 20200211.0)
        (lambda c: c.update(seed=20200211.0), r"'seed' = 20200211\.0 is invalid"),
        (lambda c: c["relu"]["mc"].update(runs=256.0), r"'relu\.mc\.runs' = 256\.0"),
        # NaN and infinity, named by key
        (
            lambda c: c["relu"]["mc"].update(offsets=[math.nan]),
            r"'relu\.mc\.offsets\.0' is NaN or infinite",
        ),
        (
            lambda c: c["structured"]["finetune"].update(lr=math.inf),
            r"'structured\.finetune\.lr' is NaN or infinite",
        ),
        # lists that name jobs are unique
        (
            lambda c: c["relu"]["mc"].update(widths=[8, 8]),
            r"'relu\.mc\.widths'.*unique",
        ),
        (
            lambda c: c["relu"]["mc"].update(offsets=[0.0, 0]),
            r"'relu\.mc\.offsets'.*unique",
        ),
        # safe results paths
        (lambda c: c.update(results_dir=""), r"'results_dir' is empty"),
        (
            lambda c: c.update(results_dir="/"),
            r"'results_dir' = '/' is the filesystem root",
        ),
        (
            lambda c: c.update(results_dir="results/../.."),
            r"'results_dir'.*contains '\.\.'",
        ),
        (
            lambda c: c.update(run_name=".."),
            r"'run_name' = '\.\.' is not a folder name",
        ),
        (lambda c: c.update(run_name="a/b"), r"'run_name' = \"a/b\" is invalid"),
    ],
)
def test_bad_values_are_named_with_the_fix(edit, message):
    config = quick()
    edit(config)
    with pytest.raises(ConfigError, match=message):
        check_config(config)


def test_every_problem_is_reported_at_once():
    config = quick()
    config.update(seed=1.5, results_dir="")
    config["relu"]["mc"]["widths"] = [8, 8]
    with pytest.raises(ConfigError) as error:
        check_config(config)
    text = str(error.value)
    assert "'seed'" in text and "results_dir" in text and "relu.mc.widths" in text


def test_paper_checks_run_after_the_schema():
    config = quick()
    config["relu"]["setups"]["figure_bias_inits"] = ["unif"]  # no zero baseline
    with pytest.raises(ConfigError, match="figure_bias_inits must contain zero"):
        check_config(config)


def test_check_command_names_the_line(tmp_path, capsys):
    from weightspace.pipeline.config import main

    assert main(["check", str(CONFIG_DIR / "tiny.yaml")]) == 0
    assert "OK:" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("extends: quick\nseed: [1\n")
    assert main(["check", str(bad)]) == 1
    assert "bad.yaml, line 3" in capsys.readouterr().err
