"""The experiments of the structured-layer targets as plain functions (spec §7): approximators chosen by a
small spec dict, the test-matrix benchmark rows, SSS fine-tuning (ESANN) and halving-lr fine-tuning
(survey), and the dense-vs-SSS timing. Workflow scripts pass config values in and store what comes out.

Approximator specs (dicts, as in the config):
    {"method": "lr"}                                   low rank (Eckart–Young)
    {"method": "sss", "n_stages": K}                   SSS with fixed K
    {"method": "sss_search", "n_steps": s}             the SSS wrapper (K over linspace(min/10, min/2, s))
    {"method": "psm", "n_factors": J, "distribution": "linear"|"exponential", "n_steps": s}
    {"method": "psm_search", "factor_counts": [J...], "n_steps": s}   the PSM wrapper (linear allocation)
    {"method": "hmat_search"}                          the HMat wrapper
    {"method": "tl"}                                   Toeplitz-like (square matrices only)
"""

from __future__ import annotations

import copy
import math
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from weightspace.structured.approximation import Approximation, as_matrix
from weightspace.structured.displacement import approximate_toeplitz_like
from weightspace.structured.hierarchical import approximate_hmat_search
from weightspace.structured.layers import LowRankLayer, SSSLayer
from weightspace.structured.low_rank import approximate_low_rank
from weightspace.structured.psm import approximate_psm, approximate_psm_search
from weightspace.structured.sss import approximate_sss, approximate_sss_search
from weightspace.structured.structured_layers import HMatLayer, PSMLayer

METHODS = ("lr", "sss", "sss_search", "psm", "psm_search", "hmat_search", "tl")
LABELS = {"lr": "LR", "sss": "SSS", "sss_search": "SSS", "psm": "PSM", "psm_search": "PSM",
          "hmat_search": "HMat", "tl": "TL"}


def approximate(weight, share: float, spec: dict, *, psm_iterations: int = 500, sss_esann_off_by_one: bool = False,
                sss_exact_count: bool = False) -> Approximation:
    """The approximation of W at `share` by the approximator that `spec` names (see the module doc)."""
    mat = as_matrix(weight)
    method = spec["method"]
    sss_kw = {"esann_off_by_one": sss_esann_off_by_one, "exact_count": sss_exact_count}
    if method == "lr":
        return approximate_low_rank(mat, share)
    if method == "sss":
        return approximate_sss(mat, share, int(spec["n_stages"]), **sss_kw)
    if method == "sss_search":
        return approximate_sss_search(mat, share, int(spec["n_steps"]), **sss_kw)
    if method == "psm":
        return approximate_psm(mat, share, n_factors=int(spec["n_factors"]), distribution=spec["distribution"],
                               n_steps=int(spec["n_steps"]), n_iter=psm_iterations)
    if method == "psm_search":
        return approximate_psm_search(mat, share, factor_counts=tuple(spec["factor_counts"]), n_steps=int(spec["n_steps"]),
                                      n_iter=psm_iterations)
    if method == "hmat_search":
        return approximate_hmat_search(mat, share)
    if method == "tl":
        return approximate_toeplitz_like(mat, share)
    raise ValueError(f"unknown approximation method {method!r}; known: {', '.join(METHODS)}")


def matrix_benchmark_rows(matrices: list[tuple[str, np.ndarray]], shares, approximators: list[dict], **options) -> list[dict]:
    """One row per (matrix, share, approximator): relative Frobenius error and parameter count.
    `matrices` holds (label, matrix) pairs; approximators are dicts with "name" plus a spec."""
    rows = []
    for label, mat in matrices:
        for share in shares:
            budget = int(share * mat.size)
            for spec in approximators:
                start = time.perf_counter()
                approx = approximate(mat, share, spec, **options)
                rows.append({"matrix": label, "share": float(share), "approximator": spec["name"],
                             "rel_error": approx.relative_error(mat), "n_params": int(approx.n_params),
                             "budget": budget, "seconds": time.perf_counter() - start})
    return rows


