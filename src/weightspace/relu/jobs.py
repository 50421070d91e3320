"""How the relu experiments are cut into jobs: the chunks of the 1-D Monte Carlo and
of the star experiment, and their identities.

The rules (rules/relu.smk) make one job per entry; the aggregates check that they read
each identity once (``weightspace.pipeline.chunks``); the config check refuses configs
whose jobs would collide. Pure Python, read when the workflow is parsed.
"""

from __future__ import annotations

from collections.abc import Mapping


def chunk_count(total: int, per_chunk: int) -> int:
    """Chunks of at most ``per_chunk`` items that hold ``total`` items."""
    return -(-total // per_chunk)


def chunk_size(total: int, per_chunk: int, chunk: int) -> int:
    """Items in chunk ``chunk`` (the last chunk may be smaller)."""
    return min(per_chunk, total - chunk * per_chunk)


def offset_label(offset: float) -> str:
    """The label of Δ = ``offset`` in paths and seeds; jobs train at float(label)."""
    return f"{offset:g}"


def mc_chunks(mc: Mapping) -> list[tuple[str, str, int, int]]:
    """(variant, offset label, width, chunk) of every Monte Carlo job of ``relu.mc``."""
    chunks = range(chunk_count(mc["runs"], mc["chunk_runs"]))
    return [
        (variant["name"], offset_label(offset), int(width), chunk)
        for variant in mc["variants"]
        for offset in mc["offsets"]
        for width in mc["widths"]
        for chunk in chunks
    ]


def star_chunks(star: Mapping) -> list[tuple[int, int, int]]:
    """(width, chunk, nets) of every job of ``relu.star``."""
    jobs = []
    for entry in star["widths"]:
        n, size = entry["nets"], entry["chunk_nets"]
        for chunk in range(chunk_count(n, size)):
            jobs.append((entry["width"], chunk, chunk_size(n, size, chunk)))
    return jobs


# What one job reads of the config: its rule's `config` param, so that a change elsewhere
# (another variant, another width, the figure's keys) reruns nothing of it.
# The training protocol of the setups grid, which the examples retrain with.
SETUPS_PROTOCOL = (
    "width",
    "batch_size",
    "valid_every",
    "train_per_dim",
    "n_valid",
    "n_test",
    "best_test_uses_valid",
    "dtype",
)
STAR_JOB_KEYS = ("rays", "delta", "epochs", "stage_epochs", "star_double_step", "dtype")


def mc_job_config(config: Mapping, variant: str, chunk: int) -> dict:
    """One Monte Carlo chunk: its variant and its number of runs."""
    mc = config["relu"]["mc"]
    return {
        "seed": config["seed"],
        "device": config["device"],
        "variant": next(v for v in mc["variants"] if v["name"] == variant),
        "runs": chunk_size(mc["runs"], mc["chunk_runs"], chunk),
        "checkpoint_every": mc["checkpoint_every"],
    }


def star_job_config(config: Mapping, width: int, chunk: int) -> dict:
    """One star chunk: its number of nets and the training protocol."""
    star = config["relu"]["star"]
    nets = {(w, c): n for w, c, n in star_chunks(star)}
    if (width, chunk) not in nets:
        raise ValueError(f"no chunk {chunk} of width {width} in relu.star.widths")
    return {
        "seed": config["seed"],
        "device": config["device"],
        "nets": nets[(width, chunk)],
        **{k: star[k] for k in STAR_JOB_KEYS},
    }


def setups_job_config(config: Mapping) -> dict:
    """One distribution's grid: every setups key but the list of distributions (one job
    each) and the bias inits the figure draws."""
    setups = config["relu"]["setups"]
    return {
        "seed": config["seed"],
        "device": config["device"],
        **{
            k: v
            for k, v in setups.items()
            if k not in ("distributions", "figure_bias_inits")
        },
    }


def examples_job_config(config: Mapping) -> dict:
    """The examples and the setups protocol they retrain with (not the grid's other keys)."""
    setups = config["relu"]["setups"]
    return {
        "seed": config["seed"],
        "examples": config["relu"]["examples"],
        "setups": {k: setups[k] for k in SETUPS_PROTOCOL},
    }
