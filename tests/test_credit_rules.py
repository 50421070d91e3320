"""Primitives, learning rules, schedules and noisy updates (weightspace.credit, spec §3-§6,
§14): closed forms of the primitives and rule gradients, the fixed points each rule
reaches, and that the alignment loss trains B only."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from weightspace.credit.layers import (
    backward_kernels,
    clear_records,
    conv_filter_gradient,
    convert_to_feedback,
    feedback_layers,
    forward_kernels,
)
from weightspace.credit.metrics import angle, layer_probes, weight_angles
from weightspace.credit.optim import NoisyUpdates, learning_rate, noise_targets
from weightspace.credit.primitives import (
    AlignmentOptions,
    LayerSignals,
    amp,
    decay,
    null,
    self_alignment,
    sparse,
)
from weightspace.credit.rules import (
    RULES,
    CoefficientSchedule,
    RateSchedule,
    make_rule,
)
from weightspace.credit.training import train_step

F64 = torch.float64


def _layer(in_features=12, out_features=5, bias=False, seed=0):
    """One frozen dense feedback layer (float64) in a Sequential."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(in_features, out_features, bias=bias)).double()
    return convert_to_feedback(model, backward_init="lecun_normal")


def _inputs(n=64, d=12, seed=1, offset=0.0):
    g = torch.Generator().manual_seed(seed)
    scales = torch.linspace(0.3, 2.0, d, dtype=F64)
    return torch.randn(n, d, generator=g, dtype=F64) * scales + offset


def _second_moment(x):
    return x.T @ x / x.shape[0]


def _rule_gradient(rule, model, x):
    """∂R/∂B of a single-layer model on batch x, by autograd."""
    rule.attach(model)
    model(x)
    loss = rule.alignment_loss(model)
    clear_records(model)
    return torch.autograd.grad(loss, backward_kernels(model))[0], loss


def _align(model, rule, x, steps, lr, generator=None, callback=None):
    """Plain SGD on the alignment loss alone, over the backward kernels only."""
    optimizer = torch.optim.SGD(backward_kernels(model), lr=lr)
    rule.attach(model)
    for t in range(steps):
        model(x)
        loss = rule.alignment_loss(model, generator=generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        clear_records(model)
        if callback is not None:
            callback(t)


# --- primitives ---------------------------------------------------------------------


def test_primitives_equal_their_closed_forms():
    """§3's "Value (no biases)" column, in PyTorch layout (W, B: [out, in]; the spec's
    W = Wᵀ here, B̃ = Bᵀ)."""
    model = _layer()
    layer = model[0]
    x = _inputs()
    s = LayerSignals(layer, x)
    w, b = layer.weight.detach(), layer.backward_weight.detach()
    sigma = _second_moment(x)
    tol = 1e-12
    assert math.isclose(
        decay(s.forward_kernel, s.backward_kernel).item(),
        (w.norm() ** 2 + b.norm() ** 2).item(),
        rel_tol=tol,
    )
    assert math.isclose(
        self_alignment(s.forward_kernel, s.backward_kernel).item(),
        -torch.trace(w.T @ b).item(),
        rel_tol=tol,
    )
    assert math.isclose(
        amp(s.forward_projection, s.backward_projection).item(),
        -torch.trace(w @ sigma @ b.T).item(),
        rel_tol=tol,
    )
    assert math.isclose(
        sparse(s.forward_projection, s.backward_projection).item(),
        torch.trace(w @ sigma @ w.T + b @ sigma @ b.T).item(),
        rel_tol=tol,
    )
    null_closed = torch.trace(b.T @ w @ sigma @ w.T @ b) + torch.trace(
        w.T @ b @ sigma @ b.T @ w
    )
    assert math.isclose(
        null(s.forward_reconstruction, s.backward_reconstruction).item(),
        null_closed.item(),
        rel_tol=tol,
    )


def test_conv_reconstructions_are_adjoints_of_the_projections():
    """⟨conv(x, K), y⟩ = ⟨x, conv_transpose(y, K)⟩ for the layer's geometry, so the conv
    null and reconstruction-amp terms are the dense ones in disguise."""
    torch.manual_seed(2)
    model = convert_to_feedback(
        nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=False)).double()
    )
    layer = model[0]
    x = torch.randn(2, 3, 9, 8, dtype=F64)
    kernel = layer.backward_weight.detach()
    y = torch.randn_like(layer.project(x, kernel))
    left = (layer.project(x, kernel) * y).sum()
    right = (x * layer.transpose_project(y, kernel, x.shape)).sum()
    assert math.isclose(left.item(), right.item(), rel_tol=1e-12)


