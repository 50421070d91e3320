"""Aggregates read each expected chunk exactly once.

An aggregate job combines the results of many chunk jobs. Snakemake hands it the files
the rule lists, but a chunk file copied over another, a stale file or a config that
lists one setting twice would still be summed silently. ``check_chunks`` compares the
identities the chunk results carry with those the job's config expects and names every
problem.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Hashable, Iterable


def split_runs(runs: list, per_job: int) -> list[list]:
    """``runs`` cut in order into jobs of ``per_job`` (the last one may be shorter)."""
    return [runs[start : start + per_job] for start in range(0, len(runs), per_job)]


def read_runs(paths: Iterable[str | os.PathLike]) -> list[dict]:
    """The ``runs`` of every job result file (``{"runs": [...]}``), in file order."""
    runs = []
    for path in paths:
        with open(path) as fh:
            runs += json.load(fh)["runs"]
    return runs


def _name(identity) -> str:
    if isinstance(identity, tuple):
        return "(" + ", ".join(map(str, identity)) + ")"
    return str(identity)


def _names(identities) -> str:
    return ", ".join(_name(i) for i in identities)


def check_chunks(
    found: Iterable[Hashable],
    expected: Iterable[Hashable] | None,
    what: str,
) -> None:
    """Raise ValueError unless ``found`` holds each identity of ``expected`` once.

    ``found`` are the identities (e.g. tuples (variant, offset, width, chunk)) of the
    chunk results read, ``expected`` those the config asks for, in any order;
    ``expected=None`` checks only for duplicates. The message names, for ``what`` (e.g.
    "relu_mc_aggregate chunks"), every duplicated, missing and unexpected chunk.
    """
    counts = Counter(found)
    problems = []
    duplicated = [i for i, n in counts.items() if n > 1]
    if duplicated:
        problems.append(
            "read more than once: "
            + ", ".join(f"{_name(i)} x{counts[i]}" for i in duplicated)
            + " (two chunk files carry one identity: a file was copied or a setting is "
            "listed twice in the config)"
        )
    if expected is not None:
        expected = list(dict.fromkeys(expected))
        wanted = set(expected)
        missing = [i for i in expected if i not in counts]
        unexpected = [i for i in counts if i not in wanted]
        if missing:
            problems.append(
                f"missing: {_names(missing)} (the config asks for them; rerun the "
                "workflow so that their jobs run)"
            )
        if unexpected:
            problems.append(
                f"not asked for by the config: {_names(unexpected)} (a stale or "
                "foreign chunk file; delete it and rerun)"
            )
    if problems:
        raise ValueError(f"{what}: " + "; ".join(problems))


def check_tables(
    tables: Iterable, column: str, names: Iterable[str], what: str
) -> None:
    """Raise ValueError unless the tables, one per name of ``names`` (each read from the
    file the rule names after it), hold exactly those names in ``column``, each once: a
    table copied over another's file, or one that holds two parts, is refused."""
    found = [value for table in tables for value in dict.fromkeys(table[column])]
    check_chunks(found, names, what)
