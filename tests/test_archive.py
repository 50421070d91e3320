"""The reproducibility archive: create, verify, tamper detection, determinism, the
published digest, the recorded environment, and rerunning an archived tiny run."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import platform
import re
import struct
import subprocess
import sys
import tarfile
import zlib
from pathlib import Path

import pytest

from weightspace import archive
from weightspace.provenance import RunRecord
from weightspace.provenance.compare import (
    COMPARISON_EXCLUSIONS,
    DEFAULT_TOLERANCE,
    compare_file,
    compare_runs,
)
from weightspace.provenance.machine import describe_environment, pip_freeze
from workflow_utils import copy_workflow, snakemake


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
    assert ok.stdout.splitlines()[0] == f"OK: {len(EXPECTED)} files verified"

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


# --------------------------------------------------------------------------- the digest


def _manifest_digest(path: Path) -> str:
    for info, data in _members(path):
        if info.name.endswith("/MANIFEST.json"):
            return hashlib.sha256(data).hexdigest()
    raise AssertionError("no manifest")


def _forge(members, suffix: str, data: bytes):
    """Replace a member and rewrite the manifest and its hash to match: what someone who
    rewrites an archive does."""
    manifest = _manifest(members)
    for f in manifest["files"]:
        if f["path"].endswith(suffix):
            f["sha256"], f["size"] = hashlib.sha256(data).hexdigest(), len(data)
    edited = json.dumps(manifest, sort_keys=True, indent=2).encode()
    sha = f"{hashlib.sha256(edited).hexdigest()}  MANIFEST.json\n".encode()
    members = _replace(members, suffix, data)
    return _replace(_replace(members, "MANIFEST.json", edited), "MANIFEST.sha256", sha)


def test_published_digest_pins_the_archive(tree, tmp_path):
    out = _make(tree, tmp_path / "run.tar.gz")
    digest = _manifest_digest(out)
    assert archive.verify(out).manifest_sha256 == digest
    assert archive.verify(out, expect=digest).ok
    assert archive.verify(out, expect=f"sha256:{digest.upper()}").ok

    forged = _rebuild(
        tmp_path / "forged.tar.gz",
        _forge(_members(out), "teleport/fig6.csv", b"step,loss\n0,1.0\n1,0.1\n"),
    )
    assert archive.verify(forged).ok  # consistent, so the hashes inside cannot tell
    report = archive.verify(forged, expect=digest)
    assert not report.ok
    forged_digest = _manifest_digest(forged)
    assert report.problems == [
        f"manifest sha256 {forged_digest} is not the expected {digest}: "
        "this is not the archive whose digest was published"
    ]
    with pytest.raises(ValueError, match="not a sha256 digest"):
        archive.verify(out, expect="abc123")


def test_verify_command_prints_digest_and_checks_expect(tree, tmp_path):
    out = _make(tree, tmp_path / "run.tar.gz")
    digest = _manifest_digest(out)
    ok = _cli("verify", str(out), "--expect", digest, cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert f"manifest sha256: {digest}" in ok.stdout.splitlines()

    wrong = "0" * 64
    failed = _cli("verify", str(out), "--expect", wrong, cwd=tmp_path)
    assert failed.returncode == 1
    assert failed.stdout.startswith("FAILED")
    assert f"manifest sha256 {digest} is not the expected {wrong}" in failed.stdout

    garbled = _cli("verify", str(out), "--expect", "not-a-digest", cwd=tmp_path)
    assert garbled.returncode == 2 and "not a sha256 digest" in garbled.stderr


# --------------------------------------------------------------------------- environment


def test_manifest_records_the_environment(tree, tmp_path):
    env = _manifest(_members(_make(tree, tmp_path / "run.tar.gz")))["environment"]
    assert env["python"]["version"] == platform.python_version()
    assert env["python"]["executable"] == sys.executable
    requirements = env["pip_freeze"]["requirements"]
    assert env["pip_freeze"]["reason"] is None
    names = {re.split(r"[=@ ]", line)[0].lower() for line in requirements}
    assert {"pytest", "snakemake", "numpy"} <= names
    assert f"pytest=={pytest.__version__}" in requirements
    assert env["os"]["system"] == platform.system()
    assert env["os"]["release"] == platform.release()
    assert env["cpu"]["count"] == os.cpu_count() and env["cpu"]["machine"]
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file() and "model name" in cpuinfo.read_text():
        assert f": {env['cpu']['model']}" in cpuinfo.read_text()
    import torch

    gpu = env["gpu"]
    assert gpu["torch"] == torch.__version__
    assert gpu["cuda_build"] == torch.version.cuda
    assert gpu["devices"] or gpu["reason"]  # either the GPUs or why there are none


def test_environment_capture_does_not_initialise_cuda(tmp_path):
    code = (
        "import torch\n"
        "from weightspace.provenance.machine import describe_environment\n"
        "env = describe_environment()\n"
        "assert env['gpu']['torch'] == torch.__version__\n"
        "assert env['gpu']['cuda_build'] == torch.version.cuda\n"
        "print(torch.cuda.is_initialized())\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_pip_freeze_without_pip_says_why(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "bare")],
        check=True,
    )
    bare = pip_freeze(str(tmp_path / "bare" / "bin" / "python"))
    assert bare["requirements"] is None
    assert "No module named pip" in bare["reason"]
    assert pip_freeze()["requirements"]  # this environment has pip


def test_inspect_shows_environment_and_requirements(tree, tmp_path):
    out = _make(tree, tmp_path / "run.tar.gz")
    shown = _cli("inspect", str(out), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    env = describe_environment()
    assert f"manifest sha256: {_manifest_digest(out)}" in shown.stdout
    assert f"python: {platform.python_version()} (CPython)" in shown.stdout
    assert f"cpu: {env['cpu']['model']}" in shown.stdout
    assert re.search(r"^gpu: ", shown.stdout, re.M)
    assert f"pip freeze: {len(env['pip_freeze']['requirements'])} distributions" in (
        shown.stdout
    )
    # without a recorded invocation, inspect says that rerun cannot repeat the run
    assert "workflow: not recorded" in shown.stdout
    freeze = _cli("inspect", str(out), "--requirements", cwd=tmp_path)
    assert freeze.stdout.splitlines() == env["pip_freeze"]["requirements"]


# --------------------------------------------------------------------------- unpacking


def _with_member(good, info: tarfile.TarInfo, data: bytes = b"x"):
    return good + [(info, data)]


def _link(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info


@pytest.mark.parametrize(
    "member",
    [
        tarfile.TarInfo("../evil.txt"),
        tarfile.TarInfo("run/../../evil.txt"),
        tarfile.TarInfo("/tmp/evil.txt"),
        _link("run/results/quick/escape", "/etc"),
    ],
    ids=["parent", "nested-parent", "absolute", "symlink"],
)
def test_unsafe_members_are_refused(tree, tmp_path, member):
    good = _members(_make(tree, tmp_path / "run.tar.gz"))
    bad = _rebuild(tmp_path / "bad.tar.gz", _with_member(good, member))
    report = archive.verify(bad)
    assert not report.ok
    assert any(repr(member.name) in p or member.name in p for p in report.problems)

    dest = tmp_path / "unpacked" / "run"
    with pytest.raises(archive.UnsafeArchiveError, match=re.escape(repr(member.name))):
        archive.unpack(bad, dest)
    assert not dest.exists() and list(dest.parent.iterdir()) == []  # no temp left
    assert not (tmp_path / "evil.txt").exists()

    target = tmp_path / "rerun"
    refused = _cli("rerun", str(bad), str(target), cwd=tmp_path)
    assert refused.returncode == 1
    assert "does not verify" in refused.stderr and not target.exists()


def test_unpack_extracts_the_verified_tree(tree, tmp_path):
    out = _make(tree, tmp_path / "run.tar.gz")
    dest = archive.unpack(out, tmp_path / "x" / "unpacked")
    files = {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()}
    assert files == EXPECTED | {"MANIFEST.json", "MANIFEST.sha256"}
    assert (dest / "results/quick/teleport/fig6.csv").read_bytes() == (
        tree / "results/quick/teleport/fig6.csv"
    ).read_bytes()
    assert os.access(dest / "workflow/scripts/run.sh", os.X_OK)
    with pytest.raises(FileExistsError, match="already exists"):
        archive.unpack(out, dest)


def test_rerun_needs_a_recorded_invocation_and_an_empty_folder(tree, tmp_path):
    out = _make(tree, tmp_path / "run.tar.gz")
    with pytest.raises(archive.RerunError, match="records no workflow invocation"):
        archive.rerun(out, tmp_path / "a")
    busy = tmp_path / "busy"
    (busy / "something").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="not an empty folder"):
        archive.rerun(out, busy)


def test_create_records_the_invocation_and_archives_its_config(tree, tmp_path):
    outside = _write(tmp_path / "site" / "mine.yaml", "extends: quick\nrun_name: x\n")
    out = _make(
        tree,
        tmp_path / "run.tar.gz",
        workflow={
            "targets": ["all", "report"],
            "configfiles": ["config/quick.yaml", str(outside)],
            "config": {"seed": 3},
        },
    )
    manifest = _manifest(_members(out))
    assert manifest["workflow"] == {
        "targets": ["all", "report"],
        "configfiles": ["config/quick.yaml", "external/mine.yaml"],
        "config": {"seed": 3},
    }
    assert "external/mine.yaml" in {f["path"] for f in manifest["files"]}
    assert (
        "workflow: snakemake --cores all all report --configfile config/quick.yaml "
        "external/mine.yaml --config seed=3"
    ) in archive.manifest_lines(manifest)
    with pytest.raises(FileNotFoundError, match="config file of the run not found"):
        _make(tree, tmp_path / "b.tar.gz", workflow={"configfiles": ["nope.yaml"]})


# --------------------------------------------------------------------------- comparing


def _png(pixel: bytes, text: bytes | None = None) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)  # 1x1 RGB
    chunks = [chunk(b"IHDR", header)]
    if text is not None:
        chunks.append(chunk(b"tEXt", b"Software\x00" + text))
    chunks += [chunk(b"IDAT", zlib.compress(b"\x00" + pixel)), chunk(b"IEND", b"")]
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunks)


def _record(tmp_path: Path, name: str, start: str, loss: float) -> Path:
    path = tmp_path / name / "record.json"
    with RunRecord.start(path, rule="r", config={}, seeds={}, workdir=tmp_path) as rec:
        rec.metrics["loss"] = loss
    data = json.loads(path.read_text())
    data["start"] = start
    path.write_text(json.dumps(data))
    return path


def _compare(tmp_path: Path, name: str, old: bytes, new: bytes):
    a, b = _write(tmp_path / "a" / name, old), _write(tmp_path / "b" / name, new)
    return compare_file(name, a, b)


@pytest.mark.parametrize(
    "name, old, new, status, detail",
    [
        ("t.csv", b"x,y\n1,0.5\n", b"x,y\n1,0.5\n", "identical", ""),
        (
            "t.csv",
            b"x,y\n1,0.5\n",
            b"x,y\n1,0.50000000001\n",
            "within_tolerance",
            "largest relative difference 2e-11",
        ),
        (
            "t.csv",
            b"x,y\n1,0.5\n",
            b"x,y\n1,0.5001\n",
            "differs",
            "row 1, y: 0.5 vs 0.5001",
        ),
        ("t.csv", b"x,y\n1,a\n", b"x,y\n1,b\n", "differs", "row 1, y: 'a' vs 'b'"),
        ("t.csv", b"x,y\n1,2\n", b"x,z\n1,2\n", "differs", "header"),
        (
            "t.json",
            b'{"a": [1.0, 2]}',
            b'{"a": [1.0000000001, 2]}',
            "within_tolerance",
            "",
        ),
        (
            "t.json",
            b'{"a": [1.0, 2]}',
            b'{"a": [1.0, 3]}',
            "differs",
            "a.1: 2.0 vs 3.0",
        ),
        ("t.json", b'{"a": true}', b'{"a": 1}', "differs", "a: True vs 1"),
        ("t.tex", b"loss 0.25 \\\\", b"loss 0.2500000001 \\\\", "within_tolerance", ""),
        ("t.tex", b"loss 0.25 \\\\", b"gain 0.25 \\\\", "differs", "text differs"),
        (
            "t.png",
            _png(b"abc", b"mpl 1"),
            _png(b"abc", b"mpl 2"),
            "within_tolerance",
            "tEXt",
        ),
        ("t.png", _png(b"abc"), _png(b"abd"), "differs", "pixels differ"),
        (
            "t.pdf",
            b"%PDF-1.4 /CreationDate (D:20240101) /Title (x)",
            b"%PDF-1.4 /CreationDate (D:20250202) /Title (x)",
            "within_tolerance",
            "/CreationDate",
        ),
        (
            "t.pdf",
            b"%PDF-1.4 /Title (x)",
            b"%PDF-1.4 /Title (y)",
            "differs",
            "PDF content",
        ),
        ("t.pt", b"\x00\x01", b"\x00\x02", "differs", "byte by byte"),
    ],
)
def test_compare_file(tmp_path, name, old, new, status, detail):
    result = _compare(tmp_path, name, old, new)
    assert result.status == status, result.detail
    assert detail in result.detail


def test_compare_npz_arrays(tmp_path):
    import numpy as np

    def npz(name, **arrays):
        path = tmp_path / name
        np.savez(path, **arrays)
        return path

    a = npz("a.npz", w=np.array([1.0, 2.0]), n=np.array([1, 2]))
    close = npz("b.npz", w=np.array([1.0 + 1e-12, 2.0]), n=np.array([1, 2]))
    far = npz("c.npz", w=np.array([1.0, 2.1]), n=np.array([1, 2]))
    assert compare_file("x.npz", a, close).status in ("within_tolerance", "identical")
    result = compare_file("x.npz", a, far)
    assert result.status == "differs" and "w: 1 values differ" in result.detail


def test_run_records_differ_only_in_excluded_fields(tmp_path):
    old = _record(tmp_path / "a", "x", "2024-01-01T00:00:00.000Z", 0.5)
    same = _record(tmp_path / "b", "x", "2025-06-01T00:00:00.000Z", 0.5)
    other = _record(tmp_path / "c", "x", "2025-06-01T00:00:00.000Z", 0.25)
    result = compare_file("x/record.json", old, same)
    assert result.status == "within_tolerance"
    assert "differs only in excluded" in result.detail and "start" in result.detail
    applied = {COMPARISON_EXCLUSIONS[i].reason for i in result.exclusions}
    assert "when the job ran" in applied
    bad = compare_file("x/record.json", old, other)
    assert bad.status == "differs" and "metrics.loss: 0.5 vs 0.25" in bad.detail
    # the same fields in a JSON file that is not a run record are compared
    plain_a = _write(tmp_path / "p" / "a.json", '{"start": "1", "v": 1}')
    plain_b = _write(tmp_path / "p" / "b.json", '{"start": "2", "v": 1}')
    assert compare_file("s.json", plain_a, plain_b).status == "differs"


def test_compare_runs_names_missing_extra_and_excluded(tmp_path):
    old = {
        "t/r.csv": _write(tmp_path / "a" / "r.csv", "x\n1\n"),
        "t/gone.csv": _write(tmp_path / "a" / "gone.csv", "x\n1\n"),
        "logs/job.log": _write(tmp_path / "a" / "job.log", "12:00 start\n"),
    }
    new = {
        "t/r.csv": _write(tmp_path / "b" / "r.csv", "x\n1\n"),
        "t/new.csv": _write(tmp_path / "b" / "new.csv", "x\n1\n"),
        "logs/job.log": _write(tmp_path / "b" / "job.log", "13:00 start\n"),
        "t/checkpoints/e1.pt": _write(tmp_path / "b" / "e1.pt", b"ckpt"),
        "archive/run.tar.gz": _write(tmp_path / "b" / "run.tar.gz", b"tar"),
    }
    result = compare_runs(old, new, archive_exclude=archive.DEFAULT_EXCLUDE)
    status = {f.path: f.status for f in result.files}
    assert status == {
        "t/r.csv": "identical",
        "t/gone.csv": "missing",
        "t/new.csv": "extra",
        "logs/job.log": "excluded",
        "t/checkpoints/e1.pt": "excluded",
        "archive/run.tar.gz": "excluded",
    }
    assert not result.reproduced
    assert result.counts == {
        "identical": 1,
        "within_tolerance": 0,
        "differs": 0,
        "missing": 1,
        "extra": 1,
        "excluded": 3,
    }
    lines = "\n".join(result.report_lines())
    for (
        exclusion
    ) in COMPARISON_EXCLUSIONS:  # the whole list is printed with its reasons
        assert exclusion.reason in lines
    assert DEFAULT_TOLERANCE.describe() in lines


# --------------------------------------------------------------------------- tiny rerun

TINY = "--configfile=config/tiny.yaml"
TINY_TARGET = "relu_fig_kink_distributions"


def _only_target(work: Path, keep: str) -> None:
    """Mark every registered target but `keep` as planned in the copy, so that `archive`
    (whose inputs are all built targets) builds one figure: the whole tiny workflow takes
    minutes on two cores, and the rerun doubles that."""
    registry = work / "src" / "weightspace" / "pipeline" / "targets.yaml"
    text = registry.read_text()
    blocks = re.split(r"(?m)^(?=  - name: )", text)
    edited = [
        b
        if b.startswith(f"  - name: {keep}\n")
        else b.replace("status: built", "status: planned")
        for b in blocks
    ]
    assert sum(f"  - name: {keep}\n" in b for b in blocks) == 1
    registry.write_text("".join(edited))


@pytest.fixture(scope="module")
def tiny_archive(tmp_path_factory):
    """The archive that the workflow's `archive` rule makes of a tiny run of one figure."""
    work = copy_workflow(tmp_path_factory.mktemp("wf") / "repo")
    _only_target(work, TINY_TARGET)
    snakemake(work, TINY, "archive")
    return work / "results" / "tiny" / "archive" / "tiny.tar.gz"


