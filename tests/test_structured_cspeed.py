"""The C reference of structured_fig_speed: checksums against Python, failure paths, result parsing, summaries.

These tests build the C program with the system compiler (`cc`, or $CC): without one they fail
with the message that names the fix, as the workflow job does.
"""

import json
import subprocess

import numpy as np
import pandas as pd
import pytest
import torch

from weightspace import native
from weightspace.structured import (
    SSSLayer,
    approximate_sss,
    identify_sss,
    random_realisation,
    stage_sizes,
)
from weightspace.structured.cspeed import (
    C_SOURCE,
    CBenchmark,
    CSpeedError,
    compile_program,
    description_records,
    encode_description,
    flat_rows,
    parse_result,
    run_program,
    zero_realisation,
)
from weightspace.structured.speed import speed_matrices
from weightspace.structured.summaries.fig_speed import speed_claims, speed_summary

FAST = {"repeats": 3, "iterations": 2, "warmup": 1}


@pytest.fixture(scope="module")
def bench():
    with CBenchmark(("O2", "O0")) as b:
        yield b


def _random_case(rows=14, cols=76, n_stages=10, share=0.5, seed=0):
    rng = np.random.default_rng(seed)
    weight = rng.uniform(-1, 1, (rows, cols))
    bias = rng.uniform(-1, 1, rows)
    u = rng.uniform(-1, 1, cols)
    return weight, bias, u, approximate_sss(weight, share, n_stages)


