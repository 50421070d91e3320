"""Model builders: shapes at both quick image sizes, the parameter counts stated in the paper specs,
torchvision compatibility, and the explicit structure that layer-walking code relies on."""

import math

import pytest
import torch
import torchvision
from torch import nn

from weightspace.models import (
    MODELS,
    Add,
    BasicBlock,
    Concat,
    build_model,
    count_parameters,
    densenet,
    initialize_weights,
    make_activation,
    mlp,
    model_names,
    resnet,
    small_cnn,
    vgg,
)

torch.set_num_threads(1)

IMAGE_SHAPES = [(1, 28), (3, 32)]
# small enough to run for real on CPU in milliseconds
SMALL_MODELS = [
    "mlp", "mlp_5x128", "mlp_5x500", "small_cnn", "tutorial_cnn", "small_vgg",
    "vgg_tiny", "vgg_tiny_bn", "resnet8", "resnet20", "resnet_tiny", "densenet_tiny",
]  # fmt: skip


def on_meta(name, **kwargs):
    """Build on the meta device: shapes and counts without allocating 100M+ parameters."""
    with torch.device("meta"):
        return build_model(name, **kwargs)


# deeper copies of resnet50 / densenet121 blocks: checked at the harder 28x28 size only, to keep the suite fast
DEEP_VARIANTS = {"resnet101", "resnet152", "densenet161", "densenet169", "densenet201"}
SHAPE_CASES = [
    (n, c, s)
    for n in model_names()
    for c, s in IMAGE_SHAPES
    if n not in DEEP_VARIANTS or s == 28
]


@pytest.mark.parametrize("name,channels,size", SHAPE_CASES)
def test_every_registered_model_maps_images_to_logits(name, channels, size):
    with torch.device("meta"):
        model = build_model(name, in_channels=channels, image_size=size, num_classes=7)
        out = model(torch.empty(3, channels, size, size))
    assert out.shape == (3, 7)


@pytest.mark.parametrize("channels,size", IMAGE_SHAPES)
@pytest.mark.parametrize("name", SMALL_MODELS)
def test_small_models_run_on_real_tensors(name, channels, size):
    torch.manual_seed(0)
    model = build_model(
        name, in_channels=channels, image_size=size, num_classes=10
    ).eval()
    with torch.no_grad():
        out = model(torch.randn(2, channels, size, size))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()


def test_rectangular_images_are_accepted():
    model = build_model(
        "small_cnn", in_channels=1, image_size=(28, 20), adaptive_pool=None
    )
    assert model(torch.randn(2, 1, 28, 20)).shape == (2, 10)
    # flatten size computed from (28, 20): two pools -> 7 x 5 map of 64 channels
    assert model.fc1.in_features == 64 * 7 * 5


# (registry name, build options, in_channels, image size, expected count, where the count is stated)
SPEC_COUNTS = [
    (
        "mlp",
        {},
        1,
        28,
        101_770,
        "teleport.md Fig. 4 quick MLP 784-128-10; random_bases.md FC-MNIST",
    ),
    (
        "mlp",
        {},
        3,
        32,
        394_634,
        "teleport.md §5 MLP 3072-128-10; random_bases.md FC-CIFAR10",
    ),
    ("mlp_5x500", {}, 3, 32, 2_543_510, "teleport.md §5 MLP 5x500"),
    (
        "mlp",
        {"hidden": (256, 256)},
        1,
        28,
        269_322,
        "credit_assignment.md MLP 784-256-256-10",
    ),
    ("small_cnn", {}, 1, 28, 283_786, "structured.md SmallCNN"),
    ("tutorial_cnn", {}, 1, 28, 93_322, "random_bases.md CNN 28x28x1"),
    ("tutorial_cnn", {}, 3, 32, 122_570, "random_bases.md CNN 32x32x3"),
    ("vgg16_bn", {}, 3, 32, 134_309_962, "teleport.md §5 VGG16-BN"),
    ("vgg16", {}, 3, 32, 134_301_514, "teleport.md §5 VGG16 without BN"),
    (
        "resnet18",
        {"stem": "small_maxpool"},
        3,
        32,
        11_173_962,
        "teleport.md §5 ResNet-18 CIFAR variant",
    ),
    ("densenet121", {}, 3, 32, 6_964_106, "teleport.md §5 DenseNet-121"),
    ("resnet8", {}, 3, 32, 78_330, "random_bases.md Fig. 1 ResNet-8"),
    (
        "resnet18",
        {"projection": "first", "num_classes": 1000},
        3,
        224,
        11_693_736,
        "credit_assignment.md §7 ResNet-18 v1",
    ),
    ("resnet18", {"num_classes": 1000}, 3, 224, 11_689_512, "torchvision ResNet-18"),
]


