"""The reproducibility archive: create, verify, tamper detection, determinism."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from weightspace import archive
from weightspace.provenance import RunRecord


def _write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data)
    else:
        path.write_bytes(data)
    return path


@pytest.fixture
def tree(tmp_path):
    """A small repository with one finished run and the clutter the archive must leave out."""
    root = tmp_path / "repo"
    run = root / "results" / "quick"
    _write(root / "Snakefile", "include: 'rules/common.smk'\n")
    _write(root / "rules" / "common.smk", "# helpers\n")
    _write(root / "src" / "weightspace" / "mod.py", "X = 1\n")
    _write(
        root / "src" / "weightspace" / "__pycache__" / "mod.cpython-311.pyc", b"\x00"
    )
    _write(root / "config" / "quick.yaml", "run_name: quick\n")
    _write(root / "pyproject.toml", "[project]\nname = 'x'\n")
    script = _write(root / "workflow" / "scripts" / "run.sh", "#!/bin/sh\n")
    script.chmod(0o755)

    _write(run / "teleport" / "fig6.csv", "step,loss\n0,1.0\n1,0.5\n")
    _write(run / "teleport" / "fig6.png", bytes(range(256)))
    for chunk in range(2):
        with RunRecord.start(
            run / "teleport" / f"chunk{chunk}" / "record.json",
            rule="teleport_mc",
            wildcards={"chunk": str(chunk)},
            config={"steps": 2},
            seeds={"base": 0, "chunk": chunk},
            workdir=root,
        ) as rec:
            rec.metrics["loss"] = 0.5
    _write(run / "teleport" / "not_a_record.json", '{"rule": "fake"}')
    _write(run / "logs" / "teleport_mc" / "0.log", "epoch 1\n")
    # clutter that must not be archived
    _write(run / "teleport" / "checkpoints" / "epoch3.pt", b"big" * 100)
    _write(run / "teleport" / "model.ckpt", b"big")
    _write(run / "teleport" / ".fig6.csv.ab12cd.wstmp.csv", "half")
    _write(run / "archive" / "old.tar.gz", b"older archive")
    _write(root / ".snakemake" / "metadata" / "x", "state")
    os.symlink(root / "rules", run / "linked_rules")
    return root


EXPECTED = {
    "Snakefile",
    "config/quick.yaml",
    "pyproject.toml",
    "results/quick/logs/teleport_mc/0.log",
    "results/quick/teleport/chunk0/record.json",
    "results/quick/teleport/chunk1/record.json",
    "results/quick/teleport/fig6.csv",
    "results/quick/teleport/fig6.png",
    "results/quick/teleport/not_a_record.json",
    "rules/common.smk",
    "src/weightspace/mod.py",
    "workflow/scripts/run.sh",
}


def _make(tree: Path, out: Path, **kw) -> Path:
    return archive.create(tree / "results" / "quick", out, repo_root=tree, **kw)


def _members(path: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(path, "r:gz") as tar:
        return [(m, tar.extractfile(m).read()) for m in tar.getmembers()]


def _rebuild(out: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(out, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out


def _manifest(members) -> dict:
    for info, data in members:
        if info.name.endswith("/MANIFEST.json"):
            return json.loads(data)
    raise AssertionError("no manifest")


def _replace(members, suffix: str, data: bytes):
    return [(info, data if info.name.endswith(suffix) else d) for info, d in members]


def test_create_then_verify(tree, tmp_path):
    out = _make(tree, tmp_path / "out" / "quick-archive.tar.gz")
    members = _members(out)
    names = [m.name for m, _ in members]
    assert all(n.startswith("quick-archive/") for n in names)
    rel = [n.split("/", 1)[1] for n in names]
    assert rel[:2] == ["MANIFEST.json", "MANIFEST.sha256"]
    assert rel[2:] == sorted(EXPECTED)  # sorted, and nothing excluded slipped in

    manifest = _manifest(members)
    assert {f["path"] for f in manifest["files"]} == EXPECTED
    for (_info, data), entry in zip(members[2:], manifest["files"]):
        assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry[
            "size"
        ] == len(data)
    sha_text = members[1][1].decode()
    assert sha_text == f"{hashlib.sha256(members[0][1]).hexdigest()}  MANIFEST.json\n"
    assert [
        (r["path"], r["rule"], r["wildcards"], r["status"]) for r in manifest["records"]
    ] == [
        (
            "results/quick/teleport/chunk0/record.json",
            "teleport_mc",
            {"chunk": "0"},
            "completed",
        ),
        (
            "results/quick/teleport/chunk1/record.json",
            "teleport_mc",
            {"chunk": "1"},
            "completed",
        ),
    ]
    assert all(r["start"] and r["end"] for r in manifest["records"])
    assert manifest["run_dir"] == "results/quick" and manifest["packages"]["python"]
    assert set(manifest["git"]) >= {"commit", "dirty"}
    assert manifest["skipped"] == [
        {
            "path": "results/quick/linked_rules",
            "reason": "symlink to a directory, not followed",
        }
    ]
    modes = {m.name.split("/", 1)[1]: m.mode for m, _ in members}
    assert modes["workflow/scripts/run.sh"] == 0o755 and modes["Snakefile"] == 0o644
    assert {(m.uid, m.gid, m.uname, m.gname) for m, _ in members} == {(0, 0, "", "")}

    report = archive.verify(out)
    assert report.ok, report.problems
    assert report.n_files == len(EXPECTED) and report.records_checked == 2
    assert report.summary() == f"OK: {len(EXPECTED)} files verified"
    assert not [
        p for p in out.parent.iterdir() if p.name != out.name
    ]  # no temp file left


def test_archive_is_byte_identical_when_recreated(tree, tmp_path):
    a = _make(tree, tmp_path / "a" / "run.tar.gz").read_bytes()
    b = _make(tree, tmp_path / "b" / "run.tar.gz").read_bytes()
    assert a == b
    # normalised mtimes: touching files changes nothing once the creation time is fixed
    fixed = "2024-01-02T03:04:05Z"
    c = _make(tree, tmp_path / "c" / "run.tar.gz", created=fixed).read_bytes()
    for p in tree.rglob("*"):
        if p.is_file() and not p.is_symlink():
            os.utime(p, (1_000_000, 1_000_000))
    d = _make(tree, tmp_path / "d" / "run.tar.gz", created=fixed).read_bytes()
    assert c == d
    assert {m.mtime for m, _ in _members(tmp_path / "d" / "run.tar.gz")} == {1704164645}


def test_source_date_epoch_sets_creation_time(tree, tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    manifest = _manifest(_members(_make(tree, tmp_path / "run.tar.gz")))
    assert manifest["created"] == "2023-11-14T22:13:20Z"
    assert manifest["created_source"] == "SOURCE_DATE_EPOCH"


def test_archive_inside_run_dir_does_not_include_itself(tree):
    out = tree / "results" / "quick" / "archive" / "quick.tar.gz"
    first = _make(tree, out).read_bytes()
    second = _make(tree, out).read_bytes()  # the first archive now sits in the run dir
    assert first == second
    assert archive.verify(out).ok


def test_tampered_member_is_detected(tree, tmp_path):
    good = _members(_make(tree, tmp_path / "run.tar.gz"))
    data = bytearray(
        dict((m.name, d) for m, d in good)["run/results/quick/teleport/fig6.png"]
    )
    data[100] ^= 0x01  # one byte, same size
    bad = _rebuild(tmp_path / "bad.tar.gz", _replace(good, "fig6.png", bytes(data)))
    report = archive.verify(bad)
    assert not report.ok
    assert report.modified == ["results/quick/teleport/fig6.png"]
    assert report.missing == [] and report.extra == []
    assert report.n_files == len(EXPECTED) - 1


def test_removed_member_is_detected(tree, tmp_path):
    good = _members(_make(tree, tmp_path / "run.tar.gz"))
    kept = [(m, d) for m, d in good if not m.name.endswith("rules/common.smk")]
    report = archive.verify(_rebuild(tmp_path / "bad.tar.gz", kept))
    assert not report.ok and report.missing == ["rules/common.smk"]
    assert "missing: rules/common.smk" in report.problems


def test_removed_record_is_detected(tree, tmp_path):
    good = _members(_make(tree, tmp_path / "run.tar.gz"))
    kept = [(m, d) for m, d in good if not m.name.endswith("chunk1/record.json")]
    report = archive.verify(_rebuild(tmp_path / "bad.tar.gz", kept))
    assert report.missing == ["results/quick/teleport/chunk1/record.json"]
    assert report.records_checked == 1


def test_added_member_is_detected(tree, tmp_path):
    good = _members(_make(tree, tmp_path / "run.tar.gz"))
    extra = (tarfile.TarInfo("run/results/quick/injected.csv"), b"a,b\n")
    report = archive.verify(_rebuild(tmp_path / "bad.tar.gz", good + [extra]))
    assert not report.ok and report.extra == ["results/quick/injected.csv"]
    assert report.missing == [] and report.modified == []


def test_edited_manifest_is_detected(tree, tmp_path):
    good = _members(_make(tree, tmp_path / "run.tar.gz"))
    manifest = _manifest(good)
    manifest["files"] = [f for f in manifest["files"] if f["path"] != "Snakefile"]
    edited = json.dumps(manifest, sort_keys=True, indent=2).encode()
    # 1) manifest edited to hide a file, hash file left alone
    report = archive.verify(
        _rebuild(tmp_path / "bad1.tar.gz", _replace(good, "MANIFEST.json", edited))
    )
    assert any("does not match MANIFEST.sha256" in p for p in report.problems)
    assert report.extra == ["Snakefile"]
    # 2) manifest and its hash both rewritten to bless a modified file: the file hash still fails
    manifest = _manifest(good)
    for f in manifest["files"]:
        if f["path"] == "results/quick/teleport/fig6.csv":
            f["sha256"] = hashlib.sha256(b"forged").hexdigest()
    edited = json.dumps(manifest, sort_keys=True, indent=2).encode()
    sha = f"{hashlib.sha256(edited).hexdigest()}  MANIFEST.json\n".encode()
    members = _replace(_replace(good, "MANIFEST.json", edited), "MANIFEST.sha256", sha)
    report = archive.verify(_rebuild(tmp_path / "bad2.tar.gz", members))
    assert report.modified == ["results/quick/teleport/fig6.csv"]
    assert not any("MANIFEST.sha256" in p for p in report.problems)


def test_broken_record_is_detected_even_with_consistent_manifest(tree, tmp_path):
    good = _members(_make(tree, tmp_path / "run.tar.gz"))
    broken = b'{"record_type": "weightspace.run_record", "rule": '
    manifest = _manifest(good)
    for f in manifest["files"]:
        if f["path"].endswith("chunk0/record.json"):
            f["sha256"], f["size"] = hashlib.sha256(broken).hexdigest(), len(broken)
    edited = json.dumps(manifest, sort_keys=True, indent=2).encode()
    sha = f"{hashlib.sha256(edited).hexdigest()}  MANIFEST.json\n".encode()
    members = _replace(good, "chunk0/record.json", broken)
    members = _replace(
        _replace(members, "MANIFEST.json", edited), "MANIFEST.sha256", sha
    )
    report = archive.verify(_rebuild(tmp_path / "bad.tar.gz", members))
    assert report.problems and all("chunk0/record.json" in p for p in report.problems)
    assert "does not parse" in report.problems[0]


def test_unreadable_archive_reports_instead_of_raising(tmp_path):
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(gzip.compress(b"not a tar file" * 50)[:60])
    report = archive.verify(junk)
    assert not report.ok and report.problems[0].startswith("cannot read archive")


def test_missing_extra_fails_without_writing(tree, tmp_path):
    out = tmp_path / "o" / "run.tar.gz"
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        _make(tree, out, extra=["Snakefile", "nope.yaml"])
    assert not out.exists()
    with pytest.raises(FileNotFoundError, match="run directory not found"):
        archive.create(tree / "results" / "paper", out, repo_root=tree)


def test_explicit_extras_and_external_files(tree, tmp_path):
    outside = _write(tmp_path / "site" / "cluster.yaml", "partition: gpu\n")
    out = _make(tree, tmp_path / "run.tar.gz", extra=["Snakefile", outside])
    rel = {m.name.split("/", 1)[1] for m, _ in _members(out)}
    assert "external/cluster.yaml" in rel and "Snakefile" in rel
    assert "src/weightspace/mod.py" not in rel
    assert archive.verify(out).ok


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "weightspace.archive", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
    )


def test_command_line(tree, tmp_path):
    out = tree / "results" / "quick" / "archive" / "quick.tar.gz"
    made = _cli(
        "create",
        "results/quick",
        str(out.relative_to(tree)),
        "--repo-root",
        ".",
        cwd=tree,
    )
    assert made.returncode == 0, made.stderr
    ok = _cli("verify", str(out), cwd=tmp_path)
    assert ok.returncode == 0
    assert ok.stdout.strip() == f"OK: {len(EXPECTED)} files verified"

    good = _members(out)
    kept = [(m, d) for m, d in good if not m.name.endswith("fig6.csv")]
    bad = _rebuild(
        tmp_path / "bad.tar.gz",
        kept + [(tarfile.TarInfo("quick/results/quick/x"), b"1")],
    )
    failed = _cli("verify", str(bad), cwd=tmp_path)
    assert failed.returncode == 1
    assert "missing: results/quick/teleport/fig6.csv" in failed.stdout
    assert "extra (not in the manifest): results/quick/x" in failed.stdout
    assert _cli("verify", str(tmp_path / "absent.tar.gz"), cwd=tmp_path).returncode == 2
