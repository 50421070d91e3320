"""The fused C step of the 1D Monte Carlo (kernel="c"): same bits as the scatter kernel."""

import math

import numpy as np
import pytest
import torch
from test_relu_mc1d import early_stopped

from weightspace.relu import ckernel, mc1d
from weightspace.relu import criterion as crit
from weightspace.relu.mc1d import MCConfig, run_chunk

F64 = torch.float64

pytestmark = pytest.mark.skipif(
    not ckernel.available(), reason="no C compiler to build the C kernel"
)

# Where PyTorch's addcmul rounds differently depending on the layout, the C step can only agree
# with the scatter kernel to rounding (see ckernel.addcmul_mode).
EXACT = ckernel.addcmul_mode() != "mixed"


def _assert_same(x, y):
    if EXACT:
        assert torch.equal(x, y), float((x - y).abs().max())
    else:
        torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-14)


@pytest.fixture(params=["avx512", "portable"])
def c_path(request):
    """The C kernel's AVX-512 path (vectorised steps and draws; skipped where the CPU lacks
    it) and its portable path."""
    vector = request.param == "avx512"
    if vector and not ckernel.use_avx512(True):
        pytest.skip("this CPU has no AVX-512F/DQ")
    ckernel.use_avx512(vector)
    yield request.param
    ckernel.use_avx512(True)


