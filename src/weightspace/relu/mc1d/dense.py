"""The dense kernel (``kernel="dense"``) of the 1-D Monte Carlo: the (P, 6, m)
activation mask contracted by batched matrix products. The default on CUDA, where the
scatter kernel's scatter_add_ uses float atomics and would not be bit-reproducible."""

from __future__ import annotations

import torch

from weightspace.relu.mc1d.kernel import _fold_kinks, _Kernel


class _DenseKernel(_Kernel):
    """(P, 6, m) activation mask contracted by batched matrix products; deterministic on CUDA."""

    def __init__(self, n, m, device, dtype):
        super().__init__(n, m, device, dtype)
        empty = lambda *shape: torch.empty(*shape, device=device, dtype=dtype)  # noqa: E731
        self.q = empty(n, m)
        self.spare = empty(n, m)  # receives the updated w; swapped with nets.w
        self.ext = empty(n)
        self.f = empty(n, 6)
        self.mask = torch.empty(n, 6, m, device=device, dtype=dtype)
        self.wab = torch.empty(n, 2, m, device=device, dtype=dtype)
        self.fab = torch.empty(n, 6, 2, device=device, dtype=dtype)
        self.rr = torch.empty(n, 2, 6, device=device, dtype=dtype)
        self.s = torch.empty(n, 2, m, device=device, dtype=dtype)
        self.g1, self.g0 = self.s[:, 0], self.s[:, 1]
        self.x3 = self.x.view(1, 6, 1)

    def track(self, a, b, vmax, vmin) -> torch.Tensor:
        return _fold_kinks(self.zero, a, b, vmax, vmin, self.q, self.ext, self.q)

    def forward(self, a, b, c, w, vmax, vmin) -> torch.Tensor:
        self.track(a, b, vmax, vmin)
        torch.addcmul(b.unsqueeze(1), a.unsqueeze(1), self.x3, out=self.mask)
        self.mask.gt_(0.0)
        torch.mul(w, a, out=self.wab[:, 0])
        torch.mul(w, b, out=self.wab[:, 1])
        torch.bmm(self.mask, self.wab.transpose(1, 2), out=self.fab)
        torch.addcmul(self.fab[:, :, 1], self.fab[:, :, 0], self.x, out=self.f)
        return self.f.add_(c.unsqueeze(1))

    def backprop(self, a, b, c, w, coef, ncy, vmax, vmin) -> torch.Tensor:
        f = self.forward(a, b, c, w, vmax, vmin)
        r = torch.addcmul(ncy, f, coef, out=self.rr[:, 1])
        torch.mul(r, self.x, out=self.rr[:, 0])
        torch.bmm(self.rr, self.mask, out=self.s)
        return r.sum(1)