def _run_raw(bench, records, opt="O0", *args):
    path = bench.directory / "raw.bin"
    data = records if isinstance(records, bytes) else encode_description(records)
    path.write_bytes(data)
    return subprocess.run(
        [str(bench.binaries[opt]), str(path), "2", "1", "0", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_c_checksums_match_python_on_a_random_matrix(bench):
    weight, bias, u, approx = _random_case()
    assert approx.structure is not None and approx.info["state_dim"] >= 1
    records = description_records(weight, bias, approx.structure, bias, u)
    # the expected SSS output is the torch layer's output (same approximation, same bias)
    layer = SSSLayer.from_approximation(approx, bias=bias)
    with torch.no_grad():
        torch_y = layer(torch.from_numpy(records["sss_u"]).unsqueeze(0))[0].numpy()
    np.testing.assert_allclose(records["sss_y"], torch_y, atol=1e-4)
    np.testing.assert_allclose(records["dense_y"], weight @ u + bias, atol=1e-4)
    results = bench.run(records, **FAST)
    assert set(results) == {"O2", "O0"}
    for opt, res in results.items():
        assert res["optimised"] is (opt == "O2")
        assert (
            res["dense"]["max_abs_error"] < 1e-5 and res["sss"]["max_abs_error"] < 1e-5
        )
        assert res["dense"]["flops"] == 2 * weight.size
        assert (
            res["sss"]["stored"] == approx.structure.n_stored == approx.info["n_stored"]
        )
        assert res["sss"]["flops"] == 2 * approx.info["n_stored"] < 2 * weight.size
        assert (
            res["sss"]["stages"] == 10
            and res["sss"]["max_state"] == approx.info["state_dim"]
        )


def test_c_layers_agree_on_an_exactly_sss_matrix(bench):
    rng = np.random.default_rng(1)
    real = random_realisation(stage_sizes(60, 6), stage_sizes(40, 6), 3, rng)
    weight = real.to_dense()
    ident = identify_sss(weight, 6, 3)
    np.testing.assert_allclose(ident.to_dense(), weight, atol=1e-10)
    bias = rng.uniform(-1, 1, 40)
    u = rng.uniform(-1, 1, 60)
    records = description_records(weight, bias, ident, bias, u)
    # the same matrix: both layers must give the same output
    np.testing.assert_allclose(records["sss_y"], records["dense_y"], atol=1e-5)
    res = bench.run(records, opt_levels=["O2"], **FAST)["O2"]
    assert res["sss"]["max_state"] == 3
    assert res["dense"]["max_abs_error"] < 1e-5 and res["sss"]["max_abs_error"] < 1e-5


def test_zero_matrix_and_mismatched_models_run(bench):
    rng = np.random.default_rng(2)
    prob = speed_matrices(20, 50, rng, mismatched_models=True)
    assert prob["dense_weight"].shape == (20, 100) and prob["u"].shape == (100,)
    assert not np.array_equal(prob["dense_weight"][:, :50], prob["weight"])
    approx = approximate_sss(prob["weight"], 0.6, 5)
    assert approx.info["state_dim"] >= 1
    records = description_records(
        prob["dense_weight"], prob["bias"], approx.structure, prob["bias"], prob["u"]
    )
    np.testing.assert_array_equal(records["sss_u"], records["dense_u"][:50])
    res = bench.run(records, opt_levels=["O0"], **FAST)["O0"]
    assert res["dense"]["cols"] == 100 and res["sss"]["cols"] == 50
    # no state fits: the zero matrix, a layer that only adds the bias and stores nothing
    zero = approximate_sss(prob["weight"], 0.01, 5)
    assert zero.structure is None
    records = description_records(
        prob["weight"],
        prob["bias"],
        None,
        prob["bias"],
        prob["u"][:50],
        sss_shape=(20, 50),
    )
    np.testing.assert_allclose(records["sss_y"], prob["bias"].astype(np.float32))
    np.testing.assert_allclose(
        zero_realisation((20, 50)).to_dense(), np.zeros((20, 50))
    )
    res = bench.run(records, opt_levels=["O0"], **FAST)["O0"]
    assert (
        res["sss"]["flops"] == 0
        and res["sss"]["rows"] == 20
        and res["sss"]["cols"] == 50
    )


@pytest.mark.parametrize("layer", ["dense", "sss"])
def test_wrong_checksum_fails_loudly(bench, layer):
    weight, bias, u, approx = _random_case()
    records = description_records(weight, bias, approx.structure, bias, u)
    records[f"{layer}_y"] = records[f"{layer}_y"].copy()
    records[f"{layer}_y"][3] += 0.01  # above the 1e-3 tolerance
    proc = _run_raw(bench, records)
    assert proc.returncode == 3
    assert (
        f"{'SSS' if layer == 'sss' else 'dense'} layer output differs from the Python checksum"
        in proc.stderr
    )
    assert "y[3]" in proc.stderr
    with pytest.raises(CSpeedError, match="differs from the Python checksum"):
        bench.run(records, opt_levels=["O2"], **FAST)
    # a looser tolerance accepts it
    assert _run_raw(bench, records, "O0", "0.02").returncode == 0


def test_corrupted_descriptions_fail_with_clear_messages(bench):
    weight, bias, u, approx = _random_case()
    records = description_records(weight, bias, approx.structure, bias, u)
    good = encode_description(records)
    assert _run_raw(bench, good).returncode == 0

    cases = {
        "is truncated": good[: len(good) // 2],
        "not a description": b"something else\n" + good.split(b"\n", 1)[1],
        "missing 'end'": good[: -len(b"end\n")],
        "data after the 'end' line": good + b"x",
    }
    # names are matched exactly: a stage matrix renamed from A_1 to A_10 does not stand in for A_1
    renamed = dict(records)
    renamed["A_10"] = renamed.pop("A_1")
    cases["record 'A_1' is missing"] = encode_description(renamed)
    duplicate = good.replace(b"\nsss_b f32", b"\nsss_u f32", 1)
    cases["appears twice"] = duplicate
    shaped = dict(records)
    shaped["B_2"] = np.zeros(
        (shaped["B_2"].shape[0] + 1, shaped["B_2"].shape[1]), np.float32
    )
    cases["record 'B_2' has shape"] = encode_description(shaped)
    typed = dict(records)
    typed["sss_dims_in"] = typed["sss_dims_in"].astype(np.float32)
    cases["record 'sss_dims_in' has type f32, expected i32"] = encode_description(typed)
    for message, data in cases.items():
        proc = _run_raw(bench, data)
        assert proc.returncode == 2, (message, proc.stderr)
        assert message in proc.stderr, (message, proc.stderr)
        assert proc.stdout == ""


def test_bad_arguments_are_usage_errors(bench):
    weight, bias, u, approx = _random_case()
    path = bench.directory / "args.bin"
    path.write_bytes(
        encode_description(description_records(weight, bias, approx.structure, bias, u))
    )
    binary = str(bench.binaries["O0"])
    for args, message in (
        ([], "usage"),
        (["0", "1", "0"], "REPEATS must be an integer >= 1"),
        (["2", "1", "0", "1e-3", "all"], "LAYERS must be both, dense or sss"),
    ):
        proc = subprocess.run(
            [binary, str(path), *args], capture_output=True, text=True, timeout=30
        )
        assert proc.returncode == 1 and message in proc.stderr


def test_timing_output_parses(bench):
    weight, bias, u, approx = _random_case()
    records = description_records(weight, bias, approx.structure, bias, u)
    path = bench.directory / "timing.bin"
    path.write_bytes(encode_description(records))
    proc = subprocess.run(
        [str(bench.binaries["O2"]), str(path), "4", "3", "1"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    raw = json.loads(proc.stdout)
    res = parse_result(proc.stdout)
    assert res == raw and res["clock"] == "CLOCK_MONOTONIC"
    assert (res["repeats"], res["iterations"], res["warmup"]) == (4, 3, 1)
    for layer in ("dense", "sss"):
        assert res[layer]["timed"] and len(res[layer]["median_s"]) == 3
        assert all(0 < t < 1 for t in res[layer]["median_s"] + res[layer]["mean_s"])
    rows = flat_rows(res)
    assert len(rows) == 6 and {r["layer"] for r in rows} == {"dense", "sss"}
    only_sss = run_program(bench.binaries["O2"], path, layers="sss", **FAST)
    assert not only_sss["dense"]["timed"] and only_sss["dense"]["median_s"] == []
    assert [r["layer"] for r in flat_rows(only_sss)] == ["sss", "sss"]
    for bad in (
        "",
        "not json",
        json.dumps({"format": "other"}),
        json.dumps({**raw, "sss": {"timed": True}}),
    ):
        with pytest.raises(CSpeedError):
            parse_result(bad)


def test_missing_compiler_gives_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    with pytest.raises(
        native.CompilerNotFoundError,
        match=r"C reference of structured_fig_speed.*CC=.*no-such-cc"
        r".*install a C compiler.*gcc.*c_opt_levels to \[\]",
    ):
        CBenchmark(("O2",))
    monkeypatch.delenv("CC")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("sysconfig.get_config_var", lambda name: None)
    with pytest.raises(
        native.CompilerNotFoundError,
        match="structured_fig_speed.*no C compiler was found.*apt-get install gcc",
    ):
        CBenchmark(("O2",))


def test_compile_errors_are_reported(tmp_path):
    broken = tmp_path / "broken.c"
    broken.write_text("int main(void) { return undefined_name; }\n")
    with pytest.raises(
        native.BuildError,
        match="(?s)building the C reference of structured_fig_speed"
        ".* failed.*undefined_name",
    ):
        compile_program("O0", tmp_path, source=broken)
    assert list(tmp_path.iterdir()) == [broken]  # nothing half-built is left
    with pytest.raises(native.NativeError, match="structured_fig_speed.*is missing"):
        compile_program("O0", tmp_path, source=tmp_path / "absent.c")
    with pytest.raises(ValueError, match="optimisation level"):
        compile_program("O9", tmp_path)
    assert C_SOURCE.is_file()


def test_encode_description_rejects_bad_records():
    with pytest.raises(ValueError, match="float32 and int32"):
        encode_description({"x": np.zeros(3)})
    with pytest.raises(ValueError, match="bad record name"):
        encode_description({"a b": np.zeros(3, np.float32)})
    with pytest.raises(ValueError, match="only 3"):
        description_records(
            np.zeros((2, 3)),
            np.zeros(2),
            zero_realisation((2, 5)),
            np.zeros(2),
            np.zeros(3),
        )


def _speed_rows(
    sss_times: dict, dense_time: float, backend: str, batch: int = 1
) -> list[dict]:
    base = {
        "shape": "s",
        "rows": 10,
        "cols": 100,
        "n_stages": 5,
        "backend": backend,
        "batch": batch,
        "state_dim": 1,
        "in_features": 100,
    }
    rows = [
        {
            **base,
            "layer": "dense",
            "share": np.nan,
            "iteration": i,
            "seconds_per_matvec": dense_time,
            "n_params": 1000,
            "flops": 2000,
        }
        for i in range(2)
    ]
    for share, t in sss_times.items():
        n = 0 if share < 0.05 else int(share * 1000)
        rows += [
            {
                **base,
                "layer": "sss",
                "share": share,
                "iteration": i,
                "seconds_per_matvec": t,
                "n_params": n,
                "flops": 2 * n,
            }
            for i in range(2)
        ]
    return rows


def test_speed_summary_spreads_the_dense_timing_and_claims_can_fail():
    good = {0.01: 1e-7, 0.05: 1e-6, 0.1: 2e-6, 0.2: 4e-6}
    bad = {
        0.01: 1e-7,
        0.05: 8e-6,
        0.1: 6e-6,
        0.2: 4e-6,
    }  # slower than dense at 0.05, ratio falls with share
    rows = pd.DataFrame(
        _speed_rows(good, 5e-6, "c_O2")
        + _speed_rows(bad, 5e-6, "c_O0")
        + _speed_rows(bad, 5e-6, "torch", 256)
    )
    summary = speed_summary(rows)
    dense = summary[(summary["layer"] == "dense") & (summary["backend"] == "c_O2")]
    assert sorted(dense["share"]) == sorted(good) and np.allclose(
        dense["seconds_per_matvec"], 5e-6
    )
    assert len(summary) == 3 * 2 * len(good)
    claims = {c["claim"]: c for c in speed_claims(summary)}
    faster = claims[
        "SSS faster than dense in C at the smallest share with d ≥ 1 (s, one vector)"
    ]
    assert (
        not faster["holds"]
        and "C -O2: SSS/dense time 0.200 at share 0.05" in faster["reproduced"]
    )
    assert "C -O0: SSS/dense time 1.600" in faster["reproduced"]
    trend = claims["SSS/dense time ratio decreases as the share decreases, C (s)"]
    assert (
        not trend["holds"]
        and "C -O2: Spearman ρ(share, ratio) = 1.00 over 3 shares"
        in trend["reproduced"]
    )
    flops = claims["SSS matvec flop count below the dense 2kF at small shares (s)"]
    assert flops["holds"] and "SSS 100 vs dense 2,000 flops" in flops["reproduced"]
    torch_claim = claims[
        "SSS faster than dense at the smallest share with d ≥ 1 (PyTorch, s, batch 256)"
    ]
    assert not torch_claim["holds"]
    # only the good C build: both C claims hold
    ok = {
        c["claim"]: c
        for c in speed_claims(
            speed_summary(pd.DataFrame(_speed_rows(good, 5e-6, "c_O2")))
        )
    }
    assert ok[
        "SSS faster than dense in C at the smallest share with d ≥ 1 (s, one vector)"
    ]["holds"]
    assert ok["SSS/dense time ratio decreases as the share decreases, C (s)"]["holds"]
