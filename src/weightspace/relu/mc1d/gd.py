"""Full-batch GD on P nets of the 1-D Monte Carlo through a kernel chosen by name: the
kernel choice of ``run_chunk`` and the stepping, output and gradient helpers that tests,
benchmarks and diagnostics use."""

from __future__ import annotations

import math

import torch

from weightspace.relu import ckernel
from weightspace.relu.mc1d.c_kernel import _CKernel
from weightspace.relu.mc1d.dense import _DenseKernel
from weightspace.relu.mc1d.kernel import _Kernel, _max_kink, _Nets
from weightspace.relu.mc1d.scatter import _ScatterKernel


def _resolve_kernel(
    kernel: str, device: torch.device, dtype: torch.dtype = torch.float64
) -> str:
    if kernel == "auto":
        if device.type == "cuda":
            return "dense"
        return "c" if dtype == torch.float64 and ckernel.available() else "scatter"
    return kernel


def _make_kernel(kernel: str, n: int, m: int, device, dtype) -> _Kernel:
    if kernel == "c":
        return _CKernel(n, m, device, dtype)
    if kernel == "scatter":
        if dtype != torch.float64:
            # The rounding trick behind the class index needs the float64 mantissa.
            raise ValueError(
                f"the scatter kernel needs float64, got {dtype}; use kernel='dense'"
            )
        return _ScatterKernel(n, m, device, dtype)
    return _DenseKernel(n, m, device, dtype)


class GDStepper:
    """Full-batch GD on P nets in place, with the workspace and update code of ``run_chunk``.

    ``step(n)`` runs n steps without host synchronisation; ``max_kink`` is the running max of
    |b/a| over the steps and neurons so far (including the current parameters).
    """

    def __init__(self, a, b, c, w, weights, h, y, kernel: str = "auto"):
        name = _resolve_kernel(kernel, a.device, a.dtype)
        self.kernel = name
        self.nets = _Nets(a.clone(), b.clone(), c.clone(), w.clone())
        self._kern = _make_kernel(name, a.shape[0], a.shape[1], a.device, a.dtype)
        self._coef = weights * h.unsqueeze(1)
        self._ncy = -self._coef * y
        self._hi = torch.zeros_like(c)
        self._lo = torch.zeros_like(c)

    def step(self, n: int = 1) -> None:
        if n > 0:
            self._kern.gd_steps(self.nets, self._coef, self._ncy, self._hi, self._lo, n)

    @property
    def params(self):
        return self.nets.a, self.nets.b, self.nets.c, self.nets.w

    @property
    def max_kink(self) -> torch.Tensor:
        self._kern.track(self.nets.a, self.nets.b, self._hi, self._lo)
        return _max_kink(self._hi, self._lo)


def train_gd(
    a: torch.Tensor,
    b: torch.Tensor,
    c: torch.Tensor,
    w: torch.Tensor,
    weights: torch.Tensor,
    h: torch.Tensor,
    y: torch.Tensor,
    steps: int = 1,
    kernel: str = "auto",
):
    """``steps`` simultaneous GD steps with per-net step sizes h (P,) on ½Σp̂(f − y)².

    Returns new tensors (a, b, c, w, max_kink), max_kink (P,) being the max of |b/a| over the
    steps and neurons, as in ``run_chunk``.
    """
    stepper = GDStepper(a, b, c, w, weights, h, y, kernel)
    stepper.step(steps)
    return (*stepper.params, stepper.max_kink)


def gd_step(a, b, c, w, weights, h, y, kernel: str = "auto"):
    """One GD step (see ``train_gd``); returns new (a, b, c, w)."""
    return train_gd(a, b, c, w, weights, h, y, 1, kernel)[:4]


def kernel_output(a, b, c, w, kernel: str = "auto") -> torch.Tensor:
    """f at the six POINTS through the vectorised kernel, (P, 6)."""
    name = _resolve_kernel(kernel, a.device, a.dtype)
    kern = _make_kernel(name, a.shape[0], a.shape[1], a.device, a.dtype)
    hi = torch.full_like(c, -math.inf)
    lo = torch.full_like(c, math.inf)
    return kern.forward(a, b, c, w, hi, lo).clone()


def gradients(a, b, c, w, weights, y, kernel: str = "auto"):
    """(∂a, ∂b, ∂c, ∂w) of ½Σp̂(f − y)² through the vectorised kernel."""
    name = _resolve_kernel(kernel, a.device, a.dtype)
    kern = _make_kernel(name, a.shape[0], a.shape[1], a.device, a.dtype)
    hi = torch.full_like(c, -math.inf)
    lo = torch.full_like(c, math.inf)
    rsum = kern.backprop(a, b, c, w, weights, -weights * y, hi, lo)
    return w * kern.g1, w * kern.g0, rsum.clone(), a * kern.g1 + b * kern.g0
