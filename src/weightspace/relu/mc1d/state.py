"""State and result of a Monte Carlo chunk: the initial state drawn from the chunk's
seed, the state that continues a chunk bit for bit, and the summary of a finished chunk.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from weightspace.relu import criterion as crit
from weightspace.relu.mc1d.config import MCConfig
from weightspace.relu.statistics import Status, estimate_crossing_probability

_LIVE_FIELDS = (
    "ids",
    "a",
    "b",
    "c",
    "w",
    "h",
    "weights",
    "val_weights",
    "hi",
    "lo",
    "best_val",
    "wait",
    "certified",
)
_ADAM_FIELDS = ("m_a", "m_b", "m_c", "m_w", "v_a", "v_b", "v_c", "v_w")
_GLOBAL_FIELDS = (
    "status",
    "stop_check",
    "max_kink",
    "step_size",
    "certified_check",
    "crossed_after_certified",
)


@dataclass
class ChunkState:
    """Everything needed to continue a chunk after ``checks_done`` checks, bit for bit.

    Live tensors cover the nets still training (``ids`` maps them to 0..n_runs−1); global arrays
    cover all nets. ``to_dict`` gives CPU tensors and plain values, suitable for ``torch.save``.
    """

    config: dict
    seed: int
    n_runs: int
    width: int
    offset: float
    checks_done: int
    generator_state: torch.Tensor
    live: dict[str, torch.Tensor]
    adam: dict[str, torch.Tensor]
    totals: dict[str, torch.Tensor]

    def to_dict(self) -> dict:
        out = {
            "config": dict(self.config),
            "seed": self.seed,
            "n_runs": self.n_runs,
            "width": self.width,
            "offset": self.offset,
            "checks_done": self.checks_done,
            "generator_state": self.generator_state.detach().cpu().clone(),
        }
        for group in ("live", "adam", "totals"):
            for key, value in getattr(self, group).items():
                out[f"{group}.{key}"] = value.detach().cpu().clone()
        return out

    @classmethod
    def from_dict(cls, data: Mapping) -> ChunkState:
        groups = {"live": {}, "adam": {}, "totals": {}}
        for key, value in data.items():
            if "." in key:
                group, name = key.split(".", 1)
                if group not in groups:
                    raise ValueError(f"unknown ChunkState entry {key!r}")
                groups[group][name] = value
        missing = [f for f in _LIVE_FIELDS if f not in groups["live"]]
        missing += [f for f in _GLOBAL_FIELDS if f not in groups["totals"]]
        if missing:
            raise ValueError(
                f"ChunkState dict lacks {missing}; was it written by ChunkState.to_dict?"
            )
        return cls(
            config=dict(data["config"]),
            seed=int(data["seed"]),
            n_runs=int(data["n_runs"]),
            width=int(data["width"]),
            offset=float(data["offset"]),
            checks_done=int(data["checks_done"]),
            generator_state=data["generator_state"],
            **groups,
        )


@dataclass
class ChunkResult:
    """Small summary of a finished (or max_checks-limited) chunk."""

    config: dict
    seed: int
    n_runs: int
    width: int
    offset: float
    device: str
    dtype: str
    kernel: str
    checks_run: int
    counts: dict[str, int]
    stop_histogram: dict[str, list[int]]  # [k] = nets of that status stopped at check k
    status: np.ndarray  # (n_runs,) int8, Status codes
    stop_check: np.ndarray  # (n_runs,) int32
    max_kink: np.ndarray  # (n_runs,) float64: max over steps and neurons of |b/a|
    step_size: np.ndarray  # (n_runs,) float64
    n_certified: int = 0  # testing=True: nets certified at some check
    certified_then_crossed: int = 0  # testing=True: of those, how many crossed later

    def crossing_probability(
        self, z: float = 1.959963984540054
    ) -> tuple[float, float, float]:
        return estimate_crossing_probability(self.counts, z)

    def to_dict(self) -> dict:
        """JSON-ready form (numpy arrays as lists)."""
        out = dataclasses.asdict(self)
        for key in ("status", "stop_check", "max_kink", "step_size"):
            out[key] = getattr(self, key).tolist()
        p, lo, hi = self.crossing_probability()
        out["p_cross"] = {"estimate": p, "wilson_low": lo, "wilson_high": hi}
        return out


def sample_frequencies(
    rng: np.random.Generator, n_runs: int, n_samples: int
) -> np.ndarray:
    """p̂ = Multinomial(n_samples, uniform over 6 points)/n_samples, (n_runs, 6)."""
    return rng.multinomial(n_samples, [1.0 / 6.0] * 6, size=n_runs) / float(n_samples)


def _initial_state(
    config: MCConfig,
    seed: int,
    n_runs: int,
    width: int,
    offset: float,
    device: torch.device,
    dtype: torch.dtype,
) -> ChunkState:
    rng = np.random.default_rng(seed)
    n_samples = width * width
    weights = sample_frequencies(rng, n_runs, n_samples)
    val_weights = sample_frequencies(rng, n_runs, n_samples)
    var_a, var_w = 2.0, 2.0 / width
    if config.swapped_init:
        var_a, var_w = var_w, var_a
    a = math.sqrt(var_a) * rng.standard_normal((n_runs, width))
    w = math.sqrt(var_w) * rng.standard_normal((n_runs, width))
    torch_seed = int(rng.integers(0, 2**62))

    as_t = lambda v: torch.as_tensor(v, device=device, dtype=dtype)  # noqa: E731
    a_t, w_t = as_t(a), as_t(w)
    b_t = torch.zeros_like(a_t)
    c_t = torch.zeros(n_runs, device=device, dtype=dtype)
    p_t, pv_t = as_t(weights), as_t(val_weights)
    if config.step_size == "small":
        h = torch.full((n_runs,), config.small_step / width, device=device, dtype=dtype)
    else:
        h = crit.large_step_sizes(a_t, b_t, w_t, p_t)

    gen = torch.Generator(device=device)
    gen.manual_seed(torch_seed)
    live = {
        "ids": torch.arange(n_runs, device=device),
        "a": a_t,
        "b": b_t,
        "c": c_t,
        "w": w_t,
        "h": h,
        "weights": p_t,
        "val_weights": pv_t,
        "hi": torch.zeros(
            n_runs, device=device, dtype=dtype
        ),  # max and min over steps of the kinks
        "lo": torch.zeros(n_runs, device=device, dtype=dtype),
        "best_val": torch.full((n_runs,), math.inf, device=device, dtype=dtype),
        "wait": torch.zeros(n_runs, device=device, dtype=torch.int64),
        "certified": torch.zeros(n_runs, device=device, dtype=torch.bool),
    }
    adam = {}
    if config.optimizer == "adam":
        for key in _ADAM_FIELDS:
            src = c_t if key.endswith("_c") else a_t
            adam[key] = torch.zeros_like(src)
    totals = {
        "status": torch.full((n_runs,), int(Status.UNFINISHED), dtype=torch.int8),
        "stop_check": torch.full((n_runs,), -1, dtype=torch.int32),
        "max_kink": torch.zeros(n_runs, dtype=torch.float64),
        "step_size": h.detach().to("cpu", torch.float64).clone(),
        "certified_check": torch.full((n_runs,), -1, dtype=torch.int32),
        "crossed_after_certified": torch.zeros(n_runs, dtype=torch.bool),
    }
    return ChunkState(
        config=config.to_dict(),
        seed=int(seed),
        n_runs=int(n_runs),
        width=int(width),
        offset=float(offset),
        checks_done=0,
        generator_state=gen.get_state(),
        live=live,
        adam=adam,
        totals=totals,
    )


def _check_state(
    state: ChunkState, config: MCConfig, seed, n_runs, width, offset
) -> None:
    mine = {
        "config": config.to_dict(),
        "seed": int(seed),
        "n_runs": int(n_runs),
        "width": int(width),
        "offset": float(offset),
    }
    theirs = {
        "config": state.config,
        "seed": state.seed,
        "n_runs": state.n_runs,
        "width": state.width,
        "offset": state.offset,
    }
    bad = [k for k in mine if mine[k] != theirs[k]]
    if bad:
        raise ValueError(
            f"cannot resume: the saved chunk state differs in {bad} "
            f"(saved {[theirs[k] for k in bad]}, asked {[mine[k] for k in bad]}); "
            "delete the checkpoint or run with the matching settings"
        )
