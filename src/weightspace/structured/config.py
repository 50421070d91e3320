"""Semantic checks of the structured config, beyond what the schema says.

`check(config)` gets the whole config, already valid against the schema, and returns
every problem at once, one message each naming the key and the fix. It runs when the
workflow starts, so it imports neither torch nor pyfaust.
"""

from __future__ import annotations

from collections import Counter

# The options each approximator method needs (weightspace.structured.approximators).
APPROXIMATOR_OPTIONS = {
    "lr": (),
    "sss": ("n_stages",),
    "sss_search": ("n_steps",),
    "psm": ("n_factors", "distribution", "n_steps"),
    "psm_search": ("factor_counts", "n_steps"),
    "hmat_search": (),
    "tl": (),
}
# Methods whose approximation has a trainable layer, as the fine-tuning table needs
# (weightspace.structured.finetuning.TRAINABLE).
TRAINABLE_METHODS = ("lr", "sss", "sss_search", "psm", "psm_search", "hmat_search")
# Methods for square matrices only: a last layer (classes × features) is not square.
SQUARE_ONLY_METHODS = ("tl",)


def _key(name: str) -> str:
    return f"config key 'structured.{name}'"


def _repeated(values) -> list:
    return [v for v, n in Counter(values).items() if n > 1]


def _unique_names(name: str, entries: list[dict], what: str) -> list[str]:
    return [
        f"{_key(name)}: the name {n!r} is given to several {what}; "
        "give each its own name"
        for n in _repeated(e["name"] for e in entries)
    ]


def _approximator_problems(name: str, specs: list[dict]) -> list[str]:
    problems = []
    for spec in specs:
        missing = [o for o in APPROXIMATOR_OPTIONS[spec["method"]] if o not in spec]
        if missing:
            problems.append(
                f"{_key(name)}: {spec['name']!r} (method {spec['method']}) needs "
                f"{', '.join(missing)}; add {'them' if len(missing) > 1 else 'it'} "
                "(see config/README.md)"
            )
    return problems


def _feature_set_problems(
    name: str, feature_sets: list[str], subsets: set
) -> list[str]:
    """A feature set is `small_cnn`, `mnist_pairs` or `<arch>/<subset>` with a subset of
    the class lists (the schema checks the pattern)."""
    problems = []
    for features in feature_sets:
        if features in ("small_cnn", "mnist_pairs"):
            continue
        subset = features.split("/", 1)[1]
        if subset not in subsets:
            known = ", ".join(sorted(subsets))
            problems.append(
                f"{_key(name)}: feature set {features!r} uses the class subset "
                f"{subset!r}, which structured.pretrained.class_lists does not name "
                f"({known}); add it there or use one of these"
            )
    return problems


def check(config: dict) -> list[str]:
    """Every problem of the structured config (an empty list when there is none)."""
    cfg = config["structured"]
    problems = []
    class_lists = cfg["pretrained"]["class_lists"]
    problems += _unique_names("pretrained.class_lists", class_lists, "class lists")
    subsets = {entry["name"] for entry in class_lists}

    tm = cfg["testmatrices"]
    problems += _unique_names(
        "testmatrices.approximators", tm["approximators"], "approximators"
    )
    problems += _approximator_problems(
        "testmatrices.approximators", tm["approximators"]
    )
    if tm["size"] % tm["sss_stage_size"]:
        problems.append(
            f"{_key('testmatrices.sss_stage_size')} = {tm['sss_stage_size']} does not "
            f"divide structured.testmatrices.size = {tm['size']}; choose a divisor"
        )
    if tm["low_rank"] > tm["size"]:
        problems.append(
            f"{_key('testmatrices.low_rank')} = {tm['low_rank']} exceeds "
            f"structured.testmatrices.size = {tm['size']}; choose a rank up to the size"
        )

    methods = cfg["approximation"]["methods"]
    problems += _unique_names("approximation.methods", methods, "methods")
    problems += _approximator_problems("approximation.methods", methods)
    problems += [
        f"{_key('approximation.methods')}: {m['name']!r} (method {m['method']}) "
        "approximates square matrices only, and a last layer is not square; remove it"
        for m in methods
        if m["method"] in SQUARE_ONLY_METHODS
    ]
    problems += _feature_set_problems(
        "approximation.features", [cfg["approximation"]["features"]], subsets
    )

    problems += _feature_set_problems(
        "finetune.features", [cfg["finetune"]["features"]], subsets
    )
    labels = [f"{share:g}" for share in cfg["finetune"]["shares"]]
    problems += [
        f"{_key('finetune.shares')}: several shares print as {label} (one job and file "
        "each); give shares that differ in their first six significant digits"
        for label in _repeated(labels)
    ]

    table = cfg["finetune_table"]
    problems += _unique_names("finetune_table.methods", table["methods"], "methods")
    problems += _approximator_problems("finetune_table.methods", table["methods"])
    problems += [
        f"{_key('finetune_table.methods')}: {m['name']!r} (method {m['method']}) has "
        f"no trainable layer; use one of {', '.join(TRAINABLE_METHODS)}"
        for m in table["methods"]
        if m["method"] not in TRAINABLE_METHODS
    ]
    problems += _feature_set_problems(
        "finetune_table.features", table["features"], subsets
    )

    problems += _unique_names("speed.shapes", cfg["speed"]["shapes"], "shapes")
    return problems