@pytest.mark.parametrize(
    "name,options,channels,size,expected,source",
    SPEC_COUNTS,
    ids=[c[-1] for c in SPEC_COUNTS],
)
def test_parameter_counts_stated_in_the_specs(
    name, options, channels, size, expected, source
):
    model = on_meta(name, in_channels=channels, image_size=size, **options)
    assert count_parameters(model) == expected, source


def test_small_cnn_fc1_is_the_structured_layer():
    model = build_model("small_cnn")
    # structured.md: fc1 is Linear(1024 -> 256) with 262,400 parameters
    assert (model.fc1.in_features, model.fc1.out_features) == (1024, 256)
    assert count_parameters(model.fc1) == 262_400


def test_count_parameters_skips_frozen_and_buffers():
    model = mlp(hidden=(4,), in_features=3, num_classes=2, batch_norm=True)
    total = (
        (3 * 4 + 4) + (4 + 4) + (4 * 2 + 2)
    )  # fc1, bn1 (running stats are buffers), fc2
    assert count_parameters(model) == total
    model.fc1.weight.requires_grad_(False)
    assert count_parameters(model) == total - 12
    assert count_parameters(model, trainable_only=False) == total


@pytest.mark.parametrize(
    "name,image_size", [("resnet18", 64), ("resnet50", 64), ("densenet121", 64)]
)
def test_torchvision_weights_load_strictly_and_give_the_same_function(name, image_size):
    torch.manual_seed(0)
    reference = getattr(torchvision.models, name)(weights=None).eval()
    ours = build_model(
        name, in_channels=3, image_size=image_size, num_classes=1000, stem="imagenet"
    ).eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, image_size, image_size)
    with torch.no_grad():
        # identical operations in identical order on the same CPU kernels: equal up to the last bit
        assert torch.equal(ours(x), reference(x))


@pytest.mark.parametrize("depth", [11, 16, 19])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_vgg_state_dict_layout_matches_torchvision(depth, batch_norm):
    name = f"vgg{depth}{'_bn' if batch_norm else ''}"
    with torch.device("meta"):
        reference = getattr(torchvision.models, name)(num_classes=1000)
        ours = vgg(depth, batch_norm=batch_norm, image_size=224, num_classes=1000)
    ref_shapes = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == ref_shapes


@pytest.mark.parametrize("size,n_pools", [(28, 4), (32, 5), (224, 5)])
def test_vgg_skips_pools_that_would_empty_the_feature_map(size, n_pools):
    with torch.device("meta"):
        model = vgg(16, in_channels=1, image_size=size)
        features = model.features(torch.empty(1, 1, size, size))
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.features) == n_pools
    assert features.shape[-2:] == ((7, 7) if size == 224 else (1, 1))


def test_vgg_without_adaptive_pool_flattens_the_computed_map():
    model = build_model("small_vgg", in_channels=1, image_size=28)
    # 2 x [conv, ReLU, conv, ReLU, maxpool] with 16/32 channels: 32 x 7 x 7 into a single Linear
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 1 and linears[0].in_features == 32 * 7 * 7


def test_vgg_width_multiplier_scales_conv_widths():
    model = vgg(11, width=0.25, pool_output=1, classifier_hidden=())
    widths = [m.out_channels for m in model.features if isinstance(m, nn.Conv2d)]
    assert widths == [16, 32, 64, 64, 128, 128, 128, 128]


