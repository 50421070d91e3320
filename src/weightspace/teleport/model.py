"""Teleport an ordinary torch.nn.Module (teleport.md §1, §2, §5).

The model is traced with torch.fx, so functional operations in ``forward`` (``+``,
``torch.cat``, ``torch.flatten``, ``F.relu``), a module called twice and skip inputs in
any order are seen exactly. Every tensor in the graph has a basis: one scalar per
feature (channel) along dim 1. Neuron layers (Linear, Conv2d, ConvTranspose2d,
BatchNorm) own a CoB block, except the last one, whose output keeps the basis of ones;
everything else passes its input's basis on (a flatten repeats each channel's scalar
over its positions, a concatenation concatenates).

Teleporting rescales the neuron layers' parameters in place (optimizers and their state
stay valid). The CoB and the scalars of the teleported network (tau of every activation,
max pool and BatchNorm input; tau_x1 / tau_x2 of every addition) are buffers, so they
survive ``state_dict``; the forward pass is derived from the CoB buffer, also after
``load_state_dict``.

The forward pass computes the teleported network's function, and so its gradients with
respect to the parameters, but not literally layer by layer. Every tensor of the
teleported network is tau * z, z being the same tensor before teleportation; the
generated forward holds each tensor either so ("teleported basis") or as z ("original
basis") and converts only where needed:

- a BatchNorm normalises z (a teleported input is divided by tau) and, with gamma and
  beta scaled by 1 / tau (one number per channel), writes the original basis, so the
  activation after it computes f(z) whatever f and tau are;
- a Linear or Conv layer uses its parameters as they are (it reads and writes the
  teleported basis) or, where one multiply of its weight costs less than the
  activation passes it saves (a cost model over the traced shapes), computes with
  W * (tau_in / m_in) / tau_out: it reads its input in whichever basis m_in it is held
  and writes the original basis;
- an activation or max pool on a teleported tensor computes tau * f(x / tau); for a
  positively homogeneous f (ReLU, LeakyReLU, max pool) that is f(x) when tau > 0 and
  s * f(s * x) with s = sign(tau) otherwise (exact: a sign flip rounds nothing);
- an addition rescales its second operand to the basis of its first;
- every scaling that is exactly 1 is left out, so an untouched model runs its traced
  graph as it is.

The code is regenerated whenever a teleport changes which of these operations are
needed (tens of milliseconds for a DenseNet-121; then a teleport costs a few multiplies
of the parameters).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from itertools import accumulate

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from weightspace.teleport.cob import sample_cob

# graphs kept compiled per model, and the GraphModule attributes a recompile sets
_COMPILED_PATTERNS = 8
_RECOMPILED = ("_graph", "_code", "_lineno_map", "_prologue_start")

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
# f(c x) = c f(x) for c > 0: tau * f(x / tau) = f(x) for positive tau.
HOMOGENEOUS_MODULES = (
    nn.ReLU,
    nn.LeakyReLU,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.AdaptiveMaxPool2d,
)
HOMOGENEOUS_FUNCTIONS = {
    F.relu,
    torch.relu,
    F.leaky_relu,
    F.max_pool2d,
    F.adaptive_max_pool2d,
    "relu",
    "relu_",
}
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
_BatchNorm = nn.modules.batchnorm._BatchNorm


class TeleportError(ValueError):
    """The model holds an operation whose teleportation is not defined here."""


@dataclass
class _Neuron:
    name: str  # graph node
    module: nn.Module
    source: str  # input node
    start: int | None  # offset of its CoB block, None for the last neuron layer
    size: int
    basis_in: torch.Tensor | None = None  # of its input, as indices into [cob, 1]

    def __post_init__(self):
        self.batch_norm = isinstance(self.module, _BatchNorm)
        self.transposed = isinstance(self.module, nn.ConvTranspose2d)


@dataclass
class _Ratio:
    """ext[num] / ext[den] per feature, ext being the CoB followed by a 1."""

    num: torch.Tensor
    den: torch.Tensor


class _Ratios:
    """Many ratios, evaluated with one gather (teleport() must stay cheap)."""

    def __init__(self, ratios: list[_Ratio]):
        empty = torch.zeros(0, dtype=torch.long)
        self.num = torch.cat([r.num for r in ratios]) if ratios else empty
        self.den = torch.cat([r.den for r in ratios]) if ratios else empty
        self.lengths = [r.num.numel() for r in ratios]
        self.segments = torch.repeat_interleave(
            torch.arange(len(ratios)), torch.tensor(self.lengths, dtype=torch.long)
        )

    @staticmethod
    def ext(cob: torch.Tensor) -> torch.Tensor:
        """The CoB followed by a 1 (float64, CPU): what basis indices point into."""
        one = torch.ones(1, dtype=torch.float64)
        return torch.cat([cob.detach().cpu().double(), one])

    def values(self, cob: torch.Tensor) -> torch.Tensor:
        """All values, concatenated (float64, CPU)."""
        ext = self.ext(cob)
        return ext.index_select(0, self.num) / ext.index_select(0, self.den)

    def split(self, values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return values.split(self.lengths)

    def flags(self, values: torch.Tensor) -> tuple[list[bool], list[bool]]:
        """Per ratio: all values 1, all values > 0."""
        n = len(self.lengths)
        inf = torch.full((n,), float("inf"), dtype=torch.float64)
        low = inf.scatter_reduce(0, self.segments, values, "amin")
        high = (-inf).scatter_reduce(0, self.segments, values, "amax")
        return ((low == 1) & (high == 1)).tolist(), (low > 0).tolist()


@dataclass
class _Op:
    """An operation the forward pass may need (see the module docstring):

    - ``convert`` (before a layer that reads the teleported basis, or the output),
      ``divide`` (before a BatchNorm), ``add`` (second operand): x * value;
    - ``scale``: value * f(x / value) around an activation or max pool;
    - ``layer``: a Linear/Conv/BatchNorm computed with rescaled parameters.
    """

    kind: str
    node: str
    ratio: _Ratio  # the per-feature value; for ``layer`` the output-side factor
    shape: tuple[int, ...]  # the value's (broadcasting) shape; ``layer``: the weight's
    homogeneous: bool = False
    inputs: _Ratio | None = None  # ``layer`` of a Linear/Conv: input-side factor
    module: nn.Module | None = None  # ``layer``
    at: slice | None = None  # where its value lies in the values buffer
    inputs_at: slice | None = None


def _out_size(module: nn.Module) -> int:
    if isinstance(module, nn.Linear):
        return module.out_features
    if isinstance(module, _BatchNorm):
        return module.num_features
    return module.out_channels


def _check_neuron(name: str, module: nn.Module) -> None:
    if getattr(module, "groups", 1) != 1:
        raise TeleportError(
            f"{name}: grouped convolutions (groups={module.groups}) cannot be teleported"
        )


def _batch_norm(bn: _BatchNorm, x, weight, bias):
    """``bn``'s forward with other affine parameters (as torch's _BatchNorm.forward)."""
    factor = 0.0 if bn.momentum is None else bn.momentum
    if bn.training and bn.track_running_stats and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        if bn.momentum is None:  # cumulative moving average
            factor = 1.0 / float(bn.num_batches_tracked)
    batch_stats = bn.training or (bn.running_mean is None and bn.running_var is None)
    track = not bn.training or bn.track_running_stats
    return F.batch_norm(
        x,
        bn.running_mean if track else None,
        bn.running_var if track else None,
        weight,
        bias,
        batch_stats,
        factor,
        bn.eps,
    )


def _rescaled(module: nn.Module, x, weight_factor, bias_factor):
    """``module(x)`` computed with its parameters multiplied by the factors (the
    gradient reaches the parameters through the multiplication)."""
    weight = module.weight * weight_factor
    bias = None if module.bias is None else module.bias * bias_factor
    if isinstance(module, nn.Linear):
        return F.linear(x, weight, bias)
    if isinstance(module, _BatchNorm):
        return _batch_norm(module, x, weight, bias)
    return module._conv_forward(x, weight, bias)


def _scale_rows_columns(weight: torch.Tensor, rows, columns) -> None:
    """weight *= rows (dim 0) and columns (dim 1), broadcast over the kernel."""
    if weight.is_contiguous():  # two passes with contiguous inner loops: fast
        flat = weight.view(len(rows), -1)
        flat.mul_(rows[:, None])
        kernel = flat.shape[1] // len(columns)
        flat.mul_(columns.repeat_interleave(kernel) if kernel > 1 else columns)
    else:
        extra = [1] * (weight.dim() - 2)
        weight.mul_(rows.view(-1, 1, *extra) * columns.view(1, -1, *extra))


def _refresh_after_load(module: TeleportableModel, incompatible_keys) -> None:
    module._refresh()


class TeleportableModel(nn.Module):
    """A model whose weights can be teleported without changing its function.

    ``example_input`` (any batch size >= 2, so that BatchNorm can run) fixes the shapes
    the graph is analysed with.

    ``compound_stale_cob`` reproduces a defect of the original (teleport.md §12 item 2):
    overwriting the weights (``set_weights``, ``reset_weights``, ``init_like_histogram``)
    keeps the CoB state, so the next ``teleport(new)`` divides by the stale CoB and
    applies new / old to the weights given. By default the weights given are taken as
    un-teleported and the CoB state is reset to ones.

    ``fold`` and ``batch_size_hint`` choose how the forward pass is computed (module
    docstring), never what it computes: ``fold=None`` rescales a Linear/Conv weight in
    the forward pass where the cost model, for batches of ``batch_size_hint`` samples
    (not the example's batch size), finds it cheaper; ``True`` runs the original
    network on rescaled parameters (every Linear/Conv layer but ConvTranspose2d, and
    every BatchNorm); ``False`` runs the teleported network layer by layer as in
    teleport.md §2.
    """

    def __init__(
        self,
        model: nn.Module,
        example_input: torch.Tensor,
        compound_stale_cob: bool = False,
        fold: bool | None = None,
        batch_size_hint: int = 32,
    ):
        super().__init__()
        self.compound_stale_cob = compound_stale_cob
        self.network = fx.symbolic_trace(model)
        was_training = self.network.training
        self.network.eval()
        with torch.no_grad():
            ShapeProp(self.network).propagate(example_input)
        self.network.train(was_training)
        # the traced graph stays untouched for the analysis; the network runs
        # graphs generated from it
        self._graph = self.network.graph
        self._kinds = {n.name: self._kind(n) for n in self._graph.nodes}
        self._nodes = {n.name: n for n in self._graph.nodes}
        self._neurons = self._find_neurons()
        self.cob_size = sum(n.size for n in self._neurons if n.start is not None)
        self.register_buffer("cob", torch.ones(self.cob_size, dtype=torch.float64))
        self._tau = self._propagate(self._math_outputs())
        self._check_outputs()
        self._scaler_names, self._scaler_ratios = self._make_scalers()
        self._ops = self._make_ops(fold, batch_size_hint)
        self._lay_out_values()
        self._index_parameters()
        del self._tau  # only the analysis needs every node's basis
        self._pattern: tuple | None = None
        self._compiled: dict[tuple, dict] = {}
        self._refresh()
        self.register_load_state_dict_post_hook(_refresh_after_load)

    def _like(self) -> torch.Tensor:
        """A parameter: the dtype and device of the values written per teleport."""
        return next(self.network.parameters())

    def _lay_out_values(self) -> None:
        """The values of all ops live in one buffer, written with one copy per
        teleport: the ops' ratios, then the input-side ones of folded layers."""
        ratios = [op.ratio for op in self._ops]
        ratios += [op.inputs for op in self._ops if op.inputs is not None]
        self._op_ratios = _Ratios(ratios)
        lengths = self._op_ratios.lengths
        slices = [slice(e - n, e) for e, n in zip(accumulate(lengths), lengths)]
        k = len(self._ops)
        self._op_inputs: list[int | None] = []  # index of the input-side ratio
        for j, op in enumerate(self._ops):
            op.at = slices[j]
            self._op_inputs.append(k if op.inputs is not None else None)
            if op.inputs is not None:
                op.inputs_at = slices[k]
                k += 1
        self.network.add_module("teleport_ops", nn.Module())  # not in state_dict
        values = torch.ones(len(self._op_ratios.num), dtype=self._like().dtype)
        self.network.teleport_ops.register_buffer("values", values, False)

    def _index_parameters(self) -> None:
        """The bases teleport() rescales the parameters by, gathered in one go: the
        output basis of every layer, then the input basis of a Linear/Conv."""
        pieces, input_side = [], []
        for n in self._neurons:
            n.basis_in = self._tau[n.source]
            pieces.append(self._tau[n.name])
            input_side.append(torch.zeros(n.size, dtype=torch.bool))
            if not n.batch_norm:
                pieces.append(n.basis_in)
                input_side.append(torch.ones(len(pieces[-1]), dtype=torch.bool))
        self._neuron_index = torch.cat(pieces)
        self._neuron_lengths = [len(p) for p in pieces]
        self._input_side = torch.cat(input_side)

    # -- graph analysis ----------------------------------------------------------------
    def _module(self, target: str) -> nn.Module:
        return self.network.get_submodule(target)

    def _find_neurons(self) -> list[_Neuron]:
        found = []
        for node in self._graph.nodes:
            if self._kinds[node.name] == "neuron":
                module = self._module(node.target)
                _check_neuron(node.target, module)
                source = self._first_tensor(node).name
                found.append(_Neuron(node.name, module, source, 0, _out_size(module)))
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
            module = self._module(node.target)
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

    def _homogeneous(self, node: fx.Node) -> bool:
        if node.op == "call_module":
            return isinstance(self._module(node.target), HOMOGENEOUS_MODULES)
        return node.target in HOMOGENEOUS_FUNCTIONS

    @staticmethod
    def _first_tensor(node: fx.Node) -> fx.Node:
        return next(a for a in node.args if isinstance(a, fx.Node))

    @staticmethod
    def _shape(node: fx.Node) -> torch.Size:
        return node.meta["tensor_meta"].shape

    def _features(self, name: str) -> int:
        shape = self._shape(self._nodes[name])
        return shape[1] if len(shape) > 1 else shape[0]

    def _broadcast(self, name: str) -> tuple[tuple[int, ...], torch.dtype]:
        """Shape and dtype of a per-feature scalar that broadcasts over the node's
        tensor (features along dim 1)."""
        meta = self._nodes[name].meta["tensor_meta"]
        shape = [1] * len(meta.shape)
        if len(shape) > 1:
            shape[1] = meta.shape[1]
        return tuple(shape), meta.dtype

    # -- bases -------------------------------------------------------------------------
    # A basis is kept as indices into ext = [cob, 1]: the slot self.cob_size is 1.
    def _ones(self, size: int) -> torch.Tensor:
        return torch.full((size,), self.cob_size, dtype=torch.long)

    def _math_outputs(self) -> dict[str, torch.Tensor]:
        return {
            n.name: (
                torch.arange(n.start, n.start + n.size)
                if n.start is not None
                else self._ones(n.size)
            )
            for n in self._neurons
        }

    def _propagate(self, outputs: dict[str, torch.Tensor], decide=None) -> dict:
        """The basis of every tensor node, given the neuron layers' output bases
        (``decide(node, bases)`` picks a neuron's output basis on the way instead)."""
        bases: dict[str, torch.Tensor] = {}
        for node in self._graph.nodes:
            kind = self._kinds[node.name]
            if kind in ("none", "output"):
                continue
            if kind == "input":
                bases[node.name] = self._ones(self._features(node.name))
            elif kind == "neuron":
                bases[node.name] = decide(node, bases) if decide else outputs[node.name]
            elif kind in ("scaled", "pass", "add"):
                bases[node.name] = bases[self._first_tensor(node).name]
            elif kind == "reshape":
                bases[node.name] = self._reshaped(node, bases)
            elif kind == "cat":
                bases[node.name] = self._concatenated(node, bases)
        return bases

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

    def _outputs(self) -> list[str]:
        node = next(n for n in self._graph.nodes if n.op == "output")
        outputs = node.args[0]
        outputs = outputs if isinstance(outputs, (tuple, list)) else [outputs]
        return [
            o.name for o in outputs if isinstance(o, fx.Node) and o.name in self._tau
        ]

    def _check_outputs(self) -> None:
        for name in self._outputs():
            if not torch.all(self._tau[name] == self.cob_size):
                raise TeleportError(
                    f"output {name} does not come from the last neuron layer; "
                    "its basis would change"
                )

    # -- what the forward pass needs -----------------------------------------------------
    def _make_scalers(self) -> tuple[list[str], _Ratios]:
        """The teleported network's scalars as buffers (their names and order are the
        state_dict layout): tau of every activation and BatchNorm input, and
        tau_x1 / tau_x2 of every addition."""
        names, ratios = [], []
        for node in self._graph.nodes:
            kind = self._kinds[node.name]
            if kind == "scaled" or (kind == "neuron" and self._is_bn_node(node)):
                source = self._first_tensor(node).name
                ratio = _Ratio(self._tau[source], self._ones(self._features(source)))
            elif kind == "add":
                ratio = _Ratio(
                    self._tau[node.args[0].name], self._tau[node.args[1].name]
                )
            else:
                continue
            name = f"teleport_scale_{len(names)}"
            shape, dtype = self._broadcast(node.name)
            self.network.register_buffer(name, torch.ones(shape, dtype=dtype))
            names.append(name)
            ratios.append(ratio)
        return names, _Ratios(ratios)

    def _is_bn_node(self, node: fx.Node) -> bool:
        return isinstance(self._module(node.target), _BatchNorm)

    def _fold_pays(self, node: fx.Node, held: dict, batch: int) -> bool:
        """Cost model: one multiply of the weight (forward and backward) against the
        activation passes it saves: converting the input to the teleported basis, and
        the BatchNorm divisions and activation scalings its output reaches."""

        def numel(n: fx.Node) -> int:
            per_sample = 1
            for size in self._shape(n)[1:]:
                per_sample *= size
            return per_sample * batch

        source = self._first_tensor(node)
        saved = 0
        if not torch.equal(held[source.name], self._tau[source.name]):
            saved += numel(source)
        last = node.name == self._neurons[-1].name  # its output basis is 1 anyway
        todo, seen = ([] if last else list(node.users)), set()
        while todo:
            user = todo.pop()
            if user.name in seen:
                continue
            seen.add(user.name)
            kind = self._kinds[user.name]
            if kind == "neuron" and self._is_bn_node(user):
                saved += numel(self._first_tensor(user))
            elif kind == "scaled":
                saved += numel(user)
            if kind in ("scaled", "pass", "reshape", "cat"):
                todo += list(user.users)
        return self._module(node.target).weight.numel() < saved

    def _make_ops(self, fold: bool | None, batch: int) -> list[_Op]:
        """Every operation the forward pass may need, from the basis each tensor is
        held in (module docstring); which of them a CoB needs is decided later."""
        tau, folded = self._tau, set()

        def held_output(node: fx.Node, held: dict) -> torch.Tensor:
            module = self._module(node.target)
            if isinstance(module, _BatchNorm):
                # without affine parameters its output is z whatever the CoB
                keep = fold is False and module.weight is not None
            elif isinstance(module, nn.ConvTranspose2d):
                keep = True
            else:
                keep = fold is False or (
                    fold is None and not self._fold_pays(node, held, batch)
                )
            if keep:
                return tau[node.name]
            folded.add(node.name)
            return self._ones(tau[node.name].numel())

        held = self._propagate({}, held_output)
        ops: list[_Op] = []

        def add(kind, node, ratio, shape_of, **kw):
            if kind == "layer":
                module = self._module(self._nodes[node].target)
                shape = tuple(module.weight.shape)
                kw["module"] = module
            elif torch.equal(ratio.num, ratio.den):
                return  # 1 whatever the CoB
            else:
                shape = self._broadcast(shape_of)[0]
            ops.append(_Op(kind, node, ratio, shape, **kw))

        for node in self._graph.nodes:
            kind, name = self._kinds[node.name], node.name
            if kind not in ("neuron", "scaled", "add"):
                continue
            source = self._first_tensor(node).name
            ones = self._ones(held[source].numel())
            if kind == "neuron" and self._is_bn_node(node):
                add("divide", name, _Ratio(held[source], ones), source)
                if name in folded and self._module(node.target).weight is not None:
                    add("layer", name, _Ratio(held[name], tau[name]), None)
            elif kind == "neuron" and name in folded:
                inputs = _Ratio(tau[source], held[source])
                add("layer", name, _Ratio(held[name], tau[name]), None, inputs=inputs)
            elif kind == "neuron":  # parameters as they are: the teleported basis
                add("convert", name, _Ratio(tau[source], held[source]), source)
            elif kind == "scaled":
                homogeneous = self._homogeneous(node)
                ratio = _Ratio(held[source], ones)
                add("scale", name, ratio, source, homogeneous=homogeneous)
            else:  # add
                second = node.args[1].name
                add("add", name, _Ratio(held[source], held[second]), second)
        for name in self._outputs():
            add("convert", "output:" + name, _Ratio(tau[name], held[name]), name)
        self._folded = folded
        return ops

    @torch.no_grad()
    def _refresh(self) -> None:
        """Derive the forward pass from the CoB buffer: the values of the operations
        it needs, and new code when the set of needed operations changes."""
        ratios = self._op_ratios
        values = ratios.values(self.cob)
        ones, positive = ratios.flags(values)
        pattern = []
        for j, op in enumerate(self._ops):
            k = self._op_inputs[j]
            if ones[j] and (k is None or ones[k]):
                pattern.append("skip")
            elif op.kind == "scale" and op.homogeneous:
                pattern.append("skip" if positive[j] else "sign")
            else:
                pattern.append("apply")
        pattern = tuple(pattern)
        if "sign" in pattern:  # s * f(s * x) with s = sign(tau)
            sign = torch.tensor(
                [m == "sign" for m in pattern]
                + [False] * (len(ratios.lengths) - len(pattern))
            )
            sign = sign.repeat_interleave(torch.tensor(ratios.lengths))
            values = torch.where(sign, values.sign(), values)
        store = self.network.teleport_ops
        store.values.copy_(values)
        for op, mode in zip(self._ops, pattern):
            if mode != "skip" and op.inputs is not None:
                self._write_weight_factor(op, store)
        if pattern != self._pattern:
            self._install(pattern)
            self._pattern = pattern

    def _install(self, pattern: tuple) -> None:
        """Run the graph of ``pattern``: generated and compiled on first use, then
        taken from a small cache. Loops that reset the weights and teleport again
        alternate between two patterns, and fx's recompile (code generation and
        ``compile``) cost more than the teleport itself."""
        net = self.network
        cached = self._compiled.pop(pattern, None)
        if cached is None:
            net.graph = self._generate(pattern)  # recompiles
            cached = {name: getattr(net, name) for name in _RECOMPILED}
            cached["forward"] = type(net).forward  # fx gives each module its own class
        else:  # what GraphModule.recompile sets, restored
            for name in _RECOMPILED:
                setattr(net, name, cached[name])
            net._graph.owning_module = net
            type(net).forward = cached["forward"]
        self._compiled[pattern] = cached  # most recently used last
        while len(self._compiled) > _COMPILED_PATTERNS:
            self._compiled.pop(next(iter(self._compiled)))

    @staticmethod
    def _write_weight_factor(op: _Op, store: nn.Module) -> None:
        """A folded Linear/Conv layer's weight factor: output x input factor."""
        name = f"weight_factor_{op.node}"
        if name not in store._buffers:  # on first use: it is weight-sized
            weight = op.module.weight
            factor = torch.empty(weight.shape, dtype=weight.dtype, device=weight.device)
            store.register_buffer(name, factor, False)
        factor = store._buffers[name].view(op.shape[0], -1)
        out, inputs = store.values[op.at], store.values[op.inputs_at]
        kernel = factor.shape[1] // len(inputs)  # kernel positions
        row = inputs.repeat_interleave(kernel) if kernel > 1 else inputs
        torch.mul(out[:, None], row, out=factor)

    def _generate(self, pattern: tuple) -> fx.Graph:
        """The forward graph: the traced one with the needed operations inserted."""
        graph = fx.Graph()
        env: dict[str, fx.Node] = {}
        ops = {(op.kind, op.node): (op, mode) for op, mode in zip(self._ops, pattern)}
        ops = {key: value for key, value in ops.items() if value[1] != "skip"}

        values: list[fx.Node] = []  # the values buffer, read once

        def buffer(op: _Op) -> fx.Node:
            """Its value, shaped to broadcast."""
            if not values:
                values.append(graph.get_attr("teleport_ops.values"))
            value = graph.call_function(operator.getitem, (values[0], op.at))
            if len(op.shape) == 1 or op.kind == "layer":
                return value
            return graph.call_method("view", (value, op.shape))

        def times(x: fx.Node, key) -> fx.Node:
            if key not in ops:
                return x
            return graph.call_function(operator.mul, (x, buffer(ops[key][0])))

        def copy(node: fx.Node, replace: fx.Node | None = None, by=None) -> fx.Node:
            return graph.node_copy(node, lambda n: by if n is replace else env[n.name])

        for node in self._graph.nodes:
            name, kind = node.name, self._kinds[node.name]
            if node.op == "output":
                result = fx.map_arg(
                    node.args[0],
                    lambda n: times(env[n.name], ("convert", "output:" + n.name)),
                )
                graph.output(result)
            elif kind == "neuron":
                source = self._first_tensor(node)
                x = times(env[source.name], ("convert", name))
                if ("divide", name) in ops:
                    op = ops[("divide", name)][0]
                    x = graph.call_function(operator.truediv, (x, buffer(op)))
                if ("layer", name) in ops:
                    op = ops[("layer", name)][0]
                    module = graph.get_attr(node.target)
                    if op.inputs is None:  # BatchNorm: gamma and beta by 1 / tau
                        weight = bias = buffer(op)
                    else:
                        weight = graph.get_attr(f"teleport_ops.weight_factor_{name}")
                        bias = buffer(op)
                    args = (module, x, weight, bias)
                    env[name] = graph.call_function(_rescaled, args)
                else:
                    env[name] = copy(node, source, x)
            elif kind == "scaled" and ("scale", name) in ops:
                op, mode = ops[("scale", name)]
                source = self._first_tensor(node)
                factor = buffer(op)
                into = operator.mul if mode == "sign" else operator.truediv
                x = graph.call_function(into, (env[source.name], factor))
                y = copy(node, source, x)
                env[name] = graph.call_function(operator.mul, (y, factor))
            elif kind == "add" and ("add", name) in ops:
                second = node.args[1]
                env[name] = copy(node, second, times(env[second.name], ("add", name)))
            else:
                env[name] = copy(node)
        return graph

    # -- teleportation -----------------------------------------------------------------
    def get_cob_size(self) -> int:
        return self.cob_size

    def get_cob(self) -> torch.Tensor:
        """The current CoB (a float64 copy)."""
        return self.cob.detach().clone()

    def generate_random_cob(
        self,
        cob_range: float = 0.5,
        sampling_type: str = "intra_landscape",
        center: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        return sample_cob(self.cob_size, sampling_type, cob_range, center, generator)

    def _checked(self, cob) -> torch.Tensor:
        cob = torch.as_tensor(cob, dtype=torch.float64).flatten().cpu()
        if cob.numel() != self.cob_size:
            raise ValueError(
                f"a CoB of this model has {self.cob_size} scalars, got {cob.numel()}"
            )
        if torch.any(cob == 0):
            raise ValueError(
                "a CoB scalar is zero; teleportation needs non-zero scalars"
            )
        return cob

    @torch.no_grad()
    def teleport(self, cob: torch.Tensor, reset_teleportation: bool = True) -> None:
        """Apply ``cob``: after undoing the current teleportation (reset), or on top of
        it (compose)."""
        cob = self._checked(cob)
        current = self.cob.detach().cpu()
        new = cob if reset_teleportation else current * cob
        self._rescale(current, new)
        self._set_cob_state(new)

    def random_teleport(self, cob_range=0.5, sampling_type="intra_landscape", **kw):
        cob = self.generate_random_cob(cob_range, sampling_type, **kw)
        self.teleport(cob)
        return cob

    @torch.no_grad()
    def undo_teleportation(self) -> None:
        self.teleport(torch.ones(self.cob_size, dtype=torch.float64))

    @torch.no_grad()
    def teleport_activations(self, cob: torch.Tensor) -> None:
        """Set the CoB state (the CoB and the activation, BatchNorm and addition
        scalars) to ``cob`` without touching the parameters."""
        self._set_cob_state(self._checked(cob))

    set_cob = teleport_activations

    def _rescale(self, old: torch.Tensor, new: torch.Tensor) -> None:
        """Parameters times tau_new / tau_old of their output basis, divided by that of
        their input basis."""
        index = self._neuron_index
        ratio = _Ratios.ext(new).index_select(0, index)
        ratio /= _Ratios.ext(old).index_select(0, index)
        ratio = torch.where(self._input_side, 1 / ratio, ratio)
        ratio = ratio.to(self._like())  # one copy to the device
        factors = iter(ratio.split(self._neuron_lengths))
        for neuron in self._neurons:
            params = neuron.module._parameters  # faster than attribute access
            weight, bias = params["weight"], params.get("bias")
            ratio_out = next(factors)
            if bias is not None:
                bias.mul_(ratio_out)
            if neuron.batch_norm:
                if weight is not None:  # None without affine parameters
                    weight.mul_(ratio_out)
                continue
            inverse_in = next(factors)
            if neuron.transposed:  # (in, out, k, k)
                _scale_rows_columns(weight, inverse_in, ratio_out)
            else:  # (out, in, ...)
                _scale_rows_columns(weight, ratio_out, inverse_in)

    @torch.no_grad()
    def _set_cob_state(self, cob: torch.Tensor) -> None:
        self.cob.copy_(cob)
        ratios = self._scaler_ratios
        values = ratios.values(cob).to(self._like())
        for name, value in zip(self._scaler_names, ratios.split(values)):
            buffer = self.network._buffers[name]
            buffer.copy_(value.view(buffer.shape))
        self._refresh()

    # -- weights and gradients ---------------------------------------------------------
    def neuron_parameters(self) -> list[nn.Parameter]:
        """Weights and biases of the neuron layers in execution order (no BatchNorm
        running statistics: they are not parameters and teleportation leaves them)."""
        found = []
        for neuron in self._neurons:
            module = neuron.module
            found += [p for p in (module.weight, module.bias) if p is not None]
        return found

    def get_weights(self) -> torch.Tensor:
        """The neuron layers' parameters as one flat vector (a copy)."""
        return torch.cat([p.detach().flatten() for p in self.neuron_parameters()])

    @torch.no_grad()
    def _write_weights(self, weights: torch.Tensor) -> None:
        params = self.neuron_parameters()
        expected = sum(p.numel() for p in params)
        if weights.numel() != expected:
            raise ValueError(f"expected {expected} weights, got {weights.numel()}")
        offset = 0
        for param in params:
            param.copy_(weights[offset : offset + param.numel()].view_as(param))
            offset += param.numel()

    def _weights_overwritten(self) -> None:
        # new weights are un-teleported; the original kept its CoB state (§12 item 2)
        if not self.compound_stale_cob:
            self._set_cob_state(torch.ones(self.cob_size, dtype=torch.float64))

    @torch.no_grad()
    def set_weights(self, weights: torch.Tensor) -> None:
        """Overwrite the neuron layers' parameters (``get_weights`` layout) and reset
        the CoB state to ones: the weights given are taken as un-teleported (with
        ``compound_stale_cob`` the CoB state is kept, as in the original)."""
        self._write_weights(weights)
        self._weights_overwritten()

    @torch.no_grad()
    def reset_weights(self) -> None:
        """``reset_parameters()`` of every submodule that has one (BatchNorm running
        statistics included), then the CoB state reset as in ``set_weights``."""
        for module in self.network.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
        self._weights_overwritten()

    def get_params(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(weights, CoB): what ``set_params`` restores."""
        return self.get_weights(), self.get_cob()

    @torch.no_grad()
    def set_params(self, weights: torch.Tensor, cob: torch.Tensor) -> None:
        """The CoB state of ``cob`` and the parameters ``weights``, as they are (the
        original's teleport_activations + set_weights)."""
        self.teleport_activations(cob)
        self._write_weights(weights)

    def _split_weights(self, weights: torch.Tensor) -> list[torch.Tensor]:
        """A flat vector in ``get_weights`` layout as float64 CPU tensors shaped like
        the parameters."""
        params = self.neuron_parameters()
        weights = torch.as_tensor(weights).detach().flatten().cpu().double()
        expected = sum(p.numel() for p in params)
        if weights.numel() != expected:
            raise ValueError(f"expected {expected} weights, got {weights.numel()}")
        pieces = weights.split([p.numel() for p in params])
        return [w.view(p.shape) for w, p in zip(pieces, params)]

    @torch.no_grad()
    def calculate_cob(
        self, initial_weights: torch.Tensor, target_weights: torch.Tensor
    ) -> torch.Tensor:
        """The CoB that best teleports ``initial_weights`` to ``target_weights`` (flat
        vectors in ``get_weights`` layout), as float64 of length ``cob_size``.

        Layer by layer in execution order (teleport.md §5): a Linear/Conv output neuron
        i gets the least-squares scalar tau_i = <u_i, v_i> / ||u_i||^2, where u_i is
        its incoming weights divided by the basis of their input feature (the CoB of
        the layers before, estimated first; broadcast over kernel positions) followed
        by its bias (input basis 1), and v_i is the same neuron's target weights and
        bias; a BatchNorm channel gets <(gamma, beta), (gamma', beta')> /
        ||(gamma, beta)||^2. If the target is a teleport of the initial weights, every
        tau_i is recovered exactly (up to round-off); otherwise each block is the
        least-squares fit given the blocks before it. The last neuron layer has no
        block. A neuron whose initial weights are all zero gets 1. (The original fits
        the last hidden block by gradient descent on a two-layer objective instead.)
        """
        initial = iter(self._split_weights(initial_weights))
        target = iter(self._split_weights(target_weights))
        cob = torch.ones(self.cob_size, dtype=torch.float64)
        for neuron in self._neurons:
            module = neuron.module
            params = [p for p in (module.weight, module.bias) if p is not None]
            pairs = [(next(initial), next(target)) for _ in params]
            if neuron.batch_norm:  # (channels, 0 to 2)
                u = torch.stack([p[0] for p in pairs], 1) if pairs else None
                v = torch.stack([p[1] for p in pairs], 1) if pairs else None
                if u is None:  # no affine parameters: nothing to fit
                    u = v = torch.zeros(neuron.size, 1, dtype=torch.float64)
            else:
                tau_in = _Ratios.ext(cob)[neuron.basis_in]  # the blocks so far
                (w, w_hat) = pairs[0]
                if neuron.transposed:  # (in, out, k, k)
                    w, w_hat = w.transpose(0, 1), w_hat.transpose(0, 1)
                extra = [1] * (w.dim() - 2)
                u = (w / tau_in.view(1, -1, *extra)).flatten(1)
                v = w_hat.flatten(1)
                if module.bias is not None:
                    u = torch.cat([u, pairs[1][0].view(-1, 1)], 1)
                    v = torch.cat([v, pairs[1][1].view(-1, 1)], 1)
            norm = (u * u).sum(1)
            tau = torch.where(norm > 0, (u * v).sum(1) / norm, torch.ones_like(norm))
            if neuron.start is not None:
                cob[neuron.start : neuron.start + neuron.size] = tau
        return cob

    @torch.no_grad()
    def init_like_histogram(
        self,
        hist: torch.Tensor,
        bin_edges: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> None:
        """Re-draw every nn.Linear weight of the model (not biases, not convolutions)
        i.i.d. from a histogram (``hist``: counts of the bins ``bin_edges``): a bin
        with probability proportional to its count, then a value uniform within the
        bin (the original looks up the nearest CDF bin, a value on the bin grid). The
        CoB state is then reset as in ``set_weights``."""
        counts = torch.as_tensor(hist, dtype=torch.float64).flatten().cpu()
        edges = torch.as_tensor(bin_edges, dtype=torch.float64).flatten().cpu()
        if edges.numel() != counts.numel() + 1:
            raise ValueError(
                f"{counts.numel()} bins need {counts.numel() + 1} edges, "
                f"got {edges.numel()}"
            )
        if torch.any(counts < 0) or counts.sum() <= 0:
            raise ValueError("histogram counts must be >= 0 with a positive total")
        cdf = torch.cumsum(counts, 0) / counts.sum()
        for module in self.network.modules():
            if not isinstance(module, nn.Linear):
                continue
            flat = module.weight.view(-1)
            for start in range(0, len(flat), 1 << 22):  # bounded memory
                part = flat[start : start + (1 << 22)]
                u = torch.rand(len(part), generator=generator, dtype=torch.float64)
                bins = torch.searchsorted(cdf, u, right=True).clamp_(max=len(cdf) - 1)
                within = torch.rand(len(part), generator=generator, dtype=torch.float64)
                low, high = edges[bins], edges[bins + 1]
                part.copy_(low + (high - low) * within)
        self._weights_overwritten()

    def get_grad(self, data, target, loss_fn) -> torch.Tensor:
        """The gradient of ``loss_fn(self(data), target)`` with respect to
        ``get_weights()``, as one flat vector (the model's .grad fields untouched)."""
        params = self.neuron_parameters()
        grads = torch.autograd.grad(loss_fn(self(data), target), params)
        return torch.cat([g.flatten() for g in grads])

    def forward(self, *args, **kwargs):
        return self.network(*args, **kwargs)
