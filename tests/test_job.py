"""The workflow-script helper: config, record path, GPU slot assignment."""

from types import SimpleNamespace

import pytest
from snakemake.iocontainers import Log, Namedlist, OutputFiles, Params, Wildcards

from weightspace.pipeline import job as jobmod
from weightspace.provenance.runrecord import load_record


def fake_snakemake(tmp_path, outputs, config='{"seed": 3}'):
    out = (
        OutputFiles(fromdict=outputs)
        if isinstance(outputs, dict)
        else OutputFiles(outputs)
    )
    return SimpleNamespace(
        rule="demo",
        wildcards=Wildcards(fromdict={"chunk": "2"}),
        threads=1,
        input=Namedlist([]),
        output=out,
        log=Log([str(tmp_path / "demo.log")]),
        params=Params(fromdict={"config": config}),
        resources=Namedlist(fromdict={}),
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
    sm = fake_snakemake(
        tmp_path, {"csv": str(tmp_path / "a.csv"), "record": str(tmp_path / "a.json")}
    )
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
    monkeypatch.setattr(
        "weightspace.training.devices.visible_gpu_ids", lambda: ["0", "1"]
    )
    monkeypatch.setenv("WEIGHTSPACE_GPU_LOCK_DIR", str(tmp_path / "locks"))
    import contextlib

    with contextlib.ExitStack() as first, contextlib.ExitStack() as second:
        a = jobmod._device("cuda", first)
        b = jobmod._device("cuda", second)
    assert {a, b} == {"cuda:0", "cuda:1"} and sorted(taken) == [0, 1]


def checkpoint_snakemake(tmp_path, config='{"seed": 3}', code="abc"):
    sm = fake_snakemake(tmp_path, [str(tmp_path / "result.json")], config=config)
    sm.params = Params(
        fromdict={
            "config": config,
            "code": code,
            "checkpoint": str(tmp_path / "result.state.pt"),
        }
    )
    return sm


def test_checkpoint_resumes_only_its_own_state_and_is_removed_on_success(tmp_path):
    sm = checkpoint_snakemake(tmp_path)
    with pytest.raises(KeyboardInterrupt):  # a killed job keeps its checkpoint
        with jobmod.script_job(sm) as job:
            ckpt = job.checkpoint(seed=7)
            assert ckpt.load() is None
            ckpt.save({"done": 3})
            raise KeyboardInterrupt
    assert ckpt.path.exists() and ckpt.path.name.startswith("result.state.")
    with jobmod.script_job(sm) as job:
        again = job.checkpoint(seed=7)
        assert again.path == ckpt.path and again.load() == {"done": 3}
    assert not ckpt.path.exists()
    log = (tmp_path / "demo.log").read_text()
    assert log.count("rule demo") == 2 and "resuming from checkpoint" in log  # appended


@pytest.mark.parametrize("change", ["seed", "config", "code"])
def test_foreign_checkpoint_is_set_aside_not_reused(tmp_path, change):
    with pytest.raises(KeyboardInterrupt):
        with jobmod.script_job(checkpoint_snakemake(tmp_path)) as job:
            old = job.checkpoint(seed=7)
            old.save({"done": 3})
            raise KeyboardInterrupt
    sm = checkpoint_snakemake(
        tmp_path,
        config='{"seed": 4}' if change == "config" else '{"seed": 3}',
        code="xyz" if change == "code" else "abc",
    )
    with jobmod.script_job(sm) as job:
        new = job.checkpoint(seed=8 if change == "seed" else 7)
        assert new.path != old.path and new.load() is None
    assert not old.path.exists()
    assert old.path.with_name(old.path.name + ".set-aside").exists()
    assert "set aside checkpoint" in (tmp_path / "demo.log").read_text()


def test_unreadable_checkpoint_is_set_aside(tmp_path):
    sm = checkpoint_snakemake(tmp_path)
    with jobmod.script_job(sm) as job:
        ckpt = job.checkpoint(seed=1)
        ckpt.path.write_bytes(b"not a checkpoint")
        assert ckpt.load() is None
        assert ckpt.path.with_name(ckpt.path.name + ".set-aside").exists()
