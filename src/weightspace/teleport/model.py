"""Teleport an ordinary torch.nn.Module (teleport.md §1, §2, §5).

The model is traced with torch.fx, so functional operations in ``forward`` (``+``,
``torch.cat``, ``torch.flatten``, ``F.relu``), a module called twice and skip inputs in
any order are seen exactly. Every tensor in the graph has a basis: one scalar per
feature (channel) along dim 1. Neuron layers (Linear, Conv2d, ConvTranspose2d,
BatchNorm) own a CoB block, except the last one, whose output keeps the basis of ones;
everything else passes its input's basis on (a flatten repeats each channel's scalar
over its positions, a concatenation concatenates).

Teleporting rescales the neuron layers' parameters in place (optimizers and their state
stay valid) and writes the scalars the forward pass needs into buffers (so they survive
``state_dict``): an activation or max pool computes tau * f(x / tau), a BatchNorm sees
x / tau_prev, an addition rescales its second operand to the basis of its first.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from weightspace.teleport.cob import sample_cob

NEURON_MODULES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm1d)
NEURON_MODULES += (nn.BatchNorm2d,)
# Elementwise per feature but not linear: teleported as tau * f(x / tau).
SCALED_MODULES = (
    nn.ReLU,
    nn.LeakyReLU,
    nn.Tanh,
    nn.Sigmoid,
    nn.ELU,
    nn.GELU,
    nn.Softplus,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.AdaptiveMaxPool2d,
)
SCALED_FUNCTIONS = {
    F.relu,
    torch.relu,
    F.leaky_relu,
    torch.tanh,
    F.tanh,
    torch.sigmoid,
    F.sigmoid,
    F.elu,
    F.gelu,
    F.max_pool2d,
    F.adaptive_max_pool2d,
}
SCALED_METHODS = {"relu", "relu_", "tanh", "sigmoid"}
# Linear in each feature: commute with a per-feature scaling.
PASS_MODULES = (
    nn.Identity,
    nn.Dropout,
    nn.Dropout2d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
)
PASS_FUNCTIONS = {F.dropout, F.avg_pool2d, F.adaptive_avg_pool2d}
RESHAPE_FUNCTIONS = {torch.flatten, torch.reshape}
RESHAPE_METHODS = {"view", "reshape", "flatten", "contiguous"}
ADD_FUNCTIONS = {operator.add, torch.add}
CAT_FUNCTIONS = {torch.cat, torch.concat}


class TeleportError(ValueError):
    """The model holds an operation whose teleportation is not defined here."""


@dataclass
class _Neuron:
    node: fx.Node
    module: nn.Module
    start: int | None  # offset of its CoB block, None for the last neuron layer
    size: int


def _out_size(module: nn.Module) -> int:
    if isinstance(module, nn.Linear):
        return module.out_features
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return module.num_features
    return module.out_channels


def _check_neuron(name: str, module: nn.Module) -> None:
    if getattr(module, "groups", 1) != 1:
        raise TeleportError(
            f"{name}: grouped convolutions (groups={module.groups}) cannot be teleported"
        )


class TeleportableModel(nn.Module):
    """A model whose weights can be teleported without changing its function.

    ``example_input`` (any batch size >= 2, so that BatchNorm can run) fixes the shapes
    the graph is analysed with.
    """

    def __init__(self, model: nn.Module, example_input: torch.Tensor):
        super().__init__()
        self.network = fx.symbolic_trace(model)
        was_training = self.network.training
        self.network.eval()
        with torch.no_grad():
            ShapeProp(self.network).propagate(example_input)
        self.network.train(was_training)
        self._neurons = self._find_neurons()
        self.cob_size = sum(n.size for n in self._neurons if n.start is not None)
        self.register_buffer("cob", torch.ones(self.cob_size, dtype=torch.float64))
        self._scalers: dict[str, tuple[fx.Node, str]] = {}
        self._insert_scalers()
        self.network.recompile()
        # what each node does to the basis, once: teleport() walks the graph twice
        self._kinds = {n: self._kind_or_inserted(n) for n in self.network.graph.nodes}
        self._write_activation_cob(self._bases(self.cob.cpu()))

    # -- graph analysis ----------------------------------------------------------------
    def _module(self, node: fx.Node) -> nn.Module:
        return self.network.get_submodule(node.target)

    def _find_neurons(self) -> list[_Neuron]:
        found = []
        for node in self.network.graph.nodes:
            if node.op == "call_module":
                module = self._module(node)
                if isinstance(module, NEURON_MODULES):
                    _check_neuron(node.target, module)
                    found.append(_Neuron(node, module, 0, _out_size(module)))
        if not found:
            raise TeleportError("the model has no Linear, Conv or BatchNorm layer")
        offset = 0
        for neuron in found[:-1]:
            neuron.start = offset
            offset += neuron.size
        found[-1].start = None
        return found

    def _kind(self, node: fx.Node) -> str:
        """What the node does to the basis: neuron, scaled, pass, reshape, add, cat,
        input, output or none (a value that is not a tensor)."""
        if node.op == "placeholder":
            return "input"
        if node.op == "output":
            return "output"
        if node.op == "get_attr":
            return "none"
        if "tensor_meta" not in node.meta:
            return "none"
        if node.op == "call_module":
            module = self._module(node)
            if isinstance(module, NEURON_MODULES):
                return "neuron"
            if isinstance(module, SCALED_MODULES):
                return "scaled"
            if isinstance(module, PASS_MODULES):
                return "pass"
            if isinstance(module, nn.Flatten):
                return "reshape"
            raise TeleportError(
                f"module {node.target} ({type(module).__name__}) cannot be teleported"
            )
        target = node.target
        if node.op == "call_function":
            if target in SCALED_FUNCTIONS:
                return "scaled"
            if target in PASS_FUNCTIONS:
                return "pass"
            if target in RESHAPE_FUNCTIONS:
                return "reshape"
            if target in ADD_FUNCTIONS and all(
                isinstance(a, fx.Node) for a in node.args[:2]
            ):
                return "add"
            if target in CAT_FUNCTIONS:
                return "cat"
            if target in (operator.mul, operator.truediv) and not any(
                isinstance(a, fx.Node) for a in node.args[1:]
            ):
                return "pass"  # scaling by a constant commutes
        if node.op == "call_method":
            if target in SCALED_METHODS:
                return "scaled"
            if target in RESHAPE_METHODS:
                return "reshape"
        raise TeleportError(
            f"operation {node.format_node()} cannot be teleported (not linear per "
            "feature, not an activation and not a neuron layer)"
        )

    @staticmethod
    def _first_tensor(node: fx.Node) -> fx.Node:
        return next(a for a in node.args if isinstance(a, fx.Node))

    @classmethod
    def _shape(cls, node: fx.Node) -> torch.Size:
        """The traced shape; an inserted scaling has the shape of what it scales."""
        while "tensor_meta" not in node.meta:
            node = cls._first_tensor(node)
        return node.meta["tensor_meta"].shape

    def _insert_scalers(self) -> None:
        """Buffers (ones for now) and the operations that apply them in forward."""
        graph = self.network.graph
        for node in list(graph.nodes):
            kind = self._kind(node)
            if kind == "scaled" or (
                kind == "neuron"
                and isinstance(self._module(node), nn.modules.batchnorm._BatchNorm)
            ):
                source = self._first_tensor(node)
                attr = self._scaler_attr(node, source)
                with graph.inserting_before(node):
                    divided = graph.call_function(operator.truediv, (source, attr))
                node.replace_input_with(source, divided)
                if kind == "scaled":
                    with graph.inserting_after(node):
                        scaled = graph.call_function(operator.mul, (node, attr))
                    node.replace_all_uses_with(
                        scaled, delete_user_cb=lambda user, s=scaled: user is not s
                    )
            elif kind == "add":
                second = node.args[1]
                attr = self._scaler_attr(node, second)
                with graph.inserting_before(node):
                    rescaled = graph.call_function(operator.mul, (second, attr))
                node.args = (node.args[0], rescaled, *node.args[2:])

    def _scaler_attr(self, node: fx.Node, source: fx.Node) -> fx.Node:
        """A buffer that broadcasts over ``source``, the input of ``node`` that it scales
        (features along dim 1; ``node``'s output has the same features and rank)."""
        shape = self._shape(node)
        broadcast = [1] * len(shape)
        if len(shape) > 1:
            broadcast[1] = shape[1]
        name = f"teleport_scale_{len(self._scalers)}"
        dtype = node.meta["tensor_meta"].dtype
        self.network.register_buffer(name, torch.ones(broadcast, dtype=dtype))
        self._scalers[name] = (node, source.name)
        with self.network.graph.inserting_before(node):
            return self.network.graph.get_attr(name)

    # -- bases -------------------------------------------------------------------------
    def _bases(self, cob: torch.Tensor) -> dict[str, torch.Tensor]:
        """The basis (one scalar per feature, float64) of every tensor node under
        ``cob``, by node name."""
        bases: dict[str, torch.Tensor] = {}
        blocks = {
            n.node.name: (
                cob[n.start : n.start + n.size]
                if n.start is not None
                else torch.ones(n.size, dtype=torch.float64)
            )
            for n in self._neurons
        }
        for node in self.network.graph.nodes:
            if node.op == "get_attr" or node.name in bases:
                continue
            kind = self._kinds[node]
            if kind == "none":
                continue
            if kind == "input":
                shape = self._shape(node)
                bases[node.name] = torch.ones(
                    shape[1] if len(shape) > 1 else shape[0], dtype=torch.float64
                )
            elif kind == "neuron":
                bases[node.name] = blocks[node.name]
            elif kind in ("scaled", "pass", "inserted", "add"):
                bases[node.name] = bases[self._first_tensor(node).name]
            elif kind == "reshape":
                bases[node.name] = self._reshaped(node, bases)
            elif kind == "cat":
                bases[node.name] = self._concatenated(node, bases)
            elif kind == "output":
                self._check_output(node, bases)
        return bases

    def _kind_or_inserted(self, node: fx.Node) -> str:
        if node.op == "call_function" and any(
            isinstance(a, fx.Node) and a.op == "get_attr" and a.target in self._scalers
            for a in node.args
        ):
            return "inserted"
        return self._kind(node)

    def _reshaped(self, node: fx.Node, bases) -> torch.Tensor:
        source = self._first_tensor(node)
        before, after = self._shape(source), self._shape(node)
        basis = bases[source.name]
        if tuple(before[:2]) == tuple(after[:2]):
            return basis
        positions = 1
        for size in before[2:]:
            positions *= size
        if len(after) == 2 and after[1] == basis.numel() * positions:
            return basis.repeat_interleave(positions)  # NCHW flatten: channel-major
        raise TeleportError(
            f"{node.format_node()}: reshaping {tuple(before)} to {tuple(after)} mixes "
            "features; only flattening the trailing dimensions can be teleported"
        )

    def _concatenated(self, node: fx.Node, bases) -> torch.Tensor:
        tensors = node.args[0]
        dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0)
        if dim not in (1, -len(self._shape(node)) + 1):
            raise TeleportError(
                f"{node.format_node()}: concatenation along dim {dim}; only the feature "
                "dimension 1 can be teleported"
            )
        return torch.cat([bases[t.name] for t in tensors])

    def _check_output(self, node: fx.Node, bases) -> None:
        outputs = node.args[0]
        outputs = outputs if isinstance(outputs, (tuple, list)) else [outputs]
        for out in outputs:
            if isinstance(out, fx.Node) and out.name in bases:
                if not torch.all(bases[out.name] == 1):
                    raise TeleportError(
                        f"output {out.name} does not come from the last neuron layer; "
                        "its basis would change"
                    )

    def _write_activation_cob(self, bases: dict[str, torch.Tensor]) -> None:
        for name, (node, source) in self._scalers.items():
            buffer = getattr(self.network, name)
            tau = bases[source]
            if self._kinds[node] == "add":
                tau = bases[self._first_tensor(node).name] / tau
            buffer.copy_(tau.reshape(buffer.shape).to(buffer.dtype))

    # -- teleportation -----------------------------------------------------------------
    def get_cob_size(self) -> int:
        return self.cob_size

    def generate_random_cob(
        self,
        cob_range: float = 0.5,
        sampling_type: str = "intra_landscape",
        center: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        return sample_cob(self.cob_size, sampling_type, cob_range, center, generator)

    @torch.no_grad()
    def teleport(self, cob: torch.Tensor, reset_teleportation: bool = True) -> None:
        """Apply ``cob``: after undoing the current teleportation (reset), or on top of
        it (compose)."""
        cob = torch.as_tensor(cob, dtype=torch.float64).flatten()
        if cob.numel() != self.cob_size:
            raise ValueError(
                f"a CoB of this model has {self.cob_size} scalars, got {cob.numel()}"
            )
        if torch.any(cob == 0):
            raise ValueError(
                "a CoB scalar is zero; teleportation needs non-zero scalars"
            )
        current = self.cob.detach().cpu()
        new = cob.cpu() if reset_teleportation else current * cob.cpu()
        self._rescale(self._bases(current), self._bases(new))
        self.cob.copy_(new)

    def random_teleport(self, cob_range=0.5, sampling_type="intra_landscape", **kw):
        cob = self.generate_random_cob(cob_range, sampling_type, **kw)
        self.teleport(cob)
        return cob

    @torch.no_grad()
    def undo_teleportation(self) -> None:
        self.teleport(torch.ones(self.cob_size, dtype=torch.float64))

    def _rescale(self, old: dict, new: dict) -> None:
        for neuron in self._neurons:
            node, module = neuron.node, neuron.module
            source = self._first_tensor(node).name
            ratio_out = new[node.name] / old[node.name]
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                self._scale(module.weight, ratio_out)
                self._scale(module.bias, ratio_out)
                continue
            ratio_in = new[source] / old[source]
            weight = module.weight
            extra = [1] * (weight.dim() - 2)
            if isinstance(module, nn.ConvTranspose2d):  # (in, out, k, k)
                factor = ratio_out.view(1, -1, *extra) / ratio_in.view(-1, 1, *extra)
            else:  # (out, in, ...)
                factor = ratio_out.view(-1, 1, *extra) / ratio_in.view(1, -1, *extra)
            self._scale(weight, factor)
            self._scale(module.bias, ratio_out)
        self._write_activation_cob(new)

    # -- weights and gradients ---------------------------------------------------------
    def neuron_parameters(self) -> list[nn.Parameter]:
        """Weights and biases of the neuron layers in execution order (no BatchNorm
        running statistics: they are not parameters and teleportation leaves them)."""
        found = []
        for neuron in self._neurons:
            found += [
                p for p in (neuron.module.weight, neuron.module.bias) if p is not None
            ]
        return found

    def get_weights(self) -> torch.Tensor:
        """The neuron layers' parameters as one flat vector (a copy)."""
        return torch.cat([p.detach().flatten() for p in self.neuron_parameters()])

    @torch.no_grad()
    def set_weights(self, weights: torch.Tensor) -> None:
        offset = 0
        for param in self.neuron_parameters():
            param.copy_(weights[offset : offset + param.numel()].view_as(param))
            offset += param.numel()
        if offset != weights.numel():
            raise ValueError(f"expected {offset} weights, got {weights.numel()}")

    def get_grad(self, data, target, loss_fn) -> torch.Tensor:
        """The gradient of ``loss_fn(self(data), target)`` with respect to
        ``get_weights()``, as one flat vector (the model's .grad fields untouched)."""
        params = self.neuron_parameters()
        grads = torch.autograd.grad(loss_fn(self(data), target), params)
        return torch.cat([g.flatten() for g in grads])

    @staticmethod
    def _scale(param: torch.Tensor | None, factor: torch.Tensor) -> None:
        if param is not None:
            param.mul_(factor.to(device=param.device, dtype=param.dtype))

    def forward(self, *args, **kwargs):
        return self.network(*args, **kwargs)
