"""The workflow's config: strict loading, the rule for partial files, validation, slices.

Config files. Each `--configfile` (default: config/quick.yaml) is either complete, setting every
key of the schema, or starts with `extends: <scale or path>` and is merged over that file (a
bare name such as `quick` or `paper` means config/<name>.yaml; another value is a path relative
to the extending file). A key missing after that is an error, never filled in from another
scale. Several files are resolved one by one and merged in order; `--config key=value` applies
last. YAML is read strictly: a syntax error names file, line and column, a key given twice in
one mapping is an error.

Validation. The schema (workflow/schemas/config.schema.yaml) with integers that are integers
(20200211.0 is not a seed), NaN and infinity rejected everywhere, a safe results path, and then
each paper's semantic checks (`weightspace.<paper>.config.check(config) -> list[str]`). Every
problem is reported at once, before any job runs.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
from pathlib import Path, PurePath

import jsonschema
import yaml

from weightspace.provenance.atomic import canonical_json

SCHEMA_FILE = (
    Path(__file__).resolve().parents[3] / "workflow" / "schemas" / "config.schema.yaml"
)
EXTENDS_KEY = "extends"
PAPERS = ("teleport", "rbd", "credit", "relu", "structured")


class ConfigError(ValueError):
    """A config value is missing, unknown or out of range; the message names key and fix."""


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (YAML keeps the last)."""


def _construct_mapping(loader, node, deep=False):
    seen = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            mark = key_node.start_mark
            raise ConfigError(
                f"{mark.name}, line {mark.line + 1}: key {key!r} is given twice in one "
                f"mapping (first on line {seen[key] + 1}); keep one of them"
            )
        seen[key] = key_node.start_mark.line
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping
)


def load_yaml(path: str | Path):
    """Parse a YAML file strictly; errors name the file, line and column."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(
            f"cannot read config file {path}: {error.strerror or error}"
        ) from None
    try:
        return yaml.load(text, Loader=_make_loader(path))
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = " ".join(p for p in (error.context, error.problem) if p)
        raise ConfigError(f"{path}{where}: invalid YAML: {problem}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: invalid YAML: {error}") from None


def _make_loader(path: Path):
    def loader(stream):
        instance = _StrictLoader(stream)
        instance.name = str(path)
        return instance

    return loader


def merge(base: dict, override: dict) -> dict:
    """`override` over `base`: mappings merge key by key, every other value replaces."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _extended_path(value, path: Path, config_dir: Path) -> Path:
    if not isinstance(value, str) or not value:
        raise ConfigError(
            f"{path}: `{EXTENDS_KEY}` must name a scale (quick, paper, tiny) or a config "
            f"file path, not {value!r}"
        )
    if "/" not in value and not value.endswith((".yaml", ".yml", ".json")):
        return config_dir / f"{value}.yaml"
    return (path.parent / value).resolve()


def load_config_file(path: str | Path, config_dir: str | Path, _chain=()) -> dict:
    """One config file with its `extends` chain resolved (not yet validated)."""
    path = Path(path).resolve()
    if path in _chain:
        cycle = " -> ".join(str(p) for p in (*_chain, path))
        raise ConfigError(f"config files extend each other in a cycle: {cycle}")
    data = load_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: a config file must be a mapping of keys at top level"
        )
    if EXTENDS_KEY not in data:
        return data
    data = dict(data)
    base_path = _extended_path(data.pop(EXTENDS_KEY), path, Path(config_dir))
    if not base_path.is_file():
        raise ConfigError(
            f"{path}: `{EXTENDS_KEY}` names {base_path}, which does not exist"
        )
    return merge(load_config_file(base_path, config_dir, (*_chain, path)), data)


def resolve_config(paths, overrides: dict | None, config_dir: str | Path) -> dict:
    """The workflow config from `--configfile` paths (each complete after its `extends`) and
    `--config` overrides, checked in full (see `check_config`)."""
    resolved = {}
    for path in paths:
        one = load_config_file(path, config_dir)
        missing = _missing_keys(one)
        if missing:
            raise ConfigError(
                f"config file {path} is incomplete: missing {', '.join(missing)}. Give every "
                f"key, or add `{EXTENDS_KEY}: quick` (or paper, tiny, or a path) at its top to "
                "take the other keys from that file (see config/README.md)"
            )
        resolved = merge(resolved, one)
    resolved = merge(resolved, dict(overrides or {}))
    check_config(resolved)
    return resolved


def _missing_keys(config: dict, schema: dict | None = None, prefix="") -> list[str]:
    """Dotted names of the schema's required keys that the config lacks."""
    schema = schema or load_schema()
    missing = []
    for key in schema.get("required", []):
        name = f"{prefix}{key}"
        if key not in config:
            missing.append(name)
        elif isinstance(config[key], dict):
            sub = schema.get("properties", {}).get(key, {})
            missing += _missing_keys(config[key], sub, name + ".")
    return missing


def load_schema(path: Path = SCHEMA_FILE) -> dict:
    return yaml.safe_load(Path(path).read_text())


def _key(path) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def _subschema(schema: dict, path) -> dict:
    node = schema
    for part in path:
        if isinstance(part, int):
            node = node.get("items", {})
        else:
            node = node.get("properties", {}).get(part, {})
    return node


