"""Dense and conv layers with a separate backward weight (credit_assignment.md §2, §13).

The forward pass uses the forward weight W; the signal sent to the layer below is
computed with the backward weight B instead of W. B is stored in W's layout (PyTorch
``[out, in]`` dense, ``[out, in, kh, kw]`` conv), so that B == W is exact backprop; it
is the spec's B̃ (and for dense layers literally the original's ``backward_kernel``):

- dense: forward x Wᵀ, dx = dy B, dW = dyᵀ x;
- conv: forward conv2d(x, W), dx = conv2d_transpose(dy, B), dW = the usual filter
  gradient;
- B receives no task gradient, except under Kolen-Pollack (``tie_grad``), where it
  receives exactly W's.

Only the kernel product is a custom autograd Function: biases, BatchNorm, activations,
pooling and residual additions around it stay ordinary autograd.

A layer's ``mode`` says which backward it uses (set by the learning rule):
``backprop`` (plain ops, B unused), ``feedback`` (B), ``kolen_pollack`` (B, tied
gradient) or ``sign_symmetry`` (sign(W), B unused).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

FEEDBACK_MODES = ("backprop", "feedback", "kolen_pollack", "sign_symmetry")
BACKWARD_INITS = ("paper", "lecun_normal", "glorot_uniform", "match_forward", "copy")
# TF's truncated normal (cut at 2 std) has std 0.87962566 of the untruncated one; TF
# divides by it so that the truncated draw has the requested variance.
_TRUNCATED_NORMAL_STD = 0.87962566103423978
DENSE_PAPER_STD = 0.01


def _in_dtype_of(reference: torch.Tensor, *tensors: torch.Tensor):
    """Under autocast the output gradient may be half precision while x and B are not;
    compute the backward in the gradient's dtype (autograd casts the results back)."""
    return [t if t.dtype == reference.dtype else t.to(reference.dtype) for t in tensors]


class FeedbackLinearFunction(torch.autograd.Function):
    """y = x Wᵀ with dx = dy B (B in W's layout); dB = dW when ``tie_grad``, else none."""

    @staticmethod
    def forward(ctx, x, weight, backward_weight, tie_grad: bool):
        if weight.shape != backward_weight.shape:
            raise ValueError(
                f"backward weight shape {tuple(backward_weight.shape)} differs from "
                f"the forward weight's {tuple(weight.shape)}"
            )
        ctx.save_for_backward(x, backward_weight)
        ctx.tie_grad = bool(tie_grad)
        return F.linear(x, weight)

    @staticmethod
    def backward(ctx, grad_output):
        x, backward_weight = _in_dtype_of(grad_output, *ctx.saved_tensors)
        need_x, need_w, need_b, _ = ctx.needs_input_grad
        grad_x = grad_w = grad_b = None
        if need_x:
            grad_x = grad_output @ backward_weight
        if need_w or (ctx.tie_grad and need_b):
            out_features, in_features = backward_weight.shape
            dy = grad_output.reshape(-1, out_features)
            grad_w = dy.t() @ x.reshape(-1, in_features)
            assert grad_w.shape == backward_weight.shape
        if ctx.tie_grad and need_b:
            grad_b = grad_w
        return grad_x, (grad_w if need_w else None), grad_b, None


def _conv_backward(grad_output, x, kernel, geometry, mask):
    """``aten.convolution_backward`` of conv2d(x, kernel) with ``geometry`` (stride,
    padding, dilation); ``mask`` picks the input, kernel and bias gradients. x and
    kernel are read only for their shapes where their gradients are not asked for."""
    stride, padding, dilation = (_pair(v) for v in geometry)
    return torch.ops.aten.convolution_backward(
        grad_output, x, kernel, None, stride, padding, dilation, False, [0, 0], 1, mask
    )