@pytest.mark.parametrize(
    "stride, padding, size, kernel",
    [(1, 1, (2, 2), 3), (2, 1, (4, 3), 3), (2, 0, (3, 3), 1), (1, 1, (6, 5), 3)],
)
def test_filter_gradient_on_few_and_many_positions_equals_autograds(
    stride, padding, size, kernel
):
    """The alignment losses' filter gradient (im2col and a matmul on outputs of at
    most FEW_POSITIONS positions, the library conv otherwise) equals autograd's."""
    torch.manual_seed(4)
    x = torch.randn(3, 5, *size, dtype=F64)
    weight = torch.randn(7, 5, kernel, kernel, dtype=F64, requires_grad=True)
    out = F.conv2d(x, weight, None, stride, padding)
    g = torch.randn_like(out)
    (reference,) = torch.autograd.grad(out, weight, g)
    ours = conv_filter_gradient(
        x, g, weight.detach(), (stride, stride), (padding, padding), (1, 1)
    )
    torch.testing.assert_close(ours, reference, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "stride, padding, size", [(1, 1, (7, 6)), (2, 1, (9, 8)), (2, 0, (8, 7))]
)
def test_conv_reconstruction_and_its_gradients_equal_conv_transpose(
    stride, padding, size
):
    """The reconstruction (formed as a conv's input gradient) and its gradients for y
    and K equal conv_transpose2d's, odd sizes (output padding) included."""
    torch.manual_seed(3)
    layer = convert_to_feedback(
        nn.Sequential(nn.Conv2d(3, 4, 3, stride=stride, padding=padding, bias=False))
    )[0].double()
    x = torch.randn(2, 3, *size, dtype=F64)
    y = torch.randn_like(layer.project(x, layer.weight.detach())).requires_grad_()
    kernel = torch.randn(4, 3, 3, 3, dtype=F64, requires_grad=True)
    ours = layer.transpose_project(y, kernel, x.shape)
    output_padding = tuple(
        x.shape[2 + i] - ((y.shape[2 + i] - 1) * stride - 2 * padding) - 3
        for i in range(2)
    )
    reference = F.conv_transpose2d(y, kernel, None, stride, padding, output_padding)
    torch.testing.assert_close(ours, reference, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(ours)
    ours_grads = torch.autograd.grad(ours, (y, kernel), g)
    reference_grads = torch.autograd.grad(reference, (y, kernel), g)
    for a, b in zip(ours_grads, reference_grads):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


# --- rule gradients -----------------------------------------------------------------


def test_rule_gradients_equal_the_closed_forms_of_section_4():
    """∂R/∂B (PyTorch layout: the transpose of §4's ∂R/∂B̃) for SA, AA, WM, IA, KP."""
    x = _inputs()
    sigma = _second_moment(x)
    a, be, ga = 0.3, 0.7, 0.2
    expected = {
        "symmetric": lambda w, b: 2 * a * b - be * w,
        "activation": lambda w, b: 2 * a * b @ sigma - be * w @ sigma,
        "mirror": lambda w, b: 2 * a * b - be * w @ sigma,
        "information": lambda w, b: (
            -a * w @ sigma + 2 * be * (w @ sigma @ w.T) @ b + 2 * ga * b
        ),
        "kolen_pollack": lambda w, b: 2 * a * b,
    }
    for name, closed_form in expected.items():
        coefficients = {"alpha": a, "beta": be, "gamma": ga}
        keep = ("alpha",) if name == "kolen_pollack" else ("alpha", "beta")
        keep += ("gamma",) if name == "information" else ()
        rule = make_rule(name, **{k: coefficients[k] for k in keep})
        model = _layer()
        grad, _ = _rule_gradient(rule, model, x)
        w, b = model[0].weight.detach(), model[0].backward_weight.detach()
        want = closed_form(w, b)
        assert (grad - want).abs().max() <= 1e-12 * want.abs().max(), name


def test_activation_alignment_gradient_by_finite_differences():
    """AA with β = 2α: ∂R/∂B̃ = 2αΣ_x(B̃ − W), checked against central differences of
    the loss itself (R is quadratic in B, so central differences are exact up to
    round-off: ~1e-16·R/h² relative)."""
    alpha = 0.25
    rule = make_rule("activation", alpha=alpha, beta=2 * alpha)
    model = _layer()
    x = _inputs()
    b = model[0].backward_weight
    w = model[0].weight.detach()
    closed = 2 * alpha * (b.detach() - w) @ _second_moment(x)  # PyTorch layout
    h = 1e-4
    numeric = torch.zeros_like(closed)
    rule.attach(model)
    for index in range(b.numel()):
        values = []
        for sign in (1, -1):
            with torch.no_grad():
                b.view(-1)[index] += sign * h
            model(x)
            values.append(rule.alignment_loss(model).item())
            with torch.no_grad():
                b.view(-1)[index] -= sign * h
        numeric.view(-1)[index] = (values[0] - values[1]) / (2 * h)
    assert (numeric - closed).abs().max() <= 1e-7 * closed.abs().max()


# --- the alignment loss trains B only ------------------------------------------------


def _small_convnet():
    torch.manual_seed(3)
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 3),
    ).double()


