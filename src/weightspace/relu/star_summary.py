"""Chunks of the star experiment → escape fractions per width and the claims of relu_fig_star
(spec Section 4).

``StarResult`` (the per-net events of a trained chunk) and ``star_fractions`` live here, free of
torch, so that the aggregate and plot jobs start fast. A chunk file holds one ``StarResult`` of a (width, chunk) job as JSON (``result_to_dict``). The
per-net event epochs make the fractions available at every epoch budget up to the trained one,
so the aggregate also tabulates them at the end of each training stage.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from weightspace.pipeline.chunks import check_chunks
from weightspace.relu.jobs import star_chunks
from weightspace.relu.statistics import wilson_interval


@dataclass
class StarResult:
    width: int
    epoch: int
    kink_first_crossed: np.ndarray  # (P,) int64, −1 = never
    mse_first_crossed: np.ndarray  # (P,) int64, −1 = never
    final_loss: np.ndarray  # (P,)
    lin_threshold: np.ndarray  # (P,)
    step: np.ndarray  # (P,) 1/λ_max
    step_factor: float  # 1, or 2 with star_double_step

    @property
    def n_nets(self) -> int:
        return len(self.kink_first_crossed)

    @property
    def n_kink_crossed(self) -> int:
        return int((self.kink_first_crossed >= 0).sum())

    @property
    def n_mse_crossed(self) -> int:
        return int((self.mse_first_crossed >= 0).sum())


def star_fractions(
    results: Iterable[StarResult], z: float = 1.959963984540054
) -> list[dict]:
    """Per width, the fraction of nets with a kink crossing and with MSE below the threshold.

    Results of equal width (e.g. m = 8192 run as 2 × 500 nets) are pooled, i.e. weighted by their
    number of nets. Each fraction comes with its Wilson interval.
    """
    pooled: dict[int, list[int]] = {}
    for r in results:
        acc = pooled.setdefault(r.width, [0, 0, 0])
        acc[0] += r.n_nets
        acc[1] += r.n_kink_crossed
        acc[2] += r.n_mse_crossed
    rows = []
    for width in sorted(pooled):
        n, kink, mse = pooled[width]
        k_lo, k_hi = wilson_interval(kink, n, z)
        m_lo, m_hi = wilson_interval(mse, n, z)
        rows.append(
            {
                "width": width,
                "n_nets": n,
                "fraction_kink_crossed": kink / n,
                "kink_low": k_lo,
                "kink_high": k_hi,
                "fraction_mse_crossed": mse / n,
                "mse_low": m_lo,
                "mse_high": m_hi,
            }
        )
    return rows


_ARRAYS = (
    "kink_first_crossed",
    "mse_first_crossed",
    "final_loss",
    "lin_threshold",
    "step",
)


def result_to_dict(result: StarResult) -> dict:
    """JSON-ready form of a StarResult (lists instead of arrays)."""
    out = {
        "width": int(result.width),
        "epoch": int(result.epoch),
        "step_factor": float(result.step_factor),
    }
    for name in _ARRAYS:
        out[name] = np.asarray(getattr(result, name)).tolist()
    return out


def result_from_dict(data: Mapping) -> StarResult:
    ints = {
        name: np.asarray(data[name], dtype=np.int64)
        for name in ("kink_first_crossed", "mse_first_crossed")
    }
    floats = {
        name: np.asarray(data[name], dtype=np.float64)
        for name in ("final_loss", "lin_threshold", "step")
    }
    return StarResult(
        width=int(data["width"]),
        epoch=int(data["epoch"]),
        step_factor=float(data["step_factor"]),
        **ints,
        **floats,
    )


def chunk_results(
    documents: Iterable[Mapping], star: Mapping | None = None, what: str = "star chunks"
) -> list[StarResult]:
    """The results of chunk files (``result_to_dict`` plus a "chunk" key). A (width,
    chunk) read twice is an error (``what`` names the chunks in the message); with
    ``star``, the relu.star config, so is a chunk of its jobs that is missing or one
    that is not among them.
    """
    documents = list(documents)
    expected = None if star is None else [(w, c) for w, c, _ in star_chunks(star)]
    found = [(int(doc["width"]), int(doc["chunk"])) for doc in documents]
    check_chunks(found, expected, what)
    return [result_from_dict(doc) for doc in documents]


def at_budget(result: StarResult, epochs: int) -> StarResult:
    """The result as it was after ``epochs`` updates: events later than that are undone."""
    if epochs > result.epoch:
        raise ValueError(f"budget {epochs} exceeds the trained {result.epoch} epochs")

    def cut(events):
        return np.where((events >= 0) & (events <= epochs), events, -1)

    return StarResult(
        width=result.width,
        epoch=int(epochs),
        kink_first_crossed=cut(result.kink_first_crossed),
        mse_first_crossed=cut(result.mse_first_crossed),
        final_loss=np.full_like(result.final_loss, np.nan),
        lin_threshold=result.lin_threshold,
        step=result.step,
        step_factor=result.step_factor,
    )


def stage_budgets(epochs: int, stage_epochs: int) -> list[int]:
    """The epochs at which training stages end: stage_epochs, 2·stage_epochs, …, epochs."""
    ends = (
        list(range(stage_epochs, epochs, stage_epochs)) if stage_epochs < epochs else []
    )
    return ends + [int(epochs)]


def fractions_table(
    results: Sequence[StarResult], budgets: Iterable[int]
) -> pd.DataFrame:
    """One row per (epoch budget, width): pooled nets, both fractions and their Wilson intervals,
    and the median epoch of the first MSE escape among the nets that escaped (−1 if none)."""
    rows = []
    for budget in sorted(set(int(b) for b in budgets)):
        cut = [at_budget(r, budget) for r in results]
        for row in star_fractions(cut):
            events = np.concatenate(
                [r.mse_first_crossed for r in cut if r.width == row["width"]]
            )
            escaped = events[events >= 0]
            rows.append(
                {
                    "epochs": budget,
                    **row,
                    "median_mse_epoch": float(np.median(escaped))
                    if len(escaped)
                    else -1.0,
                }
            )
    return pd.DataFrame(rows)


def _trend(
    frame: pd.DataFrame, column: str, low: str, high: str
) -> tuple[bool, str, bool]:
    """(decreasing, values text, flat): decreasing means every neighbour's interval overlaps or
    lies lower and the last value is below the first; flat means all values are equal."""
    frame = frame.sort_values("width")
    p, lo, hi = (frame[c].to_numpy() for c in (column, low, high))
    decreasing = bool(
        len(p) > 1
        and all(lo[i + 1] <= hi[i] for i in range(len(p) - 1))
        and p[-1] < p[0]
    )
    text = ", ".join(
        f"m={int(m)}: {v:.3f} [{a:.3f}, {b:.3f}]"
        for m, v, a, b in zip(frame["width"], p, lo, hi)
    )
    return decreasing, text, bool(np.all(p == p[0]))


def claims(table: pd.DataFrame) -> list[dict]:
    """Both fractions decrease with the width (at the full epoch budget)."""
    final = table[table["epochs"] == table["epochs"].max()]
    n_text = "/".join(str(int(n)) for n in final.sort_values("width")["n_nets"])
    epochs = int(final["epochs"].iloc[0])
    out = []
    for column, low, high, what in (
        (
            "fraction_kink_crossed",
            "kink_low",
            "kink_high",
            "a kink crossing a data point",
        ),
        (
            "fraction_mse_crossed",
            "mse_low",
            "mse_high",
            "MSE below the per-ray linear threshold",
        ),
    ):
        decreasing, text, flat = _trend(final, column, low, high)
        note = " (flat: every value equal)" if flat else ""
        out.append(
            {
                "claim": f"fraction of nets with {what} decreases with width ({epochs:,} epochs)",
                "published": "both fractions decrease with m (spec Section 4; 2d_star_11, "
                "m = 128...8192, 1000 nets, 10^6 epochs)",
                "reproduced": f"{text} of {n_text} nets{note}",
                "holds": decreasing,
            }
        )
    return out