class FeedbackConv2dFunction(torch.autograd.Function):
    """conv2d(x, W) with dx = conv2d_transpose(dy, B); dB = dW when ``tie_grad``."""

    @staticmethod
    def forward(
        ctx, x, weight, backward_weight, stride, padding, dilation, tie_grad: bool
    ):
        if weight.shape != backward_weight.shape:
            raise ValueError(
                f"backward weight shape {tuple(backward_weight.shape)} differs from "
                f"the forward weight's {tuple(weight.shape)}"
            )
        ctx.save_for_backward(x, backward_weight)
        ctx.geometry = (stride, padding, dilation)
        ctx.tie_grad = bool(tie_grad)
        return F.conv2d(x, weight, None, stride, padding, dilation)

    @staticmethod
    def backward(ctx, grad_output):
        x, backward_weight = _in_dtype_of(grad_output, *ctx.saved_tensors)
        stride, padding, dilation = ctx.geometry
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        want_w = need_w or (ctx.tie_grad and need_b)
        grad_x = grad_w = grad_b = None
        if need_x or want_w:
            # One call for both, as plain autograd makes it (with B in W's place):
            # the same kernels bit for bit, and cheaper than conv2d_input plus
            # conv2d_weight, which repeat the call's set-up.
            grad_x, grad_w, _ = _conv_backward(
                grad_output,
                x,
                backward_weight,
                (stride, padding, dilation),
                (need_x, want_w, False),
            )
            assert grad_x is None or grad_x.shape == x.shape
            assert grad_w is None or grad_w.shape == backward_weight.shape
        if ctx.tie_grad and need_b:
            grad_b = grad_w
        return grad_x, (grad_w if need_w else None), grad_b, None, None, None, None


# Outputs of at most this many positions per example take the filter gradient as im2col
# and one matmul: oneDNN's own is then several times the forward conv's cost (ResNet-18's
# last stage at 64 x 64 inputs, 2 x 2 outputs, 512 x 512 x 3 x 3: 14 ms against 2 ms on
# one core), and from 16 positions on it is as fast or faster.
FEW_POSITIONS = 4


def conv_filter_gradient(x, grad_output, kernel, stride, padding, dilation):
    """The gradient of ⟨grad_output, conv2d(x, K)⟩ with respect to K (``kernel`` gives
    K's shape); the alignment losses' kernel gradients (the task's stay autograd's)."""
    n, out_channels, height, width = grad_output.shape
    if x.device.type == "cpu" and height * width <= FEW_POSITIONS:
        columns = F.unfold(x, kernel.shape[-2:], dilation, padding, stride)
        grad = grad_output.reshape(n, out_channels, -1).transpose(0, 1)
        return (
            grad.reshape(out_channels, -1)
            @ columns.transpose(1, 2).reshape(-1, columns.shape[1])
        ).reshape(kernel.shape)
    return _conv_backward(
        grad_output, x, kernel, (stride, padding, dilation), (False, True, False)
    )[1]


class ConvAdjointFunction(torch.autograd.Function):
    """conv2d_transpose(y, K) onto a given input shape, formed as the input gradient of
    conv2d(·, K) (oneDNN's backward-data: on the CPU 10-30 % faster than
    conv_transpose2d forward and backward); its gradients are conv2d(g, K) for y and
    the filter gradient of a conv with input g and output gradient y for K."""

    @staticmethod
    def forward(ctx, y, kernel, input_shape, stride, padding, dilation):
        ctx.save_for_backward(y, kernel)
        ctx.geometry = (stride, padding, dilation)
        shape_only = y.new_empty(input_shape)
        return _conv_backward(
            y, shape_only, kernel, ctx.geometry, (True, False, False)
        )[0]

    @staticmethod
    def backward(ctx, grad):
        y, kernel = ctx.saved_tensors
        (grad,) = _in_dtype_of(y, grad)
        stride, padding, dilation = ctx.geometry
        need_y, need_kernel = ctx.needs_input_grad[:2]
        grad_y = (
            F.conv2d(grad, kernel, None, stride, padding, dilation) if need_y else None
        )
        grad_kernel = None
        if need_kernel:
            grad_kernel = conv_filter_gradient(
                grad, y, kernel, stride, padding, dilation
            )
        return grad_y, grad_kernel, None, None, None, None


