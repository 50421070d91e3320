"""One step of random bases descent on a flat gradient (random_bases.md §2.4, §3, §9).

RBD: per compartment k, the coordinates c_k = Phi_k^T g_k along d fresh directions and
the step Phi_k c_k; theta <- theta - eta * step. With Phi's columns N(0, I)/sqrt(D),
E[step] = (d / D) g and cos(step, g) ~ sqrt(d / D). FPD draws its directions once for the
run (a key without the step). W workers each measure coordinates on their own batch;
only those W x sum_k d_k scalars need to travel, since every worker regenerates every
other worker's directions from the shared key and applies the sum of all steps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from weightspace.rbd.compartments import Compartment
from weightspace.rbd.directions import (
    DirectionKey,
    expand,
    project,
    project_and_expand,
)


@dataclass(frozen=True)
class RandomBases:
    """The directions of a run: compartments, seed, normalisation and sampling.

    ``fixed``: one set of directions for the whole run (FPD). ``norm``: the divisor of
    every direction; None uses sqrt(D) of the whole network (the original's
    ``auto_norm``), also for smaller compartments unless ``normalize_per_compartment``.
    ``generator``: "torch" or "philox" (weightspace.rbd.directions).
    """

    parts: tuple[Compartment, ...]
    seed: int
    fixed: bool = False
    norm: float | None = None
    normalize_per_compartment: bool = False
    chunk: int = 50
    distribution: str = "normal"
    additive_offsets: bool = False
    generator: str = "torch"

    @property
    def size(self) -> int:
        return self.parts[-1].stop

    def divisor(self, part: Compartment) -> float:
        if self.norm is not None:
            return float(self.norm)
        return math.sqrt(part.size if self.normalize_per_compartment else self.size)

    def key(self, step: int, worker: int, compartment: int) -> DirectionKey:
        return DirectionKey(
            self.seed,
            None if self.fixed else step,
            worker,
            compartment,
            self.additive_offsets,
        )

    def compartments(self, step: int, worker: int = 0):
        """(compartment, its direction key, its divisor) for every compartment."""
        for k, part in enumerate(self.parts):
            yield part, self.key(step, worker, k), self.divisor(part)

    def coordinates(
        self, g: torch.Tensor, step: int, worker: int = 0
    ) -> list[torch.Tensor]:
        """c_k = Phi_k^T g_k for every compartment k."""
        return [
            project(
                g[part.start : part.stop],
                key,
                part.d,
                norm,
                self.chunk,
                self.distribution,
                self.generator,
            )
            for part, key, norm in self.compartments(step, worker)
        ]

    def step_vector(
        self, coordinates: Sequence[torch.Tensor], step: int, worker: int = 0
    ) -> torch.Tensor:
        """sum_k Phi_k c_k as one flat vector of the network's size."""
        first = coordinates[0]
        out = torch.zeros(self.size, device=first.device, dtype=first.dtype)
        for (part, key, norm), c in zip(self.compartments(step, worker), coordinates):
            out[part.start : part.stop] = expand(
                c, key, part.size, norm, self.chunk, self.distribution, self.generator
            )
        return out

    def step(
        self, g: torch.Tensor, step: int, worker: int = 0
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The RBD step of gradient ``g`` (to be subtracted, times eta) and its
        coordinates. One pass over the directions: a chunk's coordinates need only
        that chunk, so each chunk is drawn once (``coordinates`` then
        ``step_vector`` draws it twice; workers need that split to exchange c)."""
        out = torch.zeros_like(g)
        coordinates = []
        for part, key, norm in self.compartments(step, worker):
            c, piece = project_and_expand(
                g[part.start : part.stop],
                key,
                part.d,
                norm,
                self.chunk,
                self.distribution,
                self.generator,
            )
            out[part.start : part.stop] = piece
            coordinates.append(c)
        return out, coordinates

    def workers_step(
        self, gradients: Sequence[torch.Tensor], step: int
    ) -> tuple[torch.Tensor, int]:
        """The summed step of W workers, each with its own batch gradient, and the
        scalars they exchange: each worker's coordinates only; every worker
        regenerates the others' directions and adds all steps."""
        # in one process each worker's directions are drawn once (the fused step):
        # the same numbers as regenerating them from the exchanged coordinates
        steps = [self.step(g, step, w) for w, g in enumerate(gradients)]
        scalars = sum(c.numel() for _, coords in steps for c in coords)
        total = sum(piece for piece, _ in steps)
        return total, scalars


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().flatten(), b.double().flatten()
    return float(a @ b / (a.norm() * b.norm()))
