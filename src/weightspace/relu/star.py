"""Star data set experiment of §4 (relu_fig_star): do GD-trained ReLU nets escape the per-ray trap?

P nets R² → m → 1 (weights N(0, 2/fan_in), biases 0) are trained by full-batch GD on the 33-point
star ``2d_star_11`` with per-net sample frequencies p̂ = Multinomial(m², uniform)/m² and loss
L = ½ Σ_j p̂_j (f(x_j) − y_j)². With zero biases every kink hyperplane passes through the origin,
so on each ray the net is affine in the radius and cannot fit the V-shaped labels (1, −2, 1).

Step size per net: h = 1/λ_max(D^{1/2} J Jᵀ D^{1/2}), D = diag(p̂), J the Jacobian of the outputs at
the 33 points with respect to all parameters, from the initial weights. For the linearised model
the residual's eigencomponents then contract by factors 1 − hλ ∈ [0, 1). The original applies the
update twice per epoch (effective step 2/λ_max, the edge of linear stability); that is
``star_double_step=True``.

Events per net, −1 until they happen (epoch e means "after e updates"):
- ``kink_first_crossed``: first epoch whose activation pattern on the 33 points differs from the
  initial one (a kink hyperplane moved across a data point);
- ``mse_first_crossed``: first epoch with L < 0.999999 × lin_threshold, where lin_threshold is ½ ×
  the p̂-weighted residual of the best affine-in-radius least-squares fit on each ray (the best
  loss reachable while the net stays affine along every ray).

Training runs in stages on a state dict of tensors that can be saved and passed back: a run split
into stages is bit-identical to an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch

from weightspace.data.seeds import numpy_rng, torch_generator
from weightspace.relu.batched import (
    BatchedTwoLayer,
    empirical_ntk,
    weighted_sq_loss_and_grads,
)
from weightspace.relu.distributions import star_dataset
from weightspace.relu.shared import DTYPES, ConfigBase, choice, positive, torch_dtype
from weightspace.relu.star_summary import StarResult, star_fractions  # noqa: F401 (re-exported)

MSE_MARGIN = 0.999999
_STATE_KEYS = (
    "x",
    "y",
    "w1",
    "b1",
    "w2",
    "b2",
    "sample_weights",
    "step",
    "step_factor",
    "lin_threshold",
    "init_pattern",
    "kink_first_crossed",
    "mse_first_crossed",
    "epoch",
    "loss",
)


@dataclass(frozen=True)
class StarConfig(ConfigBase):
    width: int = positive()
    n_nets: int = positive()
    rays: int = 11
    delta: float = 0.1
    n_samples: int | None = None  # virtual sample size; None means width²
    star_double_step: bool = (
        False  # reproduce the original's update applied twice per epoch
    )
    dtype: str = choice("float32", DTYPES)  # the original trains in float32

    def __post_init__(self):
        super().__post_init__()
        if self.n_samples is not None and self.n_samples < 1:
            raise ValueError(f"n_samples must be >= 1 or None, got {self.n_samples}")

    @property
    def samples(self) -> int:
        return self.width**2 if self.n_samples is None else int(self.n_samples)


# ---------------------------------------------------------------------------------------------
# Per-ray linear threshold


def ray_groups(x: torch.Tensor, tol: float = 1e-5) -> list[list[int]]:
    """Indices of the points grouped by direction x/‖x‖ (points on a common ray from the origin)."""
    dirs = x / torch.linalg.vector_norm(x, dim=1, keepdim=True)
    groups, assigned = [], set()
    for i in range(len(x)):
        if i in assigned:
            continue
        close = torch.linalg.vector_norm(dirs - dirs[i], dim=1) < tol
        members = [j for j in range(len(x)) if j not in assigned and bool(close[j])]
        assigned.update(members)
        groups.append(members)
    return groups


def lin_thresholds(
    x: torch.Tensor, y: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """½ Σ_rays min_{α,β} Σ_{j∈ray} p̂_j (y_j − α − β‖x_j‖)² per net (P,), in float64.

    Groups of at most two points are fitted exactly and contribute 0. The weighted fit has the
    closed form S_yy − S_ry²/S_rr with centred weighted moments; S_rr = 0 means all weight sits on
    one radius, which an affine function also fits exactly.
    """
    x = x.to(torch.float64).cpu()
    y = y.to(torch.float64).cpu()
    w = weights.to(torch.float64).cpu()
    radius = torch.linalg.vector_norm(x, dim=1)
    total = torch.zeros(w.shape[0], dtype=torch.float64)
    for group in ray_groups(x):
        if len(group) <= 2:
            continue
        idx = torch.tensor(group)
        wg, rg, yg = w[:, idx], radius[idx], y[idx]
        mass = wg.sum(1, keepdim=True)
        safe = torch.where(mass > 0, mass, torch.ones_like(mass))
        r_bar = (wg * rg).sum(1, keepdim=True) / safe
        y_bar = (wg * yg).sum(1, keepdim=True) / safe
        s_rr = (wg * (rg - r_bar) ** 2).sum(1)
        s_ry = (wg * (rg - r_bar) * (yg - y_bar)).sum(1)
        s_yy = (wg * (yg - y_bar) ** 2).sum(1)
        resid = torch.where(
            s_rr > 0,
            s_yy - s_ry**2 / torch.where(s_rr > 0, s_rr, 1.0),
            torch.zeros_like(s_yy),
        )
        total += resid.clamp_min(0.0)
    return 0.5 * total


# ---------------------------------------------------------------------------------------------
# State


def _net(state: Mapping) -> BatchedTwoLayer:
    return BatchedTwoLayer(state["w1"], state["b1"], state["w2"], state["b2"])


def max_ntk_eigenvalues(
    net: BatchedTwoLayer,
    x: torch.Tensor,
    weights: torch.Tensor,
    chunk_elements: int = 2**24,
) -> torch.Tensor:
    """λ_max(D^{1/2} J Jᵀ D^{1/2}) per net (P,), computed in float64 in chunks of nets."""
    p, m = net.n_nets, net.width
    chunk = max(1, chunk_elements // (x.shape[0] * m))
    out = []
    for start in range(0, p, chunk):
        sl = slice(start, start + chunk)
        sub = BatchedTwoLayer(
            *(t[sl].to(torch.float64) for t in net.parameters()),
            scale1=net.scale1,
            scale2=net.scale2,
        )
        k = empirical_ntk(sub, x.to(torch.float64))
        s = weights[sl].to(torch.float64).sqrt()
        k = k * s.unsqueeze(2) * s.unsqueeze(1)
        out.append(torch.linalg.eigvalsh(k)[:, -1])
    return torch.cat(out)


def init_star_state(config: StarConfig, seed: int, device="cpu") -> dict:
    """Fresh state: He-initialised nets, sample frequencies, step sizes, thresholds, no events.

    All random draws happen on the CPU in float64 (then cast), so the initial state does not
    depend on the device, and float32 and float64 runs start from the same weights up to rounding.
    """
    dtype = torch_dtype(config.dtype)
    x, y = star_dataset(config.rays, config.delta)
    n_points, p, m = x.shape[0], config.n_nets, config.width
    counts = numpy_rng(seed, "star", "sample-weights").multinomial(
        config.samples, np.full(n_points, 1.0 / n_points), size=p
    )
    weights = torch.as_tensor(counts / config.samples, dtype=torch.float64)
    gen = torch_generator(seed, "star", "init")
    w1 = torch.randn(p, 2, m, generator=gen, dtype=torch.float64) * np.sqrt(2.0 / 2)
    w2 = torch.randn(p, m, generator=gen, dtype=torch.float64) * np.sqrt(2.0 / m)
    params = [
        w1,
        torch.zeros(p, m, dtype=torch.float64),
        w2,
        torch.zeros(p, dtype=torch.float64),
    ]
    params = [t.to(dtype) for t in params]
    net = BatchedTwoLayer(*params)
    # λ_max from the weights actually trained (after the cast), so h matches the run's network.
    step = 1.0 / max_ntk_eigenvalues(net, x, weights)
    state = {
        "x": x.to(dtype),
        "y": y.to(dtype),
        "w1": params[0],
        "b1": params[1],
        "w2": params[2],
        "b2": params[3],
        "sample_weights": weights.to(dtype),
        "step": step,
        "step_factor": torch.tensor(
            2.0 if config.star_double_step else 1.0, dtype=torch.float64
        ),
        "lin_threshold": lin_thresholds(x, y, weights),
        "init_pattern": net.preactivations(x.to(dtype)) > 0,
        "kink_first_crossed": torch.full((p,), -1, dtype=torch.int64),
        "mse_first_crossed": torch.full((p,), -1, dtype=torch.int64),
        "epoch": torch.tensor(0, dtype=torch.int64),
        "loss": torch.full((p,), float("nan"), dtype=torch.float64),
    }
    return move_state(state, device)


def move_state(state: Mapping, device) -> dict:
    """The state's tensors on ``device`` ("cpu" before saving, the run device after loading)."""
    missing = [k for k in _STATE_KEYS if k not in state]
    if missing:
        raise ValueError(f"star state lacks {missing}; build it with init_star_state")
    return {k: state[k].to(device) for k in _STATE_KEYS}


