"""One chunk of the 1-D Monte Carlo: train P nets of one width in checks of K steps and
classify each run (the statuses and their precedence are in the package docstring)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch

from weightspace.relu import criterion as crit
from weightspace.relu.mc1d.config import MAX_NETS, MCConfig
from weightspace.relu.mc1d.gd import _make_kernel, _resolve_kernel
from weightspace.relu.mc1d.kernel import _Kernel, _max_kink, _Nets
from weightspace.relu.mc1d.minibatches import draw_key, minibatch_frequencies
from weightspace.relu.mc1d.state import (
    _LIVE_FIELDS,
    ChunkResult,
    ChunkState,
    _check_state,
    _initial_state,
)
from weightspace.relu.shared import ADAM_BETAS, ADAM_EPS
from weightspace.relu.statistics import Status


def _adam_update(
    nets: _Nets,
    kern: _Kernel,
    rsum: torch.Tensor,
    moments: dict,
    h: torch.Tensor,
    t: int,
) -> None:
    beta1, beta2 = ADAM_BETAS
    grads = {
        "a": nets.w * kern.g1,
        "b": nets.w * kern.g0,
        "c": rsum,
        "w": nets.a * kern.g1 + nets.b * kern.g0,
    }
    corr1 = 1.0 - beta1**t
    corr2 = 1.0 - beta2**t
    for key, g in grads.items():
        m, v = moments[f"m_{key}"], moments[f"v_{key}"]
        m.mul_(beta1).add_(g, alpha=1.0 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
        denom = (v / corr2).sqrt_().add_(ADAM_EPS)
        lr = h if key == "c" else h.unsqueeze(1)
        getattr(nets, key).sub_(m / corr1 / denom * lr)


def run_chunk(
    config: MCConfig,
    seed: int,
    n_runs: int,
    width: int,
    offset: float,
    device="cpu",
    dtype: torch.dtype = torch.float64,
    progress: Callable[[dict], None] | None = None,
    state: ChunkState | Mapping | None = None,
    checkpoint_every: int | None = None,
    checkpoint: Callable[[ChunkState], None] | None = None,
) -> ChunkResult:
    """Train ``n_runs`` nets of width ``width`` on offset Δ = ``offset`` and classify each.

    ``progress(info)`` is called after every check with {"check", "live", "counts"}.
    ``checkpoint(state)`` is called every ``checkpoint_every`` checks (not after the last); passing
    that state (or its ``to_dict()``) back as ``state`` continues the chunk bit-identically.
    """
    if isinstance(config, Mapping):
        config = MCConfig.from_dict(config)
    if n_runs < 1 or width < 1:
        raise ValueError(
            f"need n_runs >= 1 and width >= 1, got n_runs={n_runs}, width={width}"
        )
    if config.optimizer != "gd" and n_runs > MAX_NETS:
        raise ValueError(
            f"{config.optimizer} chunks hold at most {MAX_NETS} nets (the minibatch "
            f"counters), got n_runs={n_runs}; lower relu.mc.chunk_runs"
        )
    device = torch.device(device)
    kernel_name = _resolve_kernel(config.kernel, device, dtype)
    if state is None:
        state = _initial_state(config, seed, n_runs, width, offset, device, dtype)
    else:
        if isinstance(state, Mapping):
            state = ChunkState.from_dict(state)
        _check_state(state, config, seed, n_runs, width, offset)
        state.live = {k: v.to(device) for k, v in state.live.items()}
        state.live.update(
            {
                k: state.live[k].to(dtype)
                for k in _LIVE_FIELDS
                if state.live[k].is_floating_point()
            }
        )
        state.adam = {
            k: v.to(device=device, dtype=dtype) for k, v in state.adam.items()
        }
        state.totals = {k: v.clone() for k, v in state.totals.items()}

    live, adam, totals = state.live, state.adam, state.totals
    gen = torch.Generator(device=device)
    gen.set_state(state.generator_state.cpu())
    y = crit.labels(offset, device, dtype)
    stochastic = config.optimizer in ("sgd", "adam")
    K = config.steps_per_check
    checks = state.checks_done

    def active_count() -> int:
        return int(live["ids"].numel())

    kern, kern_n = None, -1
    while checks < config.max_checks and active_count() > 0:
        n = int(live["ids"].numel())
        if kern_n != n:
            kern, kern_n = _make_kernel(kernel_name, n, width, device, dtype), n
        nets = _Nets(live["a"], live["b"], live["c"], live["w"])
        h, p = live["h"], live["weights"]
        key = draw_key(gen) if stochastic else None
        if config.optimizer == "adam":  # Adam takes its step size in the update
            batches = minibatch_frequencies(
                p, config.minibatch_size, K, key, live["ids"]
            )
            for step in range(K):
                coef = next(batches)
                ncy = torch.mul(coef, y).neg_()
                rsum = kern.backprop(
                    nets.a, nets.b, nets.c, nets.w, coef, ncy, live["hi"], live["lo"]
                )
                _adam_update(nets, kern, rsum, adam, h, checks * K + step + 1)
        elif stochastic:  # SGD: the step size goes into the coefficients
            kern.sgd_steps(
                nets,
                p,
                h,
                y,
                live["ids"],
                key,
                config.minibatch_size,
                K,
                live["hi"],
                live["lo"],
            )
        else:  # full-batch GD: the step size goes into the coefficients
            coef = p * h.unsqueeze(1)
            kern.gd_steps(nets, coef, -coef * y, live["hi"], live["lo"], K)
        # The kernel tracks the kinks before each step; fold in the parameters after the last one.
        kern.track(nets.a, nets.b, live["hi"], live["lo"])
        live.update(a=nets.a, b=nets.b, c=nets.c, w=nets.w)
        checks += 1
        done = _evaluate_check(config, checks, live, totals, kern, y)
        _compact(live, adam, done)
        if progress is not None:
            progress(
                {
                    "check": checks,
                    "live": int(live["ids"].numel()),
                    "counts": _counts(totals),
                }
            )
        if (
            checkpoint is not None
            and checkpoint_every
            and checks % checkpoint_every == 0
            and checks < config.max_checks
            and active_count() > 0
        ):
            checkpoint(
                ChunkState(
                    config=config.to_dict(),
                    seed=int(seed),
                    n_runs=n_runs,
                    width=width,
                    offset=float(offset),
                    checks_done=checks,
                    generator_state=gen.get_state().clone(),
                    live={k: v.clone() for k, v in live.items()},
                    adam={k: v.clone() for k, v in adam.items()},
                    totals={k: v.clone() for k, v in totals.items()},
                )
            )

    # Whatever still trains has hit max_checks (in testing mode: or was certified earlier).
    ids = live["ids"].cpu()
    still = totals["status"][ids] == int(Status.UNFINISHED)
    totals["stop_check"][ids[still]] = checks
    totals["max_kink"][ids] = _max_kink(live["hi"], live["lo"]).to("cpu", torch.float64)

    return _result(config, state, totals, checks, device, dtype, kernel_name)


def _evaluate_check(
    config: MCConfig,
    check: int,
    live: dict,
    totals: dict,
    kern: _Kernel,
    y: torch.Tensor,
) -> torch.Tensor:
    """Decide statuses of the live nets after ``check`` checks and record them in ``totals``.

    Returns the (CPU, bool) mask of live nets that stop training now.
    """
    n = live["ids"].numel()
    device = live["a"].device
    mk = _max_kink(live["hi"], live["lo"])
    # NaN (diverged) compares False, so it is counted as crossed.
    crossed = ~(mk < 1.0)
    status = torch.full((n,), int(Status.UNFINISHED), device=device, dtype=torch.int64)
    stopped = crossed.clone()

    if config.early_stopping:
        # Fresh extremes: the kinks at these parameters are already recorded.
        f = kern.forward(
            live["a"],
            live["b"],
            live["c"],
            live["w"],
            live["hi"].clone(),
            live["lo"].clone(),
        )
        val = (live["val_weights"] * (y - f) ** 2).sum(1)
        improved = val < live["best_val"] - config.min_delta
        live["best_val"] = torch.where(improved, val, live["best_val"])
        live["wait"] = torch.where(improved, 0, live["wait"] + 1)
        es = (live["wait"] >= config.patience) & ~stopped
        status[es] = int(Status.EARLY_STOPPED)
        stopped |= es

    if config.sufficient_criterion:
        candidates = ~stopped & ~live["certified"]
        sel = candidates.nonzero().squeeze(1)
        if sel.numel() > 0:
            res = crit.sufficient_criterion(
                live["a"][sel],
                live["b"][sel],
                live["c"][sel],
                live["w"][sel],
                live["h"][sel],
                live["weights"][sel],
                y,
                psi_bound=config.psi_bound,
            )
            sub = torch.full(
                (sel.numel(),), int(Status.UNFINISHED), device=device, dtype=torch.int64
            )
            sub[res.certified] = int(Status.LOCALLY_CONVERGED)
            sub[res.a_degenerate] = int(Status.A_DEGENERATE)
            sub[res.x_degenerate] = int(Status.X_DEGENERATE)
            status[sel] = sub

    status[crossed] = int(Status.CROSSED)

    ids = live["ids"].cpu()
    status_cpu = status.cpu()
    unfinished = int(Status.UNFINISHED)
    if config.testing:
        # Certified nets keep training and keep their status unless they cross later, which
        # would be a failure of the criterion.
        lc = int(Status.LOCALLY_CONVERGED)
        was_cert = live["certified"].cpu()
        violated = was_cert & crossed.cpu()
        totals["crossed_after_certified"][ids[violated]] = True
        status_cpu = torch.where(was_cert & ~violated, lc, status_cpu)
        new_cert = (status_cpu == lc) & ~was_cert
        totals["certified_check"][ids[new_cert]] = check
        live["certified"] = live["certified"] | new_cert.to(device)
        decided = (status_cpu != unfinished) & ~(was_cert & ~violated)
        done = (status_cpu != unfinished) & (status_cpu != lc)
    else:
        decided = done = status_cpu != unfinished
    totals["status"][ids] = status_cpu.to(torch.int8)
    totals["stop_check"][ids[decided]] = check
    totals["max_kink"][ids[done]] = mk.cpu().to(torch.float64)[done]
    return done


def _compact(live: dict, adam: dict, done: torch.Tensor) -> None:
    """Drop finished nets from the live tensors (index map ``ids`` keeps original numbering)."""
    if not bool(done.any()):
        return
    keep = (~done).nonzero().squeeze(1).to(live["a"].device)
    for key in list(live):
        live[key] = live[key].index_select(0, keep)
    for key in list(adam):
        adam[key] = adam[key].index_select(0, keep)


def _counts(totals: dict) -> dict[str, int]:
    codes = totals["status"].to(torch.int64)
    binc = torch.bincount(codes, minlength=len(Status))
    return {s.name: int(binc[int(s)]) for s in Status}


def _result(config, state, totals, checks, device, dtype, kernel_name) -> ChunkResult:
    status = totals["status"].numpy().astype(np.int8)
    stop = totals["stop_check"].numpy().astype(np.int32)
    hist = {}
    for s in Status:
        sel = stop[status == int(s)]
        hist[s.name] = np.bincount(
            sel.clip(0), minlength=config.max_checks + 1
        ).tolist()
    cert = totals["certified_check"].numpy() >= 0
    return ChunkResult(
        config=config.to_dict(),
        seed=state.seed,
        n_runs=state.n_runs,
        width=state.width,
        offset=state.offset,
        device=str(device),
        dtype=str(dtype).replace("torch.", ""),
        kernel=kernel_name,
        checks_run=checks,
        counts=_counts(totals),
        stop_histogram=hist,
        status=status,
        stop_check=stop,
        max_kink=totals["max_kink"].numpy().copy(),
        step_size=totals["step_size"].numpy().copy(),
        n_certified=int(cert.sum()),
        certified_then_crossed=int(totals["crossed_after_certified"].numpy().sum()),
    )