class _FeedbackMixin:
    """What dense and conv feedback layers share: B, the mode, and the records that the
    alignment loss and the metrics read after a forward pass."""

    def _init_feedback(self) -> None:
        self.backward_weight = nn.Parameter(torch.empty_like(self.weight))
        self.mode = "feedback"
        # sign symmetry: sign(W) times the layer's mean |W| instead of sign(W) alone
        self.sign_symmetry_scaled = False
        # "relu" when the layer is followed by a ReLU (through BN): the original's
        # ``alignment_relu``, used only if a rule asks for activations on projections.
        self.alignment_activation: str | None = None
        self.record_input = False
        self.record_output_grad = False
        self.recorded_input: torch.Tensor | None = None
        self.recorded_output_grad: torch.Tensor | None = None

    def set_mode(self, mode: str) -> None:
        if mode not in FEEDBACK_MODES:
            raise ValueError(
                f"unknown feedback mode {mode!r}; choose one of {FEEDBACK_MODES}"
            )
        self.mode = mode

    def effective_backward_weight(self) -> torch.Tensor:
        """The kernel the backward pass uses now (W itself under backprop)."""
        if self.mode == "backprop":
            return self.weight
        if self.mode == "sign_symmetry":
            weight = self.weight.detach()
            if self.sign_symmetry_scaled:
                return torch.sign(weight) * weight.abs().mean()
            return torch.sign(weight)
        return self.backward_weight

    def clear_records(self) -> None:
        self.recorded_input = None
        self.recorded_output_grad = None

    def _record(self, x: torch.Tensor, out: torch.Tensor) -> None:
        if self.record_input:
            self.recorded_input = x.detach()
        if self.record_output_grad and out.requires_grad:

            def keep(grad: torch.Tensor) -> None:
                self.recorded_output_grad = grad.detach()

            out.register_hook(keep)

    def _kernel_product(self, x, custom, plain):
        if self.mode == "backprop":
            out = plain(x, self.weight)
        else:
            out = custom(
                x,
                self.weight,
                self.effective_backward_weight(),
                self.mode == "kolen_pollack",
            )
        self._record(x, out)
        return out


