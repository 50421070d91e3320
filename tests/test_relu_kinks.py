"""Kink distances under uniform bias initialisation (relu_fig_kink_distributions)."""

import math

import pytest
import torch

from weightspace.relu import kinks


@pytest.mark.parametrize("dim", [1, 3, 16])
def test_empirical_cdf_matches_quadrature(dim):
    # DKW: with n samples the whole empirical CDF is within eps of the truth w.p. 1 - 1e-3.
    n = 50_000
    samples = kinks.sample_kink_distances(dim, n, torch.Generator().manual_seed(dim))
    eps = kinks.dkw_epsilon(n, alpha=1e-3)
    for t in (0.25, 0.8, 1.5, math.sqrt(3), 3.0):
        empirical = float((samples <= t).double().mean())
        assert abs(empirical - kinks.exact_cdf(t, dim)) < eps


def test_exact_cdf_is_a_cdf():
    values = [kinks.exact_cdf(t, 2) for t in (0.0, 0.5, 1.0, 2.0, 10.0, 1e4)]
    assert values[0] == 0.0
    assert all(b >= a for a, b in zip(values, values[1:]))
    assert values[-1] == pytest.approx(1.0, abs=1e-6)


def test_large_dimension_tends_to_uniform_limit():
    # ‖w‖² = (2/d) χ²_d concentrates at 2, so |b|/‖w‖ → U(0, √3); KS distance falls with d.
    n = 20_000
    ks = []
    for d in (1, 4, 16, 256):
        s = kinks.sample_kink_distances(d, n, torch.Generator().manual_seed(7))
        ks.append(kinks.ks_distance(s, kinks.uniform_limit_cdf))
    assert all(b < a for a, b in zip(ks, ks[1:]))
    assert ks[-1] < 0.05 and ks[0] > 0.3


def test_samples_reproducible_and_seed_dependent():
    a = kinks.sample_kink_distances(8, 1000, torch.Generator().manual_seed(1))
    b = kinks.sample_kink_distances(8, 1000, torch.Generator().manual_seed(1))
    c = kinks.sample_kink_distances(8, 1000, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert bool((a >= 0).all())


def test_table_curves_are_cdfs_on_the_grid():
    table = kinks.kink_distance_table([1, 4], 500, 30, lambda d: 100 + d)
    for d in (1, 4):
        cdf = table["cdf"][d]
        assert cdf.shape == (30,) and cdf[0] == 0.0
        assert (cdf[1:] >= cdf[:-1]).all() and cdf[-1] <= 1.0
    assert table["reference"][-1] == 1.0


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="dim >= 1"):
        kinks.sample_kink_distances(0, 10, torch.Generator())
