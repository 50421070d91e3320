"""1D Monte Carlo of the ReLU inconsistency paper (§2 of the spec): kernel, criterion, chunk runner."""

import io
import math

import numpy as np
import pytest
import torch

from weightspace.relu import criterion as crit
from weightspace.relu import mc1d
from weightspace.relu.mc1d import MCConfig, Status, minibatches, run_chunk

F64 = torch.float64
# "c" is the fused C step (the CPU default when a C compiler is found; test_relu_mc1d_ckernel.py).
KERNELS = ["scatter", "dense", "c"]


def _random_nets(n, m, seed, bias_scale=2.0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, m, generator=g, dtype=F64) * math.sqrt(2.0)
    b = torch.randn(n, m, generator=g, dtype=F64) * bias_scale
    w = torch.randn(n, m, generator=g, dtype=F64)
    c = torch.randn(n, generator=g, dtype=F64)
    p = torch.rand(n, 6, generator=g, dtype=F64) + 0.05
    return a, b, c, w, p / p.sum(1, keepdim=True)


def _activity_classes(a, b):
    """(sign of a, number of data points left of the kink) for every neuron."""
    x = crit.points()
    kink = -b / a
    left = (x.view(1, 1, -1) < kink.unsqueeze(-1)).sum(-1)
    return set(zip((a > 0).flatten().tolist(), left.flatten().tolist()))


@pytest.mark.parametrize("kernel", KERNELS)
def test_gd_step_equals_autograd(kernel):
    a, b, c, w, p = _random_nets(60, 16, seed=0)
    # The biases put kinks in every gap between data points, on both orientations, so all
    # activity patterns (not just "active on one side") are exercised.
    assert len(_activity_classes(a, b)) == 14
    y = crit.labels(0.1)
    h = torch.rand(60, generator=torch.Generator().manual_seed(1), dtype=F64) * 0.05
    params = [t.clone().requires_grad_() for t in (a, b, c, w)]
    mc1d.loss(*params, p, y).sum().backward()
    new = mc1d.gd_step(a, b, c, w, p, h, y, kernel=kernel)
    for old, t, upd in zip((a, b, c, w), params, new):
        hh = h.view(-1, 1) if old.dim() == 2 else h
        step = hh * t.grad
        # One update rounds at the level of |θ| and |h∂θ|; 1e-12 leaves a wide margin over 2^-52.
        err = (upd - (old - step)).abs()
        assert bool((err <= 1e-12 * (old.abs() + step.abs())).all())
        assert bool((step.abs() > 0).any())


