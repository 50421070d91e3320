"""The C direction generator (weightspace.rbd.philox): a known answer, a NumPy
reference of the float32 arithmetic, counter-based addressing, the distribution, and
the passes that use the directions without storing them."""

import math

import numpy as np
import pytest
import torch

from weightspace.rbd import philox
from weightspace.rbd.directions import (
    DirectionKey,
    draw,
    expand,
    project,
    project_and_expand,
)

pytestmark = pytest.mark.skipif(
    not philox.available(), reason="no C compiler to build the generator"
)

F = np.float32


def _philox_reference(key: int, c0: int, c1: int) -> list[int]:
    """Philox4x32-10 at counter (c0, c1, 0, 0), in Python integers."""
    k0, k1, c2, c3 = key & 0xFFFFFFFF, key >> 32, 0, 0
    for _ in range(10):
        p0, p1 = 0xD2511F53 * c0, 0xCD9E8D57 * c2
        c0, c1, c2, c3 = (
            (p1 >> 32) ^ c1 ^ k0,
            p1 & 0xFFFFFFFF,
            (p0 >> 32) ^ c3 ^ k1,
            p0 & 0xFFFFFFFF,
        )
        k0, k1 = (k0 + 0x9E3779B9) & 0xFFFFFFFF, (k1 + 0xBB67AE85) & 0xFFFFFFFF
    return [c0, c1, c2, c3]


def _log(u):
    bits = np.array([u], F).view(np.uint32)[0]
    e = int(bits >> 23) - 127
    m = np.array([(bits & 0x7FFFFF) | 0x3F800000], np.uint32).view(F)[0]
    if m > F(1.41421356):
        m, e = F(0.5) * m, e + 1
    s = (m - F(1)) / (m + F(1))
    s2 = s * s
    p = F(1) / F(11)
    for k in (9, 7, 5, 3):
        p = p * s2 + F(1) / F(k)
    p = p * s2 + F(1)
    return F(2) * s * p + F(e) * F(0.693147180559945)


def _sincos(x):
    q = x >> 30
    t = (F((x >> 6) & 0xFFFFFF) + F(0.5)) * F(1 / 16777216)
    fold = t > F(0.5)
    a = ((F(1) - t) if fold else t) * F(1.57079632679489662)
    a2 = a * a
    sp = F(-1) / F(39916800)
    for sign, k in ((1, 362880), (-1, 5040), (1, 120), (-1, 6)):
        sp = sp * a2 + F(sign) / F(k)
    sn = a + a * a2 * sp
    cp = F(1) / F(479001600)
    for sign, k in ((-1, 3628800), (1, 40320), (-1, 720), (1, 24)):
        cp = cp * a2 + F(sign) / F(k)
    cp = cp * a2 - F(0.5)
    cs = F(1) + a2 * cp
    s0, c0 = (cs, sn) if fold else (sn, cs)
    return [(s0, c0), (c0, -s0), (-s0, -c0), (-c0, s0)][q]


def _normals_reference(key: int, row: int, call: int) -> list:
    w = _philox_reference(key, call, row)
    out = []
    for radius_word, angle_word in ((w[0], w[1]), (w[2], w[3])):
        u = (F(radius_word >> 8) + F(0.5)) * F(1 / 16777216)
        r = np.sqrt(F(-2) * _log(u))
        s, c = _sincos(angle_word)
        out += [r * c, r * s]
    return out


def test_philox_known_answer_and_reference():
    # Random123's known answer for Philox4x32-10 at counter 0 under key 0
    assert philox.words(0, 0, 0) == [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]
    for key, c0, c1 in [(2**63 - 25, 7, 3), (123456789, 2**32 - 1, 0)]:
        assert philox.words(key, c0, c1) == _philox_reference(key, c0, c1)


def test_normals_match_the_float32_reference_bit_for_bit():
    key = 987654321987
    got = philox.draw(key, 3, 1030).numpy()
    for row, call in [(0, 0), (2, 1), (1, 200), (2, 256)]:
        expected = np.array(_normals_reference(key, row, call), F)
        part = got[row, 4 * call : 4 * call + 4]
        np.testing.assert_array_equal(part, expected[: len(part)])


def test_the_avx512_path_draws_the_portable_numbers():
    if not philox.use_avx512():
        pytest.skip("this CPU runs the portable path only")
    key, g = 2**40 + 3, torch.randn(5003)
    fast = philox.draw(key, 3, 5003), philox.project(key, 3, g, 2.0)
    try:
        assert not philox.use_avx512(False)
        portable = philox.draw(key, 3, 5003), philox.project(key, 3, g, 2.0)
    finally:
        assert philox.use_avx512(True)
    assert torch.equal(fast[0], portable[0])
    assert torch.equal(fast[1], portable[1])


def test_elements_are_addressed_by_key_row_and_index():
    key = 42
    big = philox.draw(key, 4, 1003)
    assert torch.equal(philox.draw(key, 2, 517), big[:2, :517])
    assert not torch.equal(philox.draw(key + 1, 4, 1003), big)
    assert not torch.equal(big[0], big[1])


def test_distribution_is_standard_normal():
    from scipy import stats

    x = philox.draw(7, 40, 25_000).double().flatten().numpy()  # 10^6 draws
    n = x.size
    # mean and variance within 5 standard errors; KS not rejected at the 1e-3 level
    assert abs(x.mean()) < 5 / math.sqrt(n)
    assert abs(x.var() - 1) < 5 * math.sqrt(2 / n)
    assert stats.kstest(x, "norm").pvalue > 1e-3
    # tails: P(|z| > 4) = 6.3e-5, so about 63 of 10^6 (Poisson, 5 sigma band)
    assert abs((np.abs(x) > 4).sum() - 63.3) < 5 * math.sqrt(63.3)
    # consecutive elements are uncorrelated
    assert abs(np.corrcoef(x[:-1], x[1:])[0, 1]) < 5 / math.sqrt(n)


def test_passes_agree_with_the_drawn_directions():
    key, d, size, norm = DirectionKey(3, 11, worker=1, compartment=2), 70, 3001, 55.0
    g = torch.randn(size, generator=torch.Generator().manual_seed(0))
    phi = torch.cat(
        [draw(key, j, n, size, generator="philox") for j, n in [(0, 50), (1, 20)]]
    )
    c = project(g, key, d, norm, chunk=50, generator="philox")
    torch.testing.assert_close(c, (phi.double() @ g.double() / norm).float())
    step = expand(c, key, size, norm, chunk=50, generator="philox")
    torch.testing.assert_close(
        step, (c.double() @ phi.double() / norm).float(), rtol=1e-5, atol=1e-6
    )
    # the fused pass draws each direction once and gives the same numbers
    c2, step2 = project_and_expand(g, key, d, norm, chunk=50, generator="philox")
    assert torch.equal(c2, c) and torch.equal(step2, step)


def test_philox_refuses_what_it_cannot_draw():
    key = DirectionKey(0, 0)
    with pytest.raises(ValueError, match="normal directions only"):
        project(
            torch.zeros(10), key, 2, 1.0, distribution="uniform", generator="philox"
        )
    with pytest.raises(philox.PhiloxError, match="float32 CPU.*rbd.generator"):
        project(torch.zeros(10, dtype=torch.float64), key, 2, 1.0, generator="philox")
    with pytest.raises(ValueError, match="unknown direction generator"):
        project(torch.zeros(10), key, 2, 1.0, generator="mt")
