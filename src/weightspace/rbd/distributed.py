"""Data-parallel RBD on torch.distributed (random_bases.md §9, issue "distributed
workers"): each worker computes the gradient of its own batch and its coordinates along
its own directions; only those coordinates are all-gathered (W x sum_k d_k scalars per
step, never a gradient); every worker regenerates every other worker's directions from
the shared key and applies all W steps in worker order, so all copies stay identical.

Start it with torchrun (gloo on CPU, nccl on GPU) or as a multi-task SLURM job; the
in-process ``RandomBases.workers_step`` computes the same step in one process.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from weightspace.rbd.descent import RandomBases


def exchange(coordinates: list[torch.Tensor]) -> list[list[torch.Tensor]]:
    """Every worker's coordinates (per compartment), from this worker's."""
    flat = torch.cat(coordinates)
    gathered = [torch.empty_like(flat) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, flat)
    sizes = [c.numel() for c in coordinates]
    return [list(g.split(sizes)) for g in gathered]


def worker_steps(
    model: nn.Module,
    bases: RandomBases,
    batches: Iterator,
    lr: float,
    steps: int,
    first_step: int = 0,
) -> dict:
    """Train this worker's copy for ``steps`` RBD steps; returns the scalars sent and
    received per step and a checksum of the parameters."""
    rank = dist.get_rank()
    params = [p for p in model.parameters() if p.requires_grad]
    scalars = 0
    for step in range(first_step, first_step + steps):
        x, y = next(batches)
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        g = torch.cat([p.grad.flatten() for p in params])
        everyone = exchange(bases.coordinates(g, step, rank))
        scalars = sum(c.numel() for coords in everyone for c in coords)
        total = sum(bases.step_vector(c, step, w) for w, c in enumerate(everyone))
        with torch.no_grad():
            offset = 0
            for p in params:
                p.sub_(lr * total[offset : offset + p.numel()].view_as(p))
                offset += p.numel()
    flat = torch.cat([p.detach().flatten() for p in params])
    return {
        "scalars_per_step": scalars,
        "checksum": float(flat.double().sum()),
        "parameters": flat,
    }
