"""Semantic checks of the ``relu`` config, beyond what the schema can say.

``check(config)`` gets the whole config after schema validation and returns every
problem at once, one message each, naming the key and the fix. The workflow runs it when
it is parsed, so it imports neither torch nor snakemake.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping

from weightspace.relu.jobs import offset_label

_RAD = re.compile(r"rad-distr-([1-9][0-9]*)")


def check(config: Mapping) -> list[str]:
    """Every problem of ``config["relu"]`` (an empty list when there is none)."""
    relu = config["relu"]
    return [
        *_kink_problems(relu["kink_distributions"]),
        *_mc_problems(relu["mc"]),
        *_star_problems(relu["star"]),
        *_setups_problems(relu["setups"]),
        *_examples_problems(relu["examples"], relu["setups"]),
    ]


def _repeated(values: Iterable) -> list:
    """The values that occur more than once, in order of first occurrence."""
    seen, again = set(), {}
    for value in values:
        if value in seen:
            again[value] = None
        seen.add(value)
    return list(again)


def _kink_problems(kinks: Mapping) -> list[str]:
    return [
        f"relu.kink_distributions.dims: d = {d} is listed more than once; list each "
        "dimension once (it names a column of the CDF table)"
        for d in _repeated(kinks["dims"])
    ]


def _mc_problems(mc: Mapping) -> list[str]:
    problems = [
        f"relu.mc.variants: the name {name!r} is given to more than one variant; give "
        "each variant its own name (it names the variant's results folder and seeds)"
        for name in _repeated(v["name"] for v in mc["variants"])
    ]
    problems += [
        f"relu.mc.widths: m = {w} is listed more than once; list each width once"
        for w in _repeated(mc["widths"])
    ]
    finite = []
    for offset in mc["offsets"]:
        if not math.isfinite(offset):
            problems.append(
                f"relu.mc.offsets: {offset!r} is not a finite number; give finite "
                "offsets"
            )
            continue
        finite.append(offset)
        label = offset_label(offset)
        if float(label) != offset:
            problems.append(
                f"relu.mc.offsets: {offset!r} is written {label!r} in paths and seeds "
                f"and trained as {float(label)!r}; give it with at most 6 significant "
                "digits"
            )
    for label in _repeated(offset_label(o) for o in finite):
        same = ", ".join(repr(o) for o in finite if offset_label(o) == label)
        problems.append(
            f"relu.mc.offsets: {same} are one offset (label {label!r}); list each "
            "offset once"
        )
    for value in _repeated(finite):  # equal values under other labels: 0.0 and -0.0
        same = [o for o in finite if o == value]
        if len({offset_label(o) for o in same}) > 1:
            problems.append(
                f"relu.mc.offsets: {', '.join(map(repr, same))} are one offset; list "
                "it once"
            )
    return problems


def _star_problems(star: Mapping) -> list[str]:
    problems = [
        f"relu.star.widths: m = {w} has more than one entry; give each width once (its "
        "nets and chunk_nets in one entry)"
        for w in _repeated(entry["width"] for entry in star["widths"])
    ]
    if star["stage_epochs"] > star["epochs"]:
        problems.append(
            f"relu.star.stage_epochs = {star['stage_epochs']} exceeds "
            f"relu.star.epochs = {star['epochs']}; make it at most epochs"
        )
    return problems


def _dimension(distribution: str) -> int | None:
    if distribution == "ex-distr":
        return 1
    match = _RAD.fullmatch(distribution)
    return int(match.group(1)) if match else None


def _setups_problems(setups: Mapping) -> list[str]:
    dists = setups["distributions"]
    problems = [
        f"relu.setups.distributions: {d} is listed more than once; list each "
        "distribution once (one job each)"
        for d in _repeated(dists)
    ]
    unknown = set(setups["figure_bias_inits"]) - set(setups["bias_inits"])
    if unknown:
        problems.append(
            f"relu.setups.figure_bias_inits {sorted(unknown)} are not in "
            "relu.setups.bias_inits; add them there or drop them from the figure"
        )
    if "zero" not in setups["figure_bias_inits"]:
        problems.append(
            "relu.setups.figure_bias_inits must contain zero (the figure's baseline)"
        )
    if not any(_RAD.fullmatch(d) for d in dists):
        problems.append(
            "relu.setups.distributions needs at least one rad-distr-<d> (the "
            "figure's x axis)"
        )
    if "ex-distr" not in dists:
        problems.append(
            "relu.setups.distributions must contain ex-distr (relu_fig_examples "
            "retrains it)"
        )
    for d in dict.fromkeys(dists):
        dim = _dimension(d)
        if dim is None:
            problems.append(
                f"relu.setups.distributions: {d!r} is neither ex-distr nor "
                "rad-distr-<d> with d >= 1"
            )
            continue
        n_train = setups["train_per_dim"] * dim
        if n_train % setups["batch_size"]:
            problems.append(
                f"relu.setups: n_train = train_per_dim * d = {n_train} for {d} is not "
                f"a multiple of batch_size = {setups['batch_size']}; change "
                "train_per_dim or batch_size"
            )
    if setups["max_batch_nets"] < setups["nets"]:
        problems.append(
            f"relu.setups.max_batch_nets = {setups['max_batch_nets']} is below "
            f"relu.setups.nets = {setups['nets']}: a batch holds at least one "
            "configuration's nets; make it at least nets"
        )
    return problems


def _examples_problems(examples: Mapping, setups: Mapping) -> list[str]:
    keys = ("parameterisation", "optimizer", "bias_init")
    settings = [tuple(c[k] for k in keys) for c in examples["configs"]]
    problems = [
        f"relu.examples.configs: {'/'.join(s)} is listed more than once; list each once"
        for s in _repeated(settings)
    ]
    grid = (setups["parameterisations"], setups["optimizers"], setups["bias_inits"])
    for c, setting in zip(examples["configs"], settings):
        if any(value not in choices for value, choices in zip(setting, grid)):
            problems.append(
                f"relu.examples.configs entry {dict(c)} is not part of the relu.setups "
                "grid (its parameterisations, optimizers and bias_inits); add it "
                "there or drop the entry"
            )
    width = examples["reference"]["width"]
    if width % 2:
        problems.append(
            f"relu.examples.reference.width = {width} must be even (half the kinks on "
            "each side of 0)"
        )
    return problems
