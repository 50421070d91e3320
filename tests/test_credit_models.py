"""The paper's models (weightspace.credit.models, spec §7 and "Targets"): parameter
counts, the TF block layout and geometry, initialisation, and a short training run of
every rule on ResNets."""

import math

import pytest
import torch
import torchvision

from weightspace.credit.layers import (
    FeedbackConv2d,
    FeedbackLinear,
    convert_to_feedback,
    feedback_layers,
)
from weightspace.credit.models import (
    MODEL_NAMES,
    BasicBlockV1,
    ResNet,
    SamePaddingMaxPool2d,
    build_model,
    count_backward_parameters,
    count_forward_parameters,
    resnet_v1,
    resnet_v1_tiny,
    resnet_v2,
)
from weightspace.credit.optim import make_optimizer
from weightspace.credit.rules import RULES, make_rule
from weightspace.credit.training import train_step


def _counts(model):
    return count_forward_parameters(model), count_backward_parameters(model)


def test_quick_model_parameter_counts():
    assert _counts(build_model("mlp")) == (269_322, 268_800)
    # tiny: kernels 3·3·1·16 + [16·16 + 2·(3·3·16·16)] + [16·32 + 3·3·16·32 + 3·3·32·32]
    # + 32·10 = 19,664; BN (γ, β) on 16 + 3·16 + 3·32 channels = 320; dense bias 10
    assert _counts(resnet_v1_tiny()) == (19_994, 19_664)


def test_resnet_v1_parameter_counts():
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        assert _counts(resnet_v1(18)) == (11_693_736, 11_683_008)  # §7
        torchvision_50 = torchvision.models.resnet50()
        ours_50 = resnet_v1(50)
    # bottleneck ResNet-50 already projects in group 1: the same shapes as torchvision
    assert count_forward_parameters(ours_50) == sum(
        p.numel() for p in torchvision_50.parameters()
    )
    kernels = sum(p.numel() for p in torchvision_50.parameters() if p.dim() > 1)
    assert count_backward_parameters(ours_50) == kernels


def test_resnet_v2_50_parameter_counts():
    with torch.device("meta"):
        v2 = resnet_v2(50)
    # the same kernels as v1; BN channels move: v1 has 64 (stem) + Σ_blocks 6p + Σ_groups
    # 4p = 26,560, v2 has Σ_blocks (input channels + 2p) + 2,048 (final) = 22,720
    assert count_backward_parameters(v2) == 25_502_912
    assert count_forward_parameters(v2) == 25_557_032 - 2 * (26_560 - 22_720)


@pytest.fixture(scope="module")
def resnet18_v1():
    return resnet_v1(18, generator=torch.Generator().manual_seed(0))


def test_resnet_v1_block_layout(resnet18_v1):
    blocks = [m for m in resnet18_v1.modules() if isinstance(m, BasicBlockV1)]
    assert len(blocks) == 8
    # a projection in the first block of every group, group 1 included
    assert [b.shortcut is not None for b in blocks] == [True, False] * 4
    assert all(not b.bn2.weight.any() for b in blocks)  # last BN γ = 0
    assert all(b.bn1.weight.eq(1).all() for b in blocks)
    bn = blocks[0].bn1
    assert (bn.momentum, bn.eps) == (0.1, 1e-5)  # TF decay 0.9
    layers = dict(feedback_layers(resnet18_v1))
    # 17 convs + 4 projections + the classifier
    assert len(layers) == 22 and isinstance(layers["fc"], FeedbackLinear)
    # followed by BN + ReLU: the original's alignment_relu
    assert layers["stem.conv.1"].alignment_activation == "relu"
    assert layers["groups.1.0.conv1.1"].alignment_activation == "relu"
    assert layers["groups.1.0.conv2"].alignment_activation is None
    assert layers["groups.1.0.shortcut.0.1"].alignment_activation is None
    # strided convs read an explicitly (fixed-)padded input and do not pad themselves
    strided = layers["groups.1.0.conv1.1"]
    assert strided.stride == (2, 2) and strided.padding == (0, 0)


def test_resnet_v1_initialisation(resnet18_v1):
    """W and B: LeCun-normal convs (std 1/sqrt(fan_in)), N(0, 0.01²) dense, drawn
    independently. 2.4M draws per kernel: the std is within 0.1 %, the correlation
    ~0 ± 0.001; 1 % and 0.01 leave a wide margin."""
    layers = dict(feedback_layers(resnet18_v1))
    conv = layers["groups.3.1.conv2"]
    for kernel in (conv.weight, conv.backward_weight):
        assert math.isclose(kernel.std().item(), 1 / math.sqrt(512 * 9), rel_tol=0.01)
    pair = torch.stack([conv.weight.flatten(), conv.backward_weight.flatten()])
    assert abs(torch.corrcoef(pair.detach())[0, 1].item()) < 0.01
    fc = layers["fc"]
    for kernel in (fc.weight, fc.backward_weight):
        assert math.isclose(kernel.std().item(), 0.01, rel_tol=0.01)
    assert not fc.bias.any()


