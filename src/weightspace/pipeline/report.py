"""A self-contained HTML report of a run: every built figure and table with its caption, and a
provenance table of all run records (rule, wildcards, status, duration, commit, host, SLURM job).

Figures are embedded as base64 PNG so the file can be mailed or archived alone. Captions are the
reST files of workflow/report/ rendered with Jinja against the run's config (the same files that
`snakemake --report` uses), shown as preformatted text.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from weightspace.pipeline.registry import Registry

STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em} h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
figure{margin:1.5em 0} img{max-width:100%;border:1px solid #eee}
figcaption,pre{white-space:pre-wrap;font-size:.85em;background:#f7f7f7;padding:.6em}
table{border-collapse:collapse;font-size:.8em} td,th{border:1px solid #ddd;padding:.25em .5em}
.planned{color:#888}
"""


def render_caption(template_text: str, config: dict) -> str:
    from jinja2 import Template

    class _Snakemake:  # captions refer to snakemake.config like `snakemake --report` does
        pass

    sm = _Snakemake()
    sm.config = config
    return Template(template_text).render(snakemake=sm)


def _records(run_dir: Path) -> list[dict]:
    found = []
    for path in sorted(run_dir.rglob("*record.json")):
        try:
            rec = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        rec["_path"] = str(path.relative_to(run_dir))
        found.append(rec)
    return found


def _provenance_table(records: list[dict]) -> str:
    rows = []
    for r in records:
        git = r.get("git") or {}
        slurm = r.get("slurm") or {}
        host = r.get("host") or {}
        commit = (git.get("commit") or "")[:10] + (
            " (dirty)" if git.get("dirty") else ""
        )
        duration = r.get("duration_s")
        rows.append(
            "<tr>"
            + "".join(
                f"<td>{html.escape(str(c))}</td>"
                for c in (
                    r.get("rule"),
                    json.dumps(r.get("wildcards") or {}),
                    r.get("status"),
                    f"{duration:.1f}" if isinstance(duration, (int, float)) else "",
                    commit,
                    host.get("hostname", ""),
                    slurm.get("job_id") or "",
                    r["_path"],
                )
            )
            + "</tr>"
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


def _target_section(target, run_dir: Path, caption_dir: Path, config: dict) -> str:
    parts = [
        f"<h3 id='{target.name}'>{html.escape(target.title)} "
        f"(<code>{target.name}</code>)</h3>"
    ]
    caption_file = caption_dir / f"{target.name}.rst"
    caption = (
        render_caption(caption_file.read_text(), config)
        if caption_file.exists()
        else ""
    )
    base = run_dir / target.paper / target.name
    if target.kind == "figure":
        png = base.with_suffix(".png")
        data = base64.b64encode(png.read_bytes()).decode()
        parts.append(
            f"<figure><img alt='{target.name}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
    else:
        parts.append(base.with_suffix(".html").read_text())
        parts.append(f"<pre>{html.escape(caption)}</pre>")
    claims_file = base.with_suffix(".claims.json")
    if claims_file.exists():
        parts.append(_claims_table(json.loads(claims_file.read_text())))
    return "\n".join(parts)


def _claims_table(claims: list[dict]) -> str:
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(c[k]))}</td>"
            for k in ("claim", "published", "reproduced")
        )
        + f"<td>{'holds' if c['holds'] else 'DOES NOT HOLD'}</td></tr>"
        for c in claims
    )
    return (
        "<table><tr><th>claim</th><th>published</th><th>reproduced</th><th>verdict</th></tr>"
        f"{rows}</table>"
    )


def build_report(
    run_dir: str | Path, registry: Registry, config: dict, caption_dir: str | Path
) -> str:
    run_dir, caption_dir = Path(run_dir), Path(caption_dir)
    body = [
        f"<h1>weightspace report: run <code>{html.escape(config['run_name'])}</code> "
        f"({html.escape(config['scale'])} scale)</h1>"
    ]
    for key, paper in registry.papers.items():
        body.append(
            f"<h2>{html.escape(paper.title)} ({html.escape(paper.authors)})</h2>"
        )
        for target in registry.of_paper(key):
            if target.built:
                body.append(_target_section(target, run_dir, caption_dir, config))
            else:
                body.append(
                    f"<p class='planned'><code>{target.name}</code>: {html.escape(target.title)}"
                    " (planned, not built yet)</p>"
                )
    records = _records(run_dir)
    body.append(f"<h2>Provenance ({len(records)} run records)</h2>")
    body.append(_provenance_table(records))
    body.append(
        "<h2>Configuration</h2><pre>"
        + html.escape(json.dumps(config, indent=2, sort_keys=True))
        + "</pre>"
    )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>weightspace report</title>"
        f"<style>{STYLE}</style></head><body>" + "\n".join(body) + "</body></html>\n"
    )