def effective_step(state: Mapping) -> torch.Tensor:
    """The step per net that the update uses: step_factor / λ_max (P,), in float64."""
    return state["step"] * state["step_factor"]


def _record(state: dict, epoch: int, loss: torch.Tensor, active: torch.Tensor) -> None:
    # XOR of the patterns as bytes, max over points and neurons: the same as (active != init)
    # .any(), several times faster on CPU than comparing bool tensors.
    flips = torch.bitwise_xor(
        active.view(torch.uint8), state["init_pattern"].view(torch.uint8)
    )
    changed = flips.flatten(1).amax(1).bool()
    kink = state["kink_first_crossed"]
    kink.copy_(torch.where((kink < 0) & changed, epoch, kink))
    below = loss.to(torch.float64) < MSE_MARGIN * state["lin_threshold"]
    mse = state["mse_first_crossed"]
    mse.copy_(torch.where((mse < 0) & below, epoch, mse))
    state["loss"].copy_(loss)


def train_star(
    state: dict,
    until_epoch: int,
    *,
    stage_epochs: int | None = None,
    progress: Callable[[dict], None] | None = None,
    heartbeat: Callable[[int], None] | None = None,
) -> dict:
    """Train every net in ``state`` (in place) until ``until_epoch`` updates have been made.

    Events are recorded before each update and once more at the end, so they cover epochs
    0 … until_epoch. With ``stage_epochs`` the work is cut into stages; after each stage
    ``progress(info)`` is called with the epoch and summary numbers (the state is consistent
    then, so the callback may save it). ``heartbeat(epoch)`` is called every
    ``HEARTBEAT_EPOCHS`` epochs inside a stage, for progress lines between stages (it must
    not touch the state). Returns the same dict.
    """
    start = int(state["epoch"])
    if until_epoch < start:
        raise ValueError(
            f"state is already at epoch {start}, cannot train until {until_epoch}"
        )
    net = _net(state)
    x, y, weights = state["x"], state["y"], state["sample_weights"]
    neg_h = -effective_step(state).to(state["w1"].dtype)
    shapes = [(-1, 1, 1), (-1, 1), (-1, 1), (-1,)]
    neg_steps = [neg_h.view(s) for s in shapes]
    stage = until_epoch - start if not stage_epochs else int(stage_epochs)
    epoch = start
    while True:
        stop = min(until_epoch, epoch + stage) if stage > 0 else until_epoch
        for e in range(epoch, stop):
            loss, grads, active = weighted_sq_loss_and_grads(net, x, y, weights)
            _record(state, e, loss, active)
            for param, grad, neg in zip(net.parameters(), grads, neg_steps):
                param.addcmul_(neg, grad)
            if heartbeat is not None and (e + 1) % HEARTBEAT_EPOCHS == 0:
                heartbeat(e + 1)
        epoch = stop
        state["epoch"].fill_(epoch)
        # The evaluation at the stage end is repeated at the next stage's start; recording is
        # idempotent, so splitting a run into stages changes nothing.
        loss, _, active = weighted_sq_loss_and_grads(net, x, y, weights)
        _record(state, epoch, loss, active)
        if progress is not None:
            progress(stage_summary(state))
        if epoch >= until_epoch:
            return state