@pytest.mark.parametrize("kernel", KERNELS)
def test_gradients_equal_autograd(kernel):
    a, b, c, w, p = _random_nets(40, 32, seed=2)
    y = crit.labels(0.0)
    params = [t.clone().requires_grad_() for t in (a, b, c, w)]
    mc1d.loss(*params, p, y).sum().backward()
    for mine, t in zip(mc1d.gradients(a, b, c, w, p, y, kernel=kernel), params):
        torch.testing.assert_close(mine, t.grad, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kernel", KERNELS)
def test_per_side_affine_with_zero_biases(kernel):
    # b = 0: every kink sits at 0, so f(x) = c + x·Σ_{i: sign a_i = sign x} w_i a_i on each side.
    a, _, c, w, _ = _random_nets(20, 24, seed=3)
    b = torch.zeros_like(a)
    x = crit.points()
    pos = (w * a * (a > 0)).sum(1)
    neg = (w * a * (a < 0)).sum(1)
    expected = c.unsqueeze(1) + x * torch.where(
        x > 0, pos.unsqueeze(1), neg.unsqueeze(1)
    )
    torch.testing.assert_close(
        mc1d.network_output(a, b, c, w, x), expected, rtol=1e-12, atol=1e-12
    )
    torch.testing.assert_close(
        mc1d.kernel_output(a, b, c, w, kernel=kernel), expected, rtol=1e-12, atol=1e-12
    )
    # The same function read off the side Gram matrices (used by the criterion).
    v = crit.side_parameters(crit.side_gram(a, b, w), c)
    torch.testing.assert_close(v[:, 0], pos)
    torch.testing.assert_close(v[:, 2], neg)
    torch.testing.assert_close(v[:, 1], c)


@pytest.mark.parametrize("kernel", KERNELS)
def test_kink_movement_is_tracked_every_step(kernel):
    # The running max of |b/a| must include every intermediate step, not just the final one.
    a, b, c, w, p = _random_nets(30, 16, seed=6, bias_scale=0.3)
    y = crit.labels(0.0)
    h = crit.large_step_sizes(a, b, w, p)
    stepper = mc1d.GDStepper(a, b, c, w, p, h, y, kernel=kernel)
    expected = (b / a).abs().amax(1)
    for _ in range(40):
        stepper.step(1)
        na, nb, _, _ = stepper.params
        expected = torch.maximum(expected, (nb / na).abs().amax(1))
    torch.testing.assert_close(stepper.max_kink, expected, rtol=0, atol=0)
    # Some kinks move by more than they end up at, so the final state alone would not do.
    final = (stepper.params[1] / stepper.params[0]).abs().amax(1)
    assert bool((expected > final).any())


def test_dense_and_scatter_kernels_run_the_same_chunk():
    # Same arithmetic up to summation order: trajectories agree to rounding, statuses exactly.
    cfg = dict(steps_per_check=300, max_checks=3)
    runs = [
        run_chunk(MCConfig(kernel=k, **cfg), seed=4, n_runs=16, width=24, offset=0.1)
        for k in KERNELS
    ]
    assert [r.kernel for r in runs] == KERNELS
    assert runs[0].counts == runs[1].counts
    np.testing.assert_array_equal(runs[0].status, runs[1].status)
    np.testing.assert_allclose(runs[0].max_kink, runs[1].max_kink, rtol=1e-9)


def test_regression_optimum_is_per_side_constant():
    uniform = torch.full((1, 6), 1.0 / 6.0, dtype=F64)
    vopt = crit.regression_optimum(uniform, crit.labels(0.0))
    torch.testing.assert_close(vopt, torch.zeros(1, 4, dtype=F64), rtol=0, atol=1e-14)
    assert float(crit.per_side_risk(vopt, uniform, crit.labels(0.0))) == pytest.approx(
        1.0, abs=1e-14
    )
    for delta in (0.01, 0.1, -0.7):
        y = crit.labels(delta)
        vopt = crit.regression_optimum(uniform, y)
        torch.testing.assert_close(
            vopt,
            torch.tensor([[0.0, delta, 0.0, delta]], dtype=F64),
            rtol=0,
            atol=1e-13,
        )
        assert float(crit.per_side_risk(vopt, uniform, y)) == pytest.approx(
            1.0, abs=1e-13
        )


def test_regression_optimum_is_weighted_least_squares():
    _, _, _, _, p = _random_nets(5, 1, seed=4)
    y = crit.labels(0.3)
    vopt = crit.regression_optimum(p, y).numpy()
    x, yy = np.array(crit.POINTS), y.numpy()
    for n in range(5):
        for k, side in enumerate((crit.POS, crit.NEG)):
            idx = list(side)
            sw = np.sqrt(p[n, idx].numpy())
            design = np.stack([x[idx], np.ones(3)], 1) * sw[:, None]
            coef = np.linalg.lstsq(design, yy[idx] * sw, rcond=None)[0]
            np.testing.assert_allclose(
                vopt[n, 2 * k : 2 * k + 2], coef, rtol=1e-10, atol=1e-12
            )


def test_large_step_scales_like_inverse_width():
    rng = np.random.default_rng(0)
    means = []
    for m in (16, 64, 256, 1024):
        n = 1500
        p = torch.tensor(mc1d.sample_frequencies(rng, n, m * m))
        a = torch.tensor(rng.standard_normal((n, m)) * math.sqrt(2.0))
        w = torch.tensor(rng.standard_normal((n, m)) * math.sqrt(2.0 / m))
        h = crit.large_step_sizes(a, torch.zeros_like(a), w, p)
        means.append(float((h * m).mean()))
    # λ_max ≈ (Σ_{a_i>0} a_i²)(Σ_{x>0} p̂ x²) ≈ 7m/3 with the larger side O(√m) above m: h·m
    # creeps up to 3/7 from below. SE of each mean is < 0.004, far below the gaps asserted.
    assert all(0.3 < v < 3.0 / 7.0 for v in means), means
    assert all(b > a for a, b in zip(means, means[1:])), means
    assert max(means) / min(means) < 1.25
    assert crit.expected_step_times_width() == pytest.approx(3.0 / 7.0)


def test_step_size_variants_in_chunk():
    small = run_chunk(
        MCConfig(
            step_size="small",
            max_checks=1,
            steps_per_check=1,
            sufficient_criterion=False,
        ),
        seed=0,
        n_runs=4,
        width=32,
        offset=0.0,
    )
    np.testing.assert_array_equal(small.step_size, np.full(4, 0.01 / 32))
    large = run_chunk(
        MCConfig(max_checks=1, steps_per_check=1),
        seed=0,
        n_runs=4,
        width=32,
        offset=0.0,
    )
    # Large step is about 40× the small one (3/7 / 0.01 ≈ 43).
    assert 20 < float(np.mean(large.step_size / small.step_size)) < 60


@pytest.mark.parametrize("psi_bound", ["exact", "original"])
def test_certified_nets_never_cross_later(psi_bound):
    cfg = MCConfig(
        testing=True, steps_per_check=200, max_checks=60, psi_bound=psi_bound
    )
    res = run_chunk(cfg, seed=11, n_runs=48, width=16, offset=0.1)
    # Certified nets kept training to the last check (most for 20+ checks after certification);
    # a later crossing would be counted here.
    assert res.n_certified >= 5
    assert np.median(res.stop_check[res.status == int(Status.LOCALLY_CONVERGED)]) < 45
    assert res.certified_then_crossed == 0
    certified = res.status == int(Status.LOCALLY_CONVERGED)
    assert certified.sum() == res.n_certified
    assert bool((res.max_kink[certified] < 1.0).all())
    assert res.checks_run == 60


def test_criterion_rejects_a_kink_on_a_data_point():
    # Train until some nets are certified, then put one kink exactly on x = 1 (b = −a): the
    # per-neuron bound |a| − Δa > |b| + Δb cannot hold, so that net alone loses its certificate.
    a, b, c, w, p = _random_nets(120, 16, seed=5, bias_scale=0.0)
    w = w * math.sqrt(2.0 / 16)  # He scale of w
    c = torch.zeros_like(c)
    y = crit.labels(0.0)
    h = crit.large_step_sizes(a, b, w, p)
    a, b, c, w, moved = mc1d.train_gd(a, b, c, w, p, h, y, steps=6000)
    res = crit.sufficient_criterion(a, b, c, w, h, p, y)
    # (Certification looks at the current state only; run_chunk reports earlier crossings first.)
    ok = (res.certified & (moved < 1.0)).nonzero().squeeze(1)
    assert ok.numel() >= 3
    n = int(ok[0])
    b2 = b.clone()
    i = int(a[n].abs().argmax())
    b2[n, i] = -a[n, i]
    again = crit.sufficient_criterion(a, b2, c, w, h, p, y)
    assert not bool(again.certified[n])
    assert bool(again.certified[ok[1:]].all())


def _same(r1, r2):
    assert r1.counts == r2.counts
    assert r1.stop_histogram == r2.stop_histogram
    np.testing.assert_array_equal(r1.status, r2.status)
    np.testing.assert_array_equal(r1.stop_check, r2.stop_check)
    assert r1.max_kink.tobytes() == r2.max_kink.tobytes()
    assert r1.step_size.tobytes() == r2.step_size.tobytes()


def early_stopped(optimizer: str) -> MCConfig:
    """A small-step, early-stopping variant of the Monte Carlo (SGD, Adam) for quick tests."""
    return MCConfig(
        optimizer=optimizer,
        step_size="small",
        sufficient_criterion=False,
        early_stopping=True,
        steps_per_check=100,
        max_checks=8,
        patience=2,
    )


_VARIANTS = {
    "gd": MCConfig(steps_per_check=150, max_checks=8),
    "sgd": early_stopped("sgd"),
    "adam": early_stopped("adam"),
}


@pytest.mark.parametrize("variant", sorted(_VARIANTS))
def test_same_seed_identical_other_seed_differs(variant):
    cfg = _VARIANTS[variant]
    r1 = run_chunk(cfg, seed=5, n_runs=24, width=16, offset=0.0)
    r2 = run_chunk(cfg, seed=5, n_runs=24, width=16, offset=0.0)
    _same(r1, r2)
    r3 = run_chunk(cfg, seed=6, n_runs=24, width=16, offset=0.0)
    assert r3.max_kink.tobytes() != r1.max_kink.tobytes()
    assert not np.array_equal(r3.status, r1.status) or not np.array_equal(
        r3.stop_check, r1.stop_check
    )


@pytest.mark.parametrize("kernel", ["c", "scatter"])
@pytest.mark.parametrize("variant", sorted(_VARIANTS))
def test_resume_from_checkpoint_is_bit_identical(variant, kernel):
    cfg = MCConfig.from_dict({**_VARIANTS[variant].to_dict(), "kernel": kernel})
    saved = []
    straight = run_chunk(
        cfg,
        seed=9,
        n_runs=24,
        width=16,
        offset=0.01,
        checkpoint_every=2,
        checkpoint=saved.append,
    )
    assert saved and saved[0].checks_done == 2
    # Through torch.save/load, as the workflow stores it.
    buf = io.BytesIO()
    torch.save(saved[0].to_dict(), buf)
    buf.seek(0)
    state = torch.load(buf)  # plain tensors and values: loads with weights_only=True
    resumed = run_chunk(cfg, seed=9, n_runs=24, width=16, offset=0.01, state=state)
    _same(straight, resumed)
    with pytest.raises(ValueError, match="differs in"):
        run_chunk(cfg, seed=10, n_runs=24, width=16, offset=0.01, state=state)


def test_progress_reports_every_check():
    seen = []
    res = run_chunk(
        MCConfig(steps_per_check=50, max_checks=4),
        seed=1,
        n_runs=8,
        width=16,
        offset=0.0,
        progress=seen.append,
    )
    assert [d["check"] for d in seen] == list(range(1, res.checks_run + 1))
    assert seen[-1]["counts"] == res.counts
    assert all(sum(d["counts"].values()) == 8 for d in seen)


def test_crossing_dominates_early_stopping():
    # patience 1 with an unreachable min_delta early-stops every net at check 2 (check 1 sets the
    # first best value); nets that cross during check 2 must still count as CROSSED.
    cfg = MCConfig(
        early_stopping=True,
        patience=1,
        min_delta=1e9,
        steps_per_check=200,
        max_checks=3,
    )
    res = run_chunk(cfg, seed=2, n_runs=64, width=16, offset=0.0)
    crossed = res.max_kink >= 1.0
    assert ((res.stop_check == 2) & crossed).any()
    np.testing.assert_array_equal(res.status[crossed], int(Status.CROSSED))
    np.testing.assert_array_equal(res.status[~crossed], int(Status.EARLY_STOPPED))
    np.testing.assert_array_equal(res.stop_check[~crossed], 2)


def test_early_stopping_dominates_the_sufficient_criterion():
    # As in the original, early stopping is checked before the sufficient criterion, so nets that
    # would be certified at the check where early stopping fires end as EARLY_STOPPED.
    kw = dict(seed=2, n_runs=64, width=16, offset=0.0)
    ref = run_chunk(MCConfig(steps_per_check=2500, max_checks=2), **kw)
    with_es = run_chunk(
        MCConfig(
            early_stopping=True,
            patience=1,
            min_delta=1e9,
            steps_per_check=2500,
            max_checks=2,
        ),
        **kw,
    )
    certified_at_2 = (ref.status == int(Status.LOCALLY_CONVERGED)) & (
        ref.stop_check == 2
    )
    assert certified_at_2.any()
    np.testing.assert_array_equal(
        with_es.status[certified_at_2], int(Status.EARLY_STOPPED)
    )
    certified_at_1 = (ref.status == int(Status.LOCALLY_CONVERGED)) & (
        ref.stop_check == 1
    )
    np.testing.assert_array_equal(
        with_es.status[certified_at_1], int(Status.LOCALLY_CONVERGED)
    )


def test_degenerate_statuses():
    # Width 1: n_s = 1 sample, so one side holds no data point (X-degenerate), and the single a_i
    # has one sign (A-degenerate); X_DEGENERATE wins over A_DEGENERATE.
    res = run_chunk(
        MCConfig(steps_per_check=10, max_checks=2),
        seed=0,
        n_runs=30,
        width=1,
        offset=0.0,
    )
    ok = res.max_kink < 1.0
    assert ok.sum() > 0
    np.testing.assert_array_equal(res.status[ok], int(Status.X_DEGENERATE))
    np.testing.assert_array_equal(res.stop_check[ok], 1)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_stochastic_variants_early_stop(optimizer):
    cfg = MCConfig(
        optimizer=optimizer,
        step_size="small",
        sufficient_criterion=False,
        early_stopping=True,
        steps_per_check=100,
        max_checks=40,
    )
    res = run_chunk(cfg, seed=3, n_runs=32, width=16, offset=0.0)
    allowed = {int(Status.CROSSED), int(Status.EARLY_STOPPED), int(Status.UNFINISHED)}
    assert set(res.status.tolist()) <= allowed
    assert res.counts["EARLY_STOPPED"] > 0
    assert sum(res.counts.values()) == 32
    assert all(res.stop_histogram[s.name][0] == 0 for s in Status)
    finished = res.status != int(Status.UNFINISHED)
    assert (res.stop_check[finished] >= 1).all() and (res.stop_check <= 40).all()
    # Statuses agree with the recorded kink movement.
    np.testing.assert_array_equal(
        res.status == int(Status.CROSSED), res.max_kink >= 1.0
    )


def test_wilson_interval_and_crossing_estimate():
    counts = {
        "LOCALLY_CONVERGED": 60,
        "EARLY_STOPPED": 10,
        "CROSSED": 20,
        "UNFINISHED": 7,
        "A_DEGENERATE": 2,
        "X_DEGENERATE": 1,
    }
    p, lo, hi = mc1d.estimate_crossing_probability(counts)
    assert p == pytest.approx(0.30)
    assert lo < p < hi
    # Wilson bounds solve |p − π| = z sqrt(π(1 − π)/n) for π.
    z, n = 1.959963984540054, 100
    for pi in (lo, hi):
        assert abs(p - pi) == pytest.approx(z * math.sqrt(pi * (1 - pi) / n), rel=1e-12)
    # No crossings: lower end 0, upper end z²/(n + z²).
    p0, lo0, hi0 = mc1d.estimate_crossing_probability({Status.LOCALLY_CONVERGED: 50})
    assert (p0, lo0) == (0.0, 0.0) and hi0 == pytest.approx(z * z / (50 + z * z))
    with pytest.raises(ValueError):
        mc1d.estimate_crossing_probability({})


def test_config_validation_and_round_trip():
    cfg = MCConfig(optimizer="sgd", early_stopping=True, sufficient_criterion=False)
    assert MCConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="optimizer"):
        MCConfig(optimizer="rmsprop")
    with pytest.raises(ValueError, match="unknown MCConfig keys"):
        MCConfig.from_dict({"optimiser": "gd"})
    with pytest.raises(ValueError, match="testing"):
        MCConfig(testing=True, sufficient_criterion=False)
    with pytest.raises(ValueError, match="minibatch_size must be <= 65536"):
        MCConfig(optimizer="sgd", minibatch_size=1 << 17)


