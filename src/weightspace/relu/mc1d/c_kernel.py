"""The C kernel (``kernel="c"``) of the 1-D Monte Carlo: whole blocks of GD or SGD steps
(SGD with its minibatches drawn in C) in the fused C step of ``weightspace.relu.ckernel`` (csrc/mc1d_step.c), bit-identical to
the scatter kernel. The kink tracking, the early-stopping forward and Adam's backprop
use the scatter kernel."""

from __future__ import annotations

import torch

from weightspace.relu import ckernel
from weightspace.relu.mc1d.kernel import _Kernel, _Nets
from weightspace.relu.mc1d.scatter import _ScatterKernel


class _CKernel(_Kernel):
    """GD and SGD steps in C (ckernel.gd_steps, ckernel.sgd_steps), bit-identical to the scatter kernel; ``forward``,
    ``backprop`` and ``track`` (early stopping, Adam, the fold after a block) are the scatter
    kernel's, made on first use."""

    def __init__(self, n, m, device, dtype):
        if torch.device(device).type != "cpu" or dtype != torch.float64:
            raise ValueError(
                f"the C kernel runs on the CPU in float64, got {device} and {dtype}; "
                "use kernel='scatter' or 'dense'"
            )
        super().__init__(n, m, device, dtype)
        ckernel.library()  # build or load now, so that a missing compiler is reported here
        self._scatter_kernel = None

    @property
    def _scatter(self) -> _ScatterKernel:
        if self._scatter_kernel is None:
            self._scatter_kernel = _ScatterKernel(
                self.n, self.m, self.device, self.dtype
            )
        return self._scatter_kernel

    @property
    def g0(self) -> torch.Tensor:
        return self._scatter.g0

    @property
    def g1(self) -> torch.Tensor:
        return self._scatter.g1

    def track(self, a, b, vmax, vmin) -> None:
        self._scatter.track(a, b, vmax, vmin)

    def forward(self, a, b, c, w, vmax, vmin) -> torch.Tensor:
        return self._scatter.forward(a, b, c, w, vmax, vmin)

    def backprop(self, a, b, c, w, coef, ncy, vmax, vmin) -> torch.Tensor:
        return self._scatter.backprop(a, b, c, w, coef, ncy, vmax, vmin)

    def gd_step(self, nets: _Nets, coef, ncy, vmax, vmin) -> None:
        ckernel.gd_steps(nets.a, nets.b, nets.c, nets.w, coef, ncy, vmax, vmin, 1)

    def gd_steps(
        self, nets: _Nets, coef, ncy, vmax, vmin, steps: int | None = None
    ) -> None:
        ckernel.gd_steps(nets.a, nets.b, nets.c, nets.w, coef, ncy, vmax, vmin, steps)

    def sgd_steps(self, nets: _Nets, *args) -> None:
        """The arguments of ``_Kernel.sgd_steps``; the minibatches are drawn in C."""
        ckernel.sgd_steps(nets.a, nets.b, nets.c, nets.w, *args)
