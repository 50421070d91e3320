"""Layers with separate backward weights (weightspace.credit.layers, spec §2, §13, §14):
with B = W they are exact backprop; otherwise dx uses B while dW stays the usual."""

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.nn.grad import conv2d_input

from weightspace.credit.layers import (
    FeedbackConv2d,
    FeedbackLinear,
    convert_to_feedback,
    feedback_layers,
    set_feedback_mode,
)

# float64 round-off of the same sums taken in another order: ~1e-16 per term, a few
# hundred terms per entry; 1e-12 leaves margin and still catches any real error.
TOL = 1e-12


def _close(a, b, tol=TOL):
    scale = max(b.abs().max().item(), 1.0)
    assert (a - b).abs().max().item() <= tol * scale


def _grads(module, x, dy):
    x = x.clone().requires_grad_(True)
    out = module(x)
    params = [module.weight] + ([module.bias] if module.bias is not None else [])
    return torch.autograd.grad(out, [x, *params], dy)


def _feedback_twin(reference: nn.Module) -> nn.Module:
    """The reference layer converted, with B = W."""
    return convert_to_feedback(nn.Sequential(reference), backward_init="copy")[0]


@pytest.mark.parametrize("shape", [(5, 7), (3, 4, 7)])
@pytest.mark.parametrize("bias", [True, False])
def test_dense_backward_equals_autograd_when_b_equals_w(shape, bias):
    torch.manual_seed(0)
    reference = nn.Linear(7, 6, bias=bias).double()
    layer = _feedback_twin(reference)
    assert isinstance(layer, FeedbackLinear) and layer.mode == "feedback"
    x = torch.randn(*shape, dtype=torch.float64)
    dy = torch.randn(*shape[:-1], 6, dtype=torch.float64)
    for mine, theirs in zip(_grads(layer, x, dy), _grads(reference, x, dy)):
        _close(mine, theirs)


CONV_CASES = [
    # (kernel, stride, padding, dilation, padding_mode)
    (3, 1, 1, 1, "zeros"),
    (3, 2, 1, 1, "zeros"),
    (3, 2, 0, 1, "zeros"),
    (1, 2, 0, 1, "zeros"),
    (5, 2, 2, 1, "zeros"),
    (3, 1, "same", 1, "zeros"),
    (4, 1, "same", 1, "zeros"),  # asymmetric: padded before the conv
    (3, 2, "valid", 1, "zeros"),
    (3, 1, 2, 2, "zeros"),
    (3, 2, 1, 1, "reflect"),
]


@pytest.mark.parametrize("kernel, stride, padding, dilation, mode", CONV_CASES)
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_conv_backward_equals_autograd_when_b_equals_w(
    kernel, stride, padding, dilation, mode
):
    torch.manual_seed(1)
    reference = nn.Conv2d(
        3, 5, kernel, stride, padding, dilation, bias=True, padding_mode=mode
    ).double()
    layer = _feedback_twin(reference)
    assert isinstance(layer, FeedbackConv2d)
    x = torch.randn(2, 3, 9, 8, dtype=torch.float64)  # odd and even sizes
    dy = torch.randn_like(reference(x))
    for mine, theirs in zip(_grads(layer, x, dy), _grads(reference, x, dy)):
        _close(mine, theirs)


def test_dense_sends_dy_b_and_keeps_the_usual_dw():
    torch.manual_seed(2)
    reference = nn.Linear(7, 6).double()
    layer = convert_to_feedback(nn.Sequential(reference), backward_init="paper")[0]
    x, dy = (
        torch.randn(5, 7, dtype=torch.float64),
        torch.randn(5, 6, dtype=torch.float64),
    )
    dx, dw, db = _grads(layer, x, dy)
    _, dw_ref, db_ref = _grads(reference, x, dy)
    _close(dx, dy @ layer.backward_weight.detach())
    assert not torch.allclose(dx, dy @ layer.weight.detach())
    _close(dw, dw_ref)
    _close(db, db_ref)


def test_conv_sends_transposed_conv_of_b_and_keeps_the_usual_dw():
    torch.manual_seed(3)
    reference = nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=False).double()
    layer = convert_to_feedback(nn.Sequential(reference))[0]
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    dy = torch.randn_like(reference(x))
    dx, dw = _grads(layer, x, dy)
    _, dw_ref = _grads(reference, x, dy)
    b = layer.backward_weight.detach()
    _close(dx, conv2d_input(x.shape, b, dy, stride=2, padding=1))
    _close(dw, dw_ref)


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_b_gets_no_task_gradient_except_tied_under_kolen_pollack(kind):
    torch.manual_seed(4)
    if kind == "dense":
        model = nn.Sequential(nn.Linear(6, 5))
        x = torch.randn(4, 6)
    else:
        model = nn.Sequential(nn.Conv2d(2, 3, 3, stride=2, padding=1))
        x = torch.randn(2, 2, 7, 7)
    model = convert_to_feedback(model)
    layer = model[0]
    model(x).square().sum().backward()
    assert layer.backward_weight.grad is None and layer.weight.grad is not None
    layer.weight.grad = None
    set_feedback_mode(model, "kolen_pollack")
    model(x).square().sum().backward()
    assert torch.equal(layer.backward_weight.grad, layer.weight.grad)