@pytest.mark.parametrize(
    "name", ["symmetric", "activation", "mirror", "information", "kolen_pollack"]
)
def test_alignment_loss_never_reaches_w_or_earlier_layers(name):
    model = convert_to_feedback(_small_convnet())
    rule = make_rule(name, weight_decay=1e-2, coefficient_scale=100.0)
    rule.attach(model)
    x = torch.randn(3, 2, 8, 8, dtype=F64, requires_grad=True)
    model(x)
    loss = rule.alignment_loss(model)
    others = [p for n, p in model.named_parameters() if "backward_weight" not in n]
    grads = torch.autograd.grad(
        loss, [x, *others, *backward_kernels(model)], allow_unused=True
    )
    for g in grads[: 1 + len(others)]:
        assert g is None or not g.any()
    assert all(g is not None and g.any() for g in grads[1 + len(others) :])
    # update_forward lets it reach W (and still not the input)
    rule = make_rule(name, weight_decay=1e-2, options={"update_forward": True})
    rule.attach(model)
    model(x)
    loss = rule.alignment_loss(model)
    grads = torch.autograd.grad(loss, [x, *forward_kernels(model)], allow_unused=True)
    assert grads[0] is None
    assert all(g is not None and g.any() for g in grads[1:])


# --- fixed points -------------------------------------------------------------------


def test_feedback_alignment_leaves_b_bit_identical_while_training():
    torch.manual_seed(4)
    model = convert_to_feedback(
        nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 3))
    )
    before = [b.detach().clone() for b in backward_kernels(model)]
    w_before = [w.detach().clone() for w in forward_kernels(model)]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    x, y = torch.randn(32, 10), torch.randint(0, 3, (32,))
    rule = make_rule("feedback")
    for step in range(5):
        out = train_step(model, rule, optimizer, x, y, step=step, weight_decay=1e-2)
        assert out["alignment_loss"] == 0.0
    for b, b0 in zip(backward_kernels(model), before):
        assert b.grad is None and torch.equal(b.detach(), b0)
    assert all(
        not torch.equal(w.detach(), w0)
        for w, w0 in zip(forward_kernels(model), w_before)
    )


def test_feedback_alignment_learns_and_aligns_the_top_layer():
    """§14: accuracy far above chance (1/4) and W of the output layer turning towards
    its fixed B (from ~84° to ~56° in this run; seeded, so deterministic on CPU)."""
    x, y = _teacher_data()
    model = _mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    rule = make_rule("feedback")
    top = "4"
    start = weight_angles(model)[top]
    for step in range(100):
        batch = slice((step % 4) * 64, (step % 4 + 1) * 64)
        result = train_step(model, rule, optimizer, x[batch], y[batch], step=step)
    assert result["accuracy"] > 0.8
    assert weight_angles(model)[top] < start - 15.0


