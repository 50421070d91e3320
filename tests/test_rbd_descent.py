"""Random bases descent (weightspace.rbd, random_bases.md §2, §3, §6, §9, §13): the
counter-based directions, compartments, the step's statistics and the workers' step."""

import math

import pytest
import torch

from weightspace.models import build_model
from weightspace.rbd.compartments import communicated_scalars, compartments
from weightspace.rbd.descent import RandomBases, cosine
from weightspace.rbd.directions import DirectionKey, draw, expand, project

torch.set_num_threads(1)


def _bases(size, d, **kw):
    return RandomBases(tuple(compartments([size], [0], d)), seed=7, **kw)


def test_directions_regenerate_bit_for_bit_and_keys_differ():
    key = DirectionKey(seed=1, step=3, worker=1, compartment=2)
    a = draw(key, 0, 5, 100)
    assert torch.equal(a, draw(DirectionKey(1, 3, 1, 2), 0, 5, 100))
    for other in (
        DirectionKey(1, 4, 1, 2),
        DirectionKey(1, 3, 0, 2),
        DirectionKey(1, 3, 1, 0),
        DirectionKey(2, 3, 1, 2),
    ):
        assert not torch.equal(a, draw(other, 0, 5, 100))
    assert not torch.equal(a, draw(key, 1, 5, 100))  # another chunk


def test_additive_offsets_reproduce_the_originals_collision():
    # worker 1 at step 3 reuses worker 0's directions of step 4
    a = DirectionKey(1, 3, worker=1, additive_offsets=True)
    b = DirectionKey(1, 4, worker=0, additive_offsets=True)
    assert torch.equal(draw(a, 0, 4, 50), draw(b, 0, 4, 50))
    assert not torch.equal(
        draw(DirectionKey(1, 3, 1), 0, 4, 50), draw(DirectionKey(1, 4, 0), 0, 4, 50)
    )


def test_project_and_expand_use_the_same_directions_in_any_chunking_of_d():
    g = torch.randn(300, dtype=torch.float64)
    key = DirectionKey(5, 0)
    for d, chunk in ((7, 3), (50, 50), (53, 50)):
        c = project(g, key, d, norm=1.0, chunk=chunk)
        phi = torch.cat(
            [
                draw(key, i, min(chunk, d - s), 300, dtype=torch.float64)
                for i, s in enumerate(range(0, d, chunk))
            ]
        )
        torch.testing.assert_close(c, phi @ g)
        torch.testing.assert_close(expand(c, key, 300, 1.0, chunk), phi.T @ c)


GENERATORS = ["torch", "philox"]
# philox draws float32 on the CPU; the statistics below hold to far more digits
DTYPES = {"torch": torch.float64, "philox": torch.float32}


@pytest.mark.parametrize("generator", GENERATORS)
def test_mean_step_approaches_d_over_D_times_g(generator):
    size, d = 500, 10
    g = torch.randn(size, dtype=DTYPES[generator])
    bases = _bases(size, d, generator=generator)
    target = d / size * g

    def error(draws, offset):
        mean = sum(bases.step(g, offset + t)[0] for t in range(draws)) / draws
        return float((mean - target).norm() / target.norm())

    # relative error of the mean: sqrt((D + 1) / (d n)) for Gaussian directions
    for draws in (250, 2000):
        expected = math.sqrt((size + 1) / (d * draws))
        assert 0.6 * expected < error(draws, 10_000 * draws) < 1.4 * expected


@pytest.mark.parametrize("generator", GENERATORS)
def test_mean_cosine_with_the_gradient_is_sqrt_d_over_D(generator):
    size, d = 5000, 10
    g = torch.randn(size, generator=torch.Generator().manual_seed(3))
    g = g.to(DTYPES[generator])
    bases = _bases(size, d, generator=generator)
    cosines = torch.tensor([cosine(bases.step(g, t)[0], g) for t in range(200)])
    se = float(cosines.std() / math.sqrt(len(cosines)))
    # d Gaussian directions in D dimensions: the cosine is |Phi^T g| / (|g| sqrt(D)) up to
    # O(1/sqrt(D)), a chi_d over sqrt(D), whose mean tends to sqrt(d/D) (2.5 % below it
    # at d = 10, 1.7 standard errors here: compared exactly)
    chi_mean = math.sqrt(2) * math.exp(math.lgamma((d + 1) / 2) - math.lgamma(d / 2))
    assert abs(float(cosines.mean()) - chi_mean / math.sqrt(size)) < 4 * se
    assert abs(chi_mean / math.sqrt(d) - 1) < 0.03