def test_backprop_mode_ignores_b_and_sign_symmetry_uses_sign_of_w():
    torch.manual_seed(5)
    reference = nn.Linear(6, 4).double()
    model = convert_to_feedback(nn.Sequential(reference))
    layer = model[0]
    x, dy = (
        torch.randn(3, 6, dtype=torch.float64),
        torch.randn(3, 4, dtype=torch.float64),
    )
    set_feedback_mode(model, "backprop")
    for mine, theirs in zip(_grads(layer, x, dy), _grads(reference, x, dy)):
        _close(mine, theirs)
    set_feedback_mode(model, "sign_symmetry")
    dx = _grads(layer, x, dy)[0]
    _close(dx, dy @ torch.sign(layer.weight.detach()))
    layer.sign_symmetry_scaled = True
    dx = _grads(layer, x, dy)[0]
    w = layer.weight.detach()
    _close(dx, dy @ (torch.sign(w) * w.abs().mean()))


def test_torchvision_resnet18_converts_keeping_function_and_parameters():
    torch.manual_seed(6)
    reference = torchvision.models.resnet18(num_classes=10).eval()
    copy = convert_to_feedback(reference, generator=torch.Generator().manual_seed(0))
    layers = dict(feedback_layers(copy))
    assert len(layers) == 21  # 17 convs + 3 downsample convs + fc
    assert not any(type(m) in (nn.Conv2d, nn.Linear) for m in copy.modules()), (
        "a layer was left unconverted"
    )
    conv = layers["layer2.0.conv1"]
    assert (conv.stride, conv.padding, conv.kernel_size) == ((2, 2), (1, 1), (3, 3))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(copy(x), reference(x))
    # a copy by default, the same Parameter objects in place
    assert copy.conv1.weight is not reference.conv1.weight
    inplace = convert_to_feedback(reference, inplace=True)
    assert inplace is reference
    assert all(
        layer.backward_weight.shape == layer.weight.shape
        for _, layer in feedback_layers(inplace)
    )


def test_torchvision_resnet18_with_b_equal_to_w_has_autograd_gradients():
    torch.manual_seed(7)
    reference = torchvision.models.resnet18(num_classes=10).double()
    model = convert_to_feedback(reference, backward_init="copy")
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    targets = torch.tensor([1, 7])
    for net in (reference, model):
        F.cross_entropy(net(x), targets).backward()
    mine = dict(model.named_parameters())
    for name, p in reference.named_parameters():
        _close(mine[name].grad, p.grad, 1e-10)  # ~60 layers of float64 round-off
    assert all(
        layer.backward_weight.grad is None for _, layer in feedback_layers(model)
    )


def test_grouped_convolution_is_refused_naming_the_module():
    model = nn.Sequential(
        nn.Conv2d(4, 4, 3), nn.Sequential(nn.Conv2d(4, 4, 3, groups=4))
    )
    with pytest.raises(ValueError, match=r"'1\.0'.*groups=4"):
        convert_to_feedback(model)
    with pytest.raises(ValueError, match="ConvTranspose2d"):
        convert_to_feedback(nn.Sequential(nn.ConvTranspose2d(2, 2, 3)))
    with pytest.raises(ValueError, match="unknown backward init"):
        convert_to_feedback(nn.Sequential(nn.Linear(2, 2)), backward_init="nope")


def test_backward_init_draws_independently_with_the_forward_scale():
    torch.manual_seed(8)
    model = nn.Sequential(nn.Linear(500, 400))
    converted = convert_to_feedback(model, backward_init="match_forward")[0]
    w, b = converted.weight.detach(), converted.backward_weight.detach()
    # 200,000 draws: the empirical std matches to ~0.2 %, the correlation is ~0 +- 0.002
    assert abs(b.std() / w.std() - 1) < 0.02
    assert abs(torch.corrcoef(torch.stack([w.flatten(), b.flatten()]))[0, 1]) < 0.02
    paper = convert_to_feedback(model, backward_init="paper")[0].backward_weight
    assert abs(paper.detach().std().item() - 0.01) < 0.0005


def test_backward_runs_under_autocast():
    """Mixed precision: the output gradient arrives in bfloat16 while x and B are
    float32; the gradients agree with float32 ones to bfloat16 precision (8 bits of
    mantissa: ~0.4 % per rounding, a few roundings per entry, so 5 % of the scale)."""
    torch.manual_seed(9)
    model = convert_to_feedback(
        nn.Sequential(
            nn.Conv2d(3, 4, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(4 * 4 * 4, 3),
        )
    )
    x = torch.randn(2, 3, 8, 8)
    model(x).sum().backward()
    full = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    model.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    out.float().sum().backward()
    mixed = [p.grad for p in model.parameters() if p.grad is not None]
    assert len(mixed) == len(full) == 4
    for a, b in zip(mixed, full):
        assert a.dtype == torch.float32
        assert (a - b).abs().max() <= 0.05 * b.abs().max()


def test_importing_the_package_imports_no_torch():
    import subprocess
    import sys

    code = "import sys, weightspace.credit; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    )
    assert out.stdout.strip() == "False"


def test_the_readme_example_runs_as_written():
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("## Train your own model without weight symmetry") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    scope = {}
    exec(compile(code, "README.md", "exec"), scope)
    # every converted layer reports its angle
    assert len(scope["angles"]) == 21  # resnet18: 20 convolutions and the dense layer