def test_symmetric_alignment_contracts_b_minus_w_by_one_minus_2_eta_alpha():
    """β = 2α on a frozen layer: B − W ← (1 − 2ηα)(B − W) exactly, per SGD step."""
    alpha, lr = 0.05, 0.5
    model = _layer()
    w = model[0].weight.detach()
    distances = []
    _align(
        model,
        make_rule("symmetric", alpha=alpha, beta=2 * alpha),
        _inputs(),
        steps=20,
        lr=lr,
        callback=lambda t: distances.append(
            (model[0].backward_weight - w).norm().item()
        ),
    )
    ratios = [b / a for a, b in zip(distances, distances[1:])]
    assert all(math.isclose(r, 1 - 2 * lr * alpha, rel_tol=1e-12) for r in ratios)


def _mlp(seed=5):
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 4)
    )
    return convert_to_feedback(model, backward_init="match_forward")


def _teacher_data(n=256, seed=6):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 20, generator=g)
    y = (x @ torch.randn(20, 4, generator=g)).argmax(dim=1)
    return x, y


def test_symmetric_alignment_drives_angles_near_zero_in_training():
    x, y = _teacher_data()
    angles = {}
    for name in ("feedback", "symmetric"):
        model = _mlp()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.5)
        rule = (
            make_rule(name, alpha=2.0, beta=4.0)
            if name == "symmetric"
            else make_rule(name)
        )
        for step in range(60):
            batch = slice((step % 4) * 64, (step % 4 + 1) * 64)
            train_step(model, rule, optimizer, x[batch], y[batch], step=step)
        angles[name] = weight_angles(model)
    # B starts at ~90° from W; B − W contracts by ~sqrt(0.5) per step (heavy ball,
    # 2ηα = 0.4 above the critical (1 − sqrt(0.5))²); what is left is B's lag behind
    # the moving W, ~ W's change over the ~1 / (2ηα) steps of B's memory (< 1°).
    assert max(angles["symmetric"].values()) < 2.0
    assert min(angles["feedback"].values()) > 60.0


def test_kolen_pollack_with_equal_decay_shrinks_w_minus_b_geometrically():
    """2α = λ, plain SGD: W − B̃ ← (1 − ηλ)(W − B̃) at every step, task gradient and all."""
    weight_decay, lr = 0.05, 0.2
    model = _mlp().double()
    x, y = _teacher_data()
    x = x.double()
    rule = make_rule("kolen_pollack", weight_decay=weight_decay)
    assert rule.coefficients["alpha"].value == weight_decay / 2
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)

    def gaps():
        return [
            (layer.weight - layer.backward_weight).norm().item()
            for _, layer in feedback_layers(model)
        ]

    start = gaps()
    steps = 15
    for step in range(steps):
        train_step(model, rule, optimizer, x, y, step=step, weight_decay=weight_decay)
    factor = (1 - lr * weight_decay) ** steps
    for g0, g in zip(start, gaps()):
        assert math.isclose(g, g0 * factor, rel_tol=1e-10)
    with pytest.raises(ValueError, match="weight_decay"):
        make_rule("kolen_pollack")


def test_weight_mirror_aligns_with_noise_inputs_but_not_with_skewed_real_inputs():
    """Fixed point B̃ = (β/2α)Σ_x W: with N(0, 1) noise Σ_x ≈ I (aligned); with a fixed
    batch of offset, anisotropic inputs it is exactly the distorted Σ_x W."""
    alpha = 0.5
    rule = make_rule("mirror", alpha=alpha, beta=2 * alpha)
    x = _inputs(n=1024, offset=1.5)

    noise_rule = make_rule(
        "mirror", alpha=alpha, beta=2 * alpha, options={"input_distribution": "normal"}
    )
    model = _layer()
    start = weight_angles(model)["0"]
    _align(model, noise_rule, x, 150, 0.1, torch.Generator().manual_seed(0))
    # sampling error of Σ_x ≈ sqrt(12/1024) per step, averaged over ~10 steps: ~2°
    assert start > 60 and weight_angles(model)["0"] < 8.0

    model = _layer()
    _align(model, rule, x, 300, 0.1)
    w = model[0].weight.detach()
    fixed_point = w @ _second_moment(x)  # PyTorch layout of Σ_x W
    b = model[0].backward_weight.detach()
    assert (b - fixed_point).norm() <= 1e-8 * fixed_point.norm()
    assert angle(w, b) > 30.0