@pytest.fixture(scope="module")
def tiny_rerun(tiny_archive, tmp_path_factory):
    base = tmp_path_factory.mktemp("rerun")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "weightspace.archive",
            "rerun",
            str(tiny_archive),
            str(base / "dir"),
            "--cores",
            "2",
            "--out",
            str(base / "comparison.json"),
            "--expect",
            _manifest_digest(tiny_archive),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=600,
    )
    comparison = (
        json.loads((base / "comparison.json").read_text())
        if (base / "comparison.json").is_file()
        else None
    )
    return proc, comparison, base / "dir"


@pytest.mark.slow
def test_tiny_archive_verifies_and_records_its_run(tiny_archive):
    report = archive.verify(tiny_archive)
    assert report.ok, report.problems
    manifest = report.manifest
    assert manifest["workflow"] == {
        "targets": ["archive"],
        "configfiles": ["config/tiny.yaml"],
        "config": {},
    }
    paths = {f["path"] for f in manifest["files"]}
    assert f"results/tiny/relu/{TINY_TARGET}.csv" in paths
    assert "config/tiny.yaml" in paths and "Snakefile" in paths
    env = manifest["environment"]
    assert env["python"]["version"] == platform.python_version()
    assert env["pip_freeze"]["requirements"]
    assert env["cpu"]["model"] is not None or env["cpu"]["machine"]


