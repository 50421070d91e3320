"""SSS realisation, low-rank approximation and the structured layers (structured paper, §3.1, §3.2, §4, §13)."""

import copy
import io

import numpy as np
import pytest
import torch

from weightspace.structured import (
    LowRankLayer,
    SSSLayer,
    approximate_low_rank,
    approximate_sss,
    approximate_sss_search,
    identify_sss,
    low_rank_rank,
    max_state_dim,
    param_budget,
    random_realisation,
    sss_param_count,
    stage_grid,
    stage_sizes,
)
from weightspace.structured.sss import numerical_rank

# Round-off bound for exact recoveries: a few hundred ulps of float64 relative to ‖W‖_F. The test
# matrices have orthonormal transitions, so the Hankel blocks are well conditioned and no error
# amplification beyond that is expected; a truncation error is orders of magnitude larger.
ROUNDOFF = 1e-12


def rel_err(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def exact_sss(rows, cols, n_stages, state_dim, seed):
    rng = np.random.default_rng(seed)
    real = random_realisation(
        stage_sizes(cols, n_stages), stage_sizes(rows, n_stages), state_dim, rng
    )
    return real, real.to_dense()


# ------------------------------------------------------------------------------------------------
# partition and budget arithmetic


def test_stage_sizes_near_equal_first_ones_larger():
    assert stage_sizes(2048, 50).tolist() == [41] * 48 + [40] * 2
    assert stage_sizes(100, 50).tolist() == [2] * 50
    assert stage_sizes(10, 4).tolist() == [3, 3, 2, 2]
    assert stage_sizes(3, 5).tolist() == [
        1,
        1,
        1,
        0,
        0,
    ]  # more stages than entries: empty stages


def test_param_count_formula_matches_spec():
    for d in range(0, 8):
        assert sss_param_count((300, 300), 30, d) == 3000 + 1200 * d + 56 * d * d
        assert sss_param_count((100, 2048), 50, d) == 4096 + 4296 * d + 96 * d * d
    assert sss_param_count((300, 300), 30, 5) == 10_400
    assert sss_param_count((300, 300), 30, 3) == 7_104
    # The exact count drops the B, C, F, G, A, E blocks of the empty boundary states.
    assert sss_param_count((300, 300), 30, 5, exact=True) < sss_param_count(
        (300, 300), 30, 5
    )


def test_budget_rule_square_matches_spec():
    shares = [0.1, 0.2, 0.3, 0.4, 0.5]
    budgets = [param_budget((300, 300), s) for s in shares]
    assert [max_state_dim((300, 300), 30, b) for b in budgets] == [4, 8, 12, 15, 18]
    assert [
        max_state_dim((300, 300), 30, b, esann_off_by_one=True) for b in budgets
    ] == [5, 9, 13, 16, 19]
    assert [low_rank_rank((300, 300), b) for b in budgets] == [15, 30, 45, 60, 75]


def test_budget_rule_last_layer_matches_spec():
    shares = [0.05, 0.1, 0.2, 0.3]
    budgets = [param_budget((100, 2048), s) for s in shares]
    assert [max_state_dim((100, 2048), 50, b) for b in budgets] == [1, 3, 7, 10]
    assert [low_rank_rank((100, 2048), b) for b in budgets] == [4, 9, 19, 28]
    assert max_state_dim((100, 2048), 50, param_budget((100, 2048), 0.01)) == 0


@pytest.mark.parametrize("shape", [(31, 20), (20, 31), (20, 20), (64, 200), (14, 76)])
@pytest.mark.parametrize("share", [0.05, 0.1, 0.2, 0.5, 0.9])
def test_counts_never_exceed_budget(shape, share):
    rng = np.random.default_rng([*shape, round(share * 100)])
    weight = rng.uniform(-1, 1, size=shape)
    budget = param_budget(shape, share)
    for n_stages in (2, 4, 10):
        approx = approximate_sss(weight, share, n_stages)
        assert approx.n_params <= budget and approx.info["n_stored"] <= approx.n_params
        if approx.structure is not None:
            assert approx.n_params < budget  # strict rule
            assert approx.structure.max_state_dim <= approx.info["state_dim"]
            layer = SSSLayer.from_approximation(
                approx, bias=np.zeros(shape[0]), dtype=torch.float64
            )
            assert layer.n_weight_params() == approx.info["n_stored"] <= budget
            assert (
                layer.n_params(include_bias=True) == layer.n_weight_params() + shape[0]
            )
        exact = approximate_sss(weight, share, n_stages, exact_count=True)
        assert exact.n_params <= budget and exact.info["n_stored"] <= exact.n_params
        off = approximate_sss(weight, share, n_stages, esann_off_by_one=True)
        # The ESANN loop stops at the first d whose (conservative) count reaches the budget.
        assert (
            off.info["state_dim"] == approx.info["state_dim"] + 1
            or off.info["state_dim"] == 0
        )
        assert off.n_params >= budget
    lr = approximate_low_rank(weight, share)
    assert lr.n_params <= budget
    assert LowRankLayer.from_approximation(lr).n_weight_params() == lr.n_params


def test_zero_matrix_when_no_state_fits():
    rng = np.random.default_rng(1)
    weight = rng.standard_normal((100, 2048))
    approx = approximate_sss(weight, 0.01, 50)
    assert approx.structure is None and approx.n_params == 0 and not approx.dense.any()
    bias = rng.standard_normal(100)
    layer = SSSLayer.from_approximation(approx, bias=bias, dtype=torch.float64)
    assert layer.n_weight_params() == 0
    out = layer(torch.randn(3, 2048, dtype=torch.float64))
    assert torch.equal(out, torch.from_numpy(bias).expand(3, 100))
    # The ESANN-era choice d = 0 kept the block-diagonal D blocks (over budget).
    small = rng.standard_normal((10, 200))
    off = approximate_sss(small, 0.01, 5, esann_off_by_one=True)
    assert off.info["state_dim"] == 0 and off.n_params == 400
    block_diag = np.zeros_like(small)
    for k in range(5):
        block_diag[2 * k : 2 * k + 2, 40 * k : 40 * k + 40] = small[
            2 * k : 2 * k + 2, 40 * k : 40 * k + 40
        ]
    assert np.array_equal(off.dense, block_diag)


# ------------------------------------------------------------------------------------------------
# identification


def test_recovers_exact_sss_matrix_at_its_state_dimension_and_not_below():
    real, weight = exact_sss(60, 80, 6, 4, seed=0)
    assert (
        real.causal_dims == (0, 4, 4, 4, 4, 4, 0)
        and real.anticausal_dims == real.causal_dims
    )
    for d in (4, 5, 8, None):
        assert rel_err(identify_sss(weight, 6, d).to_dense(), weight) < ROUNDOFF
    below = identify_sss(weight, 6, 3)
    assert max(below.causal_dims + below.anticausal_dims) == 3
    assert rel_err(below.to_dense(), weight) > 1e-3
    # Hankel singular values reveal the state dimension: the 5th is round-off.
    for sv in identify_sss(weight, 6).causal_hankel_sv:
        assert sv[4] < ROUNDOFF * sv[0] and sv[3] > 1e-3 * sv[0]


def _tvsclib_rank(sv, eps):
    """tvsclib's relative rank loop (SystemIdentificationSVD._factorize_hankel), restated:
    the first r with sum(S[0:r]) / sum(S) >= 1 - eps, sums in Python left to right."""
    total = sum(sv)
    r = 0
    while r < len(sv):
        if sum(sv[0:r]) / total >= 1 - eps:
            break
        r += 1
    return r


def test_numerical_rank_takes_tvsclibs_decisions():
    rng = np.random.default_rng(11)
    spectra = []
    for rank in (1, 3, 10, 40):
        # a decaying head and a round-off tail, as the SVD of a rank-limited block gives
        head = np.sort(rng.uniform(1, 300, rank))[::-1]
        tail = np.sort(rng.uniform(1e-15, 1e-14, 150 - rank))[::-1]
        spectra.append(np.concatenate([head, tail]))
    spectra.append(np.sort(rng.standard_normal(50) ** 2)[::-1])  # no tail at all
    spectra.append(np.geomspace(1, 1e-18, 40))  # smooth decay through the threshold
    for sv in spectra:
        for eps in (0.0, 1e-15, 1e-6, 0.05):
            assert numerical_rank(sv, eps) == _tvsclib_rank(sv, eps), (len(sv), eps)
    assert numerical_rank(np.zeros(5)) == 0 and numerical_rank(np.zeros(0)) == 0
    # the round-off tail of a rank-10 block is dropped (a pairwise-summed total kept it)
    assert numerical_rank(spectra[2]) == 10


def test_uncapped_identification_keeps_the_numerical_rank_of_each_block():
    rng = np.random.default_rng(12)
    weight = rng.standard_normal((300, 10)) @ rng.standard_normal((10, 300))
    real = identify_sss(weight, 30)
    assert max(real.causal_dims + real.anticausal_dims) == 10
    assert rel_err(real.to_dense(), weight) < ROUNDOFF
    capped = identify_sss(weight, 30, 4)
    assert max(capped.causal_dims + capped.anticausal_dims) == 4
    # An exactly SSS matrix (d = 5): capped at d, its state dimension everywhere. Without
    # a cap the rule keeps what the round-off tail adds to the sums, as tvsclib's does:
    # a few states more at the middle boundaries (round-off singular values differ
    # between SVD drivers), never the block rank (up to 150) of a pairwise-summed total.
    _, exact = exact_sss(300, 300, 30, 5, seed=13)
    capped = identify_sss(exact, 30, 5)
    assert set(capped.causal_dims[1:-1] + capped.anticausal_dims[1:-1]) == {5}
    uncapped = identify_sss(exact, 30)
    dims = uncapped.causal_dims[1:-1] + uncapped.anticausal_dims[1:-1]
    assert min(dims) == 5 and max(dims) <= 12
    for found in (capped, uncapped):
        assert rel_err(found.to_dense(), exact) < ROUNDOFF


@pytest.mark.parametrize("state_dim", [None, 3, 12])
def test_compressed_hankel_sweep_matches_one_svd_per_block(state_dim):
    # The default sweep factorises each Hankel block from the previous block's factors at its
    # numerical rank: the same singular values (to round-off), state dimensions and error as
    # one SVD per block, on blocks of full numerical rank and with empty and uneven stages.
    rng = np.random.default_rng(14)
    for shape, dims_in, dims_out in (
        ((60, 90), stage_sizes(90, 7), stage_sizes(60, 7)),
        ((9, 40), stage_sizes(40, 12), stage_sizes(9, 12)),  # empty output stages
    ):
        weight = rng.standard_normal(shape)
        kw = dict(dims_in=dims_in, dims_out=dims_out)
        full = identify_sss(weight, None, state_dim, hankel="full", **kw)
        fast = identify_sss(weight, None, state_dim, **kw)
        assert fast.causal_dims == full.causal_dims
        assert fast.anticausal_dims == full.anticausal_dims
        for a, b in zip(
            fast.causal_hankel_sv + fast.anticausal_hankel_sv,
            full.causal_hankel_sv + full.anticausal_hankel_sv,
        ):
            n = min(len(a), len(b))  # the sweep omits singular values that are zero
            scale = b[0] if len(b) else 0.0
            assert np.allclose(a[:n], b[:n], rtol=0, atol=1e-12 * scale)
            assert np.all(b[n:] <= 1e-12 * scale)
        err_full = rel_err(full.to_dense(), weight)
        assert abs(rel_err(fast.to_dense(), weight) - err_full) < 1e-12
        if state_dim is None:
            assert err_full < ROUNDOFF
    # An exactly SSS matrix: the sweep's blocks carry no round-off tail, so without a cap it
    # finds the state dimension 5 everywhere (one SVD per block keeps a few round-off states).
    _, exact = exact_sss(300, 300, 30, 5, seed=13)
    fast = identify_sss(exact, 30, state_dim)
    expected = 5 if state_dim is None else min(5, state_dim)
    assert set(fast.causal_dims[1:-1] + fast.anticausal_dims[1:-1]) == {expected}
    if expected == 5:
        assert rel_err(fast.to_dense(), exact) < ROUNDOFF
    with pytest.raises(ValueError, match="hankel"):
        identify_sss(exact, 30, hankel="randomised")


def test_spec_square_case_sss_recovers_low_rank_does_not():
    _, weight = exact_sss(300, 300, 30, 5, seed=3)
    share = 0.116  # B = 10,440 >= 10,400 = count(5): d = 5 fits
    approx = approximate_sss(weight, share, 30)
    assert approx.info["state_dim"] == 5 and approx.n_params == 10_400
    assert approx.relative_error(weight) < ROUNDOFF
    assert approximate_sss(weight, 0.1, 30).relative_error(weight) > 1e-2  # d = 4
    lr = approximate_low_rank(weight, share)
    assert lr.info["rank"] == 17 and lr.relative_error(weight) > 1e-2


def test_any_matrix_exact_without_state_cap_and_diagonal_blocks_copied():
    rng = np.random.default_rng(5)
    weight = rng.uniform(-1, 1, size=(20, 16))
    real = identify_sss(weight, 4)
    assert rel_err(real.to_dense(), weight) < ROUNDOFF
    for k in range(4):
        assert np.array_equal(real.D[k], weight[5 * k : 5 * k + 5, 4 * k : 4 * k + 4])


def test_truncated_realisation_has_bounded_hankel_ranks():
    rng = np.random.default_rng(6)
    weight = rng.standard_normal((40, 50))
    approx = identify_sss(weight, 5, 3).to_dense()
    rows, cols = np.cumsum(stage_sizes(40, 5)), np.cumsum(stage_sizes(50, 5))
    for b in range(4):
        for block in (approx[rows[b] :, : cols[b]], approx[: rows[b], cols[b] :]):
            sv = np.linalg.svd(block, compute_uv=False)
            assert np.sum(sv > 1e-10 * sv[0]) <= 3


def test_stage_recursion_equals_dense():
    real, weight = exact_sss(33, 47, 5, 3, seed=7)
    u = np.random.default_rng(8).standard_normal((47, 4))
    assert np.allclose(real.apply(u), weight @ u, rtol=0, atol=1e-12)


def test_errors_non_increasing_in_share():
    rng = np.random.default_rng(9)
    weight = rng.uniform(-1, 1, size=(60, 60))
    shares = np.linspace(0.1, 0.9, 9)
    for errors in (
        [approximate_sss(weight, s, 6).relative_error(weight) for s in shares],
        [approximate_low_rank(weight, s).relative_error(weight) for s in shares],
    ):
        assert all(b <= a + 1e-12 for a, b in zip(errors, errors[1:]))


def test_search_wrapper_keeps_best_stage_count():
    assert stage_grid((300, 300), 5) == [30, 60, 90, 120, 150]
    assert stage_grid((100, 2048), 2) == [10, 50]
    _, weight = exact_sss(100, 100, 10, 2, seed=10)
    best = approximate_sss_search(weight, 0.3, n_steps=2)
    errors = {k: err for k, _, err in best.info["search"]}
    assert set(errors) == {10, 50}
    assert best.info["n_stages"] == min(errors, key=errors.get) == 10
    assert (
        best.relative_error(weight) < ROUNDOFF
    )  # 10 stages match the generating partition


def test_low_rank_exact_at_rank_and_optimal_below():
    rng = np.random.default_rng(11)
    weight = rng.standard_normal((26, 4)) @ rng.standard_normal((4, 17))
    share = 4 * (26 + 17) / weight.size + 1e-6
    approx = approximate_low_rank(weight, share)
    assert approx.info["rank"] == 4 and approx.n_params == 4 * 43
    assert rel_err(approx.dense, weight) < ROUNDOFF
    lower = approximate_low_rank(weight, 3 * 43 / weight.size + 1e-6)
    sv = np.linalg.svd(weight, compute_uv=False)
    assert lower.error(weight) == pytest.approx(sv[3], rel=1e-10)  # Eckart–Young


# ------------------------------------------------------------------------------------------------
# layers


def _check_layer(real, bias, batch, chunk, grad):
    rows, cols = real.shape
    layer = SSSLayer.from_structure(
        real, bias=bias, dtype=torch.float64, scan_chunk=chunk
    )
    u = torch.from_numpy(np.random.default_rng(batch).standard_normal((batch, cols)))
    expected = u.numpy() @ real.to_dense().T + bias
    with torch.set_grad_enabled(grad):
        out = layer(u)
    assert out.shape == (batch, rows)
    assert (
        np.abs(out.detach().numpy() - expected).max()
        < ROUNDOFF * np.abs(expected).max()
    )
    ref = layer.forward_reference(u).detach().numpy()
    assert np.abs(ref - expected).max() < ROUNDOFF * np.abs(expected).max()


@pytest.mark.parametrize(
    "shape,n_stages,state_dim", [((60, 80), 6, 4), ((64, 64), 8, 3), ((14, 76), 10, 2)]
)
@pytest.mark.parametrize("batch", [1, 7, 20])
def test_sss_layer_equals_dense_product(shape, n_stages, state_dim, batch):
    real, _ = exact_sss(*shape, n_stages, state_dim, seed=batch)
    bias = np.random.default_rng(99).standard_normal(shape[0])
    # Auto schedule (chunked with cached operators for small batches, direct otherwise), with and
    # without autograd, and forced chunk lengths including ones that do not divide K - 1.
    for chunk, grad in (
        (None, False),
        (None, True),
        (2, True),
        (3, False),
        (100, False),
    ):
        _check_layer(real, bias, batch, chunk, grad)


def test_sss_layer_spec_case_float32():
    rng = np.random.default_rng(12)
    weight = rng.uniform(-1, 1, size=(14, 76))
    bias = rng.uniform(-1, 1, size=14)
    approx = approximate_sss(weight, 0.5, 10)
    layer = SSSLayer.from_approximation(approx, bias=bias)
    u = torch.from_numpy(rng.uniform(-1, 1, size=(5, 76))).float()
    expected = u.double().numpy() @ approx.dense.T + bias
    assert np.abs(layer(u).detach().numpy() - expected).max() < 1e-5


def test_sss_layer_gradients_match_reference_and_finite_differences():
    real, _ = exact_sss(12, 15, 5, 2, seed=13)
    for chunk in (None, 2):
        layer = SSSLayer.from_structure(
            real, bias=np.ones(12), dtype=torch.float64, scan_chunk=chunk
        )
        u = torch.randn(3, 15, dtype=torch.float64, requires_grad=True)
        params = [u] + list(layer.parameters())
        gout = torch.randn(3, 12, dtype=torch.float64)
        fast = torch.autograd.grad(layer(u), params, gout)
        ref = torch.autograd.grad(layer.forward_reference(u), params, gout)
        for a, b in zip(fast, ref):
            assert torch.allclose(a, b, rtol=0, atol=1e-12)

        def f(x, w_in, trans, w_out, layer=layer):
            values = {"w_in": w_in, "trans": trans, "w_out": w_out, "bias": layer.bias}
            return torch.func.functional_call(layer, values, (x,))

        inputs = [
            t.detach().clone().requires_grad_()
            for t in (u, layer.w_in, layer.trans, layer.w_out)
        ]
        assert torch.autograd.gradcheck(f, inputs)


def test_cached_scan_operators_follow_parameter_changes():
    real, weight = exact_sss(30, 40, 10, 3, seed=14)
    layer = SSSLayer.from_structure(real, dtype=torch.float64)
    u = torch.randn(1, 40, dtype=torch.float64)
    with torch.no_grad():
        layer(u)  # builds the cached operators
        layer.trans.data.mul_(0.5)  # a write that bypasses the version counter
        assert torch.allclose(layer(u), layer.forward_reference(u), rtol=0, atol=1e-12)
        assert not torch.allclose(
            layer(u), u @ torch.from_numpy(weight).T, rtol=0, atol=1e-6
        )


def test_layers_rebuild_from_approximations():
    rng = np.random.default_rng(15)
    weight = rng.uniform(-1, 1, size=(50, 50))
    bias = rng.uniform(-1, 1, size=50)
    u = rng.standard_normal((4, 50))
    for approx, cls in (
        (approximate_sss(weight, 0.4, 5), SSSLayer),
        (approximate_low_rank(weight, 0.4), LowRankLayer),
    ):
        layer = cls.from_approximation(approx, bias=bias, dtype=torch.float64)
        assert np.abs(layer.to_dense().numpy() - approx.dense).max() < ROUNDOFF
        out = layer(torch.from_numpy(u)).detach().numpy()
        assert np.abs(out - (u @ approx.dense.T + bias)).max() < ROUNDOFF * 10
    sss = SSSLayer.from_approximation(
        approximate_sss(weight, 0.4, 5), dtype=torch.float64
    )
    rebuilt = SSSLayer.from_structure(sss.structure(), dtype=torch.float64)
    assert torch.equal(rebuilt.to_dense(), sss.to_dense())


def _train(layer, x, y, steps=30):
    opt = torch.optim.Adam(layer.parameters(), lr=1e-2)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(layer(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_layers_train_on_regression():
    gen = torch.Generator().manual_seed(16)
    x = torch.randn(128, 37, generator=gen)
    y = x @ torch.randn(37, 23, generator=gen) / 6 + 0.5
    rng = np.random.default_rng(17)
    init = rng.uniform(-1, 1, size=(23, 37)) / np.sqrt(37)
    # 37 inputs and 23 outputs do not split evenly into 7 stages: the padded layout is exercised.
    sss = SSSLayer.from_dense(init, 0.6, bias=True, n_stages=7)
    lr = LowRankLayer.from_dense(init, 0.6, bias=True)
    for layer in (sss, lr):
        losses = _train(layer, x, y)
        assert losses[-1] < 0.5 * losses[0]
    # Padding entries got zero gradients, so the extracted realisation is still the whole layer.
    with torch.no_grad():
        expected = (
            x.double().numpy() @ sss.structure().to_dense().T
            + sss.bias.double().numpy()
        )
        assert np.abs(sss(x).double().numpy() - expected).max() < 1e-4


def test_more_stages_than_rows_gives_empty_stages():
    rng = np.random.default_rng(18)
    weight = rng.standard_normal((10, 200))
    approx = approximate_sss(weight, 0.5, 50)  # 40 stages without outputs
    assert approx.structure.dims_out.count(0) == 40
    layer = SSSLayer.from_approximation(approx, bias=np.zeros(10), dtype=torch.float64)
    u = torch.from_numpy(rng.standard_normal((3, 200)))
    for grad in (False, True):
        with torch.set_grad_enabled(grad):
            assert (
                np.abs(layer(u).detach().numpy() - u.numpy() @ approx.dense.T).max()
                < ROUNDOFF
            )


@pytest.mark.parametrize(
    "shape,n_stages,state_dim", [((60, 80), 6, 4), ((14, 76), 10, 2), ((30, 7), 7, 1)]
)
@pytest.mark.parametrize("bias", [True, False])
def test_float32_inference_in_c_matches_the_reference(shape, n_stages, state_dim, bias):
    from weightspace.structured.layers import sss_native

    if not sss_native.available():
        pytest.skip("no C compiler: the layer keeps its PyTorch path")
    real, _ = exact_sss(*shape, n_stages, state_dim, seed=3)
    layer = SSSLayer.from_structure(real, bias=bias, dtype=torch.float32)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # batches of 64 and more run in C on one thread only
    try:
        for batch in (1, 5, 70):
            u = torch.randn(
                batch, shape[1], generator=torch.Generator().manual_seed(batch)
            )
            with torch.no_grad():
                assert layer._runs_natively(u)
                out = layer(u)
                layer.native_inference = False
                torch_path = layer(u)
                layer.native_inference = True
            ref = layer.forward_reference(u).detach()
            # float32 sums in another order: a few ulps of the output scale
            scale = ref.abs().max()
            assert (out - ref).abs().max() < 1e-5 * scale
            assert (torch_path - ref).abs().max() < 1e-5 * scale
            dense = u.double().numpy() @ real.to_dense().T
            if bias:
                dense = dense + layer.bias.detach().double().numpy()
            assert np.abs(out.double().numpy() - dense).max() < 1e-5 * scale
    finally:
        torch.set_num_threads(threads)
    with torch.enable_grad():  # training keeps the autograd path
        assert out.grad_fn is None and layer(u).grad_fn is not None


@pytest.mark.parametrize(
    "shape,n_stages,state_dim",
    [((60, 80), 6, 4), ((400, 300), 4, 20), ((33, 700), 9, 17), ((5, 40), 5, 0)],
)
def test_one_sample_inference_paths_match_the_reference(shape, n_stages, state_dim):
    # One sample runs as vector-matrix products: the AVX-512 ones (panels of 64 columns in
    # registers; here stage blocks up to 100 + 2·20 wide, states of 17 and 20, and none) and
    # the portable loop agree with the reference loop to float32 rounding.
    from weightspace.structured.layers import sss_native

    if not sss_native.available():
        pytest.skip("no C compiler: the layer keeps its PyTorch path")
    real, _ = exact_sss(*shape, n_stages, state_dim, seed=5)
    layer = SSSLayer.from_structure(real, bias=True, dtype=torch.float32)
    u = torch.randn(1, shape[1], generator=torch.Generator().manual_seed(6))
    ref = layer.forward_reference(u).detach()
    scale = ref.abs().max()
    paths = [False, True] if sss_native.use_avx512(True) else [False]
    try:
        for vector in paths:
            sss_native.use_avx512(vector)
            with torch.no_grad():
                assert layer._runs_natively(u)
                out = layer(u)
            assert (out - ref).abs().max() < 1e-5 * scale, vector
    finally:
        sss_native.use_avx512(True)


def test_c_inference_follows_replaced_parameters_and_copies():
    # The kernel's view of the parameters is cached on the layer (sss_native.plan); it must
    # follow parameters that are replaced (new storage), survive deepcopy, and leave inputs
    # of other shapes to reshape as before.
    import copy

    from weightspace.structured.layers import sss_native

    if not sss_native.available():
        pytest.skip("no C compiler: the layer keeps its PyTorch path")
    real, _ = exact_sss(30, 40, 5, 3, seed=8)
    layer = SSSLayer.from_structure(real, bias=True, dtype=torch.float32)
    u = torch.randn(1, 40, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        first = layer(u)
        layer.w_in.data = layer.w_in.data.clone() * 2
        layer.bias.data = layer.bias.data + 1
        assert layer._runs_natively(u)
        second = layer(u)
        ref = layer.forward_reference(u)
        assert (second - ref).abs().max() < 1e-5 * ref.abs().max()
        assert not torch.allclose(first, second)
        twin = copy.deepcopy(layer)
        assert torch.equal(twin(u), second)
        batch = torch.randn(2, 3, 40, generator=torch.Generator().manual_seed(10))
        out = layer(batch[:, :1])  # (2, 1, 40): a batch of two after the reshape
        ref = layer.forward_reference(batch[:, :1]).reshape(2, 1, 30)
        assert out.shape == (2, 1, 30)
        assert (out - ref).abs().max() < 1e-5 * ref.abs().max()
        with pytest.raises(RuntimeError):
            layer(torch.randn(1, 41))  # a wrong width never reaches the kernel
        layer.double()
        assert not layer._runs_natively(u.double())
        assert (
            layer(u.double()) - layer.forward_reference(u.double())
        ).abs().max() < 1e-9


def test_small_batch_training_and_repeated_evaluation_stay_exact():
    # At batch 1 the schedule switches between the direct recursion (while the transitions change)
    # and the chunked scan with cached operators (once they are unchanged between calls).
    real, _ = exact_sss(40, 40, 10, 3, seed=19)
    layer = SSSLayer.from_structure(real, bias=True, dtype=torch.float64)
    opt = torch.optim.SGD(layer.parameters(), lr=1e-2)
    u = torch.randn(
        1, 40, dtype=torch.float64, generator=torch.Generator().manual_seed(20)
    )
    for step in range(6):
        out = layer(u)
        ref = layer.forward_reference(u)
        assert torch.allclose(out, ref, rtol=0, atol=1e-12)
        grads = torch.autograd.grad(out.square().mean(), list(layer.parameters()))
        ref_grads = torch.autograd.grad(ref.square().mean(), list(layer.parameters()))
        assert all(
            torch.allclose(a, b, rtol=0, atol=1e-11) for a, b in zip(grads, ref_grads)
        )
        if step < 3:  # three updates, then three evaluations of fixed weights
            for param, g in zip(layer.parameters(), grads):
                param.grad = g
            opt.step()
    assert layer._ops_cache is not None  # the fixed weights got the cached operators


def test_layer_copies_and_pickles_after_use():
    real, _ = exact_sss(32, 32, 4, 2, seed=21)
    layer = SSSLayer.from_structure(real, bias=True)
    x = torch.randn(20, 32)
    with torch.no_grad():
        expected = layer(x)  # leaves inference buffers and cached operators behind
        layer(x[:1])
    saved = io.BytesIO()
    torch.save(layer, saved)
    saved.seek(0)
    for clone in (copy.deepcopy(layer), torch.load(saved, weights_only=False)):
        with torch.no_grad():
            assert torch.equal(clone(x), expected)


def test_inference_mode_then_no_grad_then_training():
    # Reused inference buffers and cached operators must not leak across autograd modes.
    real, weight = exact_sss(32, 32, 8, 2, seed=22)
    layer = SSSLayer.from_structure(real, bias=True, dtype=torch.float64)
    x = torch.randn(20, 32, dtype=torch.float64)
    expected = x @ torch.from_numpy(weight).T
    for rows in (20, 1):
        with torch.inference_mode():
            a = layer(x[:rows])
        with torch.no_grad():
            b = layer(x[:rows])
        c = layer(x[:rows])
        for out in (a, b, c):
            assert torch.allclose(out, expected[:rows], rtol=0, atol=1e-12)
        c.sum().backward()