def _nets(n, m, seed):
    """Random nets whose kinks lie on both sides, in every gap and within 1e-9 of data points."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, m, generator=g, dtype=F64) * math.sqrt(2.0)
    b = torch.randn(n, m, generator=g, dtype=F64) * 2.0
    x = crit.points()
    near = torch.rand(n, m, generator=g, dtype=F64) < 0.25
    at = x[torch.randint(0, 6, (n, m), generator=g)]
    eps = (torch.rand(n, m, generator=g, dtype=F64) - 0.5) * 2e-9
    b = torch.where(near, -a * (at + eps), b)
    w = torch.randn(n, m, generator=g, dtype=F64)
    c = torch.randn(n, generator=g, dtype=F64)
    p = torch.rand(n, 6, generator=g, dtype=F64) + 0.05
    return a, b, c, w, p / p.sum(1, keepdim=True)


def _classes(a, b):
    kink = -b / a
    left = (crit.points().view(1, 1, -1) < kink.unsqueeze(-1)).sum(-1)
    return set(zip((a > 0).flatten().tolist(), left.flatten().tolist()))


@pytest.mark.parametrize("n,m", [(61, 16), (9, 64), (3, 5), (6, 37), (5, 200)])
def test_c_steps_equal_scatter_steps(n, m, c_path):
    a, b, c, w, p = _nets(n, m, seed=m)
    if m == 16:
        assert len(_classes(a, b)) == 14
    y = crit.labels(0.1)
    h = crit.large_step_sizes(a, b, w, p)
    steppers = {
        k: mc1d.GDStepper(a, b, c, w, p, h, y, kernel=k) for k in ("scatter", "c")
    }
    assert steppers["c"].kernel == "c"
    for steps in (1, 1, 7, 40):
        for st in steppers.values():
            st.step(steps)
        for x, yy in zip(steppers["scatter"].params, steppers["c"].params):
            _assert_same(x, yy)
        _assert_same(steppers["scatter"]._hi, steppers["c"]._hi)
        _assert_same(steppers["scatter"]._lo, steppers["c"]._lo)
    _assert_same(steppers["scatter"].max_kink, steppers["c"].max_kink)
    # The parameters moved and the kinks with them.
    assert not torch.equal(steppers["c"].params[0], a)


def test_c_tracks_kinks_before_every_step(c_path):
    a, b, c, w, p = _nets(30, 16, seed=6)
    b = b * 0.15
    y = crit.labels(0.0)
    h = crit.large_step_sizes(a, b, w, p)
    st = mc1d.GDStepper(a, b, c, w, p, h, y, kernel="c")
    expected = (b / a).abs().amax(1)
    for _ in range(40):
        st.step(1)
        na, nb = st.params[:2]
        expected = torch.maximum(expected, (nb / na).abs().amax(1))
    torch.testing.assert_close(st.max_kink, expected, rtol=0, atol=0)


def test_c_sgd_block_equals_scatter_steps(c_path):
    n, m, k = 13, 16, 9
    a, b, c, w, p = _nets(n, m, seed=3)
    y = crit.labels(0.05)
    coef = (
        torch.rand(n, k, 6, generator=torch.Generator().manual_seed(2), dtype=F64)
        * 0.01
    )
    ncy = torch.mul(coef, y).neg_()
    out = {}
    for name in ("scatter", "c"):
        kern = mc1d._make_kernel(name, n, m, torch.device("cpu"), F64)
        nets = mc1d._Nets(a.clone(), b.clone(), c.clone(), w.clone())
        hi, lo = torch.zeros(n, dtype=F64), torch.zeros(n, dtype=F64)
        kern.gd_steps(nets, coef, ncy, hi, lo)
        out[name] = (nets.a, nets.b, nets.c, nets.w, hi, lo)
    for x, yy in zip(out["scatter"], out["c"]):
        _assert_same(x, yy)


@pytest.mark.parametrize("size", [16, 7, 21])
def test_c_sgd_draws_equal_the_pytorch_minibatches(size, c_path):
    # 300 steps cross the C kernel's block of 256 drawn steps; ids with gaps, as after the chunk
    # drops finished nets; size 7 makes counts / size inexact, and 7 and 21 leave a partial
    # vector of draws.
    n, m, steps = 6, 16, 300
    a, b, c, w, p = _nets(n, m, seed=4)
    p[1] = torch.tensor([0.5, 0, 0, 0.5, 0, 0], dtype=F64)
    h = torch.linspace(0.001, 0.01, n, dtype=F64)
    y = crit.labels(0.05)
    ids = torch.tensor([0, 3, 4, 9, 100, (1 << 24) - 1])
    key = -1234567891011
    out = {}
    for name in ("scatter", "c"):
        kern = mc1d._make_kernel(name, n, m, torch.device("cpu"), F64)
        nets = mc1d._Nets(a.clone(), b.clone(), c.clone(), w.clone())
        hi, lo = torch.zeros(n, dtype=F64), torch.zeros(n, dtype=F64)
        kern.sgd_steps(nets, p, h, y, ids, key, size, steps, hi, lo)
        out[name] = (nets.a, nets.b, nets.c, nets.w, hi, lo)
    for x, yy in zip(out["scatter"], out["c"]):
        _assert_same(x, yy)
    assert not torch.equal(out["c"][0], a)


_VARIANTS = {
    "gd": MCConfig(steps_per_check=150, max_checks=8),
    "gd_es": MCConfig(
        early_stopping=True, patience=2, steps_per_check=100, max_checks=8
    ),
    "sgd": early_stopped("sgd"),
    "adam": early_stopped("adam"),
}


def _same(r1, r2):
    assert r1.counts == r2.counts
    assert r1.stop_histogram == r2.stop_histogram
    np.testing.assert_array_equal(r1.status, r2.status)
    np.testing.assert_array_equal(r1.stop_check, r2.stop_check)
    if EXACT:
        assert r1.max_kink.tobytes() == r2.max_kink.tobytes()
    else:
        np.testing.assert_allclose(r1.max_kink, r2.max_kink, rtol=1e-9)
    assert r1.step_size.tobytes() == r2.step_size.tobytes()


@pytest.mark.parametrize("variant", sorted(_VARIANTS))
@pytest.mark.parametrize("seed", [5, 11])
def test_run_chunk_c_equals_scatter(variant, seed, c_path):
    cfg = _VARIANTS[variant]
    res = {
        k: run_chunk(
            MCConfig.from_dict({**cfg.to_dict(), "kernel": k}),
            seed=seed,
            n_runs=24,
            width=16,
            offset=0.01,
        )
        for k in ("scatter", "c")
    }
    assert res["c"].kernel == "c" and res["scatter"].kernel == "scatter"
    assert res["c"].checks_run == res["scatter"].checks_run
    _same(res["scatter"], res["c"])
    # Something was decided, so the comparison is not between two blank results.
    assert res["c"].counts["UNFINISHED"] < 24


def test_auto_picks_c_on_cpu_for_float64():
    assert mc1d._resolve_kernel("auto", torch.device("cpu")) == "c"
    assert mc1d._resolve_kernel("auto", torch.device("cpu"), torch.float32) == "scatter"
    assert mc1d._resolve_kernel("auto", torch.device("cuda")) == "dense"
    assert (
        run_chunk(MCConfig(steps_per_check=5, max_checks=1), 0, 4, 8, 0.0).kernel == "c"
    )


def test_nan_inf_and_zero_weights_do_not_crash(c_path):
    n, m = 8, 16
    a, b, c, w, p = _nets(n, m, seed=4)
    a[1, 3] = float("nan")
    b[2, :] = float("inf")
    a[3, 5] = 0.0  # kink at -inf or +inf
    a[4, 7], b[4, 7] = 0.0, 0.0  # kink 0/0
    w[5, 0] = float("inf")
    y = crit.labels(0.0)
    h = crit.large_step_sizes(
        a.nan_to_num(1.0), b.nan_to_num(0.0, 0.0, 0.0), w.nan_to_num(0.0, 0.0, 0.0), p
    )
    out = {}
    for name in ("scatter", "c"):
        st = mc1d.GDStepper(a, b, c, w, p, h, y, kernel=name)
        st.step(3)
        out[name] = (*st.params, st.max_kink)
    mk = out["c"][4]
    assert bool(mk[[1, 4]].isnan().all())  # NaN kinks (a NaN, 0/0) propagate
    assert not bool(
        (mk[[1, 2, 3, 4]] < 1.0).any()
    )  # so do infinite ones: all count as crossed
    assert not bool(mk[[0, 3, 6, 7]].isnan().any())
    # Nets without NaN kinks give the same bits as the scatter kernel, a == 0 included.
    for x, yy in zip(out["scatter"], out["c"]):
        _assert_same(x[[0, 3, 6, 7]], yy[[0, 3, 6, 7]])


def test_bad_inputs_are_refused():
    a, b, c, w, p = _nets(4, 8, seed=1)
    hi, lo = torch.zeros(4, dtype=F64), torch.zeros(4, dtype=F64)
    with pytest.raises(ckernel.CKernelError, match="float64"):
        ckernel.gd_steps(a.float(), b, c, w, p, p, hi, lo)
    with pytest.raises(ckernel.CKernelError, match="contiguous"):
        ckernel.gd_steps(a.t().contiguous().t(), b, c, w, p, p, hi, lo)
    with pytest.raises(ckernel.CKernelError, match="shape"):
        ckernel.gd_steps(a, b[:, :4].contiguous(), c, w, p, p, hi, lo)
    with pytest.raises(ckernel.CKernelError, match="steps"):
        ckernel.gd_steps(
            a, b, c, w, p.view(4, 1, 6).expand(4, 3, 6), p, hi, lo, steps=2
        )
    ids = torch.arange(4)
    with pytest.raises(ckernel.CKernelError, match="size"):
        ckernel.sgd_steps(a, b, c, w, p, c, p[0], ids, 0, 1 << 17, 5, hi, lo)
    with pytest.raises(ckernel.CKernelError, match="int64"):
        ckernel.sgd_steps(a, b, c, w, p, c, p[0], ids.int(), 0, 16, 5, hi, lo)
    with pytest.raises(ValueError, match="float64"):
        run_chunk(
            MCConfig(kernel="c", steps_per_check=2, max_checks=1),
            0,
            4,
            8,
            0.0,
            dtype=torch.float32,
        )


def test_missing_compiler_gives_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    monkeypatch.setenv("WEIGHTSPACE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(
        ckernel.CKernelError,
        match=r"ReLU Monte Carlo.*relu_mc_chunk.*needs a C compiler.*CC",
    ):
        ckernel.library()
    assert not ckernel.available()
    assert mc1d._resolve_kernel("auto", torch.device("cpu")) == "scatter"
    with pytest.raises(ckernel.CKernelError, match="kernel='scatter'"):
        run_chunk(MCConfig(kernel="c", steps_per_check=2, max_checks=1), 0, 4, 8, 0.0)
    assert (
        run_chunk(MCConfig(steps_per_check=2, max_checks=1), 0, 4, 8, 0.0).kernel
        == "scatter"
    )


def test_build_is_cached_and_used_without_a_compiler(monkeypatch, tmp_path):
    cache = tmp_path / "cache"
    monkeypatch.setenv("WEIGHTSPACE_CACHE", str(cache))
    monkeypatch.delenv("CC", raising=False)
    lib = ckernel.library()
    built = list(cache.iterdir())
    assert len(built) == 1 and built[0].suffix == ".so"  # no temporary file left behind
    assert ckernel.library() is lib
    # Without a compiler, the library already built from this source is loaded.
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    assert ckernel.available()
    a, b, c, w, p = _nets(5, 16, seed=8)
    y = crit.labels(0.0)
    h = crit.large_step_sizes(a, b, w, p)
    ref = mc1d.train_gd(a, b, c, w, p, h, y, steps=5, kernel="scatter")
    got = mc1d.train_gd(a, b, c, w, p, h, y, steps=5, kernel="c")
    for x, yy in zip(ref, got):
        _assert_same(x, yy)