def _information_fixed_point(w, sigma, alpha, beta, gamma):
    """(α/2) Σ_x W (β Wᵀ Σ_x W + γ I)⁻¹ of §4, transposed to PyTorch layout."""
    inner = beta * w @ sigma @ w.T + gamma * torch.eye(w.shape[0], dtype=w.dtype)
    return (alpha / 2) * torch.linalg.solve(inner, w @ sigma)


def test_information_alignment_reaches_the_closed_form_fixed_point():
    alpha, beta, gamma = 2.0, 1.0, 0.5
    x = _inputs(n=256)
    model = _layer()
    w = model[0].weight.detach()
    sigma = _second_moment(x)
    # largest curvature of R in B: 2β λ_max(W Σ Wᵀ) + 2γ; step 1/L converges linearly
    curvature = 2 * beta * torch.linalg.eigvalsh(w @ sigma @ w.T) + 2 * gamma
    rule = make_rule("information", alpha=alpha, beta=beta, gamma=gamma)
    steps = math.ceil(30 * curvature.max() / curvature.min())
    _align(model, rule, x, steps, 1 / curvature.max().item())
    want = _information_fixed_point(w, sigma, alpha, beta, gamma)
    b = model[0].backward_weight.detach()
    assert (b - want).norm() <= 1e-9 * want.norm()


def test_information_alignment_with_noise_inputs_reaches_the_isotropic_fixed_point():
    """Noise N(0, σ²): the expected gradient vanishes at Σ_x = σ²I; the iterates
    fluctuate around it by the sampling error of Σ_x, averaged here over 200 steps."""
    alpha, beta, gamma, sigma2 = 2.0, 1.0, 0.5, 0.25
    rule = make_rule(
        "information",
        alpha=alpha,
        beta=beta,
        gamma=gamma,
        options={"input_distribution": "normal", "input_stddev": sigma2**0.5},
    )
    model = _layer()
    w = model[0].weight.detach()
    shape_only = torch.zeros(2048, 12, dtype=F64)
    iterates = []
    _align(
        model,
        rule,
        shape_only,
        400,
        0.2,
        torch.Generator().manual_seed(1),
        lambda t: (
            iterates.append(model[0].backward_weight.detach().clone())
            if t >= 200
            else None
        ),
    )
    mean = torch.stack(iterates).mean(dim=0)
    want = _information_fixed_point(
        w, sigma2 * torch.eye(12, dtype=F64), alpha, beta, gamma
    )
    assert (mean - want).norm() <= 0.02 * want.norm()
    assert angle(mean, want) < 1.0


# --- schedules ----------------------------------------------------------------------


def test_rate_schedule_delay_alternate_and_decay():
    alternate = RateSchedule(alternate_step_freq=2)
    assert [alternate(s) for s in range(4)] == [(0, 1), (1, 0), (1, 0), (0, 1)]
    delayed = RateSchedule(delay_epochs=1, alternate_step_freq=1)
    # during the delay every step aligns; afterwards task and alignment alternate
    assert [delayed(s, 2) for s in range(4)] == [(0, 1), (0, 1), (0, 1), (1, 0)]
    decaying = RateSchedule(constant_rate=False)
    assert decaying(4, 1) == (1.0, 1.0) and decaying(30, 1) == (0.1, 0.1)
    assert decaying(85, 1) == (1e-3, 1e-3)


