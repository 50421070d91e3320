"""How the parameter vector is cut into compartments, each with its own d directions
(random_bases.md §2.6).

Parameters are flattened in registration order (each kernel, then its bias), so every
compartment of the settings below is one contiguous range of the flat vector:

- ``weights_per_compartment`` >= D (the default, 1e10): one compartment (Table 1);
- N > 0: variables packed greedily into compartments of at most N weights, crossing
  layer boundaries; a variable larger than N is split into ceil(n / N) near-equal parts;
- N = -m: layer-wise, a layer's kernel and bias together, a new compartment every m-th
  layer;
- ``split_dimensions``: the d directions are shared out, ceil(d / K) per compartment
  rounded up to even (K compartments), instead of d each.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Compartment:
    start: int
    stop: int
    d: int

    @property
    def size(self) -> int:
        return self.stop - self.start


def _ranges(sizes: Sequence[int], layers: Sequence[int], per: float) -> list[tuple]:
    total = sum(sizes)
    if per >= total:
        return [(0, total)]
    bounds, offset = [], 0
    if per < 0:  # layer-wise, every m-th layer opens a compartment
        every = int(-per)
        starts, seen = [], []
        for size, layer in zip(sizes, layers):
            if layer not in seen:
                seen.append(layer)
                if (len(seen) - 1) % every == 0:
                    starts.append(offset)
            offset += size
        return list(zip(starts, [*starts[1:], total]))
    per = int(per)
    start = 0
    for size in sizes:
        if size > per:
            if offset > start:
                bounds.append((start, offset))
            parts = math.ceil(size / per)
            cuts = [offset + round(i * size / parts) for i in range(parts + 1)]
            bounds += list(zip(cuts[:-1], cuts[1:]))
            offset += size
            start = offset
            continue
        if offset + size - start > per:
            bounds.append((start, offset))
            start = offset
        offset += size
    if offset > start:
        bounds.append((start, offset))
    return bounds


def compartments(
    sizes: Sequence[int],
    layers: Sequence[int],
    d: int,
    weights_per_compartment: float = 1e10,
    split_dimensions: bool = False,
) -> list[Compartment]:
    """The compartments of parameters with ``sizes`` (registration order) belonging to
    ``layers`` (one layer id per parameter)."""
    if len(sizes) != len(layers) or not sizes:
        raise ValueError("give one layer id per parameter, and at least one parameter")
    if d < 1:
        raise ValueError(f"d must be at least 1, got {d}")
    if weights_per_compartment == 0 or (
        weights_per_compartment < 0
        and weights_per_compartment != int(weights_per_compartment)
    ):
        raise ValueError(
            "weights_per_compartment must be > 0 (weights per compartment) or a "
            f"negative integer -m (a compartment every m layers), got {weights_per_compartment}"
        )
    ranges = _ranges(list(sizes), list(layers), weights_per_compartment)
    each = d
    if split_dimensions:
        each = math.ceil(d / len(ranges))
        each += each % 2
    return [Compartment(start, stop, each) for start, stop in ranges]


def communicated_scalars(parts: Sequence[Compartment], workers: int = 1) -> int:
    """Scalars a step exchanges: every worker's coordinates of every compartment."""
    return workers * sum(part.d for part in parts)
