"""A self-contained HTML report of a run, for a reader of the reproduction.

It opens with the run (name, scale, git commit and dirty flag, config hash, dates,
package versions, devices and hosts from the run records), then one overview table of
every target (built or planned, claims holding x of y, the job time behind it), then a
section per paper and per target: figure or table, caption, claims with their
verdicts, and links to the CSV behind it. Provenance (every run record) and the config
close it.

Captions are the reStructuredText files of workflow/report/, rendered with Jinja
against the run's config (as ``snakemake --report`` does with the same files) and then
to HTML with docutils (math as MathML). Figures are embedded as base64 PNG, so the file
can be mailed or archived alone; the CSV links are relative to the run folder.

A claim's verdict is "holds", "does not hold" or "not applicable at this scale"
(``holds`` true, false or null in the claims file); one that does not hold is shown as
such, in red, everywhere it is counted.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import html
import json
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from weightspace.pipeline.registry import Registry

STYLE = """
body{font-family:system-ui,sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;
 color:#222;line-height:1.45}
h1{font-size:1.6em} h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2.2em}
h3{margin-top:1.8em}
figure{margin:1em 0} img{max-width:100%;border:1px solid #eee}
.caption{font-size:.9em;background:#f7f7f7;padding:.4em .8em;border-left:3px solid #bbb}
.caption p{margin:.4em 0}
.caption .literal,code{font-family:ui-monospace,monospace;font-size:.95em;
 background:#ececec;padding:0 .2em;border-radius:2px}
table{border-collapse:collapse;font-size:.82em;margin:.6em 0}
td,th{border:1px solid #ddd;padding:.25em .5em;vertical-align:top} th{background:#f0f0f0}
.verdict{font-weight:600;white-space:nowrap;padding:.1em .45em;border-radius:3px}
.holds{background:#dff3df;color:#1a5e1a}
.fails{background:#fbdcdc;color:#9b1111}
.na{background:#ececec;color:#555}
.planned{color:#888}
.files a{margin-right:.8em}
details pre{white-space:pre-wrap;font-size:.8em;background:#f7f7f7;padding:.6em}
"""
VERDICTS = {
    True: ("holds", "holds"),
    False: ("fails", "does not hold"),
    None: ("na", "not applicable at this scale"),
}
DOCUTILS_SETTINGS = {
    "math_output": "MathML",
    "report_level": 5,  # problems in a caption must not print into the report
    "halt_level": 5,
    "raw_enabled": False,
    "file_insertion_enabled": False,
    "initial_header_level": 4,
    "syntax_highlight": "none",
    "_disable_config": True,
}


class _Snakemake:  # captions refer to snakemake.config, as under `snakemake --report`
    def __init__(self, config: dict):
        self.config = config


def render_caption(template_text: str, config: dict) -> str:
    """The caption's reStructuredText with its Jinja fields filled in."""
    from jinja2 import Template

    return Template(template_text).render(snakemake=_Snakemake(config))


def caption_html(template_text: str, config: dict) -> str:
    """The caption rendered to an HTML fragment."""
    from docutils.core import publish_parts

    source = render_caption(template_text, config)
    parts = publish_parts(
        source, writer="html5", settings_overrides=dict(DOCUTILS_SETTINGS)
    )
    return parts["body"]


def verdict(holds) -> str:
    css, text = VERDICTS[holds if holds is None else bool(holds)]
    return f"<span class='verdict {css}'>{text}</span>"


def claim_counts(claims: list[dict]) -> dict:
    """How many claims hold, do not hold and do not apply."""
    counts = Counter(
        "na" if c["holds"] is None else ("holds" if c["holds"] else "fails")
        for c in claims
    )
    return {k: counts.get(k, 0) for k in ("holds", "fails", "na")}


def _records(run_dir: Path) -> list[dict]:
    found = []
    for path in sorted(run_dir.rglob("*record.json")):
        try:
            rec = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if rec.get("record_type") != "weightspace.run_record":
            continue
        rec["_path"] = str(path.relative_to(run_dir))
        found.append(rec)
    return found


def _benchmark_seconds(record: dict, run_dir: Path) -> float | None:
    """Wall time from the job's Snakemake benchmark file (named like its log), else
    the duration the record measured."""
    for log in record.get("job", {}).get("log") or []:
        parts = Path(log).parts
        if "logs" in parts:
            i = parts.index("logs")
            bench = Path(*parts[i + 1 :]).with_suffix(".tsv")
            path = run_dir / "benchmarks" / bench
            if path.exists():
                with open(path) as fh:
                    rows = list(csv.DictReader(fh, delimiter="\t"))
                if rows:
                    return float(rows[0]["s"])
    duration = record.get("duration_s")
    return float(duration) if isinstance(duration, (int, float)) else None


def target_jobs(records: list[dict], outputs: list[str]) -> list[dict]:
    """The records of the jobs that ``outputs`` depend on, found by walking the
    records' inputs back to the jobs that wrote them."""
    producer = {}
    for rec in records:
        for out in rec.get("job", {}).get("outputs") or []:
            producer[out] = rec
    seen, stack, jobs = set(), list(outputs), []
    while stack:
        rec = producer.get(stack.pop())
        if rec is None or id(rec) in seen:
            continue
        seen.add(id(rec))
        jobs.append(rec)
        stack += [i["path"] for i in rec.get("inputs") or [] if "path" in i]
    return jobs


def _run_section(config: dict, records: list[dict]) -> str:
    commits = Counter((r.get("git") or {}).get("commit") for r in records)
    dirty = any((r.get("git") or {}).get("dirty") for r in records)
    commit = ", ".join(str(c)[:12] for c in commits if c) or "not a git checkout"
    config_hash = hashlib.sha256(
        json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    starts = sorted(r["start"] for r in records if r.get("start"))
    ends = sorted(r["end"] for r in records if r.get("end"))
    packages: dict[str, set] = {}
    for r in records:
        for name, version in (r.get("packages") or {}).items():
            packages.setdefault(name, set()).add(str(version))
    devices = Counter(
        (r.get("device") or {}).get("cuda_name")
        or (r.get("device") or {}).get("resolved")
        for r in records
    )
    hosts = sorted({(r.get("host") or {}).get("hostname", "?") for r in records})
    rows = [
        ("run", f"<code>{html.escape(config['run_name'])}</code>"),
        ("scale", html.escape(config["scale"])),
        (
            "git commit",
            html.escape(commit) + (" <b>(dirty working tree)</b>" if dirty else ""),
        ),
        ("config sha256", f"<code>{config_hash}</code>"),
        (
            "jobs ran",
            f"{html.escape(starts[0]) if starts else '?'} to "
            f"{html.escape(ends[-1]) if ends else '?'} ({len(records)} run records)",
        ),
        (
            "report written",
            datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        ),
        (
            "packages",
            ", ".join(
                f"{html.escape(k)} {html.escape(' / '.join(sorted(v)))}"
                for k, v in sorted(packages.items())
            ),
        ),
        (
            "devices",
            ", ".join(f"{html.escape(str(d))} ({n} jobs)" for d, n in devices.items()),
        ),
        ("hosts", html.escape(", ".join(hosts))),
    ]
    body = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return f"<section id='run'><h2>The run</h2><table>{body}</table></section>"


def claims_summary(claims: list[dict]) -> str:
    """The overview's cell: how many decided claims hold, the failures marked, and the
    claims that do not apply at this scale counted apart (never as "0 of 0 hold")."""
    counts = claim_counts(claims)
    decided = counts["holds"] + counts["fails"]
    parts = [f"{counts['holds']} of {decided} hold"] if decided else []
    if counts["fails"]:
        parts[-1] += f" {verdict(False)} ×{counts['fails']}"
    if counts["na"]:
        parts.append(f"{counts['na']} {verdict(None)}")
    return ", ".join(parts) or "no claims"


def _overview(registry: Registry, run_dir: Path, records: list[dict], config) -> str:
    rows = []
    for t in registry.targets:
        paper = registry.papers[t.paper]
        name = f"<a href='#{t.name}'><code>{t.name}</code></a>"
        if not t.built:
            rows.append(
                f"<tr class='planned'><td><code>{t.name}</code></td>"
                f"<td>{html.escape(paper.authors)}</td><td>{html.escape(t.title)}</td>"
                "<td>planned</td><td></td><td></td></tr>"
            )
            continue
        claims_file = run_dir / t.paper / f"{t.name}.claims.json"
        cell = "no claims file"
        if claims_file.exists():
            cell = claims_summary(json.loads(claims_file.read_text()))
        run = f"{config['results_dir']}/{config['run_name']}"
        jobs = target_jobs(records, t.outputs(run))
        seconds = [s for s in (_benchmark_seconds(r, run_dir) for r in jobs) if s]
        time = f"{sum(seconds):.0f} s ({len(jobs)} jobs)" if jobs else ""
        rows.append(
            f"<tr><td>{name}</td><td>{html.escape(paper.authors)}</td>"
            f"<td>{html.escape(t.title)}</td><td>built</td><td>{cell}</td>"
            f"<td>{time}</td></tr>"
        )
    head = "".join(
        f"<th>{h}</th>"
        for h in ("target", "paper", "what", "status", "claims", "job time")
    )
    return (
        "<section id='overview'><h2>Targets</h2><table class='overview'>"
        f"<tr>{head}</tr>{''.join(rows)}</table><p>Job time: the wall time of every "
        "job the target depends on (its Snakemake benchmark files); jobs shared by "
        "several targets count in each.</p></section>"
    )


def _claims_table(claims: list[dict]) -> str:
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(c[k]))}</td>"
            for k in ("claim", "published", "reproduced")
        )
        + f"<td>{verdict(c['holds'])}</td></tr>"
        for c in claims
    )
    head = "".join(
        f"<th>{h}</th>" for h in ("claim", "published", "reproduced", "verdict")
    )
    return f"<table class='claims'><tr>{head}</tr>{rows}</table>"


def _target_section(target, run_dir: Path, caption_dir: Path, config: dict) -> str:
    parts = [
        f"<h3 id='{target.name}'>{html.escape(target.title)} "
        f"(<code>{target.name}</code>)</h3>"
    ]
    caption_file = caption_dir / f"{target.name}.rst"
    caption = (
        caption_html(caption_file.read_text(), config) if caption_file.exists() else ""
    )
    base = run_dir / target.paper / target.name
    if target.kind == "figure":
        data = base64.b64encode(base.with_suffix(".png").read_bytes()).decode()
        parts.append(
            f"<figure><img alt='{target.name}' src='data:image/png;base64,{data}'>"
            f"<figcaption class='caption'>{caption}</figcaption></figure>"
        )
    else:
        parts.append(base.with_suffix(".html").read_text())
        parts.append(f"<div class='caption'>{caption}</div>")
    claims_file = base.with_suffix(".claims.json")
    claims = json.loads(claims_file.read_text()) if claims_file.exists() else []
    parts.append(
        _claims_table(claims)
        if claims
        else "<p class='planned'>This target states no claims to check.</p>"
    )
    links = [
        f"<a href='../{target.paper}/{target.name}.{ext}'>{target.name}.{ext}</a>"
        for ext in target.extensions
        if ext != "png" and base.with_suffix(f".{ext}").exists()
    ]
    parts.append(f"<p class='files'>Files: {' '.join(links)}</p>")
    return "\n".join(parts)


def _provenance_table(records: list[dict], run_dir: Path) -> str:
    rows = []
    for r in records:
        git = r.get("git") or {}
        commit = (git.get("commit") or "")[:10] + (
            " (dirty)" if git.get("dirty") else ""
        )
        seconds = _benchmark_seconds(r, run_dir)
        cells = (
            r.get("rule"),
            json.dumps(r.get("wildcards") or {}),
            r.get("status"),
            "" if seconds is None else f"{seconds:.1f}",
            commit,
            (r.get("host") or {}).get("hostname", ""),
            (r.get("slurm") or {}).get("job_id") or "",
            r["_path"],
        )
        rows.append(
            "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>"
        )
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "rule",
            "wildcards",
            "status",
            "seconds",
            "commit",
            "host",
            "SLURM job",
            "record",
        )
    )
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def build_report(
    run_dir: str | Path, registry: Registry, config: dict, caption_dir: str | Path
) -> str:
    run_dir, caption_dir = Path(run_dir), Path(caption_dir)
    records = _records(run_dir)
    body = [
        f"<h1>weightspace: run <code>{html.escape(config['run_name'])}</code> "
        f"({html.escape(config['scale'])} scale)</h1>",
        _run_section(config, records),
        _overview(registry, run_dir, records, config),
    ]
    for key, paper in registry.papers.items():
        body.append(
            f"<h2 id='paper-{key}'>{html.escape(paper.title)} "
            f"({html.escape(paper.authors)})</h2>"
        )
        for target in registry.of_paper(key):
            if target.built:
                body.append(_target_section(target, run_dir, caption_dir, config))
            else:
                body.append(
                    f"<p class='planned' id='{target.name}'><code>{target.name}</code>:"
                    f" {html.escape(target.title)} (planned, not built yet)</p>"
                )
    body.append(
        f"<h2 id='provenance'>Provenance</h2><details><summary>{len(records)} run "
        "records</summary>" + _provenance_table(records, run_dir) + "</details>"
    )
    body.append(
        "<h2 id='configuration'>Configuration</h2><details><summary>the resolved "
        "config</summary><pre>"
        + html.escape(json.dumps(config, indent=2, sort_keys=True))
        + "</pre></details>"
    )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>weightspace report: {html.escape(config['run_name'])}</title>"
        f"<style>{STYLE}</style></head><body>" + "\n".join(body) + "</body></html>\n"
    )
