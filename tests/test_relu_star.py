"""Star data set experiment (§4) and the batched two-layer net it shares with the setups grid."""

import io
import math

import numpy as np
import pytest
import torch

from weightspace.relu.batched import (
    BatchedTwoLayer,
    empirical_ntk,
    weighted_sq_loss_and_grads,
)
from weightspace.relu.distributions import star_dataset
from weightspace.relu.star import (
    StarConfig,
    StarResult,
    effective_step,
    init_star_state,
    lin_thresholds,
    move_state,
    ray_groups,
    star_fractions,
    star_result,
    train_star,
)


def _random_net(p=3, d=2, m=5, scale1=1.0, scale2=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    f64 = dict(generator=g, dtype=torch.float64)
    return BatchedTwoLayer(
        torch.randn(p, d, m, **f64),
        torch.randn(p, m, **f64),
        torch.randn(p, m, **f64),
        torch.randn(p, **f64),
        scale1,
        scale2,
    )


# --- data and threshold ------------------------------------------------------------------------


def test_star_has_33_points_on_11_rays_with_v_labels():
    x, y = star_dataset()
    assert x.shape == (33, 2) and y.shape == (33,)
    groups = ray_groups(x)
    assert len(groups) == 11 and all(len(g) == 3 for g in groups)
    radii = torch.linalg.vector_norm(x, dim=1)
    for g in groups:
        order = torch.argsort(radii[g])
        assert torch.allclose(
            radii[g][order], torch.tensor([0.9, 1.0, 1.1], dtype=torch.float64)
        )
        assert y[g][order].tolist() == [1.0, -2.0, 1.0]


def test_lin_threshold_positive_and_exact_for_uniform_weights():
    x, y = star_dataset()
    # Labels (1, −2, 1) at radii symmetric about 1: the best affine fit per ray is y ≡ 0, so the
    # threshold is ½ Σ p̂ y² = ½ · 11 · 6/33 = 1 exactly.
    uniform = torch.full((1, 33), 1.0 / 33, dtype=torch.float64)
    assert lin_thresholds(x, y, uniform).item() == pytest.approx(1.0, rel=1e-12)
    state = init_star_state(StarConfig(width=8, n_nets=6), seed=1)
    assert (state["lin_threshold"] > 0).all()
    # With only two weighted points per ray an affine fit is exact: threshold 0.
    two = uniform.clone()
    two[0, [g[0] for g in ray_groups(x)]] = 0.0
    assert lin_thresholds(x, y, two).item() == pytest.approx(0.0, abs=1e-15)


def test_lin_threshold_matches_weighted_lstsq():
    x, y = star_dataset()
    w = torch.rand(
        4, 33, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    w = w / w.sum(1, keepdim=True)
    expected = torch.zeros(4, dtype=torch.float64)
    r = torch.linalg.vector_norm(x, dim=1)
    for g in ray_groups(x):
        a = torch.stack([r[g], torch.ones(3, dtype=torch.float64)], 1)
        for p in range(4):
            sw = w[p, g].sqrt()
            coef = torch.linalg.lstsq(sw[:, None] * a, sw * y[g]).solution
            expected[p] += (w[p, g] * (y[g] - a @ coef) ** 2).sum()
    torch.testing.assert_close(
        lin_thresholds(x, y, w), 0.5 * expected, rtol=1e-10, atol=1e-14
    )


# --- batched net: gradients and NTK ------------------------------------------------------------


@pytest.mark.parametrize("scales", [(1.0, 1.0), (0.7, 0.3)])
def test_explicit_gradients_match_autograd(scales):
    net = _random_net(scale1=scales[0], scale2=scales[1])
    g = torch.Generator().manual_seed(1)
    x = torch.randn(7, 2, generator=g, dtype=torch.float64)
    y = torch.randn(7, generator=g, dtype=torch.float64)
    w = torch.rand(3, 7, generator=g, dtype=torch.float64)
    loss, grads, _ = weighted_sq_loss_and_grads(net, x, y, w)
    for t in net.parameters():
        t.requires_grad_(True)
    ref_loss = 0.5 * (w * (net(x) - y) ** 2).sum(1)
    ref = torch.autograd.grad(ref_loss.sum(), net.parameters())
    torch.testing.assert_close(loss, ref_loss.detach(), rtol=1e-12, atol=1e-14)
    for g, r in zip(grads, ref):
        torch.testing.assert_close(g, r, rtol=1e-12, atol=1e-13)


def test_empirical_ntk_matches_jacobian_gram():
    net = _random_net(p=2, m=6, scale1=0.8, scale2=0.5)
    x = torch.randn(
        5, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64
    )
    k = empirical_ntk(net, x)
    for p in range(2):
        params = [t[p] for t in net.parameters()]

        def f(w1, b1, w2, b2):
            z = x @ w1 * net.scale1 + b1
            return torch.relu(z) @ w2 * net.scale2 + b2

        jac = torch.autograd.functional.jacobian(f, tuple(params))
        j = torch.cat([t.reshape(5, -1) for t in jac], dim=1)
        torch.testing.assert_close(k[p], j @ j.T, rtol=1e-12, atol=1e-12)


# --- training ----------------------------------------------------------------------------------


def _loss(state):
    net = BatchedTwoLayer(state["w1"], state["b1"], state["w2"], state["b2"])
    return weighted_sq_loss_and_grads(
        net, state["x"], state["y"], state["sample_weights"]
    )[0]


def _top_component(state):
    """Component of D^{1/2}(f − y) along the top eigenvector of D^{1/2} K D^{1/2} at init."""
    net = BatchedTwoLayer(state["w1"], state["b1"], state["w2"], state["b2"])
    s = state["sample_weights"].sqrt()
    k = empirical_ntk(net, state["x"]) * s[:, :, None] * s[:, None, :]
    u = torch.linalg.eigh(k)[1][:, :, -1]
    return u, s


def test_single_step_decreases_loss_and_double_step_flips_top_mode():
    """h = 1/λ_max contracts every eigencomponent of the linearised residual by 1 − hλ ∈ [0, 1):
    the loss cannot increase and the top component vanishes. The original's doubled step maps the
    top component to −1 times itself (the linear stability edge). At m = 256 the deviation from
    the linearisation is ~1e-3 (it shrinks like 1/m); the tolerance 0.02 leaves a 20x margin."""
    cfg = dict(width=256, n_nets=8, dtype="float64")
    single = init_star_state(StarConfig(**cfg), seed=3)
    double = init_star_state(StarConfig(**cfg, star_double_step=True), seed=3)
    assert torch.equal(single["w1"], double["w1"])
    # The effective step is exactly twice the correct one.
    assert torch.equal(effective_step(double), 2.0 * effective_step(single))
    u, s = _top_component(single)
    net0 = BatchedTwoLayer(single["w1"], single["b1"], single["w2"], single["b2"])
    before = ((net0(single["x"]) - single["y"]) * s * u).sum(1)
    loss0 = _loss(single).clone()
    w1_0 = single["w1"].clone()
    train_star(single, 1)
    train_star(double, 1)
    assert (single["loss"] <= loss0).all()
    # Both used the same gradient at the same point: the displacement doubles, up to the one
    # rounding of each updated weight (a few ulps of |w|).
    ulps = 4 * torch.finfo(torch.float64).eps * w1_0.abs().max().item()
    torch.testing.assert_close(
        double["w1"] - w1_0, 2.0 * (single["w1"] - w1_0), rtol=0, atol=ulps
    )
    for state, target in ((single, 0.0), (double, -1.0)):
        net = BatchedTwoLayer(state["w1"], state["b1"], state["w2"], state["b2"])
        after = ((net(state["x"]) - state["y"]) * s * u).sum(1)
        assert torch.allclose(
            after / before, torch.full_like(before, target), atol=0.02
        )


def test_step_matches_eigenvalue_of_weighted_ntk():
    state = init_star_state(StarConfig(width=16, n_nets=4, dtype="float64"), seed=0)
    net = BatchedTwoLayer(state["w1"], state["b1"], state["w2"], state["b2"])
    s = state["sample_weights"].sqrt()
    k = empirical_ntk(net, state["x"]) * s[:, :, None] * s[:, None, :]
    lam = torch.linalg.eigvalsh(k)[:, -1]
    torch.testing.assert_close(state["step"], 1.0 / lam, rtol=1e-12, atol=0)
    # Sample weights are multinomial frequencies with m² = 256 samples.
    counts = state["sample_weights"] * 256
    assert torch.equal(counts, counts.round()) and torch.allclose(
        state["sample_weights"].sum(1), torch.ones(4, dtype=torch.float64)
    )


def test_events_are_minus_one_until_they_happen_and_stay_fixed():
    state = init_star_state(StarConfig(width=16, n_nets=16), seed=2)
    assert (state["kink_first_crossed"] == -1).all() and (
        state["mse_first_crossed"] == -1
    ).all()
    infos = []
    train_star(state, 60, stage_epochs=20, progress=infos.append)
    assert [i["epoch"] for i in infos] == [20, 40, 60]
    fractions = [i["fraction_kink_crossed"] for i in infos]
    assert fractions == sorted(fractions)
    kink = state["kink_first_crossed"].clone()
    # No pattern can differ from itself at epoch 0; events lie in [1, 60].
    assert ((kink == -1) | ((kink >= 1) & (kink <= 60))).all()
    assert (
        kink >= 1
    ).any()  # at m = 16 some kink reaches a point (all do, in practice)
    train_star(state, 80)
    set_before = kink >= 0
    assert torch.equal(state["kink_first_crossed"][set_before], kink[set_before])
    # A threshold above the loss is beaten at the current epoch; one of 0 is never beaten.
    high = init_star_state(StarConfig(width=8, n_nets=4), seed=0)
    high["lin_threshold"] *= 1e6
    high["lin_threshold"][0] = 0.0
    train_star(high, 3)
    assert high["mse_first_crossed"].tolist() == [-1, 0, 0, 0]
    result = star_result(high)
    assert result.epoch == 3 and result.n_nets == 4 and result.n_mse_crossed == 3


def test_staged_and_resumed_training_is_bit_identical():
    cfg = StarConfig(width=12, n_nets=5)
    straight = train_star(init_star_state(cfg, seed=7), 45)
    staged = init_star_state(cfg, seed=7)
    train_star(staged, 17, stage_epochs=5)
    buffer = io.BytesIO()
    torch.save(move_state(staged, "cpu"), buffer)
    buffer.seek(0)
    resumed = move_state(torch.load(buffer), "cpu")
    train_star(resumed, 45, stage_epochs=9)
    assert set(resumed) == set(straight)
    for key in straight:
        assert torch.equal(resumed[key], straight[key]), key


def test_star_fractions_pool_results_by_width():
    def res(width, kink, mse):
        n = len(kink)
        return StarResult(
            width,
            10,
            np.array(kink),
            np.array(mse),
            np.zeros(n),
            np.ones(n),
            np.ones(n),
            1.0,
        )

    rows = star_fractions(
        [
            res(8, [1, -1, 3, -1], [-1, -1, -1, 2]),
            res(4, [1], [-1]),
            res(8, [-1, -1], [-1, -1]),
        ]
    )
    assert [r["width"] for r in rows] == [4, 8]
    eight = rows[1]
    assert eight["n_nets"] == 6
    assert eight["fraction_kink_crossed"] == pytest.approx(2 / 6)
    assert eight["fraction_mse_crossed"] == pytest.approx(1 / 6)
    assert eight["kink_low"] < 2 / 6 < eight["kink_high"]


def test_initial_weights_follow_he_init():
    state = init_star_state(StarConfig(width=64, n_nets=64, dtype="float64"), seed=4)
    # 8192 draws each: the sample variance is within 5 SE (SE = var·√(2/n) ≈ 0.016 var).
    assert state["w1"].var().item() == pytest.approx(1.0, rel=0.08)
    assert state["w2"].var().item() == pytest.approx(2.0 / 64, rel=0.08)
    assert (state["b1"] == 0).all() and (state["b2"] == 0).all()
    assert math.isnan(state["loss"][0].item())


def test_heartbeat_reports_progress_inside_a_stage_without_changing_results():
    import copy

    from weightspace.relu import star as star_module

    config = star_module.StarConfig(width=8, n_nets=2, rays=3, delta=0.1)
    seen = []
    a = star_module.init_star_state(config, seed=1)
    b = copy.deepcopy(a)
    epochs = 2 * star_module.HEARTBEAT_EPOCHS + 5
    star_module.train_star(a, epochs, stage_epochs=epochs, heartbeat=seen.append)
    star_module.train_star(b, epochs, stage_epochs=epochs)
    assert seen == [star_module.HEARTBEAT_EPOCHS, 2 * star_module.HEARTBEAT_EPOCHS]
    assert all(torch.equal(a[k], b[k]) for k in a if isinstance(a[k], torch.Tensor))
