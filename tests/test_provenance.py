"""Atomic writes, canonical JSON and run records."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from weightspace.provenance import (
    RUN_RECORD_SCHEMA,
    RunRecord,
    atomic_path,
    atomic_write_json,
    atomic_write_text,
    canonical_json,
    from_snakemake,
    git_info,
    is_temp_name,
    load_record,
    slurm_info,
    to_jsonable,
    validate_record,
)
from weightspace.provenance.atomic import TEMP_MARKER

SLURM_VARS = (
    "SLURM_JOB_ID",
    "SLURM_ARRAY_JOB_ID",
    "SLURM_ARRAY_TASK_ID",
    "SLURM_JOB_PARTITION",
    "SLURM_CLUSTER_NAME",
    "SLURM_JOB_NODELIST",
)


def _leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if TEMP_MARKER in p.name]


def _strict_json(text: str):
    def reject(token):
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=reject)


# --------------------------------------------------------------------------- atomic writes


def test_atomic_write_text_writes_and_leaves_no_temp(tmp_path):
    target = tmp_path / "deep" / "out.txt"
    atomic_write_text(target, "hello\nworld\n")
    assert target.read_text() == "hello\nworld\n"
    atomic_write_text(target, "second")
    assert target.read_text() == "second"
    assert _leftovers(target.parent) == []
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]


def test_new_file_mode_follows_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    # mkstemp alone would leave 0600; outputs must be readable like any other file.
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644


def test_atomic_path_exception_keeps_old_content_and_cleans_up(tmp_path):
    target = tmp_path / "result.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(target) as tmp:
            tmp.write_text("half-written")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert _leftovers(tmp_path) == []


def test_atomic_path_exception_creates_nothing_when_target_absent(tmp_path):
    with pytest.raises(KeyError):
        with atomic_path(tmp_path / "fig.pdf") as tmp:
            tmp.write_bytes(b"%PDF")
            raise KeyError("x")
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_keeps_suffix_for_format_sniffing_writers(tmp_path):
    target = tmp_path / "arrays.npz"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent
        assert tmp.suffix == ".npz" and is_temp_name(tmp.name)
        np.savez(
            tmp, a=np.arange(4)
        )  # would append ".npz" if the suffix were different
    with np.load(target) as z:
        np.testing.assert_array_equal(z["a"], np.arange(4))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["arrays.npz"]


def test_atomic_write_json_converts_numpy_paths_and_nan(tmp_path):
    where: list[str] = []
    obj = {
        "b": np.float64(0.5),
        "a": np.arange(3, dtype=np.int32),
        "path": Path("results/quick/x.csv"),
        "flag": np.bool_(True),
        "tuple": (1, 2.5),
        "nested": {"loss": float("nan"), "vals": [1.0, float("inf")]},
        1: "int key",
    }
    target = atomic_write_json(tmp_path / "m.json", obj, nonfinite_paths=where)
    text = target.read_text()
    data = _strict_json(text)  # strict: no NaN/Infinity tokens
    assert data == {
        "a": [0, 1, 2],
        "b": 0.5,
        "path": "results/quick/x.csv",
        "flag": True,
        "tuple": [1, 2.5],
        "nested": {"loss": None, "vals": [1.0, None]},
        "1": "int key",
    }
    assert where == ["$.nested.loss", "$.nested.vals[1]"]
    assert text.endswith("\n") and text.index('"1"') < text.index('"a"') < text.index(
        '"b"'
    )


def test_atomic_write_json_failure_keeps_existing_file(tmp_path):
    target = tmp_path / "m.json"
    atomic_write_json(target, {"ok": 1})
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        atomic_write_json(target, {"bad": object()})
    assert json.loads(target.read_text()) == {"ok": 1}
    with pytest.raises(ValueError, match="non-finite"):
        atomic_write_json(target, {"x": float("nan")}, nonfinite="error")
    assert json.loads(target.read_text()) == {"ok": 1}
    assert _leftovers(tmp_path) == []


def test_to_jsonable_torch_tensor():
    torch = pytest.importorskip("torch")
    t = torch.tensor([[1.0, 2.0]], requires_grad=True) * 2
    assert to_jsonable({"t": t, "s": torch.tensor(3), "dev": torch.device("cpu")}) == {
        "t": [[2.0, 4.0]],
        "s": 3,
        "dev": "cpu",
    }


# --------------------------------------------------------------------------- canonical JSON


def test_canonical_json_is_key_order_independent():
    a = {"model": {"width": 64, "depth": 3}, "lr": 0.1, "seeds": [0, 1]}
    b = {"seeds": [0, 1], "lr": 0.1, "model": {"depth": 3, "width": 64}}
    assert canonical_json(a) == canonical_json(b)
    assert (
        canonical_json(a) == '{"lr":0.1,"model":{"depth":3,"width":64},"seeds":[0,1]}'
    )
    # numpy scalars give the same text as the Python values they stand for
    c = {
        "seeds": np.array([0, 1]),
        "lr": np.float64(0.1),
        "model": {"depth": np.int64(3), "width": 64},
    }
    assert canonical_json(c) == canonical_json(a)


def test_canonical_json_round_trips_values_exactly():
    values = {
        "third": 1 / 3,
        "tiny": 1e-300,
        "big": 2.0**70,
        "neg0": -0.0,
        "one": 1.0,
        "int": 1,
        "u": "é",
    }
    text = canonical_json(values)
    assert text.isascii()
    back = json.loads(text)
    assert back == values
    assert all(
        type(back[k]) is type(v) for k, v in values.items()
    )  # 1 and 1.0 stay distinct
    assert math.copysign(1.0, back["neg0"]) == -1.0
    assert canonical_json({"x": 1}) != canonical_json({"x": 1.0})
    nan = json.loads(canonical_json({"x": float("nan")}))["x"]
    assert math.isnan(nan)


# --------------------------------------------------------------------------- run records


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git not installed")
    root = tmp_path / "repo"
    root.mkdir()
    _git(root, "init", "-q")
    (root / ".gitignore").write_text("results/\n")
    (root / "Snakefile").write_text("rule all:\n    input: []\n")
    _git(root, "add", ".")
    _git(root, "commit", "-q", "-m", "init")
    return root


def _clear_slurm(monkeypatch):
    for var in SLURM_VARS:
        monkeypatch.delenv(var, raising=False)


def test_record_validates_and_has_environment(repo, monkeypatch):
    _clear_slurm(monkeypatch)
    jsonschema.Draft202012Validator.check_schema(RUN_RECORD_SCHEMA)
    path = repo / "results" / "quick" / "train" / "record.json"
    with RunRecord.start(
        path,
        rule="teleport_train",
        wildcards={"setting": "mlp", "chunk": "0"},
        config={"lr": 0.01, "epochs": np.int64(3)},
        seeds={"base": 0, "chunk": 0},
        workdir=repo,
        device="cpu",
        threads=2,
    ) as rec:
        rec.metrics["final_loss"] = np.float32(0.25)
        data_file = repo / "results" / "data.bin"
        data_file.parent.mkdir(parents=True, exist_ok=True)
        data_file.write_bytes(b"\x00\x01")
        digest = rec.add_data_file("toy", data_file)
    assert rec.written and path.exists()
    record = load_record(path)  # validates against the schema
    assert record["rule"] == "teleport_train"
    assert record["wildcards"] == {"setting": "mlp", "chunk": "0"}
    assert record["config"] == {"lr": 0.01, "epochs": 3}
    assert record["status"] == "completed"
    assert record["metrics"] == {"final_loss": 0.25}
    assert (
        digest
        == hashlib.sha256(b"\x00\x01").hexdigest()
        == record["data"]["toy"]["sha256"]
    )
    # git: the commit of the repository holding the workflow; results/ is ignored, so clean
    assert record["git"]["commit"] == _git(repo, "rev-parse", "HEAD")
    assert record["git"]["dirty"] is False
    assert Path(record["git"]["root"]).resolve() == repo.resolve()
    pk = record["packages"]
    assert pk["python"] == ".".join(map(str, sys.version_info[:3]))
    assert pk["numpy"] == np.__version__ and pk["weightspace"] is not None
    assert set(record["host"]) >= {"hostname", "platform", "cpu_count"}
    assert (
        record["device"]["resolved"] == "cpu" and record["device"]["job_threads"] == 2
    )
    assert record["slurm"] is None
    assert record["start"] <= record["end"] and record["duration_s"] >= 0


def test_record_device_reads_torch_threads(tmp_path):
    torch = pytest.importorskip("torch")
    with RunRecord.start(tmp_path / "r.json", rule="r", workdir=tmp_path) as rec:
        rec.set_device(torch.device("cpu"))
    assert (
        load_record(tmp_path / "r.json")["device"]["torch_threads"]
        == torch.get_num_threads()
    )


def test_git_dirty_and_no_repository(repo, tmp_path):
    (repo / "Snakefile").write_text("changed\n")
    info = git_info(repo)
    assert info["dirty"] is True and info["changed_paths"] == ["Snakefile"]
    outside = tmp_path / "plain"
    outside.mkdir()
    none = git_info(outside)
    assert none["commit"] is None and none["dirty"] is None
    assert "not a git repository" in none["reason"]


def test_git_without_commits(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git not installed")
    _git(tmp_path, "init", "-q")
    info = git_info(tmp_path)
    assert info["commit"] is None and info["reason"] == "repository has no commits"


def test_record_tolerates_missing_git(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with RunRecord.start(tmp_path / "r.json", rule="r", workdir=tmp_path):
        pass
    record = load_record(tmp_path / "r.json")
    assert (
        record["git"]["commit"] is None
        and record["git"]["reason"] == "git executable not found"
    )


def test_slurm_fields_from_environment(tmp_path, monkeypatch):
    _clear_slurm(monkeypatch)
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "7")
    monkeypatch.setenv("SLURM_JOB_PARTITION", "gpu")
    monkeypatch.setenv("SLURM_CLUSTER_NAME", "localcluster")
    with RunRecord.start(tmp_path / "r.json", rule="r", workdir=tmp_path):
        pass
    slurm = load_record(tmp_path / "r.json")["slurm"]
    assert slurm["job_id"] == "4242"
    assert slurm["array_task_id"] == "7"
    assert slurm["partition"] == "gpu"
    assert slurm["cluster_name"] == "localcluster"
    assert slurm["array_job_id"] is None
    assert slurm_info({}) is None


def test_failed_block_writes_no_record(tmp_path):
    path = tmp_path / "r.json"
    with pytest.raises(ZeroDivisionError):
        with RunRecord.start(path, rule="r", workdir=tmp_path) as rec:
            rec.metrics["x"] = 1
            raise ZeroDivisionError("the job failed")
    assert not path.exists() and list(tmp_path.iterdir()) == []


def test_failed_block_with_on_error_write(tmp_path):
    path = tmp_path / "r.json"
    with pytest.raises(ValueError):
        with RunRecord.start(path, rule="r", workdir=tmp_path, on_error="write"):
            raise ValueError("bad batch")
    record = load_record(path)
    assert record["status"] == "failed" and "bad batch" in record["error"]


def test_diverged_status_and_nan_metrics_are_noted(tmp_path):
    path = tmp_path / "r.json"
    with RunRecord.start(path, rule="r", workdir=tmp_path) as rec:
        rec.metrics["loss"] = float("nan")
        rec.set_status("diverged", "loss became NaN at step 12")
        with pytest.raises(ValueError, match="unknown status"):
            rec.set_status("exploded")
    text = path.read_text()
    record = _strict_json(text)
    validate_record(record)
    assert record["status"] == "diverged" and record["metrics"]["loss"] is None
    assert any("$.metrics.loss" in n for n in record["notes"])


def test_schema_rejects_broken_records(tmp_path):
    path = tmp_path / "r.json"
    with RunRecord.start(path, rule="r", workdir=tmp_path):
        pass
    record = load_record(path)
    for key, value in [
        ("status", "weird"),
        ("git", {"commit": "xyz"}),
        ("start", "yesterday"),
    ]:
        broken = {**record, key: value}
        with pytest.raises(jsonschema.ValidationError):
            validate_record(broken)
    missing = dict(record)
    del missing["packages"]
    with pytest.raises(jsonschema.ValidationError):
        validate_record(missing)
    other = tmp_path / "other.json"
    other.write_text('{"a": 1}')
    with pytest.raises(ValueError, match="not a weightspace run record"):
        load_record(other)


def test_from_snakemake_object(tmp_path, monkeypatch):
    _clear_slurm(monkeypatch)
    from types import SimpleNamespace

    from snakemake.iocontainers import Log, Namedlist, OutputFiles, Params, Wildcards

    monkeypatch.chdir(tmp_path)
    (tmp_path / "in1.npz").write_bytes(b"abc")
    (tmp_path / "in2.csv").write_bytes(b"x" * 100)
    inputs = Namedlist(fromdict={"data": "in1.npz", "table": "in2.csv"})
    output = OutputFiles(
        fromdict={"result": "out/result.csv", "record": "out/record.json"}
    )
    params = Params(
        fromdict={
            "config": canonical_json({"lr": 0.1, "width": 8}),
            "code": "deadbeef",
            "fn": len,
        }
    )
    smk = SimpleNamespace(
        input=inputs,
        output=output,
        params=params,
        wildcards=Wildcards(fromdict={"model": "mlp", "chunk": "3"}),
        threads=4,
        resources=Namedlist(fromdict={"_cores": 4, "mem_mb": 1000, "runtime": 30}),
        log=Log(fromdict={"log": "logs/x.log"}),
        config={},
        rule="credit_train",
        bench_iteration=None,
        scriptdir=str(tmp_path),
    )
    rec = from_snakemake(smk, seeds={"base": 1, "chunk": 3}, max_input_bytes=10)
    with rec:
        rec.metrics["acc"] = 0.5
    record = load_record(tmp_path / "out" / "record.json")
    assert record["rule"] == "credit_train"
    assert record["wildcards"] == {"model": "mlp", "chunk": "3"}
    assert record["config"] == {"lr": 0.1, "width": 8}
    assert record["seeds"] == {"base": 1, "chunk": 3}
    assert record["job"]["threads"] == 4 and record["device"]["job_threads"] == 4
    assert record["job"]["resources"] == {"mem_mb": 1000, "runtime": 30}
    assert (
        record["job"]["params"]["code"] == "deadbeef"
        and "config" not in record["job"]["params"]
    )
    assert record["job"]["outputs"] == ["out/result.csv", "out/record.json"]
    assert record["job"]["log"] == ["logs/x.log"]
    small, large = record["inputs"]
    assert small == {
        "path": "in1.npz",
        "size": 3,
        "sha256": hashlib.sha256(b"abc").hexdigest(),
        "note": None,
    }
    assert (
        large["path"] == "in2.csv" and large["size"] == 100 and large["sha256"] is None
    )


def test_from_snakemake_needs_a_record_path():
    from types import SimpleNamespace

    from snakemake.iocontainers import OutputFiles

    smk = SimpleNamespace(output=OutputFiles(fromdict={"result": "x.csv"}), rule="r")
    with pytest.raises(ValueError, match="record"):
        from_snakemake(smk)


def test_records_do_not_import_torch(tmp_path):
    # Light jobs (plots, tables) write records too; that must not cost a torch import.
    code = (
        "import sys\n"
        "from weightspace.provenance import RunRecord\n"
        f"with RunRecord.start({str(tmp_path / 'r.json')!r}, rule='plot', device='cpu'):\n"
        "    pass\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)
    assert load_record(tmp_path / "r.json")["packages"]["torch"] is not None


def test_atomic_torch_save_gives_equal_bytes_for_equal_objects(tmp_path):
    # a model saved by two runs must be byte-identical (the archive's rerun compares bytes)
    import torch

    from weightspace.provenance.atomic import atomic_torch_save

    state = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.zeros(2)}
    atomic_torch_save(state, tmp_path / "a.pt")
    atomic_torch_save(state, tmp_path / "b.pt")
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()
    assert torch.equal(torch.load(tmp_path / "a.pt")["w"], state["w"])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "a.pt",
        "b.pt",
    ]  # no temp left
