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

``generator`` picks the numbers behind a key: "torch" (a ``torch.Generator`` of the
tensor's device seeded with the chunk's key; CPU and CUDA differ) or "philox" (the
counter-based C generator of ``weightspace.rbd.philox``, CPU float32 only, about twice
as fast and never holding more than one direction).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from weightspace.data.seeds import derive_seed
from weightspace.rbd import philox

DISTRIBUTIONS = ("normal", "uniform")
GENERATORS = ("torch", "philox")


def check_generator(generator: str, distribution: str = "normal") -> None:
    if generator not in GENERATORS:
        raise ValueError(
            f"unknown direction generator {generator!r}; use one of {GENERATORS}"
        )
    if generator == "philox" and distribution != "normal":
        raise ValueError(
            f"generator 'philox' draws normal directions only, not {distribution!r}; "
            "use generator 'torch'"
        )


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
    generator: str = "torch",
) -> torch.Tensor:
    """Chunk ``chunk_index`` of the directions: ``rows`` x ``size``, unnormalised."""
    check_generator(generator, distribution)
    if generator == "philox":
        if torch.device(device).type != "cpu" or dtype != torch.float32:
            raise ValueError("generator 'philox' draws float32 on the CPU")
        return philox.draw(key.chunk_seed(chunk_index), rows, size)
    rng = torch.Generator(device=device)
    rng.manual_seed(key.chunk_seed(chunk_index))
    if distribution == "normal":
        return torch.randn(rows, size, generator=rng, device=device, dtype=dtype)
    if distribution == "uniform":
        u = torch.rand(rows, size, generator=rng, device=device, dtype=dtype)
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
    generator: str = "torch",
):
    """The d directions of ``key`` chunk by chunk: (first index, chunk x ``size``)."""
    for index, start, rows in _chunks(d, chunk):
        yield (
            start,
            draw(key, index, rows, size, device, dtype, distribution, generator),
        )


def project(
    g: torch.Tensor,
    key: DirectionKey,
    d: int,
    norm: float,
    chunk: int = 50,
    distribution: str = "normal",
    generator: str = "torch",
) -> torch.Tensor:
    """c = Phi^T g with Phi's columns phi_i / norm: the coordinates of ``g`` (a flat
    vector) along the d directions of ``key``."""
    check_generator(generator, distribution)
    if generator == "philox":
        g = g.contiguous()
        return torch.cat(
            [
                philox.project(key.chunk_seed(index), rows, g, norm)
                for index, _, rows in _chunks(d, chunk)
            ]
        )
    c = torch.empty(d, device=g.device, dtype=g.dtype)
    for index, start, rows in _chunks(d, chunk):
        phi = draw(key, index, rows, g.numel(), g.device, g.dtype, distribution)
        c[start : start + rows] = phi @ g / norm
        del phi  # one chunk alive at a time
    return c


def expand(
    c: torch.Tensor,
    key: DirectionKey,
    size: int,
    norm: float,
    chunk: int = 50,
    distribution: str = "normal",
    generator: str = "torch",
) -> torch.Tensor:
    """Phi c: the vector of ``size`` entries that the coordinates ``c`` describe."""
    check_generator(generator, distribution)
    out = torch.zeros(size, device=c.device, dtype=c.dtype)
    if generator == "philox":
        for index, start, rows in _chunks(c.numel(), chunk):
            philox.expand_into(
                out, key.chunk_seed(index), c[start : start + rows], norm
            )
        return out
    for index, start, rows in _chunks(c.numel(), chunk):
        phi = draw(key, index, rows, size, c.device, c.dtype, distribution)
        out += c[start : start + rows] @ phi / norm
        del phi  # one chunk alive at a time
    return out


def project_and_expand(
    g: torch.Tensor,
    key: DirectionKey,
    d: int,
    norm: float,
    chunk: int = 50,
    distribution: str = "normal",
    generator: str = "torch",
) -> tuple[torch.Tensor, torch.Tensor]:
    """(c, Phi c) with c = Phi^T g, drawing each chunk of directions once: the same
    numbers as ``project`` then ``expand``."""
    check_generator(generator, distribution)
    out = torch.zeros_like(g)
    if generator == "philox":
        g = g.contiguous()
        c = torch.cat(
            [
                philox.project_expand_into(out, key.chunk_seed(index), rows, g, norm)
                for index, _, rows in _chunks(d, chunk)
            ]
        )
        return c, out
    c = torch.empty(d, device=g.device, dtype=g.dtype)
    for index, start, rows in _chunks(d, chunk):
        phi = draw(key, index, rows, g.numel(), g.device, g.dtype, distribution)
        part = phi @ g / norm
        c[start : start + rows] = part
        out += part @ phi / norm
        del phi  # one chunk alive at a time
    return c, out