class FeedbackLinear(_FeedbackMixin, nn.Linear):
    """nn.Linear whose backward pass uses ``backward_weight`` (see the module doc)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, **kw):
        super().__init__(in_features, out_features, bias=bias, **kw)
        self._init_feedback()

    def project(self, x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
        """x Kᵀ: the forward projection with kernel K (W or B), no bias."""
        return F.linear(x, kernel)

    def transpose_project(
        self, y: torch.Tensor, kernel: torch.Tensor, input_shape: torch.Size
    ) -> torch.Tensor:
        """y K: the adjoint of ``project`` (the original's reconstruction)."""
        return y @ kernel

    def kernel_gradient(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """yᵀx: the gradient of ⟨y, project(x, K)⟩ with respect to K."""
        (x,) = _in_dtype_of(y, x)
        return y.reshape(-1, self.out_features).t() @ x.reshape(-1, self.in_features)

    def add_bias(self, y: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return y + bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self._kernel_product(
            x,
            lambda *a: FeedbackLinearFunction.apply(*a),
            lambda x_, w: F.linear(x_, w),
        )
        return out if self.bias is None else out + self.bias


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


class FeedbackConv2d(_FeedbackMixin, nn.Conv2d):
    """nn.Conv2d (groups = 1) whose backward pass uses ``backward_weight``.

    Symmetric zero padding is passed to the convolution; 'same' padding that needs an
    asymmetric border and non-zero padding modes pad the input first (ordinary
    autograd), so the recorded input is then the padded one.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, **kw):
        super().__init__(in_channels, out_channels, kernel_size, **kw)
        if self.groups != 1:
            raise ValueError(
                f"FeedbackConv2d supports groups=1 only, got groups={self.groups}"
            )
        self._init_feedback()
        self._set_padding_plan()

    def _set_padding_plan(self) -> None:
        """Split the padding into an explicit F.pad (or none) and the conv's own."""
        kernel = _pair(self.kernel_size)
        dilation = _pair(self.dilation)
        if isinstance(self.padding, str):
            if self.padding == "valid":
                pads = [(0, 0), (0, 0)]
            else:  # 'same' (stride 1): PyTorch puts the odd pixel after
                pads = []
                for k, d in zip(kernel, dilation):
                    total = d * (k - 1)
                    pads.append((total // 2, total - total // 2))
        else:
            pads = [(p, p) for p in _pair(self.padding)]
        symmetric = all(before == after for before, after in pads)
        if symmetric and self.padding_mode == "zeros":
            self._explicit_pad = None
            self._conv_padding = (pads[0][0], pads[1][0])
        else:
            # F.pad order: (left, right, top, bottom)
            self._explicit_pad = (pads[1][0], pads[1][1], pads[0][0], pads[0][1])
            self._conv_padding = (0, 0)

    def _pad_input(self, x: torch.Tensor) -> torch.Tensor:
        if self._explicit_pad is None:
            return x
        mode = "constant" if self.padding_mode == "zeros" else self.padding_mode
        return F.pad(x, self._explicit_pad, mode=mode)

    def project(self, x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
        """conv2d(x, K) with this layer's geometry; x is the recorded (padded) input."""
        return F.conv2d(x, kernel, None, self.stride, self._conv_padding, self.dilation)

    def transpose_project(
        self, y: torch.Tensor, kernel: torch.Tensor, input_shape: torch.Size
    ) -> torch.Tensor:
        """conv2d_transpose(y, K) back to the input's shape: the adjoint of ``project``."""
        return ConvAdjointFunction.apply(
            y,
            kernel,
            tuple(input_shape),
            _pair(self.stride),
            _pair(self._conv_padding),
            _pair(self.dilation),
        )

    def kernel_gradient(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The gradient of ⟨y, project(x, K)⟩ with respect to K (the filter gradient
        of a conv with input x and output gradient y)."""
        x, shape_only = _in_dtype_of(y, x, self.weight.detach())
        return conv_filter_gradient(
            x,
            y,
            shape_only,
            _pair(self.stride),
            _pair(self._conv_padding),
            _pair(self.dilation),
        )

    def add_bias(self, y: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return y + bias.view(1, -1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        geometry = (self.stride, self._conv_padding, self.dilation)
        out = self._kernel_product(
            self._pad_input(x),
            lambda x_, w, b, tie: FeedbackConv2dFunction.apply(
                x_, w, b, *geometry, tie
            ),
            lambda x_, w: F.conv2d(x_, w, None, *geometry),
        )
        return out if self.bias is None else self.add_bias(out, self.bias)


FEEDBACK_LAYERS = (FeedbackLinear, FeedbackConv2d)


def feedback_layers(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """(name, layer) of every feedback layer, in module order."""
    for name, module in model.named_modules():
        if isinstance(module, FEEDBACK_LAYERS):
            yield name, module


def set_feedback_mode(model: nn.Module, mode: str) -> None:
    layers = [layer for _, layer in feedback_layers(model)]
    if not layers:
        raise ValueError(
            "the model has no feedback layers; convert it first with "
            "weightspace.credit.layers.convert_to_feedback"
        )
    for layer in layers:
        layer.set_mode(mode)


def clear_records(model: nn.Module) -> None:
    for _, layer in feedback_layers(model):
        layer.clear_records()


def forward_kernels(model: nn.Module) -> list[nn.Parameter]:
    return [layer.weight for _, layer in feedback_layers(model)]


def backward_kernels(model: nn.Module) -> list[nn.Parameter]:
    return [layer.backward_weight for _, layer in feedback_layers(model)]


# --- initialisation -----------------------------------------------------------------


def lecun_normal_(
    weight: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """TF ``variance_scaling_initializer()``: truncated normal, variance 1 / fan_in."""
    fan_in, _ = nn.init._calculate_fan_in_and_fan_out(weight)
    std = math.sqrt(1.0 / fan_in) / _TRUNCATED_NORMAL_STD
    return nn.init.trunc_normal_(
        weight, 0.0, std, -2.0 * std, 2.0 * std, generator=generator
    )


def glorot_uniform_(
    weight: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """TF's default dense initializer (the v2 ResNets' classifier)."""
    return nn.init.xavier_uniform_(weight, generator=generator)


def paper_init_(
    layer: nn.Module, weight: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """The v1 ResNets' initializers (§7): conv LeCun-normal, dense N(0, 0.01²)."""
    if isinstance(layer, nn.Conv2d):
        return lecun_normal_(weight, generator)
    return nn.init.normal_(weight, 0.0, DENSE_PAPER_STD, generator=generator)


@torch.no_grad()
def init_backward_weight(
    layer: nn.Module,
    scheme: str | Callable[[nn.Module, torch.Tensor], object] = "paper",
    generator: torch.Generator | None = None,
) -> None:
    """Draw B independently of W ("same initializer, independent draw", §2).

    ``paper``: the v1 ResNet initializers; ``lecun_normal``; ``glorot_uniform``;
    ``match_forward``: a normal draw with W's empirical standard deviation (the scale
    of whatever initialised W); ``copy``: B = W (starts at exact backprop); or a
    callable ``scheme(layer, tensor)`` that fills the tensor in place.
    """
    target = layer.backward_weight
    if callable(scheme):
        scheme(layer, target)
    elif scheme == "paper":
        paper_init_(layer, target, generator)
    elif scheme == "lecun_normal":
        lecun_normal_(target, generator)
    elif scheme == "glorot_uniform":
        glorot_uniform_(target, generator)
    elif scheme == "match_forward":
        std = layer.weight.detach().std().item()
        nn.init.normal_(target, 0.0, std, generator=generator)
    elif scheme == "copy":
        target.copy_(layer.weight.detach())
    else:
        raise ValueError(
            f"unknown backward init {scheme!r}; choose one of {BACKWARD_INITS} "
            "or pass a callable(layer, tensor)"
        )


# --- conversion ---------------------------------------------------------------------


def _feedback_copy(module: nn.Module, name: str) -> nn.Module:
    """A feedback layer that shares ``module``'s parameters (so an existing optimizer
    over them stays valid)."""
    device, dtype = module.weight.device, module.weight.dtype
    if isinstance(module, nn.Linear):
        layer = FeedbackLinear(
            module.in_features,
            module.out_features,
            bias=module.bias is not None,
            device="meta",
        )
    else:
        if module.groups != 1:
            raise ValueError(
                f"module {name!r} is a grouped convolution (groups={module.groups}); "
                "separate backward weights are implemented for groups=1 only: use a "
                "model without grouped or depthwise convolutions"
            )
        layer = FeedbackConv2d(
            module.in_channels,
            module.out_channels,
            module.kernel_size,
            stride=module.stride,
            padding=module.padding,
            dilation=module.dilation,
            bias=module.bias is not None,
            padding_mode=module.padding_mode,
            device="meta",
        )
    layer.weight = module.weight
    layer.bias = module.bias
    layer.backward_weight = nn.Parameter(
        torch.empty(module.weight.shape, device=device, dtype=dtype)
    )
    layer.alignment_activation = getattr(module, "alignment_activation", None)
    layer.train(module.training)
    return layer


def convert_to_feedback(
    model: nn.Module,
    backward_init: str | Callable = "paper",
    generator: torch.Generator | None = None,
    inplace: bool = False,
) -> nn.Module:
    """Replace every nn.Linear and nn.Conv2d of ``model`` by a feedback layer.

    Forward weights and biases are kept (shared, not copied, when ``inplace``); B is
    drawn with ``backward_init`` (see ``init_backward_weight``). Layers start in
    ``feedback`` mode; a learning rule sets the mode it needs. Grouped convolutions,
    lazy and other layer types with kernels (Conv1d, ConvTranspose2d) are refused.
    Returns the converted model (``model`` itself when ``inplace``).
    """
    if not inplace:
        model = copy.deepcopy(model)
    replacements = []
    for name, module in model.named_modules():
        if isinstance(module, FEEDBACK_LAYERS):
            continue
        if isinstance(module, nn.modules.lazy.LazyModuleMixin):
            raise ValueError(
                f"module {name!r} is a lazy layer; run one forward pass to materialise "
                "it before converting"
            )
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            replacements.append((name, module))
        elif isinstance(module, (nn.Conv1d, nn.Conv3d, nn.ConvTranspose2d)):
            raise ValueError(
                f"module {name!r} ({type(module).__name__}) has no feedback version; "
                "only nn.Linear and nn.Conv2d are converted"
            )
    if not replacements and not any(True for _ in feedback_layers(model)):
        raise ValueError("the model has no nn.Linear or nn.Conv2d layer to convert")
    for name, module in replacements:
        if not name:
            raise ValueError(
                "the model itself is a single layer; wrap it in nn.Sequential first"
            )
        layer = _feedback_copy(module, name)
        init_backward_weight(layer, backward_init, generator)
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, layer)
    return model
