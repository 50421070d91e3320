"""Teleportation of ordinary PyTorch models (weightspace.teleport, teleport.md §1-§5, §14):
the network function is unchanged while the weights change."""

import copy

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from weightspace.models import build_model
from weightspace.teleport import SAMPLING_TYPES, TeleportableModel, TeleportError
from weightspace.teleport.cob import sample_cob

# float32 round-off relative to the output scale: each layer rescales by factors up to
# 1.9 / 0.1 and back, so a few ulp per layer over ~100 layers stays well below 1e-5.
RTOL = 1e-5


def _mlp(activation, inputs=784, width=64, depth=5):
    layers = [nn.Flatten()]
    for i in range(depth):
        layers += [nn.Linear(inputs if i == 0 else width, width), activation()]
    return nn.Sequential(*layers, nn.Linear(width, 10))


def _assert_invariant(
    model, x, cob_range=0.9, kind="inter_landscape", seed=0, train=False, rtol=RTOL
):
    tm = TeleportableModel(model, x)
    tm.train(train)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        torch.manual_seed(seed)  # the same dropout masks in both passes
        y0 = tm(x)
        tm.teleport(
            tm.generate_random_cob(
                cob_range, kind, generator=torch.Generator().manual_seed(seed)
            )
        )
        torch.manual_seed(seed)
        y1 = tm(x)
    err = ((y1 - y0).abs().max() / y0.abs().max()).item()
    assert err < rtol, err
    weights = [k for k, v in model.named_parameters() if v.dim() > 1]
    assert all(not torch.equal(before[k], model.state_dict()[k]) for k in weights)
    return tm


@pytest.mark.parametrize(
    "activation", [nn.ReLU, nn.Tanh, nn.ELU, nn.LeakyReLU, nn.Sigmoid]
)
@pytest.mark.parametrize(
    "kind, cob_range",
    [
        ("intra_landscape", 0.5),
        ("intra_landscape", 0.9),
        ("inter_landscape", 0.9),
        ("positive", 2.0),
        ("negative", 2.0),
        ("centered", 0.5),
    ],
)
def test_mlp_function_is_unchanged(activation, kind, cob_range):
    torch.manual_seed(0)
    _assert_invariant(_mlp(activation), torch.rand(16, 1, 28, 28), cob_range, kind)


@pytest.mark.parametrize("name", ["resnet18", "vgg16_bn", "densenet121"])
def test_torchvision_models_teleport_out_of_the_box(name):
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)()
    _assert_invariant(model, torch.rand(4, 3, 32, 32))


@pytest.mark.parametrize("name", ["resnet18", "vgg16_bn", "densenet121"])
@pytest.mark.parametrize("dtype, rtol", [(torch.float64, 1e-11), (torch.float32, 1e-3)])
def test_train_mode_with_batch_statistics(name, dtype, rtol):
    # Exact in float64. In float32 the batch statistics of 4 samples at 1x1 positions
    # (the last blocks at 32x32 input) divide by a small variance and amplify the
    # round-off of x * tau / tau up to ~3e-4 of the output scale.
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)().to(dtype)
    _assert_invariant(
        model, torch.rand(4, 3, 32, 32, dtype=dtype), train=True, rtol=rtol
    )


