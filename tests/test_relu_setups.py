"""Setups grid of §5: distributions, parameterisations, bias inits, protocol, aggregation."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from weightspace.relu.batched import BatchedTwoLayer
from weightspace.relu.distributions import ex_target, get_distribution
from weightspace.relu.setups import (
    SetupConfig,
    SetupResult,
    best_by_setting,
    best_lr_result,
    init_two_layer,
    kink_through_points,
    lr_grid,
    make_data,
    make_optimizer,
    mean_and_se,
    merge_results,
    predict,
    refined_lr_grid,
    relative_curves,
    run_setup,
    setups_table,
    update_best,
)

SQRT3 = math.sqrt(3.0)


def _dkw(n, alpha=1e-3):
    """sup|F_n − F| exceeds this with probability ≤ alpha (Dvoretzky–Kiefer–Wolfowitz)."""
    return math.sqrt(math.log(2.0 / alpha) / (2.0 * n))


def _gen(seed):
    return torch.Generator().manual_seed(seed)


# --- learning-rate grid ------------------------------------------------------------------------


def test_lr_grid_and_refinement():
    grid = lr_grid("adam", "ntk")
    assert len(grid) == 23
    assert grid[12] == pytest.approx(8e-2) and grid[0] == pytest.approx(8e-2 / 64)
    assert grid[-1] == pytest.approx(8e-2 * 32)
    assert lr_grid("gd-mom", "kaiming")[12] == pytest.approx(8e-3)
    assert lr_grid("gd", "ntk")[12] == pytest.approx(8e-1)
    assert lr_grid("adam", "kaiming")[12] == pytest.approx(1e-2)
    fine = refined_lr_grid(0.1)
    assert len(fine) == 7 and fine[3] == pytest.approx(0.1)
    assert fine[-1] / fine[0] == pytest.approx(2**0.75)


# --- distributions -----------------------------------------------------------------------------


def test_ex_distr_unit_second_moment_and_zero_intercepts():
    dist = get_distribution("ex-distr")
    x, y = dist.sample(1, 400_000, np.random.default_rng(0), dtype=torch.float64)
    x, y = x[0, :, 0].numpy(), y[0].numpy()
    # Var(X²) = E X⁴ − 1 = (1/3)/(105/196)² − 1 ≈ 0.16: SE of the mean of X² is 6.4e-4; 5 SE.
    assert np.mean(x**2) == pytest.approx(1.0, abs=3.2e-3)
    # Per-side least squares: the intercept SE is ≈ √(19.5/n_side) ≈ 0.01 with noise; the exact
    # population intercept is 0.0013 (quadrature), while without the +0.074 shift it would be
    # −0.10. Tolerance 0.04 (4 SE) separates the two.
    for side in (x > 0, x < 0):
        slope, intercept = np.polyfit(x[side], y[side], 1)
        assert abs(intercept) < 0.04
    # Noise: residual to the true function has std 0.1/0.727 (the Bayes RMSE).
    resid = y - ex_target(x)
    assert np.std(resid) == pytest.approx(dist.bayes_rmse, rel=0.01)
    assert dist.bayes_rmse == pytest.approx(0.1376, abs=1e-4)
    assert abs(x).max() <= 1.0 / math.sqrt(105 / 196) + 1e-12


@pytest.mark.parametrize("d", [1, 3, 16])
def test_rad_distr_norms_and_labels(d):
    dist = get_distribution(f"rad-distr-{d}")
    x, y = dist.sample(2, 20_000, np.random.default_rng(d))
    r = torch.linalg.vector_norm(x.double(), dim=2)
    assert x.shape == (2, 20_000, d)
    assert (r <= SQRT3 * (1 + 1e-6)).all()  # float32 rounding of √3·U·u
    torch.testing.assert_close(
        y.double(), torch.cos(2 * math.pi * r / SQRT3), atol=1e-4, rtol=0
    )
    # ‖X‖/√3 = U is uniform on [0, 1]: KS distance within the DKW band (alpha 1e-3).
    assert stats.kstest((r[0] / SQRT3).numpy(), "uniform").statistic < _dkw(20_000)
    with pytest.raises(ValueError, match="unknown distribution"):
        get_distribution("rad-distr-0")


def test_make_data_standardises_with_train_statistics_per_net():
    data = make_data(
        "rad-distr-2", n_nets=3, n_train=512, n_valid=256, n_test=256, seed=0
    )
    torch.testing.assert_close(
        data.x_train.mean(1), torch.zeros(3, 2, dtype=torch.float64), atol=1e-12, rtol=0
    )
    torch.testing.assert_close(
        data.x_train.std(1), torch.ones(3, 2, dtype=torch.float64)
    )
    torch.testing.assert_close(data.y_train.std(1), torch.ones(3, dtype=torch.float64))
    # Validation data use the train statistics: undoing them recovers raw rad-distr samples.
    raw = data.x_valid * data.x_std + data.x_mean
    assert (torch.linalg.vector_norm(raw, dim=2) <= SQRT3 * (1 + 1e-6)).all()
    assert not torch.allclose(
        data.x_valid.mean(1), torch.zeros(3, 2, dtype=torch.float64), atol=1e-6
    )
    # Each net has its own data set, unless shared.
    assert not torch.equal(data.x_train[0], data.x_train[1])
    shared = make_data("ex-distr", 3, 256, 64, 64, seed=5, shared_dataset=True)
    assert torch.equal(shared.x_train[0], shared.x_train[2])


# --- initialisation ----------------------------------------------------------------------------


@pytest.mark.parametrize("bias_init", ["zero", "unif", "pytorch"])
def test_ntk_and_kaiming_give_the_same_function_at_init(bias_init):
    """Same seed → same normals; the scale sits in the weights (kaiming) or the forward (ntk)."""
    x = torch.randn(4, 50, 5, generator=_gen(0), dtype=torch.float64)
    nets = [
        init_two_layer(param, bias_init, 5, 64, 4, _gen(11), dtype=torch.float64)
        for param in ("kaiming", "ntk")
    ]
    torch.testing.assert_close(nets[0](x), nets[1](x), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(
        nets[0].effective_w1(), nets[1].effective_w1(), rtol=1e-14, atol=0
    )
    # Effective first-layer variance is 2/d for both (16 × 64 × 5 draws: 10 % is > 5 SE).
    assert nets[1].effective_w1().var().item() == pytest.approx(2 / 5, rel=0.1)
    assert nets[1].w1.var().item() == pytest.approx(1.0, rel=0.1)


@pytest.mark.parametrize("param,d", [("kaiming", 1), ("kaiming", 8), ("ntk", 8)])
def test_kink_neg_unif_distances_are_uniform(param, d):
    net = init_two_layer(
        param, "kink-neg-unif", d, 256, 8, _gen(d), dtype=torch.float64
    )
    norms = torch.linalg.vector_norm(net.effective_w1(), dim=1)
    dist = (-net.b1 / norms).flatten()
    assert (net.b1 <= 0).all()  # the origin is on the inactive side
    n = dist.numel()
    assert stats.kstest(dist.numpy(), "uniform", args=(0.0, SQRT3)).statistic < _dkw(n)
    if param == "ntk":
        # Measured with the raw (unscaled) weights the distances shrink by √(2/d) = 0.5:
        # the KS distance is then about 0.5, far outside the band.
        raw = (-net.b1 / torch.linalg.vector_norm(net.w1, dim=1)).flatten()
        assert stats.kstest(
            raw.numpy(), "uniform", args=(0.0, SQRT3)
        ).statistic > 10 * _dkw(n)


@pytest.mark.parametrize("param", ["kaiming", "ntk"])
def test_kink_neg_point_kinks_pass_through_their_points(param):
    d, m, p, n = 3, 40, 4, 30
    x = torch.randn(p, n, d, generator=_gen(5), dtype=torch.float64)
    ref = init_two_layer(param, "zero", d, m, p, _gen(9), dtype=torch.float64)
    net = BatchedTwoLayer(
        ref.w1.clone(),
        ref.b1.clone(),
        ref.w2.clone(),
        ref.b2.clone(),
        ref.scale1,
        ref.scale2,
    )
    idx = kink_through_points(net, x, _gen(1))
    z = net.preactivations(x)  # (P, n, m)
    at_point = torch.gather(z, 1, idx.unsqueeze(1)).squeeze(1)
    scale = net.effective_w1().abs().amax() * x.abs().amax() * d
    assert at_point.abs().max() <= 1e-14 * scale  # exactly on the kink up to rounding
    assert (net.b1 <= 0).all()
    # Only signs of whole neurons changed.
    flip = torch.sign(net.w1 / ref.w1)
    assert torch.equal(flip, flip[:, :1, :].expand_as(flip))
    assert torch.equal(net.w1.abs(), ref.w1.abs())
    # Through init_two_layer: every neuron has a kink through one of its net's training points.
    full = init_two_layer(
        param, "kink-neg-point", d, m, p, _gen(9), x_train=x, dtype=torch.float64
    )
    assert (full.preactivations(x).abs().amin(1) <= 1e-14 * scale).all()


def test_uniform_bias_ranges():
    ranges = {
        "unif": (-math.sqrt(6), math.sqrt(6)),
        "unif-pos": (0, math.sqrt(6)),
        "unif-neg": (-math.sqrt(6), 0),
        "pytorch": (-0.5, 0.5),
    }
    for bias_init, (low, high) in ranges.items():
        for param in ("kaiming", "ntk"):
            b = init_two_layer(
                param, bias_init, 4, 512, 4, _gen(3), dtype=torch.float64
            ).b1
            assert low <= b.min() and b.max() <= high
            # 2048 draws: the extremes come within 1 % of the range ends.
            assert b.min() < low + 0.01 * (high - low) and b.max() > high - 0.01 * (
                high - low
            )
    zero = init_two_layer("ntk", "zero", 4, 8, 2, _gen(3))
    assert (
        (zero.b1 == 0).all() and (zero.b2 == 0).all() and zero.w1.dtype == torch.float32
    )


def test_batched_optimisers_keep_nets_independent():
    """Changing net 1's data leaves net 0's trajectory bit-identical for every optimiser."""
    for name in ("gd", "gd-mom", "adam"):
        finals = []
        for shift in (0.0, 5.0):
            net = init_two_layer("kaiming", "unif", 2, 16, 3, _gen(0))
            for t in net.parameters():
                t.requires_grad_(True)
            opt = make_optimizer(name, net.parameters(), 0.01)
            x = torch.randn(3, 32, 2, generator=_gen(1))
            y = torch.randn(3, 32, generator=_gen(2))
            y[1] += shift
            for _ in range(5):
                loss = ((net(x) - y) ** 2).mean(1).sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
            finals.append([t.detach()[0].clone() for t in net.parameters()])
        for a, b in zip(*finals):
            assert torch.equal(a, b), name


# --- best-test bookkeeping ---------------------------------------------------------------------


def test_best_test_corrected_vs_original_defect():
    valid = [
        torch.tensor([1.0, 1.0]),
        torch.tensor([0.5, 2.0]),
        torch.tensor([0.75, 0.875]),
    ]
    test = [
        torch.tensor([3.0, 3.0]),
        torch.tensor([0.25, 4.0]),
        torch.tensor([0.125, 0.625]),
    ]
    out = {}
    for defect in (False, True):
        bv = bt = None
        for v, t in zip(valid, test):
            bv, bt, _ = update_best(bv, bt, v, t, best_test_uses_valid=defect)
        out[defect] = (bv, bt)
    # Net 0 is best at check 2, net 1 at check 3.
    assert out[False][0].tolist() == [0.5, 0.875] == out[True][0].tolist()
    assert out[False][1].tolist() == [
        0.25,
        0.625,
    ]  # test MSE at the best-validation check
    assert out[True][1].tolist() == [
        0.5,
        0.875,
    ]  # the original stores the validation MSE
    # Without any improvement after the first check both keep the first test value.
    bv, bt, _ = update_best(None, None, torch.tensor([1.0]), torch.tensor([3.0]))
    assert (
        update_best(
            bv, bt, torch.tensor([2.0]), torch.tensor([0.0]), best_test_uses_valid=True
        )[1].item()
        == 3.0
    )


# --- run_setup ---------------------------------------------------------------------------------


def _tiny(**kw):
    base = dict(
        distribution="rad-distr-2",
        n_nets=4,
        steps=128,
        width=64,
        n_valid=256,
        n_test=256,
        lr=8e-3,
    )
    base.update(kw)
    return SetupConfig(**base)


def test_tiny_run_setup_gives_finite_consistent_metrics():
    cfg = _tiny()
    res = run_setup(cfg, seed=0)
    assert res.ok and res.n_nets == 4 and res.aborted_at_step is None
    for metric in (
        "last_train_rmse",
        "last_valid_rmse",
        "last_test_rmse",
        "best_valid_rmse",
        "best_test_rmse",
    ):
        values = getattr(res, metric)
        assert values.shape == (4,) and np.isfinite(values).all() and (values > 0).all()
    assert (res.best_valid_rmse <= res.last_valid_rmse).all()
    assert set(res.best_step.tolist()) <= {64, 128}
    # best_test equals last_test exactly where the last check was the best.
    last_best = res.best_step == 128
    assert np.array_equal(res.best_test_rmse[last_best], res.last_test_rmse[last_best])
    # y of rad-distr is cos of a uniform phase, std 1/√2; with 512 samples its SE is ≈ 0.016.
    assert (res.ystd > 0.6).all() and (res.ystd < 0.8).all()
    again = run_setup(cfg, seed=0)
    assert np.array_equal(again.best_test_rmse, res.best_test_rmse)
    assert SetupResult.from_dict(res.to_dict()).summary() == pytest.approx(
        res.summary(), nan_ok=True
    )
    defect = run_setup(_tiny(best_test_uses_valid=True), seed=0)
    assert np.array_equal(defect.best_valid_rmse, res.best_valid_rmse)
    assert not np.array_equal(defect.best_test_rmse, res.best_test_rmse)


def test_run_setup_huge_lr_reports_nan():
    res = run_setup(_tiny(lr=1e6), seed=0)
    assert res.status == "nan" and not res.ok and res.aborted_at_step == 64
    assert np.isnan(res.best_test_rmse).all()


def test_run_setup_other_settings_and_keep_model():
    calls = []
    cfg = _tiny(
        distribution="ex-distr",
        optimizer="adam",
        parameterisation="ntk",
        bias_init="kink-neg-point",
        lr=8e-2,
    )
    res = run_setup(cfg, seed=1, progress=calls.append, keep_model=True)
    assert res.ok and [c["step"] for c in calls] == [64, 128]
    x = torch.linspace(-1.5, 1.5, 7).reshape(-1, 1)
    out = predict(res.model, x)
    assert out.shape == (4, 7) and torch.isfinite(out).all()


# --- selection and aggregation -----------------------------------------------------------------


def fake_result(param, opt, bias, dist, lr, values, status="ok"):
    """A SetupResult whose every RMSE is ``values`` (one per net)."""
    v = np.asarray(values, dtype=float)
    cfg = SetupConfig(
        parameterisation=param,
        optimizer=opt,
        bias_init=bias,
        distribution=dist,
        lr=lr,
        n_nets=len(v),
    )
    return SetupResult(
        config=cfg,
        status=status,
        ystd=np.ones_like(v),
        last_train_rmse=v,
        last_valid_rmse=v,
        last_test_rmse=v,
        best_valid_rmse=v,
        best_test_rmse=v,
        best_step=np.ones(len(v), dtype=np.int64),
        test_bayes_rmse=0.0,
    )


def test_best_lr_selection_and_aggregation():
    runs = [
        fake_result("kaiming", "gd", "zero", "rad-distr-1", 0.1, [2.0, 2.0]),
        fake_result("kaiming", "gd", "zero", "rad-distr-1", 0.2, [1.0, 3.0]),
        fake_result(
            "kaiming", "gd", "zero", "rad-distr-1", 0.4, [0.1, 0.1], status="nan"
        ),
        fake_result("kaiming", "gd", "zero", "rad-distr-2", 0.1, [1.0, 1.0]),
        fake_result("kaiming", "gd", "unif", "rad-distr-1", 0.1, [1.0, 1.0]),
        fake_result("kaiming", "gd", "unif", "rad-distr-2", 0.1, [0.5, 0.5]),
    ]
    assert (
        best_lr_result(runs[:3]).config.lr == 0.1
    )  # ties go to the first; nan runs are skipped
    assert best_lr_result(runs[2:3]) is None
    best = best_by_setting(runs)
    assert len(best) == 4
    mean, se = mean_and_se(
        fake_result("ntk", "adam", "zero", "ex-distr", 1.0, [1.0, 2.0, 3.0])
    )
    assert mean == 2.0 and se == pytest.approx(1.0 / math.sqrt(2))  # std 1, P − 1 = 2

    rows = setups_table(best, ["rad-distr-1", "rad-distr-2", "ex-distr"])
    assert [r["bias_init"] for r in rows] == ["unif", "zero"]
    unif = rows[0]["cells"]
    assert "ex-distr" not in unif  # missing results are skipped
    assert (
        unif["rad-distr-2"]["mean_scaled"] == 5000 and unif["rad-distr-2"]["shade"] == 0
    )
    assert rows[1]["cells"]["rad-distr-2"]["shade"] == 100

    curves = relative_curves(best, "kaiming", "gd", ["zero", "unif"], [1, 2, 4])
    assert curves["zero"]["mean"][:2] == [1.0, 1.0]
    assert curves["unif"]["mean"][:2] == [0.5, 0.5]
    assert math.isnan(curves["unif"]["mean"][2])

    other_chunk = fake_result(
        "kaiming", "gd", "zero", "rad-distr-1", 0.1, [4.0, 4.0, 4.0]
    )
    merged = merge_results([runs[0], other_chunk])
    assert merged.n_nets == 5 and merged.config.n_nets == 5 and merged.ok
    assert merged.mean("best_test_rmse") == pytest.approx(16.0 / 5)  # weighted by nets
    nan_chunk = fake_result(
        "kaiming", "gd", "zero", "rad-distr-1", 0.1, [np.nan], status="nan"
    )
    assert merge_results([runs[0], nan_chunk]).status == "nan"
    with pytest.raises(ValueError, match="one configuration"):
        merge_results([runs[0], runs[3]])