def test_densenet_parameters_do_not_depend_on_image_size():
    grey28 = on_meta("densenet121", in_channels=1, image_size=28)
    rgb32 = on_meta("densenet121", in_channels=3, image_size=32)
    # only conv0 (64 x C x 7 x 7) sees the channel count; 28x28 reaches 1x1 before transition3,
    # whose pool is left out while its conv (and so the classifier width) stays
    assert count_parameters(rgb32) - count_parameters(grey28) == 64 * 2 * 7 * 7
    assert not hasattr(grey28.features.transition3, "pool")
    assert hasattr(rgb32.features.transition3, "pool")


def every_leaf_call_count(model, x):
    calls = {}
    hooks = [
        module.register_forward_hook(
            lambda m, i, o: calls.__setitem__(id(m), calls.get(id(m), 0) + 1)
        )
        for module in model.modules()
        if not list(module.children())
    ]
    model(x)
    for hook in hooks:
        hook.remove()
    leaves = [m for m in model.modules() if not list(m.children())]
    return [calls.get(id(m), 0) for m in leaves]


@pytest.mark.parametrize("name", sorted(set(model_names()) - DEEP_VARIANTS))
def test_every_leaf_module_is_called_exactly_once_per_forward(name):
    # per-module transformations (teleportation CoBs on activations, merges) need one module per use
    with torch.device("meta"):
        model = build_model(name, in_channels=3, image_size=32)
        counts = every_leaf_call_count(model, torch.empty(2, 3, 32, 32))
    assert counts and all(c == 1 for c in counts)


def test_residual_block_computes_shortcut_first_and_adds_it_first():
    model = build_model("resnet_tiny", in_channels=1, image_size=28)
    block = model.layer2[0]
    assert isinstance(block, BasicBlock) and block.downsample is not None
    order, add_inputs = [], {}
    block.downsample[0].register_forward_hook(lambda m, i, o: order.append("shortcut"))
    block.conv1.register_forward_hook(lambda m, i, o: order.append("conv1"))
    block.downsample.register_forward_hook(
        lambda m, i, o: add_inputs.__setitem__("shortcut", o)
    )
    block.add.register_forward_hook(
        lambda m, i, o: add_inputs.__setitem__("first", i[0])
    )
    model(torch.randn(2, 1, 28, 28))
    assert order == ["shortcut", "conv1"]
    assert add_inputs["first"] is add_inputs["shortcut"]


def test_projection_option_places_shortcut_convs():
    needed = resnet(stages=(1, 1), widths=(16, 32), stem="small")
    first = resnet(stages=(1, 1), widths=(16, 32), stem="small", projection="first")
    assert (
        needed.layer1[0].downsample is None and needed.layer2[0].downsample is not None
    )
    assert (
        first.layer1[0].downsample is not None
        and first.layer2[0].downsample is not None
    )


def test_zero_init_residual_makes_blocks_start_as_identity_plus_relu():
    torch.manual_seed(0)
    model = resnet(
        stages=(1,), widths=(8,), stem="small", zero_init_residual=True
    ).eval()
    block = model.layer1[0]
    assert torch.count_nonzero(block.bn2.weight) == 0
    x = torch.randn(2, 8, 5, 5)
    with torch.no_grad():
        # BN in eval with zero scale and zero shift outputs 0: the block reduces to relu(x)
        assert torch.equal(block(x), torch.relu(x))


def test_merges_are_modules():
    assert any(isinstance(m, Add) for m in build_model("resnet8").modules())
    assert any(isinstance(m, Concat) for m in build_model("densenet_tiny").modules())
    parts = [torch.ones(1, 2, 3, 3), torch.zeros(1, 1, 3, 3)]
    assert Concat()(parts).shape == (1, 3, 3, 3)


