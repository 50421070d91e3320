"""What a training run does to the freshly initialised network before its first step
(teleport.md §7, §12 caution): teleport it, or one of the controls that change the
weights without teleporting.

- ``none``: standard training;
- ``teleport``: one random teleportation (the paper: inter_landscape, r = 0.9);
- ``pseudo``: per parameter tensor a random direction (N(0, I), L1-normalised) scaled to
  the L1 displacement a teleportation would cause (the original's
  ``simulate_teleportation_sphere``);
- ``same_distr``: every Linear weight re-drawn i.i.d. from the histogram of a teleported
  copy's weights (``simulate_teleportation_distribution``);
- ``norm_matched``: every parameter tensor re-drawn N(0, I) and scaled to the L2 norm the
  teleported tensor has: the weights grow as teleportation makes them grow, without its
  structure (our control: on small problems larger weights alone can speed up training);
- ``he_init``: Kaiming-normal (fan-in) re-initialisation, the initialisation a ReLU network
  is usually given (our control for the same reason).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from weightspace.models import initialize_weights
from weightspace.teleport.model import TeleportableModel

ARMS = ("none", "teleport", "pseudo", "same_distr", "norm_matched", "he_init")


@dataclass(frozen=True)
class Teleport:
    """How an arm samples its CoB (teleport.md §4)."""

    cob_range: float = 0.9
    sampling_type: str = "inter_landscape"
    histogram_bins: int = 1000


def cob_statistics(cob: torch.Tensor) -> dict[str, float]:
    """What a CoB did, for the run's record."""
    cob = cob.double()
    return {
        "cob_size": int(cob.numel()),
        "cob_min": float(cob.min()),
        "cob_max": float(cob.max()),
        "cob_abs_mean": float(cob.abs().mean()),
        "cob_negative_fraction": float((cob < 0).double().mean()),
    }


def _teleported_copy(model, example_input, teleport: Teleport, generator):
    """A teleported deep copy and its CoB; the model itself is untouched."""
    copied = TeleportableModel(copy.deepcopy(model), example_input)
    cob = copied.generate_random_cob(
        teleport.cob_range, teleport.sampling_type, generator=generator
    )
    copied.teleport(cob)
    return copied, cob


@torch.no_grad()
def apply_arm(
    model: nn.Module,
    arm: str,
    example_input: torch.Tensor,
    teleport: Teleport,
    generator: torch.Generator,
) -> tuple[nn.Module, dict]:
    """The network to train under ``arm`` and the statistics of what was done.

    ``teleport`` returns a TeleportableModel (its CoB lives in buffers, so checkpoints
    keep the teleported function); every other arm returns ``model`` changed in place.
    """
    if arm not in ARMS:
        raise ValueError(f"unknown arm {arm!r}; use one of {ARMS}")
    if arm == "none":
        return model, {}
    if arm == "he_init":
        return initialize_weights(model, "kaiming_normal"), {}
    if arm == "teleport":
        wrapped = TeleportableModel(model, example_input)
        cob = wrapped.generate_random_cob(
            teleport.cob_range, teleport.sampling_type, generator=generator
        )
        norm_before = wrapped.get_weights().norm()
        wrapped.teleport(cob)
        stats = cob_statistics(cob)
        stats["weight_norm_ratio"] = float(wrapped.get_weights().norm() / norm_before)
        return wrapped, stats

    copied, cob = _teleported_copy(model, example_input, teleport, generator)
    stats = cob_statistics(cob)
    teleported = dict(copied.network.named_parameters())
    before = torch.cat([p.flatten() for p in model.parameters()]).norm()
    if arm == "same_distr":
        values = torch.cat([p.detach().flatten().double() for p in teleported.values()])
        edges = torch.linspace(
            float(values.min()),
            float(values.max()),
            teleport.histogram_bins + 1,
            dtype=torch.float64,
        )
        counts = torch.histc(
            values, teleport.histogram_bins, float(edges[0]), float(edges[-1])
        )
        # the wrapper shares the model's modules: its Linear weights are redrawn
        TeleportableModel(model, example_input).init_like_histogram(
            counts, edges, generator
        )
    else:
        for name, param in model.named_parameters():
            target = teleported[name].detach()
            z = torch.randn(param.shape, generator=generator, dtype=torch.float64)
            if arm == "pseudo":
                shift = z / z.abs().sum() * (target - param).double().abs().sum()
                param.add_(shift.to(param.dtype))
            else:  # norm_matched
                param.copy_(z / z.norm() * target.double().norm())
    after = torch.cat([p.flatten() for p in model.parameters()]).norm()
    stats["weight_norm_ratio"] = float(after / before)
    return model, stats
