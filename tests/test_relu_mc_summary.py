"""Combining Monte Carlo chunks and checking the relu_fig_mc claims."""

import math

from weightspace.relu.mc_summary import claims, combine_chunks


def chunk(variant, width, crossed, converged, offset=0.0):
    return {"variant": variant, "offset": offset, "width": width,
            "counts": {"CROSSED": crossed, "LOCALLY_CONVERGED": converged}}


def test_chunks_of_one_setting_are_summed():
    table = combine_chunks([chunk("gd", 16, 3, 5), chunk("gd", 16, 1, 7), chunk("gd", 32, 0, 8)])
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