@pytest.mark.parametrize(
    "activation,cls",
    [
        ("relu", nn.ReLU),
        ("elu", nn.ELU),
        ("leakyrelu", nn.LeakyReLU),
        ("leaky_relu", nn.LeakyReLU),
        ("tanh", nn.Tanh),
    ],
)
def test_mlp_layers_are_explicit_modules(activation, cls):
    model = build_model("mlp_5x128", activation=activation)
    names = [name for name, _ in model.named_children()]
    expected = (
        ["flatten"]
        + [f"{kind}{i}" for i in range(1, 6) for kind in ("fc", "act")]
        + ["fc6"]
    )
    assert names == expected
    acts = [m for m in model if isinstance(m, cls)]
    assert len(acts) == 5 and len({id(a) for a in acts}) == 5


def test_mlp_bias_flag():
    model = mlp(hidden=(8,), in_features=4, bias=False)
    assert all(m.bias is None for m in model if isinstance(m, nn.Linear))
    assert count_parameters(model) == 4 * 8 + 8 * 10


def test_unknown_model_names_the_known_ones():
    with pytest.raises(
        ValueError,
        match="unknown model 'resnet19'.*did you mean.*resnet18.*known models: .*densenet121",
    ):
        build_model("resnet19")


def test_unknown_option_lists_accepted_options():
    with pytest.raises(
        TypeError, match="does not take depth.*accepted options: .*hidden"
    ):
        build_model("mlp", depth=3)


def test_unknown_activation_lists_known_ones():
    with pytest.raises(ValueError, match="unknown activation 'swishy'.*elu.*tanh"):
        make_activation("swishy")


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: vgg(17), "unknown VGG depth 17"),
        (lambda: vgg([64, "X"]), "positive ints"),
        (lambda: resnet(stem="huge"), "unknown ResNet stem 'huge'"),
        (lambda: resnet(block="wide"), "unknown ResNet block 'wide'"),
        (lambda: resnet(stages=(1, 1), widths=(16,)), "equal length"),
        (lambda: densenet(stem="huge"), "unknown DenseNet stem"),
        (
            lambda: small_cnn(channels=(8, 8, 8), padding="valid", image_size=8),
            "too small",
        ),
        (lambda: small_cnn(pool=(True,)), "one flag per conv"),
        (lambda: mlp(image_size=(28, 28, 3)), "image_size"),
        (lambda: mlp(num_classes=0), "num_classes"),
    ],
)
def test_bad_options_fail_with_a_clear_message(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_registry_defaults_are_overridable_but_not_mutated():
    model = build_model("mlp", hidden=(7,), num_classes=3)
    assert [m.out_features for m in model if isinstance(m, nn.Linear)] == [7, 3]
    assert MODELS["mlp"][1] == {"hidden": (128,)}


def test_initializers_follow_their_definitions():
    torch.manual_seed(0)
    model = mlp(hidden=(512,), in_features=784, batch_norm=True)
    model.bn1.weight.data.fill_(3.0)

    initialize_weights(model, "normal", gain=0.02)
    # 401,408 samples: the standard error of the sample std is 0.02 / sqrt(2n) ~ 2e-5
    assert abs(model.fc1.weight.std().item() - 0.02) < 2e-4
    assert torch.count_nonzero(model.fc1.bias) == 0

    initialize_weights(model, "xavier_uniform")
    bound = math.sqrt(6.0 / (784 + 512))
    assert model.fc1.weight.abs().max().item() <= bound
    assert model.fc1.weight.abs().max().item() > 0.99 * bound

    initialize_weights(model, "lecun_normal")
    # TF variance scaling: truncated normal rescaled so the variance is 1 / fan_in, cut at 2 raw std
    assert abs(model.fc1.weight.std().item() * math.sqrt(784) - 1.0) < 0.01
    raw_std = math.sqrt(1.0 / 784) / 0.87962566103423978
    assert model.fc1.weight.abs().max().item() <= 2 * raw_std + 1e-7

    assert torch.all(model.bn1.weight == 3.0), "normalisation layers must be left alone"
    with pytest.raises(
        ValueError, match="unknown init scheme 'glorot'.*xavier_uniform"
    ):
        initialize_weights(model, "glorot")