def test_coefficient_schedules():
    assert CoefficientSchedule(2.0)(epoch=7.0) == 2.0
    window = CoefficientSchedule(1.0, start=0.25, stop=0.5)
    assert [window(e, 8) for e in (1.9, 2.0, 4.0, 4.1)] == [0.0, 1.0, 1.0, 0.0]
    with pytest.raises(ValueError, match="train_epochs"):
        window(1.0)
    linear = CoefficientSchedule(1.0, start=0.1, schedule_type="linear", rate=0.5)
    assert linear(3.0, 10) == pytest.approx(2.0)  # 1 + 0.5 · (3 − 1)
    exponential = CoefficientSchedule(1.0, schedule_type="exponential", rate=-1.0)
    assert exponential(2.0, 10) == pytest.approx(math.exp(-2.0))
    cyclic = CoefficientSchedule(0.0, schedule_type="linear", rate=1.0, cycle=4.0)
    # triangular: 0 at the cycle start, peak (half period · rate = 2) mid-cycle
    assert [cyclic(e, 100) for e in (0.0, 1.0, 2.0, 3.0, 4.0)] == pytest.approx(
        [0.0, 1.0, 2.0, 1.0, 0.0]
    )


def test_rule_defaults_and_scaling():
    assert make_rule("information").coefficient_values() == {
        "alpha": 2e-3,
        "beta": 1e-3,
        "gamma": 1e-3,
    }
    scaled = make_rule("mirror", coefficient_scale=50).coefficient_values()
    assert scaled == pytest.approx({"alpha": 0.05, "beta": 0.05})
    assert make_rule("symmetric", alpha=0.1).coefficient_values()["beta"] == 2e-3
    with pytest.raises(ValueError, match="takes no coefficient"):
        make_rule("feedback", alpha=1.0)
    with pytest.raises(ValueError, match="unknown learning rule"):
        make_rule("hebbian")
    with pytest.raises(ValueError, match="input_distribution"):
        AlignmentOptions(input_distribution="laplace")


def test_learning_rate_warmup_and_steps():
    kwargs = {"constant_lr": False, "warmup_epochs": 5}
    assert learning_rate(2.5, 0.1, **kwargs) == pytest.approx(0.05)
    assert learning_rate(10, 0.1, **kwargs) == pytest.approx(0.1)
    assert learning_rate(65, 0.1, **kwargs) == pytest.approx(1e-3)
    assert learning_rate(65, 0.1, alternate_step_freq=1, **kwargs) == pytest.approx(
        0.01
    )
    assert learning_rate(3, 0.1, 1024, rescale_lr=True) == pytest.approx(0.4)
    # the task loss's schedule starts after a delay; the alignment loss's has no
    # warm-up and drops in step with the task loss's
    assert learning_rate(12.5, 0.1, delay_epochs=10, **kwargs) == pytest.approx(0.05)
    offset = {"delay_epochs_offset": 10, **kwargs}
    assert learning_rate(1, 0.1, **offset) == pytest.approx(0.1)
    assert learning_rate(35, 0.1, **offset) == pytest.approx(0.1)
    assert learning_rate(45, 0.1, **offset) == pytest.approx(0.01)


def test_learning_rate_drops_of_a_constant_rate():
    drops = {"drop_epochs": (4, 5)}
    assert learning_rate(3.99, 0.1, **drops) == pytest.approx(0.1)
    assert learning_rate(4.0, 0.1, **drops) == pytest.approx(0.01)
    assert learning_rate(5.5, 0.1, **drops) == pytest.approx(1e-3)
    # alternating one alignment step per task step doubles the epochs of the run
    assert learning_rate(7.9, 0.1, alternate_step_freq=1, **drops) == pytest.approx(0.1)
    assert learning_rate(8.0, 0.1, alternate_step_freq=1, **drops) == pytest.approx(
        0.01
    )
    with pytest.raises(ValueError, match="drop_epochs go with constant_lr"):
        learning_rate(1, 0.1, constant_lr=False, **drops)


# --- noisy updates ------------------------------------------------------------------


def _noisy_run(rule_name, variance, steps=3):
    model = _mlp(seed=9)
    x, y = _teacher_data()
    rule = make_rule(rule_name, weight_decay=1e-3)
    base = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    optimizer = NoisyUpdates(
        base,
        variance,
        params=noise_targets(model, rule_name),
        generator=torch.Generator().manual_seed(0),
    )
    for step in range(steps):
        train_step(model, rule, optimizer, x, y, step=step, weight_decay=1e-3)
    return model


