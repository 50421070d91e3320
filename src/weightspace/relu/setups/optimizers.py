"""The optimisers of the setups grid: torch.optim's for one configuration, and the same
update rules for many configurations at once, one learning rate each."""

from __future__ import annotations

import math

import torch

from weightspace.relu.setups.config import OPTIMIZERS
from weightspace.relu.shared import ADAM_BETAS, ADAM_EPS, check_choice

MOMENTUM = 0.9


def make_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    check_choice("optimizer", name, OPTIMIZERS)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    return torch.optim.SGD(
        params, lr=lr, momentum=MOMENTUM if name == "gd-mom" else 0.0
    )


class BatchedOptimizer:
    """SGD, SGD with momentum 0.9 and Adam in place on parameters whose leading dimension
    indexes configurations, one learning rate per configuration (``lrs`` (C,)), with
    torch.optim's update rules (no dampening, no Nesterov, no weight decay; Adam β = (0.9,
    0.999), ε = 1e-8 with bias correction). ``step(grads)`` takes the gradients explicitly."""

    def __init__(self, name: str, params: list[torch.Tensor], lrs: torch.Tensor):
        check_choice("optimizer", name, OPTIMIZERS)
        self.name, self.params, self.t = name, params, 0
        self.lrs = [lrs.view(-1, *([1] * (p.dim() - 1))).to(p) for p in params]
        self.state = [[] for _ in params]

    def step(self, grads: list[torch.Tensor]) -> None:
        self.t += 1
        for i, (p, g, lr) in enumerate(zip(self.params, grads, self.lrs)):
            st = self.state[i]
            if self.name == "gd":
                p.sub_(g * lr)
            elif self.name == "gd-mom":
                if not st:
                    st.append(g.clone())
                else:
                    st[0].mul_(MOMENTUM).add_(g)
                p.sub_(st[0] * lr)
            else:
                beta1, beta2 = ADAM_BETAS
                if not st:
                    st.extend([torch.zeros_like(p), torch.zeros_like(p)])
                m, v = st
                m.lerp_(g, 1.0 - beta1)
                v.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
                bc1 = 1.0 - beta1**self.t
                bc2 = 1.0 - beta2**self.t
                denom = (v.sqrt() / math.sqrt(bc2)).add_(ADAM_EPS)
                p.sub_(m / denom * (lr / bc1))

    def silence(self, mask: torch.Tensor) -> None:
        """Stop configurations (mask (C,)): zero their parameters, states and learning rates."""
        for i, p in enumerate(self.params):
            view = mask.view(-1, *([1] * (p.dim() - 1)))
            p.masked_fill_(view, 0.0)
            self.lrs[i] = self.lrs[i].masked_fill(view, 0.0)
            for s in self.state[i]:
                s.masked_fill_(view, 0.0)
