"""Combining Monte Carlo chunks and checking the relu_fig_mc claims."""

import itertools
import math

import pytest

from weightspace.relu.mc_summary import claims, combine_chunks

_CHUNK = itertools.count()


def chunk(variant, width, crossed, converged, offset=0.0, number=None):
    number = next(_CHUNK) if number is None else number
    return {
        "variant": variant,
        "offset": offset,
        "width": width,
        "chunk": number,
        "counts": {"CROSSED": crossed, "LOCALLY_CONVERGED": converged},
    }


def test_chunks_of_one_setting_are_summed():
    table = combine_chunks(
        [chunk("gd", 16, 3, 5), chunk("gd", 16, 1, 7), chunk("gd", 32, 0, 8)]
    )
    row = table[table["width"] == 16].iloc[0]
    assert row["runs"] == 16 and row["CROSSED"] == 4 and row["chunks"] == 2
    assert math.isclose(row["p_cross"], 4 / 16)
    assert row["wilson_low"] < 0.25 < row["wilson_high"]
    assert math.isclose(row["reference_2_over_sqrt_m"], 0.5)


def test_claims_hold_only_for_decreasing_curves_below_reference():
    good = combine_chunks([chunk("gd", 16, 300, 700), chunk("gd", 64, 100, 900)])
    assert all(c["holds"] for c in claims(good, "gd"))
    rising = combine_chunks([chunk("gd", 16, 100, 900), chunk("gd", 64, 240, 760)])
    verdicts = {c["claim"].split(" (")[0]: c["holds"] for c in claims(rising, "gd")}
    assert verdicts["p_cross decreases with width"] is False
    above = combine_chunks([chunk("gd", 16, 900, 100), chunk("gd", 64, 700, 300)])
    verdicts = {c["claim"].split(" (")[0]: c["holds"] for c in claims(above, "gd")}
    assert verdicts["p_cross at or below 2 m^-1/2"] is False


MC = {
    "variants": [{"name": "gd"}, {"name": "sgd"}],
    "offsets": [0.0, 0.1],
    "widths": [16],
    "runs": 10,
    "chunk_runs": 8,
}


def _all_chunks():
    return [
        chunk(v, 16, 1, 1, offset=o, number=c)
        for v in ("gd", "sgd")
        for o in (0.0, 0.1)
        for c in (0, 1)
    ]


def test_the_chunks_of_the_config_are_combined_once_each():
    table = combine_chunks(_all_chunks(), MC, "relu_mc_aggregate chunks")
    assert len(table) == 4
    assert (table["chunks"] == 2).all() and (table["runs"] == 4).all()


def test_a_duplicated_chunk_is_rejected_by_name():
    chunks = _all_chunks() + [chunk("sgd", 16, 1, 1, offset=0.1, number=1)]
    expected = r"relu_mc_aggregate chunks: read more than once: \(sgd, 0\.1, 16, 1\) x2"
    with pytest.raises(ValueError, match=expected):
        combine_chunks(chunks, MC, "relu_mc_aggregate chunks")
    with pytest.raises(ValueError, match="read more than once"):  # without a config
        combine_chunks(chunks)


def test_missing_and_unexpected_chunks_are_rejected_by_name():
    chunks = _all_chunks()[1:] + [chunk("adam", 16, 1, 1, number=0)]
    with pytest.raises(ValueError) as error:
        combine_chunks(chunks, MC, "relu_mc_aggregate chunks")
    message = str(error.value)
    assert "missing: (gd, 0, 16, 0)" in message
    assert "not asked for by the config: (adam, 0, 16, 0)" in message