HEARTBEAT_EPOCHS = 1000


def stage_summary(state: Mapping) -> dict:
    """Numbers for a progress line: epoch, mean loss, loss/threshold quantiles, event fractions."""
    ratio = (state["loss"] / state["lin_threshold"]).cpu()
    q = torch.quantile(ratio, torch.tensor([0.0, 0.5, 1.0], dtype=ratio.dtype)).tolist()
    return {
        "epoch": int(state["epoch"]),
        "mean_loss": float(state["loss"].mean()),
        "loss_over_threshold_min_median_max": q,
        "fraction_kink_crossed": float(
            (state["kink_first_crossed"] >= 0).double().mean()
        ),
        "fraction_mse_crossed": float(
            (state["mse_first_crossed"] >= 0).double().mean()
        ),
    }


def star_result(state: Mapping) -> StarResult:
    """Per-net events and final loss of a (partly) trained state."""
    return StarResult(
        width=int(state["w1"].shape[2]),
        epoch=int(state["epoch"]),
        kink_first_crossed=state["kink_first_crossed"].cpu().numpy().copy(),
        mse_first_crossed=state["mse_first_crossed"].cpu().numpy().copy(),
        final_loss=state["loss"].to(torch.float64).cpu().numpy().copy(),
        lin_threshold=state["lin_threshold"].cpu().numpy().copy(),
        step=state["step"].cpu().numpy().copy(),
        step_factor=float(state["step_factor"]),
    )