def test_per_layer_compartments_give_each_layer_its_own_cosine():
    sizes, layers = [2000, 20, 400, 10], [0, 0, 1, 1]
    g = torch.randn(sum(sizes), dtype=torch.float64)
    parts = compartments(sizes, layers, d=20, weights_per_compartment=-1)
    assert [(p.start, p.stop, p.d) for p in parts] == [(0, 2020, 20), (2020, 2430, 20)]
    bases = RandomBases(tuple(parts), seed=1, normalize_per_compartment=True)
    small = slice(2020, 2430)
    cos = [cosine(bases.step(g, t)[0][small], g[small]) for t in range(100)]
    assert abs(sum(cos) / len(cos) - math.sqrt(20 / 430)) < 0.03


def test_compartment_settings_of_the_fc_network():
    sizes, layers = [100_352, 128, 1_280, 10], [0, 0, 1, 1]
    assert len(compartments(sizes, layers, 250)) == 1
    packed = compartments(sizes, layers, 250, weights_per_compartment=25_000)
    # the kernel (100,352 > N) is split into ceil(n / N) = 5 near-equal parts; the
    # small variables that follow share one compartment across the layer boundary
    assert [p.size for p in packed[:5]] == [20_070, 20_071, 20_070, 20_071, 20_070]
    assert packed[5].size == 128 + 1_280 + 10 and len(packed) == 6
    assert packed[-1].stop == sum(sizes)
    split = compartments(
        sizes, layers, 250, weights_per_compartment=-1, split_dimensions=True
    )
    assert [p.d for p in split] == [126, 126]
    assert communicated_scalars(split, workers=4) == 4 * 252
    with pytest.raises(ValueError, match="negative integer"):
        compartments(sizes, layers, 250, weights_per_compartment=-1.5)


def test_fixed_directions_are_the_same_at_every_step():
    g = torch.randn(400)
    fpd, rbd = _bases(400, 8, fixed=True), _bases(400, 8)
    torch.testing.assert_close(fpd.step(g, 0)[0], fpd.step(g, 17)[0], rtol=0, atol=0)
    assert not torch.equal(rbd.step(g, 0)[0], rbd.step(g, 17)[0])


@pytest.mark.parametrize("generator", GENERATORS)
def test_workers_exchange_only_their_coordinates(generator):
    g = [torch.randn(1000) for _ in range(3)]
    parts = tuple(compartments([600, 400], [0, 1], 25, -1))
    bases = RandomBases(parts, seed=3, generator=generator)
    one, scalars = bases.workers_step(g[:1], step=5)
    assert torch.equal(one, bases.step(g[0], 5)[0]) and scalars == 50
    total, scalars = bases.workers_step(g, step=5)
    assert scalars == communicated_scalars(bases.parts, workers=3) == 150
    expected = sum(bases.step(gw, 5, worker=w)[0] for w, gw in enumerate(g))
    assert torch.equal(total, expected)
    # what a worker computes from the exchanged coordinates alone, bit for bit
    shared = [bases.coordinates(gw, 5, w) for w, gw in enumerate(g)]
    rebuilt = sum(bases.step_vector(c, 5, w) for w, c in enumerate(shared))
    assert torch.equal(total, rebuilt)


@pytest.mark.parametrize(
    "name, shape, count",
    [
        ("mlp", (1, 28), 101_770),
        ("mlp", (3, 32), 394_634),
        ("tutorial_cnn", (1, 28), 93_322),
        ("tutorial_cnn", (3, 32), 122_570),
    ],
)
def test_the_papers_networks_have_the_spec_parameter_counts(name, shape, count):
    model = build_model(name, in_channels=shape[0], image_size=shape[1])
    assert sum(p.numel() for p in model.parameters()) == count


def test_one_pass_step_equals_coordinates_then_expansion():
    g = torch.randn(3000)
    bases = RandomBases(tuple(compartments([2000, 1000], [0, 1], 70, -1)), seed=2)
    step, coords = bases.step(g, 4, worker=1)
    expected = bases.coordinates(g, 4, 1)
    for c, e in zip(coords, expected):
        assert torch.equal(c, e)
    torch.testing.assert_close(
        step, bases.step_vector(expected, 4, 1), rtol=1e-6, atol=1e-7
    )
