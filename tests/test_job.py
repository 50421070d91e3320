"""The workflow-script helper: config, record path, GPU slot assignment."""

from types import SimpleNamespace

import pytest
from snakemake.iocontainers import Log, Namedlist, OutputFiles, Params, Wildcards

from weightspace.pipeline import job as jobmod
from weightspace.provenance.runrecord import load_record


def fake_snakemake(tmp_path, outputs, config='{"seed": 3}'):
    out = OutputFiles(fromdict=outputs) if isinstance(outputs, dict) else OutputFiles(outputs)
    return SimpleNamespace(
        rule="demo", wildcards=Wildcards(fromdict={"chunk": "2"}), threads=1,
        input=Namedlist([]), output=out, log=Log([str(tmp_path / "demo.log")]),
        params=Params(fromdict={"config": config}), resources=Namedlist(fromdict={}),
        scriptdir=str(tmp_path),
    )


def test_record_beside_first_output_and_config_parsed(tmp_path):
    sm = fake_snakemake(tmp_path, [str(tmp_path / "result.csv")])
    with jobmod.script_job(sm) as job:
        assert job.config == {"seed": 3} and job.device == "cpu"
        job.record.metrics["x"] = 1.5
    rec = load_record(tmp_path / "result.record.json")
    assert rec["rule"] == "demo" and rec["wildcards"] == {"chunk": "2"}
    assert rec["metrics"] == {"x": 1.5} and rec["config"] == {"seed": 3}
    assert "rule demo" in (tmp_path / "demo.log").read_text()


def test_failed_block_writes_no_record(tmp_path):
    sm = fake_snakemake(tmp_path, {"csv": str(tmp_path / "a.csv"),
                                   "record": str(tmp_path / "a.json")})
    with pytest.raises(RuntimeError):
        with jobmod.script_job(sm):
            raise RuntimeError("boom")
    assert not (tmp_path / "a.json").exists()


def test_cuda_without_index_takes_a_free_gpu_slot(tmp_path, monkeypatch):
    # Two jobs on one machine asking for "cuda" must get different devices.
    taken = []

    def fake_resolve(spec):
        import torch
        return torch.device("cuda") if spec == "cuda" else torch.device(spec)

    monkeypatch.setattr("weightspace.training.devices.resolve_device", fake_resolve)
    monkeypatch.setattr("torch.cuda.set_device", lambda d: taken.append(d.index))
    monkeypatch.setattr("weightspace.training.devices.visible_gpu_ids", lambda: ["0", "1"])
    monkeypatch.setenv("WEIGHTSPACE_GPU_LOCK_DIR", str(tmp_path / "locks"))
    import contextlib
    with contextlib.ExitStack() as first, contextlib.ExitStack() as second:
        a = jobmod._device("cuda", first)
        b = jobmod._device("cuda", second)
    assert {a, b} == {"cuda:0", "cuda:1"} and sorted(taken) == [0, 1]
