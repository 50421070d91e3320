"""The target registry: one entry per paper figure or table (see targets.yaml).

Everything that lists targets (the Snakemake target rules, `all`, the per-paper aggregates and the
README table) reads this registry, so they cannot drift apart.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

REGISTRY_FILE = Path(__file__).with_name("targets.yaml")
# Claims of the last quick run, copied from results/quick/**/<target>.claims.json by
# `make readme` (python -m weightspace.pipeline.registry --claims results/quick).
REPRODUCED_FILE = Path(__file__).with_name("reproduced_quick.json")

FIGURE_EXTENSIONS = ("pdf", "png", "csv")
TABLE_EXTENSIONS = ("csv", "html", "tex")
STATUSES = ("built", "planned")
KINDS = ("figure", "table")


@dataclass(frozen=True)
class Paper:
    key: str
    title: str
    authors: str
    spec: str


@dataclass(frozen=True)
class Target:
    name: str
    paper: str
    kind: str
    title: str
    status: str
    gpu: bool
    quick_runtime: str
    paper_compute: str
    published: str

    @property
    def built(self) -> bool:
        return self.status == "built"

    @property
    def extensions(self) -> tuple[str, ...]:
        return FIGURE_EXTENSIONS if self.kind == "figure" else TABLE_EXTENSIONS

    def outputs(self, run_dir: str) -> list[str]:
        """Files the target produces under results/<run_name>/: the figure or table files and
        its claims (published vs reproduced, JSON)."""
        return [
            f"{run_dir}/{self.paper}/{self.name}.{ext}"
            for ext in self.extensions + ("claims.json",)
        ]


@dataclass(frozen=True)
class Registry:
    papers: dict[str, Paper]
    targets: list[Target]

    def by_name(self, name: str) -> Target:
        for target in self.targets:
            if target.name == name:
                return target
        known = ", ".join(t.name for t in self.targets)
        raise KeyError(f"unknown target {name!r}; known targets: {known}")

    def of_paper(self, paper: str, built_only: bool = False) -> list[Target]:
        return [
            t for t in self.targets if t.paper == paper and (t.built or not built_only)
        ]

    @property
    def built(self) -> list[Target]:
        return [t for t in self.targets if t.built]


def load_registry(path: Path = REGISTRY_FILE) -> Registry:
    raw = yaml.safe_load(Path(path).read_text())
    papers = {key: Paper(key=key, **fields) for key, fields in raw["papers"].items()}
    targets = [Target(**entry) for entry in raw["targets"]]
    _validate(papers, targets)
    return Registry(papers=papers, targets=targets)


def _validate(papers: dict[str, Paper], targets: list[Target]) -> None:
    seen = set()
    for t in targets:
        problems = []
        if t.name in seen:
            problems.append("duplicate name")
        if t.paper not in papers:
            problems.append(f"paper {t.paper!r} not in {sorted(papers)}")
        if t.kind not in KINDS:
            problems.append(f"kind {t.kind!r} not in {KINDS}")
        if t.status not in STATUSES:
            problems.append(f"status {t.status!r} not in {STATUSES}")
        if not t.name.startswith(f"{t.paper}_"):
            problems.append(f"name must start with its paper prefix {t.paper}_")
        if problems:
            raise ValueError(
                f"target registry entry {t.name!r}: " + "; ".join(problems)
            )
        seen.add(t.name)


def load_reproduced(path: Path = REPRODUCED_FILE) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def collect_claims(run_dir: Path, registry: Registry) -> dict:
    """{target: [claims]} from a finished run, for the README."""
    found = {}
    for t in registry.built:
        path = Path(run_dir) / t.paper / f"{t.name}.claims.json"
        if path.exists():
            found[t.name] = json.loads(path.read_text())
    return found


def _reproduced_cell(name: str, reproduced: dict) -> str:
    claims = reproduced.get(name)
    if not claims:
        return "not run yet"
    values = list(dict.fromkeys(c["reproduced"] for c in claims))
    held = sum(c["holds"] is True for c in claims)
    tested = sum(c["holds"] is not None for c in claims)
    untested = len(claims) - tested
    counts = [f"{held} of {tested} claims hold"] if tested else []
    if untested:
        counts.append(f"{untested} not applicable at quick scale")
    return f"quick: {'; '.join(values)} ({', '.join(counts)})"


def readme_table(registry: Registry, reproduced: dict | None = None) -> str:
    """The Markdown target table that opens the README (checked by a test)."""
    reproduced = load_reproduced() if reproduced is None else reproduced
    header = (
        "| paper | figure/table | target | quick runtime | paper-scale compute | needs GPU "
        "| reproduced vs published |\n"
        "|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for t in registry.targets:
        paper = registry.papers[t.paper]
        target = f"`{t.name}`" if t.built else f"`{t.name}` (planned)"
        cell = _reproduced_cell(t.name, reproduced) if t.built else "not built yet"
        rows.append(
            f"| {paper.title} ({paper.authors}) | {t.title} | {target} | {t.quick_runtime} "
            f"| {t.paper_compute} | {'yes' if t.gpu else 'no'} "
            f"| {cell}; published: {t.published} |"
        )
    return header + "\n".join(rows) + "\n"


README_BEGIN = (
    "<!-- targets:begin (generated by `python -m weightspace.pipeline.registry`) -->"
)
README_END = "<!-- targets:end -->"


def render_readme(readme_text: str, registry: Registry) -> str:
    """Replace the generated block of the README with the current table."""
    start = readme_text.index(README_BEGIN) + len(README_BEGIN)
    end = readme_text.index(README_END)
    return readme_text[:start] + "\n" + readme_table(registry) + readme_text[end:]


def main(argv=None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Regenerate the README target table.")
    parser.add_argument(
        "--claims",
        metavar="RUN_DIR",
        help="take the reproduced values from this finished quick run "
        "(e.g. results/quick) and store them in " + REPRODUCED_FILE.name,
    )
    args = parser.parse_args(argv)
    registry = load_registry()
    if args.claims:
        claims = collect_claims(Path(args.claims), registry)
        REPRODUCED_FILE.write_text(json.dumps(claims, indent=2, sort_keys=True) + "\n")
        print(f"stored claims of {len(claims)} targets from {args.claims}")
    readme = Path(__file__).resolve().parents[3] / "README.md"
    readme.write_text(render_readme(readme.read_text(), registry))
    print(f"updated the target table in {readme}")


if __name__ == "__main__":
    main()