class Functional(nn.Module):
    """Functional ops, a module called twice, a skip added first, a concatenation and a
    view: what the original's graph could not teleport."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(16)
        self.act = nn.Tanh()
        self.fc = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x):
        a = F.relu(self.conv1(x))
        b = self.act(self.conv2(a))
        c = self.act(b + a)  # reused module; skip operand second
        d = a + c  # skip operand first
        e = self.bn(torch.cat([d, b], dim=1))
        e = F.max_pool2d(e, 2)
        return self.fc(e.view(e.size(0), -1))


def test_functional_ops_and_reused_modules():
    torch.manual_seed(0)
    _assert_invariant(Functional(), torch.rand(4, 3, 8, 8))
    _assert_invariant(Functional(), torch.rand(4, 3, 8, 8), train=True)


def test_composed_large_teleports_keep_the_function():
    torch.manual_seed(0)
    model = _mlp(nn.Tanh).double()
    x = torch.rand(8, 1, 28, 28, dtype=torch.float64)
    tm = TeleportableModel(model, x)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        y0 = tm(x)
        for _ in range(10):
            tm.teleport(
                tm.generate_random_cob(10, "inter_landscape", generator=generator),
                reset_teleportation=False,
            )
        y1 = tm(x)
    # float64: the composed scalars reach ~1e10, far beyond what float32 can carry
    assert torch.allclose(y1, y0, rtol=0, atol=1e-9 * y0.abs().max().item())


def test_undo_and_state_dict_round_trip():
    torch.manual_seed(0)
    x = torch.rand(4, 3, 8, 8)
    model = Functional().eval()
    original = {k: v.clone() for k, v in model.state_dict().items()}
    tm = TeleportableModel(model, x).eval()
    tm.random_teleport(
        0.9, "inter_landscape", generator=torch.Generator().manual_seed(1)
    )
    copy = TeleportableModel(Functional(), x).eval()
    copy.load_state_dict(tm.state_dict())  # weights, CoB and activation scalars
    with torch.no_grad():
        assert torch.allclose(copy(x), tm(x), rtol=0, atol=1e-6)
    tm.undo_teleportation()
    assert torch.equal(tm.cob, torch.ones_like(tm.cob))
    for k, v in model.state_dict().items():
        assert torch.allclose(v, original[k], rtol=1e-5, atol=1e-7), k


def test_sgd_with_momentum_keeps_its_parameters_across_a_teleport():
    torch.manual_seed(0)
    model = _mlp(nn.ReLU)
    x, y = torch.rand(32, 1, 28, 28), torch.randint(0, 10, (32,))
    tm = TeleportableModel(model, x)
    opt = torch.optim.SGD(tm.parameters(), lr=0.01, momentum=0.9)
    params = list(tm.parameters())
    for step in range(4):
        if step == 2:
            tm.random_teleport(
                0.9, "inter_landscape", generator=torch.Generator().manual_seed(2)
            )
        opt.zero_grad()
        loss = F.cross_entropy(tm(x), y)
        loss.backward()
        opt.step()
        assert torch.isfinite(loss)
    assert all(a is b for a, b in zip(params, tm.parameters()))


@pytest.mark.parametrize(
    "model, shape, size",
    [
        (lambda: _mlp(nn.ReLU, 3072, 500), (2, 3, 32, 32), 2_500),  # MLP 5x500
        (lambda: _mlp(nn.ReLU, 3072, 128, 1), (2, 3, 32, 32), 128),  # Fig. 4 MLP
        (torchvision.models.resnet18, (2, 3, 32, 32), 9_600),
        (torchvision.models.vgg16_bn, (2, 3, 32, 32), 16_640),
        (torchvision.models.densenet121, (2, 3, 32, 32), 52_064),
    ],
    ids=["mlp5x500", "mlp128", "resnet18", "vgg16_bn", "densenet121"],
)
def test_cob_sizes_of_the_spec(model, shape, size):
    assert TeleportableModel(model(), torch.rand(shape)).get_cob_size() == size


@pytest.mark.parametrize(
    "module, message",
    [
        (
            nn.Sequential(nn.Conv2d(4, 4, 3, groups=2), nn.Flatten(), nn.LazyLinear(2)),
            "groups=2",
        ),
        (nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4), nn.Linear(4, 2)), "LayerNorm"),
    ],
)
def test_what_cannot_be_teleported_is_refused_by_name(module, message):
    x = torch.rand(2, 4, 6, 6) if isinstance(module[0], nn.Conv2d) else torch.rand(2, 4)
    module(x)
    with pytest.raises(TeleportError, match=message):
        TeleportableModel(module, x)


@pytest.mark.parametrize("kind", SAMPLING_TYPES)
def test_cob_sampling_ranges_and_seeds(kind):
    def draw(seed):
        return sample_cob(10_000, kind, 0.5, 1.0, torch.Generator().manual_seed(seed))

    cob = draw(0)
    assert torch.equal(cob, draw(0)) and not torch.equal(cob, draw(1))
    low, high = {
        "intra_landscape": (0.5, 1.5),
        "inter_landscape": (-1.5, 1.5),
        "positive": (0.0, 0.5),
        "negative": (-0.5, 0.0),
        "centered": (0.5, 1.5),
    }[kind]
    assert low <= cob.min() and cob.max() <= high
    if kind == "inter_landscape":
        assert cob.abs().min() >= 0.5 and 0.45 < (cob < 0).double().mean() < 0.55


def _angles(a, b):
    cos = torch.nn.functional.cosine_similarity(a, b, dim=-1).clamp(-1, 1)
    return torch.rad2deg(torch.arccos(cos.double()))


def test_micro_teleportation_is_orthogonal_to_the_gradient():
    # teleport.md §6: L(T(W)) = L(W) on the whole orbit, so a micro-teleport's
    # displacement is tangent to the loss level set: cos(delta, g) = O(eps).
    torch.manual_seed(0)
    model = _mlp(nn.ReLU, 784, 128, 1).double()
    x, y = torch.rand(64, 1, 28, 28, dtype=torch.float64), torch.randint(0, 10, (64,))
    tm = TeleportableModel(model, x)
    weights = tm.get_weights()
    g = tm.get_grad(x, y, torch.nn.functional.cross_entropy)
    generator = torch.Generator().manual_seed(1)
    deltas = []
    for _ in range(50):
        tm.random_teleport(0.001, "intra_landscape", generator=generator)
        deltas.append(tm.get_weights() - weights)
        tm.undo_teleportation()
    delta = torch.stack(deltas)
    micro = _angles(delta, g.expand_as(delta))
    random = _angles(torch.rand_like(delta) - 0.5, torch.rand_like(delta) - 0.5)
    d = weights.numel()
    assert abs(micro.mean().item() - 90) < 0.01
    # random pairs spread by (180/pi)/sqrt(d) degrees; the micro angles far less
    assert random.std().item() > 0.5 * 57.3 / d**0.5
    assert micro.std().item() < 0.1 * random.std().item()


def test_the_readme_example_runs_as_written():
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("## Teleport your own model") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    exec(compile(code, "README.md", "exec"), {})


# -- CoB state, weights and parameters (teleport.md §5, §12 item 2) --------------------


def _teleported_mlp(activation=nn.Tanh, seed=0, **kw):
    torch.manual_seed(seed)
    x = torch.rand(8, 1, 28, 28, dtype=torch.float64)
    tm = TeleportableModel(_mlp(activation, width=32, depth=3).double(), x, **kw)
    return tm, x


def _scalers(tm):
    return [b for name, b in tm.network.named_buffers() if "teleport_scale" in name]


def test_set_weights_resets_the_cob_state():
    tm, x = _teleported_mlp()
    w0 = tm.get_weights()
    with torch.no_grad():
        y0 = tm(x)
        tm.random_teleport(0.9, "inter_landscape", generator=torch.Generator())
        tm.set_weights(w0)  # un-teleported weights: the CoB state goes back to ones
        assert torch.equal(
            tm.get_cob(), torch.ones(tm.get_cob_size(), dtype=torch.float64)
        )
        assert all(torch.all(b == 1) for b in _scalers(tm))
        assert torch.allclose(tm(x), y0, rtol=0, atol=1e-12)


@pytest.mark.parametrize("compound", [False, True])
def test_compound_stale_cob_teleports_by_new_over_old(compound):
    tm, _ = _teleported_mlp(compound_stale_cob=compound)
    assert tm.compound_stale_cob is compound
    w0 = tm.get_weights()
    generator = torch.Generator().manual_seed(1)
    old = tm.random_teleport(0.9, "intra_landscape", generator=generator)
    tm.set_weights(w0)
    assert torch.equal(tm.get_cob(), torch.ones_like(old) if not compound else old)
    new = tm.random_teleport(0.9, "intra_landscape", generator=generator)
    effective = new / old if compound else new  # the original's defect
    assert torch.allclose(tm.calculate_cob(w0, tm.get_weights()), effective, atol=1e-9)


def test_reset_weights_reinitialises_and_resets_the_cob_state():
    tm, x = _teleported_mlp()
    tm.random_teleport(0.5, generator=torch.Generator())
    before = tm.get_weights()
    tm.reset_weights()
    assert not torch.allclose(tm.get_weights(), before)
    assert torch.equal(tm.get_cob(), torch.ones_like(tm.get_cob()))
    assert all(torch.all(b == 1) for b in _scalers(tm))
    stale, _ = _teleported_mlp(compound_stale_cob=True)
    cob = stale.random_teleport(0.5, generator=torch.Generator())
    stale.reset_weights()
    assert torch.equal(stale.get_cob(), cob)


def test_get_params_set_params_round_trip_the_teleported_function():
    tm, x = _teleported_mlp(nn.Tanh)  # f_tau != f: the CoB state matters
    tm.random_teleport(0.9, "inter_landscape", generator=torch.Generator())
    weights, cob = tm.get_params()
    with torch.no_grad():
        y = tm(x)
        other, _ = _teleported_mlp(nn.Tanh, seed=5)
        other.set_params(weights, cob)
        assert torch.allclose(other(x), y, rtol=0, atol=1e-12)
        assert torch.equal(other.get_weights(), weights)
        other.set_weights(weights)  # the same weights without their CoB state
        assert not torch.allclose(other(x), y, atol=1e-3)
        other.teleport_activations(cob)
        assert torch.allclose(other(x), y, rtol=0, atol=1e-12)


def test_load_state_dict_and_deepcopy_follow_the_cob():
    torch.manual_seed(0)
    x = torch.rand(4, 3, 8, 8)
    tm = TeleportableModel(Functional(), x).eval()
    untouched = copy.deepcopy(tm.state_dict())
    with torch.no_grad():
        y0 = tm(x)
        tm.random_teleport(0.9, "inter_landscape", generator=torch.Generator())
        twin = copy.deepcopy(tm)
        assert torch.allclose(twin(x), y0, rtol=0, atol=1e-5)
        assert twin.state_dict().keys() == tm.state_dict().keys()
        tm.load_state_dict(untouched)  # back to the untouched weights and CoB
        assert "teleport_ops" not in tm.network.code
        assert torch.allclose(tm(x), y0, rtol=0, atol=1e-6)
        twin.undo_teleportation()
        assert torch.allclose(twin(x), y0, rtol=0, atol=1e-5)


def test_alternating_resets_and_teleports_compile_each_graph_once(monkeypatch):
    # Figs 4 and 7 reset the weights and teleport again hundreds of times; each
    # switch between the plain and the teleported graph used to recompile it
    compiles = []
    recompile = torch.fx.GraphModule.recompile
    monkeypatch.setattr(
        torch.fx.GraphModule,
        "recompile",
        lambda self: compiles.append(1) or recompile(self),
    )
    torch.manual_seed(0)
    x = torch.rand(4, 3, 8, 8)
    tm = TeleportableModel(Functional(), x).eval()
    start, generator = tm.get_weights(), torch.Generator().manual_seed(1)
    with torch.no_grad():
        y0 = tm(x)
        built = len(compiles)
        codes = set()
        for _ in range(4):
            tm.set_weights(start)
            assert torch.equal(tm(x), y0)
            codes.add(tm.network.code)
            tm.teleport(tm.generate_random_cob(0.5, generator=generator))
            y1 = tm(x)
            assert ((y1 - y0).abs().max() / y0.abs().max()).item() < RTOL
            codes.add(tm.network.code)
    assert len(codes) == 2  # the plain graph and the teleported one
    assert len(compiles) - built == 1  # the teleported graph; the plain one was built


# -- the forward pass (module docstring of weightspace.teleport.model) -----------------


def _small(name):
    """A small float64 model of each kind and an input for it."""
    torch.manual_seed(0)
    x = torch.rand(4, 1, 12, 12, dtype=torch.float64)
    if name == "functional":
        return Functional().double(), torch.rand(4, 3, 8, 8, dtype=torch.float64)
    if name == "mlp":
        return _mlp(nn.ELU, inputs=144, width=16, depth=3).double(), x
    return build_model(name, in_channels=1, image_size=12).double(), x


@pytest.mark.parametrize("fold", [None, True, False])
@pytest.mark.parametrize("name", ["functional", "resnet_tiny", "densenet_tiny", "mlp"])
def test_every_way_of_computing_the_forward_pass_is_exact(name, fold):
    # the function and the parameters' gradients of the teleported network (train
    # mode, batch statistics), whichever layers rescale their weights in the forward
    # pass, against the layer-by-layer teleported network (fold=False)
    model, x = _small(name)
    y = torch.randint(0, 10, (len(x),))
    tm = TeleportableModel(model, x, fold=fold).train()
    literal = TeleportableModel(copy.deepcopy(model), x, fold=False).train()
    with torch.no_grad():
        y0 = tm(x)
    for kind in ("intra_landscape", "inter_landscape"):
        cob = tm.generate_random_cob(0.9, kind, generator=torch.Generator())
        tm.teleport(cob)
        literal.teleport(cob)
        with torch.no_grad():
            assert torch.allclose(tm(x), y0, rtol=0, atol=1e-10 * y0.abs().max())
        g, g_literal = (m.get_grad(x, y, F.cross_entropy) for m in (tm, literal))
        assert torch.allclose(g, g_literal, rtol=1e-8, atol=1e-12 * g.abs().max())


def test_scalings_of_one_and_of_positive_relu_scalars_are_left_out():
    import operator

    def count(tm, op):
        return sum(n.target is op for n in tm.network.graph.nodes)

    torch.manual_seed(0)
    x = torch.rand(8, 1, 28, 28)
    tm = TeleportableModel(_mlp(nn.ReLU, width=32, depth=3), x, fold=False)
    assert "teleport_ops" not in tm.network.code  # the traced graph as it is
    tm.random_teleport(0.9, "intra_landscape", generator=torch.Generator())
    # tau relu(x / tau) = relu(x) for tau > 0
    assert count(tm, operator.mul) == count(tm, operator.truediv) == 0
    tm.random_teleport(0.9, "inter_landscape", generator=torch.Generator())
    # s relu(s x) with s = sign(tau): no division, two exact sign flips per ReLU
    assert count(tm, operator.truediv) == 0 and count(tm, operator.mul) == 2 * 3
    tm.undo_teleportation()
    assert "teleport_ops" not in tm.network.code


# -- calculate_cob (teleport.md §5, §14 item 7) ----------------------------------------


def _cnn_bn():
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.Tanh(),
        nn.Flatten(),
        nn.Linear(16 * 6 * 6, 32),
        nn.ReLU(),
        nn.Linear(32, 10),
    )


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(
    "name, kind",
    [
        ("mlp", "inter_landscape"),
        ("mlp", "intra_landscape"),
        ("cnn_bn", "inter_landscape"),
        ("resnet_tiny", "inter_landscape"),
        ("densenet_tiny", "intra_landscape"),
    ],
)
def test_calculate_cob_recovers_the_cob_of_a_teleport(name, kind, dtype):
    # The least-squares scalar of an exact teleport is exact; in float32 the
    # teleported weights carry relative round-off ~6e-8, which the per-neuron sums
    # average and the layer-by-layer estimate passes on: ~1e-7 against the original's
    # bar of 1e-6, for |tau| <= 1.9.
    torch.manual_seed(0)
    x = torch.rand(4, 1, 12, 12)
    model = {
        "mlp": lambda: _mlp(nn.ReLU, inputs=144, width=64, depth=4),
        "cnn_bn": _cnn_bn,
        "resnet_tiny": lambda: build_model("resnet_tiny", in_channels=1, image_size=12),
        "densenet_tiny": lambda: build_model(
            "densenet_tiny", in_channels=1, image_size=12
        ),
    }[name]().to(dtype)
    tm = TeleportableModel(model, x.to(dtype))
    w0 = tm.get_weights()
    ones = tm.calculate_cob(w0, w0)
    assert ones.dtype == torch.float64 and torch.equal(ones, torch.ones_like(ones))
    cob = tm.random_teleport(0.9, kind, generator=torch.Generator().manual_seed(1))
    estimate = tm.calculate_cob(w0, tm.get_weights())
    assert estimate.shape == (tm.get_cob_size(),)
    assert torch.allclose(estimate, cob, rtol=0, atol=1e-6)
    # and undoes it: the CoB from the teleported weights back is 1 / cob
    back = tm.calculate_cob(tm.get_weights(), w0)
    assert torch.allclose(back, 1 / cob, rtol=0, atol=1e-5)


def test_calculate_cob_is_the_least_squares_fit_for_a_perturbed_target():
    torch.manual_seed(0)
    x = torch.rand(4, 1, 12, 12, dtype=torch.float64)
    tm = TeleportableModel(_mlp(nn.ReLU, inputs=144, width=16, depth=1).double(), x)
    w0 = tm.get_weights()
    cob = tm.random_teleport(0.5, generator=torch.Generator())
    target = tm.get_weights() + 0.01 * torch.randn_like(w0)
    estimate = tm.calculate_cob(w0, target)

    # the hidden layer's input basis is 1: per neuron <u, v> / ||u||^2 over the row
    # of weights and the bias
    def rows(flat):
        weight, bias = flat[: 16 * 144].view(16, 144), flat[16 * 144 : 16 * 145]
        return torch.cat([weight, bias[:, None]], 1)

    u, v = rows(w0), rows(target)
    assert torch.allclose(estimate, (u * v).sum(1) / (u * u).sum(1), atol=1e-14)
    assert (estimate - cob).abs().max() < 0.05


# -- init_like_histogram ---------------------------------------------------------------


def test_init_like_histogram_draws_linear_weights_from_the_histogram():
    torch.manual_seed(0)
    values = torch.cat([0.1 * torch.randn(3000) - 0.5, 0.05 * torch.randn(1000) + 0.3])
    edges = torch.linspace(-1, 1, 41)
    counts = torch.histc(values, 40, -1, 1)
    tm = TeleportableModel(_cnn_bn(), torch.rand(4, 1, 12, 12))
    tm.random_teleport(0.5, generator=torch.Generator())
    untouched = {
        k: v.clone() for k, v in tm.network.named_parameters() if "8.weight" not in k
    }
    untouched = {k: v for k, v in untouched.items() if "10.weight" not in k}
    tm.init_like_histogram(counts, edges, generator=torch.Generator().manual_seed(1))
    params = dict(tm.network.named_parameters())
    # biases, convolutions and BatchNorm untouched; the CoB state reset
    assert all(torch.equal(params[k], v) for k, v in untouched.items())
    assert torch.equal(tm.get_cob(), torch.ones_like(tm.get_cob()))
    drawn = torch.cat([params["8.weight"].flatten(), params["10.weight"].flatten()])
    n, p = drawn.numel(), counts.double() / counts.sum()
    # bin frequencies within Monte Carlo error (5 standard errors per bin)
    observed = torch.histc(drawn.double(), 40, -1, 1)
    se = (n * p * (1 - p)).sqrt().clamp(min=1)
    assert ((observed - n * p).abs() / se).max() < 5
    # uniform within each bin: the mean of the histogram's density
    centres = (edges[1:] + edges[:-1]).double() / 2
    mean = (p * centres).sum()
    assert abs(drawn.double().mean() - mean) < 5 * drawn.double().std() / n**0.5
    assert drawn.unique().numel() > 0.99 * n  # not on a grid of bin values
    again = TeleportableModel(_cnn_bn(), torch.rand(4, 1, 12, 12))
    again.init_like_histogram(counts, edges, generator=torch.Generator().manual_seed(1))
    assert torch.equal(again.network.get_submodule("8").weight, params["8.weight"])


# -- weight and gradient growth (teleport.md §1, §14 item 4) ---------------------------


def _growth_mlp(width=64, depth=5):
    torch.manual_seed(0)
    x = torch.rand(32, 1, 12, 12, dtype=torch.float64)
    model = _mlp(nn.ReLU, inputs=144, width=width, depth=depth).double()
    return TeleportableModel(model, x), model, x, torch.randint(0, 10, (32,))


@pytest.mark.parametrize("kind", ["intra_landscape", "inter_landscape"])
def test_hidden_to_hidden_weight_ratios_match_their_expectation(kind):
    # W'_ij / W_ij = tau_i / tau_j: E[(tau_i / tau_j)^2] = E[tau^2] E[1 / tau^2]
    # = (1 + s^2 / 3) / (1 - s^2) for |tau| ~ U[1 - s, 1 + s]. The teleports are
    # independent, so the standard error comes from the per-teleport means.
    s, teleports = 0.5, 100
    expected = (1 + s**2 / 3) / (1 - s**2)
    tm, model, _, _ = _growth_mlp(width=128)
    hidden = [model[i] for i in (3, 5, 7, 9)]  # Linear layers 2 to 5 of 6
    before = [layer.weight.detach().clone() for layer in hidden]
    generator = torch.Generator().manual_seed(2)
    means = []
    for _ in range(teleports):
        tm.random_teleport(s, kind, generator=generator)
        ratios = [(lay.weight.detach() / w) ** 2 for lay, w in zip(hidden, before)]
        means.append(torch.cat([r.flatten() for r in ratios]).mean())
    means = torch.stack(means)
    se = means.std() / teleports**0.5
    assert se < 0.01 * expected  # a sharp test
    assert abs(means.mean() - expected) < 4 * se, (means.mean(), expected, se)


def test_weight_and_gradient_norms_grow_with_the_cob_range():
    tm, _, x, y = _growth_mlp()
    w0 = tm.get_weights()
    g0 = tm.get_grad(x, y, F.cross_entropy)
    generator = torch.Generator().manual_seed(3)
    weight_ratio, grad_ratio = [], []
    for s in (0.01, 0.25, 0.5, 0.75, 0.9):
        w, g = [], []
        for _ in range(20):
            tm.random_teleport(s, "intra_landscape", generator=generator)
            w.append(tm.get_weights().norm() / w0.norm())
            g.append(tm.get_grad(x, y, F.cross_entropy).norm() / g0.norm())
        weight_ratio.append(torch.stack(w).mean().item())
        grad_ratio.append(torch.stack(g).mean().item())
    for ratios in (weight_ratio, grad_ratio):
        assert abs(ratios[0] - 1) < 0.01
        assert all(a < b for a, b in zip(ratios, ratios[1:])), ratios


def test_compound_stale_cob_grows_the_ratios_at_large_ranges():
    # set_weights(W) then a random teleport: the stale CoB compounds (new / old)
    ratios = {}
    for compound in (False, True):
        tm, _, _, _ = _growth_mlp()
        tm.compound_stale_cob = compound
        w0 = tm.get_weights()
        generator = torch.Generator().manual_seed(4)
        norms = []
        for _ in range(20):
            tm.set_weights(w0)
            tm.random_teleport(0.9, "intra_landscape", generator=generator)
            norms.append(tm.get_weights().norm() / w0.norm())
        ratios[compound] = torch.stack(norms).mean().item()
    assert ratios[True] > 1.5 * ratios[False], ratios


@pytest.mark.parametrize(
    "name, options, cob_size, parameters",
    [
        ("mlp_5x500", {"activation": "elu"}, 2_500, 2_543_510),
        ("mlp", {}, 128, 394_634),  # Fig. 4's MLP 3072 -> 128 -> 10
        ("vgg16_bn", {}, 16_640, 134_309_962),
        ("vgg16", {}, 12_416, 134_301_514),
        ("resnet18_cifar", {}, 9_600, 11_173_962),
        ("densenet121", {}, 52_064, 6_964_106),
    ],
)
def test_the_papers_models_have_the_spec_sizes_and_teleport(
    name, options, cob_size, parameters
):
    torch.manual_seed(0)
    model = build_model(name, in_channels=3, image_size=32, **options)
    assert sum(p.numel() for p in model.parameters()) == parameters
    tm = _assert_invariant(model, torch.rand(4, 3, 32, 32))
    assert tm.get_cob_size() == cob_size
