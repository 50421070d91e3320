"""P independent two-layer ReLU networks d → m → 1 evaluated with batched matrix products.

Net p computes f_p(x) = s₂ Σ_i v_pi relu(s₁ w_piᵀx + b_pi) + c_p with first-layer weights
``w1`` (P, d, m), hidden biases ``b1`` (P, m), output weights ``w2`` (P, m) and output bias
``b2`` (P,). The forward factors s₁, s₂ are 1 for the standard (He/"kaiming") parameterisation
and √(2/fan_in) for the NTK parameterisation; biases are never scaled. Nothing couples the nets,
so every parameter slice [p] receives gradient only from net p's loss, and element-wise
optimisers (SGD, momentum, Adam) keep the nets independent.

Inputs are either shared by all nets, (n, d), or per net, (P, n, d); outputs are (P, n).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class BatchedTwoLayer:
    w1: torch.Tensor  # (P, d, m)
    b1: torch.Tensor  # (P, m)
    w2: torch.Tensor  # (P, m)
    b2: torch.Tensor  # (P,)
    scale1: float = 1.0
    scale2: float = 1.0

    @property
    def n_nets(self) -> int:
        return self.w1.shape[0]

    @property
    def in_dim(self) -> int:
        return self.w1.shape[1]

    @property
    def width(self) -> int:
        return self.w1.shape[2]

    def parameters(self) -> list[torch.Tensor]:
        return [self.w1, self.b1, self.w2, self.b2]

    def effective_w1(self) -> torch.Tensor:
        """The weights the forward pass actually uses, s₁·w1 (P, d, m)."""
        return self.w1 * self.scale1 if self.scale1 != 1.0 else self.w1

    def preactivations(self, x: torch.Tensor) -> torch.Tensor:
        """s₁ w_iᵀx + b_i for every net, point and neuron: (P, n, m)."""
        z = torch.matmul(x, self.w1)
        if self.scale1 != 1.0:
            z.mul_(self.scale1)
        # In place: matmul's backward needs its inputs, not its output, and on CPU a fresh
        # (P, n, m) buffer per op costs more than the arithmetic.
        return z.add_(self.b1.unsqueeze(1))

    def output_from_hidden(self, h: torch.Tensor) -> torch.Tensor:
        """(P, n, m) hidden activations → (P, n) outputs."""
        # Multiply-and-sum rather than a batched matrix-vector bmm, which is several times
        # slower on CPU; on GPU both are memory-bound.
        out = (h * self.w2.unsqueeze(1)).sum(2)
        if self.scale2 != 1.0:
            out = out * self.scale2
        return out + self.b2.unsqueeze(1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_from_hidden(torch.relu(self.preactivations(x)))


def empirical_ntk(net: BatchedTwoLayer, x: torch.Tensor) -> torch.Tensor:
    """Gram matrices J Jᵀ (P, n, n) of the output Jacobians with respect to all parameters.

    With z = s₁ wᵀx + b, h = relu(z) and g_i = s₂ v_i 1[z_i > 0], the gradients of f at x are
    ∂f/∂v_i = s₂ h_i, ∂f/∂b_i = g_i, ∂f/∂w_i = s₁ g_i x and ∂f/∂c = 1, so
    K(x, x') = s₂² hᵀh' + gᵀg' (1 + s₁² xᵀx') + 1. This is exact (ReLU has no second-order term
    inside one layer) and needs no per-point backward passes.
    """
    z = net.preactivations(x)
    h = torch.relu(z)
    g = (z > 0).to(z.dtype) * net.w2.unsqueeze(1)
    if net.scale2 != 1.0:
        g = g * net.scale2
    gram_x = torch.matmul(x, x.transpose(-1, -2))
    if gram_x.dim() == 2:
        gram_x = gram_x.unsqueeze(0)
    k = torch.bmm(h, h.transpose(1, 2)) * (net.scale2**2)
    k = k + torch.bmm(g, g.transpose(1, 2)) * (1.0 + net.scale1**2 * gram_x)
    return k + 1.0


@torch.no_grad()
def weighted_sq_loss_and_grads(
    net: BatchedTwoLayer, x: torch.Tensor, y: torch.Tensor, weights: torch.Tensor
):
    """L_p = ½ Σ_j weights_pj (f_p(x_j) − y_j)² (P,), its gradients (like net.parameters()),
    and the activation pattern z > 0 (P, n, m) at which they were taken.

    Explicit formulas for the one-hidden-layer net; they match autograd (see the tests) and
    avoid building a graph in long full-batch runs.
    """
    z = net.preactivations(x)
    active = z > 0
    h = torch.relu_(z)
    f = net.output_from_hidden(h)
    diff = f - y
    r = weights * diff  # (P, n): ∂L/∂f_j
    loss = 0.5 * (r * diff).sum(1)
    g_b2 = r.sum(1)
    g_w2 = torch.bmm(r.unsqueeze(1), h).squeeze(1)  # Σ_j r_j h_ij
    if net.scale2 != 1.0:
        g_w2.mul_(net.scale2)
    w2 = net.w2 * net.scale2 if net.scale2 != 1.0 else net.w2
    # ∂L/∂z = ∂L/∂h · 1[h > 0]: relu's own backward (one fused op; multiplying by the bool
    # mask is several times slower on CPU).
    back = torch.ops.aten.threshold_backward(r.unsqueeze(2) * w2.unsqueeze(1), h, 0.0)
    g_b1 = back.sum(1)
    g_w1 = torch.matmul(x.transpose(-1, -2), back)  # (P, d, m)
    if net.scale1 != 1.0:
        g_w1.mul_(net.scale1)
    return loss, [g_w1, g_b1, g_w2, g_b2], active
