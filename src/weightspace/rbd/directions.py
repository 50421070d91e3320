"""Random directions that are never stored (random_bases.md §2.2, §2.5, §12).

Direction i of a compartment of size D_k at one step is phi_i ~ N(0, I_{D_k}) / norm.
The d directions come in chunks of ``chunk`` vectors; chunk j is drawn from a
``torch.Generator`` seeded with a 63-bit key derived from (seed, step, worker,
compartment, j), so any process can regenerate any worker's directions of any step
bit for bit (on the same device type), memory stays at chunk x D_k floats, and
different keys give independent directions. The original added seed offsets
(r(k) + t + w), so worker w at step t reused worker 0's directions of step t + w;
``additive_offsets`` reproduces that for parity studies.

``project`` computes c = Phi^T g and ``expand`` computes Phi c with the same chunks:
the RBD coordinates and step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from weightspace.data.seeds import derive_seed

DISTRIBUTIONS = ("normal", "uniform")


@dataclass(frozen=True)
class DirectionKey:
    """Which directions: the run's seed, the step (None: fixed for the run, FPD), the
    worker and the compartment."""

    seed: int
    step: int | None
    worker: int = 0
    compartment: int = 0
    additive_offsets: bool = False

    def chunk_seed(self, chunk: int) -> int:
        if self.additive_offsets:  # the original: offsets add, so keys collide
            offset = (self.step or 0) + self.worker + self.compartment
            return derive_seed(self.seed, "rbd-additive", offset, chunk, bits=63)
        step = "fixed" if self.step is None else self.step
        return derive_seed(
            self.seed, "rbd", step, self.worker, self.compartment, chunk, bits=63
        )


def _chunks(d: int, chunk: int):
    if d < 1 or chunk < 1:
        raise ValueError(f"need d >= 1 and chunk >= 1, got d={d}, chunk={chunk}")
    for index, start in enumerate(range(0, d, chunk)):
        yield index, start, min(chunk, d - start)


def draw(
    key: DirectionKey,
    chunk_index: int,
    rows: int,
    size: int,
    device="cpu",
    dtype=torch.float32,
    distribution: str = "normal",
) -> torch.Tensor:
    """Chunk ``chunk_index`` of the directions: ``rows`` x ``size``, unnormalised."""
    generator = torch.Generator(device=device)
    generator.manual_seed(key.chunk_seed(chunk_index))
    if distribution == "normal":
        return torch.randn(rows, size, generator=generator, device=device, dtype=dtype)
    if distribution == "uniform":
        u = torch.rand(rows, size, generator=generator, device=device, dtype=dtype)
        return 2 * u - 1
    raise ValueError(
        f"unknown direction distribution {distribution!r}; use one of {DISTRIBUTIONS}"
    )


def directions(
    key: DirectionKey,
    d: int,
    size: int,
    device="cpu",
    dtype=torch.float32,
    chunk: int = 50,
    distribution: str = "normal",
):
    """The d directions of ``key`` chunk by chunk: (first index, chunk x ``size``)."""
    for index, start, rows in _chunks(d, chunk):
        yield start, draw(key, index, rows, size, device, dtype, distribution)


def project(
    g: torch.Tensor,
    key: DirectionKey,
    d: int,
    norm: float,
    chunk: int = 50,
    distribution: str = "normal",
) -> torch.Tensor:
    """c = Phi^T g with Phi's columns phi_i / norm: the coordinates of ``g`` (a flat
    vector) along the d directions of ``key``."""
    c = torch.empty(d, device=g.device, dtype=g.dtype)
    for start, phi in directions(
        key, d, g.numel(), g.device, g.dtype, chunk, distribution
    ):
        c[start : start + len(phi)] = phi @ g / norm
    return c


def expand(
    c: torch.Tensor,
    key: DirectionKey,
    size: int,
    norm: float,
    chunk: int = 50,
    distribution: str = "normal",
) -> torch.Tensor:
    """Phi c: the vector of ``size`` entries that the coordinates ``c`` describe."""
    out = torch.zeros(size, device=c.device, dtype=c.dtype)
    for start, phi in directions(
        key, c.numel(), size, c.device, c.dtype, chunk, distribution
    ):
        out += c[start : start + len(phi)] @ phi / norm
    return out


def project_and_expand(
    g: torch.Tensor,
    key: DirectionKey,
    d: int,
    norm: float,
    chunk: int = 50,
    distribution: str = "normal",
) -> tuple[torch.Tensor, torch.Tensor]:
    """(c, Phi c) with c = Phi^T g, drawing each chunk of directions once: the same
    numbers as ``project`` then ``expand``."""
    c = torch.empty(d, device=g.device, dtype=g.dtype)
    out = torch.zeros_like(g)
    for start, phi in directions(
        key, d, g.numel(), g.device, g.dtype, chunk, distribution
    ):
        part = phi @ g / norm
        c[start : start + len(phi)] = part
        out += part @ phi / norm
    return c, out