def _allowed(schema: dict) -> str:
    """A short human description of what a schema node allows."""
    parts = []
    if "enum" in schema:
        parts.append("one of " + ", ".join(json.dumps(v) for v in schema["enum"]))
    elif "type" in schema:
        kind = schema["type"]
        parts.append(" or ".join(kind) if isinstance(kind, list) else kind)
    for bound, word in (
        ("minimum", ">="),
        ("exclusiveMinimum", ">"),
        ("maximum", "<="),
        ("exclusiveMaximum", "<"),
        ("minItems", "at least items:"),
        ("pattern", "matching"),
    ):
        if bound in schema:
            parts.append(f"{word} {schema[bound]}")
    if "description" in schema:
        parts.append(f"({schema['description']})")
    return " ".join(parts) or "see config/README.md"


def _is_integer(checker, value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# JSON Schema counts 3.0 as an integer; a seed or a count written as a float is a typo here.
_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", _is_integer
    ),
)


def nonfinite_keys(tree, prefix: str = "") -> list[str]:
    """Dotted names of NaN or infinite values: no config key takes one."""
    found = []
    items = tree.items() if isinstance(tree, dict) else enumerate(tree)
    for key, value in items:
        name = f"{prefix}{key}"
        if isinstance(value, float) and not math.isfinite(value):
            found.append(name)
        elif isinstance(value, (dict, list)):
            found += nonfinite_keys(value, name + ".")
    return found


def path_problems(config: dict) -> list[str]:
    """results_dir and run_name must name a folder below somewhere, never `/` or `..`."""
    problems = []
    results_dir = config.get("results_dir")
    if isinstance(results_dir, str):
        parts = PurePath(results_dir).parts
        if not results_dir.strip():
            problems.append(
                "config key 'results_dir' is empty; give a folder, e.g. results"
            )
        elif ".." in parts:
            problems.append(
                f"config key 'results_dir' = {results_dir!r} contains '..'; give a folder "
                "without parent references"
            )
        elif PurePath(results_dir).anchor and len(parts) == 1:
            problems.append(
                f"config key 'results_dir' = {results_dir!r} is the filesystem root; give "
                "a folder, e.g. results"
            )
    run_name = config.get("run_name")
    if isinstance(run_name, str) and run_name.strip(".") == "":
        problems.append(
            f"config key 'run_name' = {run_name!r} is not a folder name; use letters, digits "
            "and _.-"
        )
    return problems


def paper_problems(config: dict) -> list[str]:
    """Each built paper's semantic checks (`weightspace.<paper>.config.check`)."""
    problems = []
    for paper in PAPERS:
        module = f"weightspace.{paper}.config"
        if importlib.util.find_spec(f"weightspace.{paper}") is None:
            continue
        if importlib.util.find_spec(module) is None:
            continue
        problems += importlib.import_module(module).check(config)
    return problems


def check_config(config: dict, schema: dict | None = None) -> None:
    """Raise ConfigError listing every problem: schema, NaN/inf, paths, paper checks."""
    problems = [
        f"config key {k!r} is NaN or infinite; give a finite number"
        for k in nonfinite_keys(config)
    ]
    problems += _schema_problems(config, schema or load_schema())
    problems += path_problems(config)
    if not problems:  # the paper checks rely on a config of the schema's shape
        problems += paper_problems(config)
    if problems:
        raise ConfigError(
            "invalid config:\n  "
            + "\n  ".join(problems)
            + "\nSee config/README.md for every key."
        )


def _schema_problems(config: dict, schema: dict) -> list[str]:
    validator = _Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    lines = []
    for err in errors:
        path = list(err.absolute_path)
        if err.validator == "additionalProperties":
            allowed = sorted(err.schema.get("properties", {}))
            extra = sorted(set(err.instance) - set(allowed))
            for name in extra:
                lines.append(
                    f"unknown config key {_key(path + [name])!r}; allowed keys here: "
                    f"{', '.join(allowed) or 'none'}"
                )
        elif err.validator == "required":
            missing = [k for k in err.validator_value if k not in err.instance]
            for name in missing:
                sub = _subschema(schema, path + [name])
                lines.append(
                    f"missing config key {_key(path + [name])!r}: expected {_allowed(sub)}"
                )
        else:
            sub = _subschema(schema, path)
            lines.append(
                f"config key {_key(path)!r} = {json.dumps(err.instance)} is invalid "
                f"({err.message}); allowed: {_allowed(sub)}"
            )
    return lines


def get_key(config: dict, dotted: str):
    node = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(
                f"config key {dotted!r} does not exist (stopped at {part!r})"
            )
        node = node[part]
    return node


def config_slice(config: dict, keys) -> dict:
    """The named dotted keys with their values, e.g. {"seed": 1, "relu.kinks": {...}}."""
    return {k: get_key(config, k) for k in keys}


def config_slice_json(config: dict, keys) -> str:
    return canonical_json(config_slice(config, keys))


def leaf_keys(tree: dict, prefix: str = "") -> set[str]:
    """Dotted names of all leaves: used to check that every scale's config is complete."""
    keys = set()
    for k, v in tree.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            keys |= leaf_keys(v, name + ".")
        else:
            keys.add(name)
    return keys


def main(argv=None) -> int:
    """`python -m weightspace.pipeline.config check FILE...`: the workflow's config checks
    without Snakemake (Snakemake parses a --configfile before the workflow can name a line)."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("command", choices=["check"])
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    config_dir = Path(__file__).resolve().parents[3] / "config"
    try:
        resolved = resolve_config(args.files, None, config_dir)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 1
    print(
        f"OK: {', '.join(map(str, args.files))} (scale {resolved['scale']}, run "
        f"{resolved['results_dir']}/{resolved['run_name']})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