def layer_from_approximation(approx: Approximation, bias: np.ndarray) -> nn.Module:
    """A trainable layer y = W̃u + b from an approximation (SSS, LR, PSM or HMat), float32."""
    kinds = {"SSS": SSSLayer, "LR": LowRankLayer, "PSM": PSMLayer, "HMat": HMatLayer}
    if approx.method not in kinds:
        raise ValueError(f"no trainable layer for method {approx.method!r}; choose one of {', '.join(kinds)}")
    if approx.method == "PSM" and approx.structure is None:
        raise ValueError("the PSM factorisation failed (zero matrix); no layer to fine-tune")
    return kinds[approx.method].from_approximation(approx, bias=np.asarray(bias, np.float64))


# ---------------------------------------------------------------------------------------------------------
# fine-tuning


def inner_split(n: int, seed: int, val_fraction: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a random 80/20 split (the original's train_test_split(random_state=42) role)."""
    perm = np.random.default_rng(seed).permutation(n)
    n_val = int(round(val_fraction * n))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


class _Net(nn.Module):
    def __init__(self, layer: nn.Module, head: nn.Module, double_softmax: bool = False):
        super().__init__()
        self.layer, self.head, self.double_softmax = layer, head, double_softmax

    def forward(self, u):
        out = self.head(self.layer(u))
        return torch.softmax(out, dim=1) if self.double_softmax else out


@torch.no_grad()
def evaluate(net: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 4096) -> tuple[float, float]:
    """(mean cross-entropy, top-1 accuracy) of net on (x, y)."""
    net.eval()
    loss, correct = 0.0, 0
    for start in range(0, len(y), batch_size):
        out = net(x[start:start + batch_size])
        loss += float(F.cross_entropy(out, y[start:start + batch_size], reduction="sum"))
        correct += int((out.argmax(dim=1) == y[start:start + batch_size]).sum())
    return loss / max(len(y), 1), correct / max(len(y), 1)


def _epoch(net, optimizer, x, y, batch_size, generator):
    net.train()
    perm = torch.randperm(len(y), generator=generator)
    for start in range(0, len(y), batch_size):
        idx = perm[start:start + batch_size]
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(x[idx]), y[idx])
        if not torch.isfinite(loss):
            return False
        loss.backward()
        optimizer.step()
    return True


def _finetune_data(x_train, y_train, x_test, y_test, seed: int, split_seed: int, val_on_train: bool):
    """Seeded generator and the (fit, validation, test) tensors of the fine-tuning protocols: an
    80/20 inner split of the training features; val_on_train validates on the fit part (HEAD bug)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    x_tr, y_tr = torch.as_tensor(x_train), torch.as_tensor(y_train)
    fit, val = inner_split(len(y_tr), split_seed)
    fit_part = (x_tr[fit], y_tr[fit])
    val_part = fit_part if val_on_train else (x_tr[val], y_tr[val])
    return gen, fit_part, val_part, (torch.as_tensor(x_test), torch.as_tensor(y_test))


def finetune_esann(layer: nn.Module, head: nn.Module, x_train, y_train, x_test, y_test, *, seed: int, lr: float = 1e-3,
                   batch_size: int = 64, patience: int = 10, max_epochs: int = 1000, split_seed: int = 42,
                   val_on_train: bool = False, double_softmax: bool = False) -> dict:
    """The ESANN SSS fine-tuning (spec §5, ESANN commit): Adam + cross-entropy on an 80/20 split of the
    training features, best model by validation accuracy, stop after ≥ 2·patience epochs once the last
    `patience` epochs did not beat the earlier maximum (or after max_epochs). Returns test accuracy/loss
    before ("only approx") and after, and the history. val_on_train=True validates on the training
    features (the HEAD bug); double_softmax=True applies softmax before the cross-entropy (the original)."""
    gen, (x_fit, y_fit), (x_val, y_val), (x_te, y_te) = _finetune_data(
        x_train, y_train, x_test, y_test, seed, split_seed, val_on_train)
    net = _Net(layer, head, double_softmax)
    plain = _Net(layer, head, False)
    before = evaluate(plain, x_te, y_te)
    params = [p for p in layer.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr)
    history, best_acc, best_state = [], -1.0, copy.deepcopy(layer.state_dict())
    for epoch in range(1, max_epochs + 1):
        if not _epoch(net, optimizer, x_fit, y_fit, batch_size, gen):
            break
        val_loss, val_acc = evaluate(net, x_val, y_val)
        history.append({"epoch": epoch, "val_loss": val_loss, "val_acc": val_acc})
        if val_acc > best_acc:
            best_acc, best_state = val_acc, copy.deepcopy(layer.state_dict())
        accs = [h["val_acc"] for h in history]
        if epoch >= 2 * patience and max(accs[-patience:]) <= max(accs[:-patience]):
            break
    layer.load_state_dict(best_state)
    after = evaluate(plain, x_te, y_te)
    return {"test_loss_before": before[0], "test_acc_before": before[1], "test_loss_after": after[0],
            "test_acc_after": after[1], "epochs": len(history), "best_val_acc": best_acc, "history": history}


def finetune_decreasing_lr(layer: nn.Module, head: nn.Module, x_train, y_train, x_test, y_test, *, seed: int,
                           lr: float = 1.0, halvings: int = 9, batch_size: int = 256, patience: int = 2,
                           min_improvement: float = 1e-2, max_epochs_per_stage: int = 1000, split_seed: int = 42,
                           val_on_train: bool = False) -> dict:
    """The survey's train_with_decreasing_lr (spec §5): SGD with lr, lr/2, …, lr/2^halvings; each stage trains
    until the last `patience` validation losses fail to improve on the earlier minimum by min_improvement
    (or max_epochs_per_stage), then restores the best-validation-loss model before the next stage."""
    gen, (x_fit, y_fit), (x_val, y_val), (x_te, y_te) = _finetune_data(
        x_train, y_train, x_test, y_test, seed, split_seed, val_on_train)
    net = _Net(layer, head)
    before = evaluate(net, x_te, y_te)
    params = [p for p in layer.parameters() if p.requires_grad]
    history, epochs = [], 0
    best_loss, best_state = evaluate(net, x_val, y_val)[0], copy.deepcopy(layer.state_dict())
    for stage in range(halvings + 1):
        stage_lr = lr / 2 ** stage
        optimizer = torch.optim.SGD(params, lr=stage_lr)
        losses = []
        for _ in range(max_epochs_per_stage):
            ok = _epoch(net, optimizer, x_fit, y_fit, batch_size, gen)
            epochs += 1
            val_loss = evaluate(net, x_val, y_val)[0] if ok else math.inf
            val_loss = val_loss if math.isfinite(val_loss) else math.inf
            losses.append(val_loss)
            history.append({"stage": stage, "lr": stage_lr, "val_loss": val_loss})
            if val_loss < best_loss:
                best_loss, best_state = val_loss, copy.deepcopy(layer.state_dict())
            if not ok or not math.isfinite(val_loss):
                break
            if len(losses) > patience and min(losses[-patience:]) >= min(losses[:-patience]) - min_improvement:
                break
        layer.load_state_dict(best_state)
    after = evaluate(net, x_te, y_te)
    return {"test_loss_before": before[0], "test_acc_before": before[1], "test_loss_after": after[0],
            "test_acc_after": after[1], "epochs": epochs, "best_val_loss": best_loss, "history": history}


# ---------------------------------------------------------------------------------------------------------
# speed


@torch.no_grad()
def time_forward(layer: nn.Module, batch: int, *, repeats: int, iterations: int, warmup: int, seed: int = 0) -> list[float]:
    """Seconds per matrix–vector product (call time / batch) of `layer`: for each iteration, the median of
    `repeats` timed calls after `warmup` untimed ones (time.perf_counter, one thread as the caller set)."""
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


def speed_matrices(rows: int, cols: int, rng: np.random.Generator, *, mismatched_models: bool = False) -> dict:
    """The random U(−1, 1) problem of one sss_fig_speed shape (values do not affect timings).

    weight (rows × cols) is the matrix the SSS layers approximate; dense_weight is the dense layer's
    matrix: weight itself, or, with mismatched_models=True (the original's pairing, spec §11.8), a
    different rows × 2·cols matrix, as the original timed AlexNet's dense layer (4096 inputs) against
    SSS layers of InceptionV3 (2048 inputs). bias is shared; u is the dense layer's test input, of
    which the SSS layer reads the first cols entries.
    """
    weight = rng.uniform(-1, 1, size=(rows, cols))
    bias = rng.uniform(-1, 1, size=rows)
    dense_weight = rng.uniform(-1, 1, size=(rows, 2 * cols)) if mismatched_models else weight
    u = rng.uniform(-1, 1, size=dense_weight.shape[1])
    return {"weight": weight, "dense_weight": dense_weight, "bias": bias, "u": u}


SPEED_COLUMNS = ["shape", "rows", "cols", "n_stages", "backend", "share", "batch", "layer", "iteration",
                 "seconds_per_matvec", "seconds_mean", "n_params", "state_dim", "flops", "in_features",
                 "max_abs_error"]


def speed_rows(shape: dict, shares, batches, timing: dict, seed: int, *, mismatched_models: bool = False,
               bench=None, log=None) -> tuple[list[dict], dict]:
    """Rows (columns SPEED_COLUMNS) of one sss_fig_speed shape, and metrics.

    PyTorch times the dense layer once per batch size (it does not depend on the share; its rows have
    an empty share) and the SSS layer of every share per batch size. ``bench`` (a
    cspeed.CBenchmark, or None to leave C out) times single-vector products of both layers in C,
    each checked against Python every time; the dense one is timed at the first share only.
    ``log(message, *args)`` reports progress.
    """
    from weightspace.structured.cspeed import description_records, flat_rows
    from weightspace.structured.sss import approximate_sss

    log = log or (lambda *args: None)
    prob = speed_matrices(shape["rows"], shape["cols"], np.random.default_rng(seed),
                          mismatched_models=mismatched_models)
    weight, dense_weight, bias = prob["weight"], prob["dense_weight"], prob["bias"]
    dense = nn.Linear(dense_weight.shape[1], dense_weight.shape[0])
    with torch.no_grad():
        dense.weight.copy_(torch.from_numpy(dense_weight))
        dense.bias.copy_(torch.from_numpy(bias))
    base = {"shape": shape["name"], "rows": shape["rows"], "cols": shape["cols"], "n_stages": shape["n_stages"]}
    dense_info = {"layer": "dense", "share": np.nan, "n_params": dense_weight.size, "state_dim": 0,
                  "flops": 2 * dense_weight.size, "in_features": dense_weight.shape[1]}
    rows, metrics = [], {}

    def median_us(times):
        return 1e6 * float(np.median(times))

    for batch in batches:
        times = time_forward(dense, batch, seed=seed, **timing)
        rows += [{**base, **dense_info, "backend": "torch", "batch": batch, "iteration": i, "seconds_per_matvec": t}
                 for i, t in enumerate(times)]
        log("torch batch %d: dense %.3g µs per matvec", batch, median_us(times))
    for n_share, share in enumerate(shares):
        approx = approximate_sss(weight, share, shape["n_stages"])
        d = approx.info["state_dim"]
        sss_info = {"layer": "sss", "share": share, "n_params": approx.n_params, "state_dim": d,
                    "flops": 2 * approx.info["n_stored"], "in_features": shape["cols"]}
        layer = SSSLayer.from_approximation(approx, bias=bias)
        for batch in batches:
            times = time_forward(layer, batch, seed=seed, **timing)
            rows += [{**base, **sss_info, "backend": "torch", "batch": batch, "iteration": i,
                      "seconds_per_matvec": t} for i, t in enumerate(times)]
            log("share %g (d=%d) torch batch %d: sss %.3g µs per matvec", share, d, batch, median_us(times))
        if bench is None:
            continue
        records = description_records(dense_weight, bias, approx.structure, bias, prob["u"], sss_shape=weight.shape)
        results = bench.run(records, layers="both" if n_share == 0 else "sss", **timing)
        for opt, result in results.items():
            for r in flat_rows(result):
                info = dense_info if r["layer"] == "dense" else sss_info
                rows.append({**base, **info, **r, "backend": f"c_{opt}", "batch": 1})
            msg = f"sss {median_us(result['sss']['median_s']):.3g} µs"
            if result["dense"]["timed"]:
                msg = f"dense {median_us(result['dense']['median_s']):.3g} µs, " + msg
            errors = (result["dense"]["max_abs_error"], result["sss"]["max_abs_error"])
            log("share %g (d=%d) C -%s: %s per matvec (checksum errors %.2g, %.2g)", share, d, opt, msg, *errors)
            metrics["c_max_abs_error"] = max(metrics.get("c_max_abs_error", 0.0), *errors)
    return rows, metrics