@pytest.mark.slow
def test_tiny_archive_tampering_is_named(tiny_archive, tmp_path):
    good = _members(tiny_archive)
    csv_name = f"relu/{TINY_TARGET}.csv"
    data = bytearray(next(d for m, d in good if m.name.endswith(csv_name)))
    data[-2] ^= 0x01
    changed = _rebuild(tmp_path / "a.tar.gz", _replace(good, csv_name, bytes(data)))
    assert archive.verify(changed).modified == [f"results/tiny/{csv_name}"]

    record = "relu/kink_distributions/record.json"
    deleted = _rebuild(
        tmp_path / "b.tar.gz", [(m, d) for m, d in good if not m.name.endswith(record)]
    )
    assert archive.verify(deleted).missing == [f"results/tiny/{record}"]

    extra = (tarfile.TarInfo("tiny/results/tiny/relu/injected.csv"), b"a\n1\n")
    added = _rebuild(tmp_path / "c.tar.gz", good + [extra])
    assert archive.verify(added).extra == ["results/tiny/relu/injected.csv"]


@pytest.mark.slow
def test_rerun_reproduces_the_tiny_archive(tiny_archive, tiny_rerun):
    proc, comparison, directory = tiny_rerun
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert comparison["reproduced"] is True
    counts = comparison["counts"]
    assert counts["differs"] == counts["missing"] == counts["extra"] == 0
    assert counts["identical"] > 0
    assert comparison["rerun"]["command"][3:] == [
        "--cores",
        "2",
        "archive",
        "--configfile",
        "config/tiny.yaml",
    ]
    by_path = {f["path"]: f for f in comparison["files"]}
    manifest = archive.verify(tiny_archive).manifest
    archived = {
        f["path"].removeprefix("results/tiny/")
        for f in manifest["files"]
        if f["path"].startswith("results/tiny/")
    }
    assert archived <= set(by_path)  # every archived output was compared or excluded
    # the figure's numbers and pictures are reproduced bit for bit
    for suffix in ("csv", "png", "pdf"):
        assert by_path[f"relu/{TINY_TARGET}.{suffix}"]["status"] == "identical"
    # the outputs were made anew: their run records say when, and that is excluded
    new_record = json.loads(
        (
            directory / "rerun/results/tiny/relu/kink_distributions/record.json"
        ).read_text()
    )
    old_record = json.loads(
        (
            directory / "archived/results/tiny/relu/kink_distributions/record.json"
        ).read_text()
    )
    assert new_record["start"] != old_record["start"]
    entry = by_path["relu/kink_distributions/record.json"]
    assert entry["status"] == "within_tolerance"
    assert "differs only in excluded" in entry["detail"] and "start" in entry["detail"]
    # logs, benchmarks and the rerun's own archive are excluded, each with its reason
    excluded = {p for p, f in by_path.items() if f["status"] == "excluded"}
    assert any(p.startswith("logs/") for p in excluded)
    assert any(p.startswith("benchmarks/") for p in excluded)
    assert "archive/tiny.tar.gz" in excluded
    applied = {e["reason"]: e["applied_to"] for e in comparison["exclusions"]}
    assert applied["when the job ran"] > 0
    assert applied["job logs carry timestamps, durations and host paths"] > 0
    # the report prints the exclusion list and the counts
    for exclusion in COMPARISON_EXCLUSIONS:
        assert exclusion.reason in proc.stdout
    assert f"identical {counts['identical']}" in proc.stdout
    assert proc.stdout.rstrip().splitlines()[-2].startswith("REPRODUCED")


