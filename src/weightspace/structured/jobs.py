"""How the structured experiments are cut into jobs: what each job reads of the config
(its rule's `config` param, so that a change elsewhere reruns nothing of it), labels in
paths, and the check of a pretrained feature job's inputs.

Pure Python, read when the workflow is parsed (rules/structured.smk).
"""

from __future__ import annotations

from collections.abc import Mapping

# The config keys every approximation depends on.
SHARED_KEYS = (
    "seed",
    "structured.psm_iterations",
    "structured.sss_esann_off_by_one",
    "structured.sss_exact_count",
)


def _shared(config: Mapping) -> dict:
    from weightspace.pipeline.config import config_slice

    return config_slice(config, SHARED_KEYS)


def _named(entries, name: str) -> dict:
    return next(entry for entry in entries if entry["name"] == name)


def speed_job_config(config: Mapping, shape: str) -> dict:
    """One shape of structured_fig_speed."""
    speed = config["structured"]["speed"]
    return {
        "seed": config["seed"],
        "shape": _named(speed["shapes"], shape),
        **{k: v for k, v in speed.items() if k != "shapes"},
    }


def approximation_job_config(config: Mapping, method: str) -> dict:
    """One approximator of structured_fig_approximation."""
    approximation = config["structured"]["approximation"]
    return {
        **_shared(config),
        "shares": approximation["shares"],
        "method": _named(approximation["methods"], method),
    }


def table_job_config(config: Mapping, method: str, features: str) -> dict:
    """One (method, feature set) of structured_table_finetune."""
    table = config["structured"]["finetune_table"]
    return {
        **_shared(config),
        "finetune_table": {
            **{k: v for k, v in table.items() if k != "methods"},
            "features": features,
        },
        "method": _named(table["methods"], method),
    }


def share_label(share: float) -> str:
    """The label of a parameter share in paths."""
    return f"{share:g}"


def class_list_file(config: Mapping, subset: str) -> str:
    """The class list file of the pretrained feature subset ``subset``."""
    lists = config["structured"]["pretrained"]["class_lists"]
    for entry in lists:
        if entry["name"] == subset:
            return entry["file"]
    known = ", ".join(e["name"] for e in lists)
    raise ValueError(
        f"class subset {subset!r} is not in structured.pretrained.class_lists ({known})"
    )


def check_pretrained_job_inputs(config: Mapping, arch: str, subset: str) -> list:
    """No input files; raises ValueError naming what is missing (the ImageNet root, the
    class list, the pretrained weights) so that the workflow stops before any job."""
    from weightspace.structured.features import check_pretrained_inputs

    pretrained = config["structured"]["pretrained"]
    try:
        check_pretrained_inputs(
            arch,
            pretrained["weights"],
            config["data"]["imagenet_root"],
            class_list_file(config, subset),
            config["data"]["torch_home"],
            pretrained["download"],
        )
    except (OSError, ValueError) as error:
        raise ValueError(f"structured features {arch}/{subset}: {error}") from None
    return []
