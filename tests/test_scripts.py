"""Conventions of the workflow scripts: named after their rules, config only through params."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "workflow" / "scripts").glob("*.py"))


def snakemake_config_reads(path: Path) -> list[int]:
    """Lines that read `snakemake.config` (also through an alias such as `sm = snakemake`)."""
    tree = ast.parse(path.read_text())
    aliases = {"snakemake"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Name):
            if node.value.id in aliases:
                aliases |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr == "config"
        and isinstance(node.value, ast.Name)
        and node.value.id in aliases
    ]


def test_scripts_never_read_snakemake_config():
    # The config reaches a script only through its rule's params, which trigger reruns.
    offenders = {p.name: lines for p in SCRIPTS if (lines := snakemake_config_reads(p))}
    assert not offenders, offenders


def test_the_check_sees_an_aliased_read(tmp_path):
    script = tmp_path / "s.py"
    script.write_text("sm = snakemake\nx = sm.config['seed']\ny = sm.params.config\n")
    assert snakemake_config_reads(script) == [2]


def rule_scripts() -> dict[str, str]:
    """{rule: script file name} of every rule with a `script:` in rules/*.smk."""
    found = {}
    for smk in (ROOT / "rules").glob("*.smk"):
        text = smk.read_text()
        for match in re.finditer(
            r"^rule (\w+):\n(.*?)(?=^rule |\Z)", text, re.S | re.M
        ):
            script = re.search(r"^\s+script:\n\s+\"([^\"]+)\"", match.group(2), re.M)
            if script:
                found[match.group(1)] = Path(script.group(1)).name
    return found


def test_every_script_is_named_after_its_rule_and_used():
    scripts = rule_scripts()
    assert scripts, "no script rules found"
    assert {r: s for r, s in scripts.items() if s != f"{r}.py"} == {}
    assert sorted(p.name for p in SCRIPTS) == sorted(scripts.values())