@pytest.mark.parametrize("name", ["feedback", "kolen_pollack"])
def test_zero_noise_equals_the_noiseless_run_bit_for_bit(name):
    plain = _mlp(seed=9)
    x, y = _teacher_data()
    rule = make_rule(name, weight_decay=1e-3)
    optimizer = torch.optim.SGD(plain.parameters(), lr=0.1, momentum=0.9)
    for step in range(3):
        train_step(plain, rule, optimizer, x, y, step=step, weight_decay=1e-3)
    noisy = _noisy_run(name, 0.0)
    for p, q in zip(plain.parameters(), noisy.parameters()):
        assert torch.equal(p, q)


def test_kolen_pollack_noise_reaches_backward_kernels_only_with_the_set_variance():
    plain = _noisy_run("kolen_pollack", 0.0, steps=1)
    noisy = _noisy_run("kolen_pollack", 0.5, steps=1)
    noises = []
    for (name, p), q in zip(plain.named_parameters(), noisy.parameters()):
        if name.endswith("backward_weight"):
            noises.append(((q - p).detach() / 0.1).flatten())  # lr · ξ
        else:
            assert torch.equal(p, q), name
    noise = torch.cat(noises)
    # 1,792 draws of ξ ~ N(0, 0.5): the sample variance has a relative standard error
    # sqrt(2 / 1792) = 3.3 %; 15 % is 4.5 standard errors
    assert abs(noise.var().item() / 0.5 - 1) < 0.15
    fa_noisy = _noisy_run("feedback", 0.5, steps=1)
    fa_plain = _noisy_run("feedback", 0.0, steps=1)
    assert all(
        not torch.equal(p, q)
        for p, q in zip(fa_plain.parameters(), fa_noisy.parameters())
    )


# --- metrics ------------------------------------------------------------------------


def test_probe_angles_are_zero_when_b_equals_w_and_true_gradient_matches():
    torch.manual_seed(10)
    model = convert_to_feedback(_small_convnet(), backward_init="copy")
    x, y = torch.randn(4, 2, 8, 8, dtype=F64), torch.tensor([0, 1, 2, 0])
    probes = layer_probes(model, x, y, true_gradient=True)
    assert set(probes) == {name for name, _ in feedback_layers(model)}
    for entry in probes.values():
        for key in ("projection_angle", "gradient_angle", "true_gradient_angle"):
            assert entry[key] < 1e-4, (key, entry)
    assert all(a < 1e-4 for a in weight_angles(model).values())
    # with random B the last layer's dW is still exact (its dy comes from the loss)
    model = convert_to_feedback(_small_convnet())
    probes = layer_probes(model, x, y, true_gradient=True)
    names = list(probes)
    assert probes[names[-1]]["true_gradient_angle"] < 1e-4
    assert probes[names[0]]["true_gradient_angle"] > 1.0
    assert probes[names[-1]]["gradient_angle"] > 1.0
    assert all(b.grad is None for b in backward_kernels(model))


def test_every_rule_trains_a_small_mlp_with_finite_loss():
    x, y = _teacher_data()
    for name in RULES:
        model = _mlp()
        optimizer = torch.optim.SGD(
            model.parameters(), lr=0.05, momentum=0.9, nesterov=True
        )
        rule = make_rule(name, weight_decay=1e-4, coefficient_scale=50)
        first = train_step(model, rule, optimizer, x, y, step=0, weight_decay=1e-4)
        for step in range(1, 30):
            last = train_step(
                model, rule, optimizer, x, y, step=step, weight_decay=1e-4
            )
        assert last["finite"] and last["task_loss"] < first["task_loss"], name
    # the two-optimizer path (separate alignment optimizer) keeps B out of the task step
    model = _mlp()
    rule = make_rule("symmetric", alpha=5.0, beta=10.0)  # 2ηα = 0.5 per step
    forward_params = [p for n, p in model.named_parameters() if "backward" not in n]
    main = torch.optim.SGD(forward_params, lr=0.05)
    aligner = torch.optim.SGD(backward_kernels(model), lr=0.05)
    results = [
        train_step(model, rule, main, x, y, step=step, alignment_optimizer=aligner)
        for step in range(40)
    ]
    assert max(weight_angles(model).values()) < 2.0
    assert results[-1]["task_loss"] < results[0]["task_loss"]
