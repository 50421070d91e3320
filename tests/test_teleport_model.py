"""Teleportation of ordinary PyTorch models (weightspace.teleport, teleport.md §1-§5, §14):
the network function is unchanged while the weights change."""

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

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