@pytest.mark.slow
def test_crossing_probability_decreases_with_width():
    # Main variant (GD, large step, sufficient criterion) with a budget that lets every net finish:
    # certification takes O(m) steps. 300 nets per width: the two estimates (≈0.35 and ≈0.2) are
    # ~4 standard errors apart.
    est = {}
    for m, checks in ((16, 40), (64, 100)):
        res = run_chunk(
            MCConfig(max_checks=checks), seed=1, n_runs=300, width=m, offset=0.0
        )
        assert res.counts["UNFINISHED"] <= 3
        est[m] = res.crossing_probability()
    assert est[64][0] < est[16][0]
    assert est[64][2] < est[16][2]
    for m, (_, lo, _) in est.items():
        assert lo <= 2.0 / math.sqrt(m)


def _splitmix64_reference(key, counter):
    """SplitMix64 at position ``counter`` of the stream seeded with ``key``, in Python integers."""
    mask = (1 << 64) - 1
    z = (key + (counter + 1) * 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


def test_splitmix64_matches_the_reference_stream():
    # The first output of SplitMix64 seeded with 0 is a published known answer.
    assert _splitmix64_reference(0, 0) == 0xE220A8397B1DCDAF
    counters = torch.tensor([0, 1, 2, 7, (5 << 40) | (999 << 16) | 15, (1 << 63) - 2])
    for key in (0, 12345, -(1 << 63), (1 << 63) - 1, -987654321):
        got = minibatches.splitmix64(key, counters)
        for c, value in zip(counters.tolist(), got.tolist()):
            assert value % (1 << 64) == _splitmix64_reference(key % (1 << 64), c)


def test_minibatch_blocks_are_multinomial_frequencies(monkeypatch):
    # Small blocks (3 steps of 4 nets x 16 draws) so that block boundaries and a partial last
    # block occur; every step is Multinomial(16, p)/16 per net, scaled by h.
    monkeypatch.setattr(minibatches, "_MINIBATCH_DRAWS", 3 * 4 * 16)
    key = minibatches.draw_key(torch.Generator().manual_seed(0))
    ids = torch.arange(4)
    p = torch.tensor(
        [
            [0.5, 0.5, 0, 0, 0, 0],
            [1 / 6] * 6,
            [0.1, 0.2, 0.3, 0.1, 0.2, 0.1],
            [0, 0, 0, 0, 0, 1.0],
        ],
        dtype=torch.float64,
    )
    h = torch.tensor([1.0, 2.0, 0.5, 3.0], dtype=torch.float64)
    steps = list(mc1d.minibatch_frequencies(p, 16, 4000, key, ids, h))
    assert len(steps) == 4000
    freq = torch.stack(steps) / h.view(1, 4, 1)  # (steps, nets, 6)
    assert torch.allclose(
        freq.sum(2), torch.ones(4000, 4, dtype=torch.float64), atol=1e-15
    )
    assert torch.equal(freq * 16, (freq * 16).round())  # whole draws
    assert torch.all(freq[:, p == 0] == 0)
    # Mean over 4000 steps: the standard error of a frequency is <= 0.5 / sqrt(16 * 4000) = 0.002.
    assert torch.allclose(freq.mean(0), p, atol=0.01)
    # Multinomial variance p(1 - p)/16 per frequency; its estimate from 4000 steps has a relative
    # standard error of about sqrt(2/4000) = 2.2 %, so 12 % is over 5 standard errors.
    var = freq[:, 2].var(0)
    assert torch.allclose(var, p[2] * (1 - p[2]) / 16, rtol=0.12)
    # Different frequencies of one draw are negatively correlated: cov = -p_i p_j / 16.
    cov = ((freq[:, 1, 0] - 1 / 6) * (freq[:, 1, 1] - 1 / 6)).mean()
    assert abs(float(cov) + 1 / 36 / 16) < 0.15 / 36 / 16 + 3 * 0.0003
    # The draws of different steps and different nets are independent: correlations ~ 0.
    x = freq[:, 1, 0] - freq[:, 1, 0].mean()
    assert abs(float((x[1:] * x[:-1]).mean() / (x * x).mean())) < 0.06  # ~ 3.8 SE
    z = freq[:, 2, 0] - freq[:, 2, 0].mean()
    assert abs(float((x * z).mean() / (x.std() * z.std()))) < 0.06
    # Counter-based: other block sizes, and a net drawn alone (as after the chunk drops the
    # finished nets), give the same numbers.
    monkeypatch.setattr(minibatches, "_MINIBATCH_DRAWS", 1 << 21)
    again = torch.stack(list(mc1d.minibatch_frequencies(p, 16, 4000, key, ids, h)))
    assert torch.equal(again, torch.stack(steps))
    alone = torch.stack(
        list(mc1d.minibatch_frequencies(p[2:3], 16, 4000, key, ids[2:3], h[2:3]))
    )
    assert torch.equal(alone[:, 0], again[:, 2])
    other = torch.stack(list(mc1d.minibatch_frequencies(p, 16, 50, key + 1, ids, h)))
    assert not torch.equal(other, again[:50])


def test_minibatch_counters_are_bounded():
    p = torch.full((2, 6), 1 / 6, dtype=torch.float64)
    with pytest.raises(ValueError, match="minibatch_size"):
        next(mc1d.minibatch_frequencies(p, 1 << 17, 1, 0, torch.arange(2)))
    with pytest.raises(ValueError, match="chunk_runs"):
        next(mc1d.minibatch_frequencies(p, 4, 1, 0, torch.tensor([0, 1 << 24])))


def _second_moment_recurrence(a, b, c, w, p, h, y, steps):
    """The width-independent dynamics of spec App. C: while no kink crosses a data point, every
    neuron of one side (a > 0: active on x > 0; a < 0: on x < 0) moves by the same linear map
    θ ← (I − hM)θ, θ = (a, b, w), M = [[0, 0, S1], [0, 0, S0], [S1, S0, 0]] with the side's
    residual sums S0 = Σ r_j, S1 = Σ r_j x_j. So the per-side second moments Σ = Σ_i θ_i θ_iᵀ
    follow Σ ← (I − hM) Σ (I − hM)ᵀ, and f = c + x·Σ[a, w] + Σ[b, w] on each side: O(1) per net.
    Returns f at the six points after every step, (steps, n, 6)."""
    x = crit.points()
    theta = torch.stack((a, b, w), dim=2)  # (n, m, 3)
    sigma = {
        side: torch.einsum("nmi,nmj,nm->nij", theta, theta, (sign * a > 0).to(F64))
        for side, sign in (("+", 1.0), ("-", -1.0))
    }
    masks = {"+": x > 0, "-": x < 0}
    c = c.clone()
    eye = torch.eye(3, dtype=F64)
    out = []
    for _ in range(steps):
        f = c.unsqueeze(1) + torch.where(
            masks["+"],
            x * sigma["+"][:, 0:1, 2] + sigma["+"][:, 1:2, 2],
            x * sigma["-"][:, 0:1, 2] + sigma["-"][:, 1:2, 2],
        )
        r = p * h.unsqueeze(1) * (f - y)  # h folded in: the update is θ − M θ
        for side, mask in masks.items():
            s0, s1 = (r * mask).sum(1), (r * x * mask).sum(1)
            zero = torch.zeros_like(s0)
            m = torch.stack(
                (
                    torch.stack((zero, zero, s1), 1),
                    torch.stack((zero, zero, s0), 1),
                    torch.stack((s1, s0, zero), 1),
                ),
                1,
            )
            step = eye - m
            sigma[side] = step @ sigma[side] @ step.transpose(1, 2)
        c = c - r.sum(1)
        out.append(f)
    return torch.stack(out)


@pytest.mark.parametrize("kernel", ["auto", "dense"])
def test_function_follows_the_width_independent_recurrence(kernel):
    # He init with zero biases (the MC's start) and the large step, at three widths: as long as
    # no kink reaches a data point, the simulated network function equals the O(1) recurrence.
    for width in (8, 64, 512):
        n = 32
        g = torch.Generator().manual_seed(width)
        a = torch.randn(n, width, generator=g, dtype=F64) * math.sqrt(2.0)
        w = torch.randn(n, width, generator=g, dtype=F64) * math.sqrt(2.0 / width)
        b, c = torch.zeros(n, width, dtype=F64), torch.zeros(n, dtype=F64)
        p = torch.as_tensor(
            mc1d.sample_frequencies(np.random.default_rng(width), n, width**2)
        )
        h = crit.large_step_sizes(a, b, w, p)
        y = crit.labels(0.1)
        expected = _second_moment_recurrence(a, b, c, w, p, h, y, steps=60)
        stepper = mc1d.GDStepper(a, b, c, w, p, h, y, kernel=kernel)
        got = []
        for _ in range(60):
            got.append(mc1d.network_output(*stepper.params, crit.points()))
            stepper.step(1)
        got = torch.stack(got)
        trapped = stepper.max_kink < 1.0  # these nets never had a kink reach |x| = 1
        assert int(trapped.sum()) >= n // 4
        err = (got - expected)[:, trapped].abs().max()
        assert float(err) <= 1e-10 * float(expected.abs().max()), (width, float(err))
        # The function moved: the check is not comparing two constants.
        assert float((got[-1] - got[0])[trapped].abs().max()) > 1e-3
