"""Pure code behind the relu star, setups and example targets: the batched setups grid, the
aggregation of star chunks, figure and table data of the setups grid, and the example nets."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from test_relu_setups import fake_result

from weightspace.relu.batched import BatchedTwoLayer
from weightspace.relu.examples import (
    claims as example_claims,
)
from weightspace.relu.examples import (
    equidistant_kinks,
    fancy_dataset,
    median_index,
    per_side_linear_loss,
    per_side_nonlinearity,
    plot_rows,
    reference_pair,
    remove_side_intercepts,
    six_point_trace,
    train_full_batch,
)
from weightspace.relu.setups import (
    BatchedOptimizer,
    SetupConfig,
    make_optimizer,
    run_setup,
    run_setup_grid,
)
from weightspace.relu.setups_summary import (
    figure_claims,
    figure_frame,
    job_documents,
    ordered_table,
    results_frame,
    setting_label,
    shade_rgb,
    table_claims,
    table_frame,
    table_html,
    table_latex,
)
from weightspace.relu.star import (
    StarConfig,
    StarResult,
    init_star_state,
    star_result,
    train_star,
)
from weightspace.relu.star_summary import (
    at_budget,
    chunk_results,
    fractions_table,
    result_from_dict,
    result_to_dict,
    stage_budgets,
)
from weightspace.relu.star_summary import (
    claims as star_claims,
)

# --- the batched setups grid -------------------------------------------------------------------


def _base(**kw):
    base = dict(
        distribution="rad-distr-2",
        width=16,
        n_nets=3,
        steps=96,
        valid_every=32,
        n_valid=128,
        n_test=128,
        dtype="float64",
    )
    base.update(kw)
    return SetupConfig(**base)


@pytest.mark.parametrize(
    "optimizer,parameterisation,distribution",
    [
        ("gd", "kaiming", "rad-distr-2"),
        ("gd-mom", "ntk", "ex-distr"),
        ("adam", "kaiming", "rad-distr-1"),
    ],
)
def test_grid_equals_run_setup_per_configuration(
    optimizer, parameterisation, distribution
):
    base = _base(
        optimizer=optimizer,
        parameterisation=parameterisation,
        distribution=distribution,
    )
    settings = [
        ("zero", 0.01),
        ("kink-neg-unif", 0.02),
        ("kink-neg-point", 0.005),
        ("unif", 0.01),
        ("zero", 1e7),
    ]
    grid = run_setup_grid(base, settings, seed=4)
    for (bias, lr), res in zip(settings, grid):
        ref = run_setup(dataclasses.replace(base, bias_init=bias, lr=lr), seed=4)
        assert res.config == ref.config and res.status == ref.status
        assert res.aborted_at_step == ref.aborted_at_step
        if not ref.ok:
            assert np.isnan(res.best_test_rmse).all()
            continue
        for metric in (
            "last_train_rmse",
            "last_valid_rmse",
            "last_test_rmse",
            "best_valid_rmse",
            "best_test_rmse",
        ):
            np.testing.assert_allclose(
                getattr(res, metric), getattr(ref, metric), rtol=1e-9, atol=1e-12
            )
        assert np.array_equal(res.best_step, ref.best_step)
    # The NaN configuration stopped at the first check for every optimiser but Adam (whose step
    # size is bounded by lr); whichever happened, it matches run_setup above.
    assert grid[0].ok


def test_grid_results_do_not_depend_on_batch_companions():
    base = _base(optimizer="adam")
    alone = run_setup_grid(base, [("unif", 0.01)], seed=2)[0]
    together = run_setup_grid(
        base, [("zero", 0.05), ("unif", 0.01), ("zero", 1e9)], seed=2
    )[1]
    np.testing.assert_allclose(
        together.best_test_rmse, alone.best_test_rmse, rtol=1e-12
    )
    assert run_setup_grid(base, [], seed=2) == []


def test_grid_shared_dataset_and_kept_models_match_run_setup():
    from weightspace.relu.setups import predict

    base = _base(distribution="ex-distr", optimizer="gd", n_nets=5)
    settings = [("zero", 0.05), ("kink-neg-unif", 0.02)]
    grid = run_setup_grid(base, settings, seed=5, shared_dataset=True, keep_model=True)
    x = torch.linspace(-1.3, 1.3, 9, dtype=torch.float64).view(-1, 1)
    for (bias, lr), res in zip(settings, grid):
        ref = run_setup(
            dataclasses.replace(base, bias_init=bias, lr=lr),
            seed=5,
            shared_dataset=True,
            keep_model=True,
        )
        np.testing.assert_allclose(res.last_valid_rmse, ref.last_valid_rmse, rtol=1e-9)
        torch.testing.assert_close(
            predict(res.model, x), predict(ref.model, x), rtol=1e-9, atol=1e-12
        )
    # One shared data set: its standardisation is the same for every net.
    assert torch.equal(grid[0].model["y_std"][0], grid[0].model["y_std"][4])


@pytest.mark.parametrize("name", ["gd", "gd-mom", "adam"])
def test_batched_optimizer_matches_torch_optim(name):
    gen = torch.Generator().manual_seed(0)
    start = torch.randn(2, 5, generator=gen, dtype=torch.float64)
    grads = [torch.randn(2, 5, generator=gen, dtype=torch.float64) for _ in range(4)]
    lrs = torch.tensor([0.1, 0.03], dtype=torch.float64)
    mine = start.clone()
    opt = BatchedOptimizer(name, [mine], lrs)
    for g in grads:
        opt.step([g])
    for c in range(2):
        ref = start[c].clone().requires_grad_(True)
        torch_opt = make_optimizer(name, [ref], float(lrs[c]))
        for g in grads:
            ref.grad = g[c].clone()
            torch_opt.step()
        torch.testing.assert_close(mine[c], ref.detach(), rtol=1e-13, atol=1e-15)


def test_batched_optimizer_silence_stops_a_configuration():
    params = torch.ones(3, 2)
    opt = BatchedOptimizer("adam", [params], torch.tensor([0.1, 0.1, 0.1]))
    opt.step([torch.full((3, 2), float("nan"))])
    opt.silence(torch.tensor([True, False, False]))
    opt.step([torch.ones(3, 2)])
    assert (params[0] == 0).all()


# --- star chunks -------------------------------------------------------------------------------


def _star(width, kink, mse, epoch=100):
    kink, mse = np.asarray(kink), np.asarray(mse)
    return StarResult(
        width=width,
        epoch=epoch,
        kink_first_crossed=kink,
        mse_first_crossed=mse,
        final_loss=np.ones(len(kink)),
        lin_threshold=np.ones(len(kink)),
        step=np.ones(len(kink)),
        step_factor=1.0,
    )


def test_star_result_round_trip_of_a_trained_state():
    state = init_star_state(StarConfig(width=8, n_nets=3), seed=0)
    train_star(state, 20)
    result = star_result(state)
    again = result_from_dict(result_to_dict(result))
    for name in (
        "kink_first_crossed",
        "mse_first_crossed",
        "final_loss",
        "lin_threshold",
        "step",
    ):
        assert np.array_equal(getattr(again, name), getattr(result, name))
    assert (again.width, again.epoch, again.step_factor) == (8, 20, 1.0)


def test_stage_budgets_and_events_at_a_budget():
    assert stage_budgets(10_000, 2_500) == [2500, 5000, 7500, 10000]
    assert stage_budgets(100, 30) == [30, 60, 90, 100]
    assert stage_budgets(100, 100) == [100]
    r = _star(8, [0, 50, -1, 100], [10, 60, 99, -1])
    cut = at_budget(r, 50)
    assert cut.kink_first_crossed.tolist() == [0, 50, -1, -1]
    assert cut.mse_first_crossed.tolist() == [10, -1, -1, -1]
    with pytest.raises(ValueError, match="exceeds"):
        at_budget(r, 101)


def test_fractions_pool_chunks_of_one_width_and_claims():
    results = [
        _star(16, [0, 0], [5, -1]),
        _star(16, [0, -1], [-1, -1]),
        _star(32, [0, -1, -1, -1], [-1, -1, -1, -1]),
    ]
    table = fractions_table(results, [10, 100])
    final = table[table["epochs"] == 100].set_index("width")
    assert final.loc[16, "n_nets"] == 4 and final.loc[32, "n_nets"] == 4
    assert final.loc[16, "fraction_kink_crossed"] == 0.75
    assert final.loc[16, "fraction_mse_crossed"] == 0.25
    assert (
        final.loc[16, "median_mse_epoch"] == 5.0
        and final.loc[32, "median_mse_epoch"] == -1
    )
    early = table[table["epochs"] == 10].set_index("width")
    assert (
        early.loc[16, "fraction_mse_crossed"] == 0.25
    )  # the event at epoch 5 is within 10
    out = star_claims(table)
    assert [c["holds"] for c in out] == [True, True]  # 0.75 → 0.25 and 0.25 → 0
    assert (
        "m=16: 0.750" in out[0]["reproduced"] and "of 4/4 nets" in out[0]["reproduced"]
    )
    # A clear increase between neighbours (non-overlapping intervals) breaks the claim.
    big = [
        _star(16, [-1] * 200, [-1] * 200),
        _star(32, [0] * 200, [1] * 200),
        _star(64, [-1] * 200, [-1] * 200),
    ]
    assert not any(c["holds"] for c in star_claims(fractions_table(big, [100])))
    flat = fractions_table(
        [_star(16, [0] * 9, [-1] * 9), _star(32, [0] * 9, [-1] * 9)], [100]
    )
    assert "flat" in star_claims(flat)[0]["reproduced"]


def test_star_chunks_are_read_once_each():
    star = {"widths": [{"width": 8, "nets": 3, "chunk_nets": 2}]}
    docs = [
        result_to_dict(_star(8, [0, -1], [-1, -1])) | {"chunk": 0},
        result_to_dict(_star(8, [0], [5])) | {"chunk": 1},
    ]
    what = "relu_star_aggregate chunks"
    assert [r.n_nets for r in chunk_results(docs, star, what)] == [2, 1]
    with pytest.raises(ValueError, match=rf"{what}: read more than once: \(8, 1\) x2"):
        chunk_results(docs + docs[1:], star, what)
    with pytest.raises(ValueError, match=r"read more than once: \(8, 0\) x2"):
        chunk_results(docs + docs[:1])  # duplicates are refused also without a config
    with pytest.raises(ValueError, match=r"missing: \(8, 1\)"):
        chunk_results(docs[:1], star, what)


def test_setups_jobs_are_read_once_each():
    dists = ["ex-distr", "rad-distr-1"]
    docs = [{"distribution": d, "results": []} for d in dists]
    what = "relu_setups_aggregate jobs"
    assert job_documents(iter(docs), dists, what) == docs
    with pytest.raises(ValueError, match=f"{what}: read more than once: ex-distr x2"):
        job_documents(docs + docs[:1], dists, what)
    with pytest.raises(ValueError, match="missing: rad-distr-1"):
        job_documents(docs[:1], dists, what)


# --- setups figure and table -------------------------------------------------------------------


def _fake(param, opt, bias, dist, values, lr=0.1):
    return fake_result(param, opt, bias, dist, lr, values)


def _grid_best():
    """zero with SGD is 1.0 everywhere; kink-neg-unif 0.2 at d = 1 and 0.9 at d = 4; Adam 0.3."""
    best = {}
    for param in ("kaiming", "ntk"):
        for dist, zero_gd, kink_gd in (
            ("rad-distr-1", 1.0, 0.2),
            ("rad-distr-4", 1.0, 0.9),
            ("ex-distr", 1.0, 0.5),
        ):
            for opt, zero, kink in (("gd", zero_gd, kink_gd), ("adam", 0.3, 0.3)):
                best[(param, opt, "zero", dist)] = _fake(
                    param, opt, "zero", dist, [zero * 0.99, zero * 1.01]
                )
                best[(param, opt, "kink-neg-unif", dist)] = _fake(
                    param, opt, "kink-neg-unif", dist, [kink * 0.99, kink * 1.01]
                )
    return best


def test_figure_frame_and_claims():
    best = _grid_best()
    frame = figure_frame(
        best, ["kaiming", "ntk"], ["gd", "adam"], ["zero", "kink-neg-unif"], [1, 4]
    )
    assert len(frame) == 2 * 2 * 2 * 2
    row = frame[
        (frame["parameterisation"] == "ntk")
        & (frame["optimizer"] == "gd")
        & (frame["bias_init"] == "kink-neg-unif")
        & (frame["d"] == 1)
    ].iloc[0]
    assert row["relative_mean"] == pytest.approx(0.2)
    assert row["relative_se"] == pytest.approx(
        0.2 * 0.02 / math.sqrt(2) / 1.0
    )  # std/√(P−1)
    assert row["mean"] == pytest.approx(0.2) and row["lr"] == 0.1
    out = figure_claims(frame)
    assert len(out) == 4 and all(c["holds"] for c in out)
    # If SGD's zero init were the best at d = 1, the first claims fail.
    worse = dict(best)
    worse[("kaiming", "gd", "kink-neg-unif", "rad-distr-1")] = _fake(
        "kaiming", "gd", "kink-neg-unif", "rad-distr-1", [1.5, 1.6]
    )
    frame = figure_frame(
        worse, ["kaiming", "ntk"], ["gd", "adam"], ["zero", "kink-neg-unif"], [1, 4]
    )
    assert [c["holds"] for c in figure_claims(frame)][:2] == [False, False]


def test_results_frame_lists_every_configuration():
    docs = [
        {
            "results": [
                _fake("ntk", "adam", "zero", "ex-distr", [1.0, 2.0]).to_dict()
                | {"stage": "refine"}
            ]
        }
    ]
    frame = results_frame(docs)
    assert frame.loc[0, "stage"] == "refine" and frame.loc[0, "best_test_rmse"] == 1.5
    assert frame.loc[0, "best_test_rmse_std"] == pytest.approx(math.sqrt(0.5))


def test_table_order_formats_and_claims():
    best = _grid_best()
    dists = ["ex-distr", "rad-distr-1", "rad-distr-4"]
    rows = ordered_table(
        best, ["ntk", "kaiming"], ["gd", "adam"], ["zero", "kink-neg-unif"], dists
    )
    assert [(r["parameterisation"], r["optimizer"], r["bias_init"]) for r in rows][
        :3
    ] == [
        ("ntk", "gd", "zero"),
        ("ntk", "gd", "kink-neg-unif"),
        ("ntk", "adam", "zero"),
    ]
    cell = rows[0]["cells"]["rad-distr-1"]
    assert cell["mean_scaled"] == 10000 and cell["shade"] == 100  # the column's worst
    assert rows[1]["cells"]["rad-distr-1"]["shade"] == 0  # the column's best (0.2)
    frame = table_frame(rows, dists)
    assert (
        frame.loc[0, "label"] == "NTK/SGD/Zero"
        and frame.loc[0, "rad-distr-1:mean_scaled"] == 10000
    )
    html = table_html(rows, dists, "caption <x>")
    assert html.startswith("<table") and "caption &lt;x&gt;" in html
    assert "background:rgb(255,0,0)" in html and "10000 &plusmn; 141" in html
    tex = table_latex(rows, dists)
    assert (
        r"\cellcolor{red!100} $10000 \pm 141$" in tex and r"NTK/SGD/$U_{k-}(1)$" in tex
    )
    assert tex.count(r"\\") == len(rows) + 1
    assert shade_rgb(0) == (255, 255, 255) and shade_rgb(100) == (255, 0, 0)
    assert setting_label("kaiming", "gd-mom", "unif-neg") == "He/SGDM/U-(1)"
    out = table_claims(rows, dists)
    assert [c["holds"] for c in out] == [True, True, True]
    assert out[-1]["reproduced"] == "worst/best 5.00 at d = 1, 3.33 at d = 4"


# --- example nets ------------------------------------------------------------------------------


def test_linear_loss_of_the_six_points_and_intercept_removal():
    from weightspace.relu.criterion import LABELS, POINTS

    assert per_side_linear_loss(POINTS, LABELS) == pytest.approx(1.0, rel=1e-12)
    x, y = fancy_dataset(200, seed=3)
    for side in (x > 0, x < 0):
        intercept = np.polyfit(x[side], y[side], 1)[1]
        assert abs(intercept) < 1e-10
    raw_x = np.array([-2.0, -1.0, 1.0, 2.0, 3.0])
    shifted = remove_side_intercepts(raw_x, 3.0 * raw_x + 5.0)
    np.testing.assert_allclose(shifted, 3.0 * raw_x, atol=1e-12)
    kinks = equidistant_kinks(np.array([-1.0, -0.5, 0.25, 2.0]), 4)
    assert kinks.tolist() == [-1.0, -0.5, 0.25, 2.0]
    with pytest.raises(ValueError, match="even"):
        equidistant_kinks(raw_x, 3)


def test_train_full_batch_gd_step_matches_autograd():
    gen = torch.Generator().manual_seed(1)
    f64 = dict(generator=gen, dtype=torch.float64)
    params = [
        torch.randn(1, 1, 5, **f64),
        torch.randn(1, 5, **f64),
        torch.randn(1, 5, **f64),
        torch.randn(1, **f64),
    ]
    x, y = np.linspace(-2, 2, 7), np.cos(np.linspace(-2, 2, 7))
    net = BatchedTwoLayer(*(p.clone() for p in params))
    train_full_batch(net, x, y, lr=0.05, steps=1)
    ref = [p.clone().requires_grad_(True) for p in params]
    out = BatchedTwoLayer(*ref)(torch.tensor(x).view(-1, 1))
    loss = 0.5 * ((out - torch.tensor(y)) ** 2).mean()
    loss.backward()
    for mine, r in zip(net.parameters(), ref):
        torch.testing.assert_close(
            mine, (r - 0.05 * r.grad).detach(), rtol=1e-12, atol=1e-14
        )


def test_six_point_trace_stays_trapped_and_reference_pair():
    trace = six_point_trace(16, 1e-3, 400, 50, seed=0)
    assert trace["step"].tolist() == list(range(0, 401, 50))
    assert (np.diff(trace["loss"]) <= 1e-12).all() and trace["loss"][-1] > 1.0
    assert (
        np.abs(trace["kinks"]).max() < 1.0
    )  # kinks start at 0 and stay inside (−1, 1)
    assert sorted(trace["snapshots"]) == [0, 400]
    snap = trace["snapshots"][0]
    assert snap["x"][0] == -3.0 and snap["x"][-1] == 3.0 and len(snap["x"]) == 18
    ref = reference_pair(16, 64, 1e-2, 200, 100, seed=0)
    assert ref["gd_zero_bias"]["loss"][-1] >= ref["linear_loss"] - 1e-12
    assert ref["adam_equidistant"]["loss"][-1] < ref["linear_loss"]
    doc = {
        "trace": trace,
        "reference": ref,
        "retrained": {
            "grid": [0.0, 1.0],
            "target": [0.0, 0.0],
            "data_x": [0.5],
            "data_y": [0.1],
            "nets": [
                {
                    "setting": {
                        "parameterisation": "kaiming",
                        "optimizer": "gd",
                        "bias_init": "zero",
                    },
                    "nonlinearity": 0.01,
                    "valid_rmse": 0.9,
                    "f": [0.0, 0.1],
                },
                {
                    "setting": {
                        "parameterisation": "kaiming",
                        "optimizer": "adam",
                        "bias_init": "kink-neg-unif",
                    },
                    "nonlinearity": 0.5,
                    "valid_rmse": 0.5,
                    "f": [0.2, 0.3],
                },
            ],
        },
    }
    trace["snapshots"] = {str(k): v for k, v in trace["snapshots"].items()}
    out = example_claims(doc)
    assert len(out) == 4 and out[0]["holds"] and out[2]["holds"] and out[3]["holds"]
    rows = plot_rows(doc)
    panels = {r["panel"] for r in rows}
    assert panels == {"a", "b_loss", "b_function", "b_kinks", "c"}
    assert sum(r["panel"] == "b_kinks" for r in rows) == 16 * len(trace["step"])


def test_median_and_per_side_nonlinearity():
    assert median_index([3.0, 1.0, 2.0]) == 2
    assert median_index([4.0, 1.0, 3.0, 2.0]) == 3  # the lower median
    x = np.linspace(-1, 1, 41)
    assert per_side_nonlinearity(x, np.where(x > 0, 2 * x + 1, -x + 1)) < 1e-12
    assert per_side_nonlinearity(x, np.cos(6 * x)) > 0.1