@pytest.mark.slow
def test_rerun_comparison_catches_a_changed_number(tiny_rerun, tmp_path):
    _proc, _comparison, directory = tiny_rerun
    new_run = directory / "rerun" / "results" / "tiny"
    name = f"relu/{TINY_TARGET}.csv"
    rows = [row.split(",") for row in (new_run / name).read_text().splitlines()]
    r, c = next(
        (r, c)
        for r, row in enumerate(rows[1:], start=1)
        for c, cell in enumerate(row)
        if float(cell) != 0
    )

    def scaled(factor: float) -> Path:
        edited = [list(row) for row in rows]
        edited[r][c] = repr(float(rows[r][c]) * factor)
        return _write(
            tmp_path / f"{factor}" / "x.csv",
            "".join(",".join(row) + "\n" for row in edited),
        )

    ok = compare_runs({name: scaled(1 + 1e-9)}, {name: new_run / name})
    assert ok.files[0].status == "within_tolerance" and ok.reproduced
    bad = compare_runs({name: scaled(1 + 1e-4)}, {name: new_run / name})
    assert bad.files[0].status == "differs" and not bad.reproduced
    assert f"row {r}, {rows[0][c]}: " in bad.files[0].detail


@pytest.mark.slow
def test_rerun_of_a_forged_result_fails(tiny_archive, tmp_path):
    # a result rewritten together with a consistent manifest verifies, but does not rerun
    name = f"relu/{TINY_TARGET}.csv"
    good = _members(tiny_archive)
    text = next(d for m, d in good if m.name.endswith(name)).decode()
    forged_text = text.replace("0.0415", "0.0416", 1)
    assert forged_text != text
    forged = _rebuild(
        tmp_path / "forged.tar.gz", _forge(good, name, forged_text.encode())
    )
    assert archive.verify(forged).ok
    proc = _cli(
        "rerun",
        str(forged),
        str(tmp_path / "dir"),
        "--cores",
        "2",
        "--out",
        str(tmp_path / "comparison.json"),
        cwd=tmp_path,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "NOT REPRODUCED: 1 differ, 0 missing, 0 extra" in proc.stdout
    assert f"  {name}: row 2, d=1: 0.0416 vs 0.0415" in proc.stdout
    comparison = json.loads((tmp_path / "comparison.json").read_text())
    assert comparison["reproduced"] is False and comparison["counts"]["differs"] == 1
