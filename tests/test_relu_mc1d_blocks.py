"""The scatter kernel's cache blocking and fused GD step change no bit of the results."""

import numpy as np
import pytest
import torch

from weightspace.relu import criterion as crit
from weightspace.relu import mc1d
from weightspace.relu.mc1d import kernel, scatter


def _bits(t: torch.Tensor) -> torch.Tensor:
    # Bit patterns, with every NaN mapped to one (vectorised and scalar loops may set a NaN's sign
    # bit differently, so only "is NaN" is meaningful there).
    t = t.detach().contiguous()
    return torch.where(torch.isnan(t), torch.nan, t).view(torch.int64)


def _same(x: torch.Tensor, y: torch.Tensor) -> bool:
    return x.shape == y.shape and torch.equal(_bits(x), _bits(y))


def _nets(n, m, seed=0):
    rng = np.random.default_rng(seed)
    a = torch.tensor(rng.standard_normal((n, m)) * 1.4)
    b = torch.tensor(rng.standard_normal((n, m)) * 0.5)
    w = torch.tensor(rng.standard_normal((n, m)) * (2.0 / m) ** 0.5)
    c = torch.tensor(rng.standard_normal(n))
    p = torch.tensor(mc1d.sample_frequencies(rng, n, m * m))
    h = crit.large_step_sizes(a, b, w, p)
    # Degenerate neurons: a = 0 (kink at ±inf or undefined), a NaN bias, a kink on a data point.
    a[0, 0] = 0.0
    b[0, 0] = 0.0
    a[1, m - 1] = 0.0
    b[2, 0] = float("nan")
    b[3, 0] = 2.0 * a[3, 0]
    return a, b, c, w, p, h


def _stepper(a, b, c, w, p, h, y, rows):
    st = mc1d.GDStepper(a, b, c, w, p, h, y, kernel="scatter")
    if rows is not None:
        st._kern = scatter._ScatterKernel(
            a.shape[0], a.shape[1], a.device, a.dtype, rows=rows
        )
    return st


@pytest.mark.parametrize("m", [1, 5, 16])
def test_block_size_does_not_change_gd(m):
    a, b, c, w, p, h = _nets(23, m)
    y = crit.labels(0.3)
    runs = []
    for rows in (None, 1, 4, 23, 100):
        st = _stepper(a, b, c, w, p, h, y, rows)
        st.step(5)
        runs.append((*st.params, st.max_kink))
    for other in runs[1:]:
        assert all(_same(x, z) for x, z in zip(runs[0], other))


def test_fused_step_equals_backprop_then_update():
    a, b, c, w, p, h = _nets(37, 9, seed=1)
    y = crit.labels(-0.2)
    coef = p * h.unsqueeze(1)
    ncy = -coef * y
    fused = kernel._Nets(a.clone(), b.clone(), c.clone(), w.clone())
    split = kernel._Nets(a.clone(), b.clone(), c.clone(), w.clone())
    kf = scatter._ScatterKernel(37, 9, a.device, a.dtype, rows=8)
    ks = scatter._ScatterKernel(37, 9, a.device, a.dtype, rows=8)
    hi_f, lo_f, hi_s, lo_s = (torch.zeros(37, dtype=torch.float64) for _ in range(4))
    for _ in range(4):
        kf.gd_step(fused, coef, ncy, hi_f, lo_f)
        rsum = ks.backprop(split.a, split.b, split.c, split.w, coef, ncy, hi_s, lo_s)
        kernel._gd_update(split, ks, rsum)
    for name in ("a", "b", "c", "w"):
        assert _same(getattr(fused, name), getattr(split, name))
    assert _same(hi_f, hi_s) and _same(lo_f, lo_s)


def test_blocked_gradients_and_output_match_one_block():
    a, b, c, w, p, _ = _nets(19, 7, seed=2)
    y = crit.labels(0.0)
    one = scatter._ScatterKernel(19, 7, a.device, a.dtype, rows=19)
    many = scatter._ScatterKernel(19, 7, a.device, a.dtype, rows=2)
    his = [torch.full((19,), -torch.inf, dtype=torch.float64) for _ in range(2)]
    los = [torch.full((19,), torch.inf, dtype=torch.float64) for _ in range(2)]
    r1 = one.backprop(a, b, c, w, p, -p * y, his[0], los[0]).clone()
    r2 = many.backprop(a, b, c, w, p, -p * y, his[1], los[1]).clone()
    assert _same(r1, r2) and _same(one.g0, many.g0) and _same(one.g1, many.g1)
    assert _same(his[0], his[1]) and _same(los[0], los[1])
    f1 = one.forward(a, b, c, w, his[0], los[0]).clone()
    f2 = many.forward(a, b, c, w, his[1], los[1]).clone()
    assert _same(f1, f2)
    assert torch.allclose(
        f1[4:],
        mc1d.network_output(a, b, c, w, crit.points())[4:],
        rtol=1e-12,
        atol=1e-12,
    )


@pytest.mark.parametrize("optimizer", ["gd", "sgd", "adam"])
def test_run_chunk_is_independent_of_block_size(monkeypatch, optimizer):
    cfg = mc1d.MCConfig(
        optimizer=optimizer, steps_per_check=20, max_checks=8, early_stopping=True
    )
    ref = mc1d.run_chunk(cfg, 3, 60, 6, 0.1)
    monkeypatch.setattr(scatter, "_block_rows", lambda m: 7)
    small = mc1d.run_chunk(cfg, 3, 60, 6, 0.1)
    assert ref.counts == small.counts and ref.stop_histogram == small.stop_histogram
    assert np.array_equal(ref.status, small.status)
    assert np.array_equal(ref.stop_check, small.stop_check)
    assert _same(torch.from_numpy(ref.max_kink), torch.from_numpy(small.max_kink))