def test_tf_same_max_pool_pads_after():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    # TF 'SAME', k = 3, s = 2 on 4 pixels: one padding pixel after, windows [0, 2]
    # and [2, 3]; PyTorch's padding=1 would centre them on 0 and 2 instead.
    out = SamePaddingMaxPool2d(3, 2)(x)
    assert out.flatten().tolist() == [10.0, 11.0, 14.0, 15.0]
    odd = SamePaddingMaxPool2d(3, 2)(torch.arange(25.0).reshape(1, 1, 5, 5))
    assert odd.shape[-2:] == (3, 3) and odd[0, 0, 0, 0] == 6.0  # pads one each side


@pytest.mark.parametrize("version, size, final", [("v1", 224, 7), ("v2", 299, 10)])
def test_final_feature_map_sizes(version, size, final):
    """224 → 7×7 (v1) and 299 → 10×10 (v2) as §7 says: fixed padding and the SAME
    pool (narrow widths keep it cheap; the geometry does not depend on them)."""
    model = ResNet(
        version, "bottleneck", (1, 1, 1, 1), (1, 1, 1, 1), 10, 3, "imagenet", 2
    )
    seen = []
    model.pool.register_forward_hook(lambda m, args, out: seen.append(args[0].shape))
    with torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    assert tuple(seen[0][-2:]) == (final, final)


def test_build_model_names():
    assert set(MODEL_NAMES) >= {"mlp", "resnet_v1_tiny", "resnet18", "resnet152v2"}
    with pytest.raises(ValueError, match="unknown model 'resnet19'"):
        build_model("resnet19")
    with pytest.raises(ValueError, match="no ResNet of depth 19"):
        resnet_v1(19)
    plain = build_model("resnet_v1_tiny", feedback=False)
    assert not any(isinstance(m, FeedbackConv2d) for m in plain.modules())


def _two_steps(model, rule, x, y):
    optimizer = make_optimizer("momentum", model.parameters(), 0.01)
    return [
        train_step(model, rule, optimizer, x, y, step=step, weight_decay=1e-4)
        for step in range(2)
    ]


@pytest.fixture(scope="module")
def torchvision_resnet18():
    torch.manual_seed(0)
    return convert_to_feedback(torchvision.models.resnet18(num_classes=10))


@pytest.mark.parametrize("name", RULES)
def test_torchvision_resnet18_trains_two_steps_under_every_rule(
    torchvision_resnet18, name
):
    model = convert_to_feedback(torchvision_resnet18)  # a fresh copy
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(4, 3, 32, 32, generator=g), torch.tensor([0, 3, 5, 9])
    rule = make_rule(name, weight_decay=1e-4, coefficient_scale=50)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    results = _two_steps(model, rule, x, y)
    assert all(r["finite"] for r in results)
    assert (results[1]["alignment_loss"] != 0) == rule.has_alignment_loss
    changed_b = any(
        not torch.equal(before[n], p)
        for n, p in model.named_parameters()
        if "backward" in n
    )
    assert changed_b == rule.has_alignment_loss
    assert not torch.equal(before["fc.weight"], model.fc.weight)


@pytest.mark.parametrize(
    "name", ["information", "mirror", "activation", "kolen_pollack"]
)
def test_paper_resnets_train_two_steps(name):
    g = torch.Generator().manual_seed(2)
    options = (
        {"input_distribution": "normal"} if name in ("mirror", "information") else {}
    )
    rule = make_rule(name, weight_decay=1e-4, coefficient_scale=50, options=options)
    tiny = resnet_v1_tiny(generator=g)
    x, y = torch.randn(4, 1, 28, 28, generator=g), torch.tensor([0, 1, 2, 3])
    assert all(r["finite"] for r in _two_steps(tiny, rule, x, y))
    v2 = ResNet("v2", "basic", (1, 1), (8, 16), 10, 3, "imagenet", 8)
    v2 = convert_to_feedback(v2, generator=g)
    x = torch.randn(2, 3, 32, 32, generator=g)
    assert all(r["finite"] for r in _two_steps(v2, rule, x, y[:2]))
