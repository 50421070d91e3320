"""Config validation against workflow/schemas/config.schema.yaml, and config slices for params."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import yaml

from weightspace.provenance.atomic import canonical_json

SCHEMA_FILE = Path(__file__).resolve().parents[3] / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A config value is missing, unknown or out of range; the message names key and fix."""


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
    for bound, word in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="),
                        ("exclusiveMaximum", "<"), ("minItems", "at least items:"),
                        ("pattern", "matching")):
        if bound in schema:
            parts.append(f"{word} {schema[bound]}")
    if "description" in schema:
        parts.append(f"({schema['description']})")
    return " ".join(parts) or "see config/README.md"


def validate_config(config: dict, schema: dict | None = None) -> None:
    """Raise ConfigError naming the offending key and what is allowed; checks every error."""
    schema = schema or load_schema()
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if not errors:
        return
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
    raise ConfigError(
        "invalid config:\n  " + "\n  ".join(lines) + "\nSee config/README.md for every key."
    )


def get_key(config: dict, dotted: str):
    node = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(f"config key {dotted!r} does not exist (stopped at {part!r})")
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
