"""Combine Monte Carlo chunks into p̂_cross per (variant, offset, width) and check the claims
of relu_fig_mc (spec Sections 2.7 and 9)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import pandas as pd

from weightspace.pipeline.chunks import check_chunks
from weightspace.relu.jobs import mc_chunks, offset_label
from weightspace.relu.statistics import Status, estimate_crossing_probability

STATUS_NAMES = [s.name for s in Status]


def chunk_identity(chunk: Mapping) -> tuple[str, str, int, int]:
    """(variant, offset label, width, chunk) of a chunk result, as ``jobs.mc_chunks``."""
    return (
        chunk["variant"],
        offset_label(float(chunk["offset"])),
        int(chunk["width"]),
        int(chunk["chunk"]),
    )


def combine_chunks(
    chunks: Iterable[Mapping],
    mc: Mapping | None = None,
    what: str = "Monte Carlo chunks",
) -> pd.DataFrame:
    """One row per (variant, offset, width): summed status counts, p̂_cross with its Wilson
    interval, the 2 m^{-1/2} reference, and how many chunks and runs went in.

    Each chunk is a ChunkResult.to_dict() plus "variant" and "chunk" keys. A chunk read
    twice is an error (``what`` names the chunks in the message); with ``mc``, the
    relu.mc config, so is a chunk of its jobs that is missing or one that is not among
    them.
    """
    chunks = list(chunks)
    expected = None if mc is None else mc_chunks(mc)
    check_chunks([chunk_identity(c) for c in chunks], expected, what)
    totals: dict[tuple, dict] = {}
    for chunk in chunks:
        key = (chunk["variant"], float(chunk["offset"]), int(chunk["width"]))
        row = totals.setdefault(key, {name: 0 for name in STATUS_NAMES} | {"chunks": 0})
        for name in STATUS_NAMES:
            row[name] += int(chunk["counts"].get(name, 0))
        row["chunks"] += 1
    rows = []
    for (variant, offset, width), counts in sorted(totals.items()):
        p, lo, hi = estimate_crossing_probability({k: counts[k] for k in STATUS_NAMES})
        runs = sum(counts[name] for name in STATUS_NAMES)
        rows.append(
            {
                "variant": variant,
                "offset": offset,
                "width": width,
                "runs": runs,
                **counts,
                "p_cross": p,
                "wilson_low": lo,
                "wilson_high": hi,
                "reference_2_over_sqrt_m": 2.0 / math.sqrt(width),
            }
        )
    return pd.DataFrame(rows)


def claims(summary: pd.DataFrame, main_variant: str) -> list[dict]:
    """p̂_cross decreases with m (allowing overlap of Wilson intervals between neighbours) and
    lies at or below 2 m^{-1/2} within its interval, for the main variant at every offset."""
    out = []
    main = summary[summary["variant"] == main_variant]
    for offset, rows in main.groupby("offset"):
        rows = rows.sort_values("width")
        p, lo, hi = (
            rows["p_cross"].to_numpy(),
            rows["wilson_low"].to_numpy(),
            rows["wilson_high"].to_numpy(),
        )
        decreasing = bool(
            all(lo[i + 1] <= hi[i] for i in range(len(p) - 1)) and p[-1] < p[0]
        )
        below = bool((lo <= rows["reference_2_over_sqrt_m"].to_numpy()).all())
        widths = rows["width"].tolist()
        values = ", ".join(
            f"m={m}: {v:.3f} [{a:.3f}, {b:.3f}]"
            for m, v, a, b in zip(widths, p, lo, hi)
        )
        out.append(
            {
                "claim": f"p_cross decreases with width ({main_variant}, offset {offset:g})",
                "published": "escape probability decays roughly like m^-1/2 (spec Section 2.7)",
                "reproduced": values,
                "holds": decreasing,
            }
        )
        out.append(
            {
                "claim": f"p_cross at or below 2 m^-1/2 ({main_variant}, offset {offset:g})",
                "published": "close to or below 2 m^-1/2: "
                + ", ".join(f"{2 / math.sqrt(m):.3f}" for m in widths),
                "reproduced": values,
                "holds": below,
            }
        )
    return out
