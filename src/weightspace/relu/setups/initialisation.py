"""The nets of the setups grid at initialisation: both parameterisations and every
hidden-bias init (see the package docstring)."""

from __future__ import annotations

import math

import torch

from weightspace.data.seeds import torch_generator
from weightspace.relu.batched import BatchedTwoLayer
from weightspace.relu.setups.config import BIAS_INITS, PARAMETERISATIONS
from weightspace.relu.shared import check_choice

# √3·√fan_in·(forward factor)·(init std) is √6 for both parameterisations.
UNIF_BIAS_RANGE = math.sqrt(6.0)
KINK_RANGE = math.sqrt(3.0)


def forward_scales(parameterisation: str, dim: int, width: int) -> tuple[float, float]:
    if parameterisation == "ntk":
        return math.sqrt(2.0 / dim), math.sqrt(2.0 / width)
    return 1.0, 1.0


def init_two_layer(
    parameterisation: str,
    bias_init: str,
    dim: int,
    width: int,
    n_nets: int,
    generator: torch.Generator,
    x_train: torch.Tensor | None = None,
    dtype=torch.float32,
) -> BatchedTwoLayer:
    """P nets as in the module docstring, drawn on the generator's device in float64, then cast.

    Draw order: W₁ normals, W₂ normals, then what the bias init needs, so every bias init and both
    parameterisations share the weights of one seed. ``x_train`` (P, n, d) is needed only by
    ``kink-neg-point``.
    """
    check_choice("parameterisation", parameterisation, PARAMETERISATIONS)
    check_choice("bias_init", bias_init, BIAS_INITS)
    f64 = dict(generator=generator, dtype=torch.float64)
    w1 = torch.randn(n_nets, dim, width, **f64)
    w2 = torch.randn(n_nets, width, **f64)
    s1, s2 = forward_scales(parameterisation, dim, width)
    if parameterisation == "kaiming":
        w1 = w1 * math.sqrt(2.0 / dim)
        w2 = w2 * math.sqrt(2.0 / width)
    net = BatchedTwoLayer(
        w1,
        torch.zeros(n_nets, width, dtype=torch.float64),
        w2,
        torch.zeros(n_nets, dtype=torch.float64),
        scale1=s1,
        scale2=s2,
    )

    def uniform(low, high):
        return low + (high - low) * torch.rand(n_nets, width, **f64)

    if bias_init == "unif":
        net.b1 = uniform(-UNIF_BIAS_RANGE, UNIF_BIAS_RANGE)
    elif bias_init == "unif-pos":
        net.b1 = uniform(0.0, UNIF_BIAS_RANGE)
    elif bias_init == "unif-neg":
        net.b1 = uniform(-UNIF_BIAS_RANGE, 0.0)
    elif bias_init == "kink-neg-unif":
        norms = torch.linalg.vector_norm(net.effective_w1(), dim=1)  # (P, m)
        net.b1 = uniform(-KINK_RANGE, 0.0) * norms
    elif bias_init == "pytorch":
        bound = 1.0 / math.sqrt(dim)
        net.b1 = uniform(-bound, bound)
    elif bias_init == "kink-neg-point":
        if x_train is None:
            raise ValueError(
                "bias_init 'kink-neg-point' needs the training inputs x_train"
            )
        kink_through_points(net, x_train.to(torch.float64), generator)
    for name in ("w1", "b1", "w2", "b2"):
        setattr(net, name, getattr(net, name).to(dtype))
    return net


def init_setup_nets(
    parameterisation: str,
    bias_init: str,
    width: int,
    n_nets: int,
    seed: int,
    data,
    dtype=torch.float32,
) -> BatchedTwoLayer:
    """The nets of one setup on ``data`` (a SetupData of dimension d): the generator is
    derived from (seed, d, width) only, so every bias init, parameterisation, optimiser
    and learning rate, in the grid or trained alone, starts from the same weights."""
    dim = data.x_train.shape[-1]
    return init_two_layer(
        parameterisation,
        bias_init,
        dim,
        width,
        n_nets,
        torch_generator(seed, "setups", "init", dim, width),
        x_train=data.x_train,
        dtype=dtype,
    )


def kink_through_points(
    net: BatchedTwoLayer, x_train: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """The kink-neg-point init, in place: returns the chosen point index per neuron (P, m)."""
    p, n = x_train.shape[0], x_train.shape[1]
    idx = torch.randint(
        0, n, (p, net.width), generator=generator, device=generator.device
    )
    gather_idx = idx.to(x_train.device).unsqueeze(2).expand(-1, -1, net.in_dim)
    points = torch.gather(x_train, 1, gather_idx)
    z = torch.einsum("pmd,pdm->pm", points, net.w1) * net.scale1
    sign = torch.where(z < 0, -1.0, 1.0).to(net.w1.dtype)
    net.w1 = net.w1 * sign.unsqueeze(1)
    net.b1 = -z.abs()
    return idx
