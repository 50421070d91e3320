"""The PyTorch timing of structured_fig_speed (spec §8): time per matrix-vector product
of a dense layer and of the SSS layers approximating the same random matrix, per share
and batch size, beside the C reference (weightspace.structured.cspeed).
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch
from torch import nn

from weightspace.structured.cspeed import description_records, flat_rows
from weightspace.structured.layers.sss import SSSLayer
from weightspace.structured.sss import approximate_sss


@torch.no_grad()
def time_forward(
    layer: nn.Module,
    batch: int,
    *,
    repeats: int,
    iterations: int,
    warmup: int,
    seed: int = 0,
) -> list[float]:
    """Seconds per matrix–vector product (call time / batch) of `layer`: for each
    iteration, the median of `repeats` timed calls after `warmup` untimed ones
    (time.perf_counter, one thread as the caller set)."""
    layer.eval()
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand(batch, layer.in_features, generator=gen) * 2 - 1
    out = []
    for _ in range(iterations):
        for _ in range(warmup):
            layer(u)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            layer(u)
            times.append(time.perf_counter() - start)
        out.append(statistics.median(times) / batch)
    return out


def speed_matrices(
    rows: int, cols: int, rng: np.random.Generator, *, mismatched_models: bool = False
) -> dict:
    """The random U(−1, 1) problem of one structured_fig_speed shape (values do not
    affect timings).

    weight (rows × cols) is the matrix the SSS layers approximate; dense_weight is the
    dense layer's matrix: weight itself, or, with mismatched_models=True (the original's
    pairing, spec §11.8), a different rows × 2·cols matrix, as the original timed
    AlexNet's dense layer (4096 inputs) against SSS layers of InceptionV3 (2048 inputs).
    bias is shared; u is the dense layer's test input, of which the SSS layer reads the
    first cols entries.
    """
    weight = rng.uniform(-1, 1, size=(rows, cols))
    bias = rng.uniform(-1, 1, size=rows)
    dense_weight = (
        rng.uniform(-1, 1, size=(rows, 2 * cols)) if mismatched_models else weight
    )
    u = rng.uniform(-1, 1, size=dense_weight.shape[1])
    return {"weight": weight, "dense_weight": dense_weight, "bias": bias, "u": u}


SPEED_COLUMNS = [
    "shape",
    "rows",
    "cols",
    "n_stages",
    "backend",
    "share",
    "batch",
    "layer",
    "iteration",
    "seconds_per_matvec",
    "seconds_mean",
    "n_params",
    "state_dim",
    "flops",
    "in_features",
    "max_abs_error",
]


def _layer_info(layer, share, n_params, state_dim, flops, in_features) -> dict:
    """The columns that describe the timed layer."""
    return {
        "layer": layer,
        "share": share,
        "n_params": n_params,
        "state_dim": state_dim,
        "flops": flops,
        "in_features": in_features,
    }


def speed_rows(
    shape: dict,
    shares,
    batches,
    timing: dict,
    seed: int,
    *,
    mismatched_models: bool = False,
    bench=None,
    log=None,
) -> tuple[list[dict], dict]:
    """Rows (columns SPEED_COLUMNS) of one structured_fig_speed shape, and metrics.

    PyTorch times the dense layer once per batch size (it does not depend on the share;
    its rows have an empty share) and the SSS layer of every share per batch size.
    ``bench`` (a cspeed.CBenchmark, or None to leave C out) times single-vector products
    of both layers in C, each checked against Python every time; the dense one is timed
    at the first share only. ``log(message, *args)`` reports progress.
    """
    log = log or (lambda *args: None)
    rng = np.random.default_rng(seed)
    prob = speed_matrices(
        shape["rows"], shape["cols"], rng, mismatched_models=mismatched_models
    )
    weight, dense_weight, bias = prob["weight"], prob["dense_weight"], prob["bias"]
    dense = nn.Linear(dense_weight.shape[1], dense_weight.shape[0])
    with torch.no_grad():
        dense.weight.copy_(torch.from_numpy(dense_weight))
        dense.bias.copy_(torch.from_numpy(bias))
    base = {
        "shape": shape["name"],
        **{k: shape[k] for k in ("rows", "cols", "n_stages")},
    }
    size, width = dense_weight.size, dense_weight.shape[1]
    dense_info = _layer_info("dense", np.nan, size, 0, 2 * size, width)
    rows, metrics = [], {}

    def median_us(times):
        return 1e6 * float(np.median(times))

    def torch_rows(module: nn.Module, info: dict, batch: int) -> float:
        """Time `module` at `batch`, add its rows; the median µs per product."""
        times = time_forward(module, batch, seed=seed, **timing)
        timed = {"backend": "torch", "batch": batch}
        rows.extend(
            {**base, **info, **timed, "iteration": i, "seconds_per_matvec": t}
            for i, t in enumerate(times)
        )
        return median_us(times)

    for batch in batches:
        us = torch_rows(dense, dense_info, batch)
        log("torch batch %d: dense %.3g µs per matvec", batch, us)
    for n_share, share in enumerate(shares):
        approx = approximate_sss(weight, share, shape["n_stages"])
        d = approx.info["state_dim"]
        flops = 2 * approx.info["n_stored"]
        sss_info = _layer_info("sss", share, approx.n_params, d, flops, shape["cols"])
        layer = SSSLayer.from_approximation(approx, bias=bias)
        for batch in batches:
            us = torch_rows(layer, sss_info, batch)
            msg = "share %g (d=%d) torch batch %d: sss %.3g µs per matvec"
            log(msg, share, d, batch, us)
        if bench is None:
            continue
        records = description_records(
            dense_weight,
            bias,
            approx.structure,
            bias,
            prob["u"],
            sss_shape=weight.shape,
        )
        results = bench.run(records, layers="both" if n_share == 0 else "sss", **timing)
        for opt, result in results.items():
            for r in flat_rows(result):
                info = dense_info if r["layer"] == "dense" else sss_info
                rows.append({**base, **info, **r, "backend": f"c_{opt}", "batch": 1})
            msg = f"sss {median_us(result['sss']['median_s']):.3g} µs"
            if result["dense"]["timed"]:
                msg = f"dense {median_us(result['dense']['median_s']):.3g} µs, " + msg
            errors = (result["dense"]["max_abs_error"], result["sss"]["max_abs_error"])
            log(
                "share %g (d=%d) C -%s: %s per matvec (checksum errors %.2g, %.2g)",
                share,
                d,
                opt,
                msg,
                *errors,
            )
            metrics["c_max_abs_error"] = max(
                metrics.get("c_max_abs_error", 0.0), *errors
            )
    return rows, metrics
