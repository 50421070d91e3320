"""Many configurations of the setups grid at once: C configurations × P nets as one
batched model with explicit gradients and one learning rate per configuration."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from weightspace.data.seeds import torch_generator
from weightspace.relu.distributions import get_distribution
from weightspace.relu.setups.config import SetupConfig
from weightspace.relu.setups.data import make_data
from weightspace.relu.setups.initialisation import init_setup_nets
from weightspace.relu.setups.optimizers import BatchedOptimizer
from weightspace.relu.setups.result import SetupResult
from weightspace.relu.setups.training import update_best
from weightspace.relu.shared import torch_dtype


@dataclass
class _GridNets:
    """C configurations × P nets as one batched model: parameters (C, P, …), per-config lr."""

    w1: torch.Tensor  # (C, P, d, m)
    b1: torch.Tensor  # (C, P, m)
    w2: torch.Tensor  # (C, P, m)
    b2: torch.Tensor  # (C, P)
    scale1: float
    scale2: float

    def parameters(self) -> list[torch.Tensor]:
        return [self.w1, self.b1, self.w2, self.b2]

    def preactivations(self, x: torch.Tensor) -> torch.Tensor:
        """x (P, n, d) shared by the C configurations → (C, P, n, m)."""
        if x.shape[-1] == 1:
            # d = 1: an outer product; broadcasting beats a batched matmul with k = 1 on CPU.
            z = x.unsqueeze(0) * self.w1
        else:
            z = torch.matmul(x.unsqueeze(0), self.w1)
        if self.scale1 != 1.0:
            z.mul_(self.scale1)
        return z.add_(self.b1.unsqueeze(2))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu_(self.preactivations(x))
        out = (h * self.w2.unsqueeze(2)).sum(3)
        if self.scale2 != 1.0:
            out = out * self.scale2
        return out + self.b2.unsqueeze(2)


def _grid_loss_and_grads(nets: _GridNets, x: torch.Tensor, y: torch.Tensor):
    """Per-net mean squared error over the batch (C, P) and its gradients, by explicit formulas
    (a one-hidden-layer ReLU net needs no autograd graph): ∂/∂f_j = 2 (f_j − y_j)/B."""
    h = torch.relu_(nets.preactivations(x))
    out = (h * nets.w2.unsqueeze(2)).sum(3)
    if nets.scale2 != 1.0:
        out = out * nets.scale2
    diff = out.add_(nets.b2.unsqueeze(2)).sub_(y)  # (C, P, B)
    loss = (diff * diff).mean(2)
    r = diff.mul_(2.0 / diff.shape[2])
    g_b2 = r.sum(2)
    g_w2 = torch.matmul(r.unsqueeze(2), h).squeeze(2)
    w2 = nets.w2
    if nets.scale2 != 1.0:
        g_w2.mul_(nets.scale2)
        w2 = w2 * nets.scale2
    # ∂/∂z = ∂/∂h · 1[z > 0] = 1[h > 0]: relu's own backward, one fused op without a bool mask.
    back = torch.ops.aten.threshold_backward(r.unsqueeze(3) * w2.unsqueeze(2), h, 0.0)
    g_b1 = back.sum(2)
    g_w1 = torch.matmul(x.transpose(1, 2).unsqueeze(0), back)  # (C, P, d, m)
    if nets.scale1 != 1.0:
        g_w1.mul_(nets.scale1)
    return loss, [g_w1, g_b1, g_w2, g_b2]


def run_setup_grid(
    base: SetupConfig,
    settings: Sequence[tuple[str, float]],
    seed: int,
    device="cpu",
    progress: Callable[[dict], None] | None = None,
    *,
    shared_dataset: bool = False,
    keep_model: bool = False,
) -> list[SetupResult]:
    """Train the configurations ``replace(base, bias_init=b, lr=lr)`` for every (b, lr) in
    ``settings`` at once, as one batched model of len(settings) × base.n_nets independent nets.

    Each result equals ``run_setup`` of its configuration with the same seed up to floating-point
    rounding: the same data sets, initial weights and minibatch order (all nets of a column p share
    net p's data set, as configurations of one seed do), the same update rules (explicit gradients
    and per-configuration learning rates instead of autograd and torch.optim), and the same NaN
    rule (a configuration whose loss is NaN at some step stops at the next validation check; its
    parameters are then zeroed so that it no longer produces non-finite values).
    ``shared_dataset`` and ``keep_model`` are as in ``run_setup``.
    """
    if not settings:
        return []
    configs = [
        dataclasses.replace(base, bias_init=b, lr=float(lr)) for b, lr in settings
    ]
    dist = get_distribution(base.distribution)
    dtype = torch_dtype(base.dtype)
    c_count, p, n_train, batch = (
        len(configs),
        base.n_nets,
        base.n_train,
        base.batch_size,
    )
    data = make_data(
        base.distribution,
        p,
        n_train,
        base.n_valid,
        base.n_test,
        seed,
        shared_dataset=shared_dataset,
    )
    ystd = data.y_std.squeeze(1).double().numpy()

    inits = {}
    for b in dict.fromkeys(c.bias_init for c in configs):
        inits[b] = init_setup_nets(
            base.parameterisation, b, base.width, p, seed, data, dtype
        )
    first = inits[configs[0].bias_init]
    nets = _GridNets(
        *(
            torch.stack([getattr(inits[c.bias_init], name) for c in configs])
            .to(device)
            .contiguous()
            for name in ("w1", "b1", "w2", "b2")
        ),
        scale1=first.scale1,
        scale2=first.scale2,
    )
    del inits
    x_tr, y_tr, x_va, y_va, x_te, y_te = data.splits(device, dtype)
    lrs = torch.tensor([c.lr for c in configs], dtype=torch.float64, device=device)
    opt = BatchedOptimizer(base.optimizer, nets.parameters(), lrs)

    batch_gen = torch_generator(seed, "setups", "batches", n_train, batch)
    steps_per_epoch = n_train // batch
    rows = torch.arange(p, device=device).unsqueeze(1)
    nan_seen = torch.zeros(c_count, dtype=torch.bool, device=device)
    stopped = torch.zeros(c_count, dtype=torch.bool, device=device)
    aborted_at = [None] * c_count
    best_valid = best_test = valid = test = None
    best_step = torch.zeros(c_count, p, dtype=torch.int64, device=device)
    perm = None

    def mse(x, y, chunk):
        total = torch.zeros(c_count, p, dtype=x.dtype, device=x.device)
        with torch.no_grad():
            for start in range(0, x.shape[1], chunk):
                diff = nets(x[:, start : start + chunk]) - y[:, start : start + chunk]
                total += (diff * diff).sum(2)
        return total / x.shape[1]

    with torch.no_grad():
        for step in range(base.steps):
            k = step % steps_per_epoch
            if k == 0:
                perm = torch.argsort(
                    torch.rand(p, n_train, generator=batch_gen), dim=1
                ).to(device)
            idx = perm[:, k * batch : (k + 1) * batch]
            loss, grads = _grid_loss_and_grads(nets, x_tr[rows, idx], y_tr[rows, idx])
            nan_seen |= torch.isnan(loss.sum(1))
            opt.step(grads)
            done = step + 1
            if done % base.valid_every == 0 or done == base.steps:
                new = nan_seen & ~stopped
                if bool(new.any()):
                    for c in new.nonzero().flatten().tolist():
                        aborted_at[c] = done
                    stopped |= new
                    opt.silence(new)
                valid = mse(x_va, y_va, 1024)
                test = mse(x_te, y_te, 1024)
                best_valid, best_test, improved = update_best(
                    best_valid,
                    best_test,
                    valid,
                    test,
                    best_test_uses_valid=base.best_test_uses_valid,
                )
                best_step = torch.where(improved, done, best_step)
                if progress is not None:
                    scale = torch.as_tensor(ystd, device=device, dtype=valid.dtype)
                    rmse = (valid.sqrt() * scale).mean(1)
                    live = ~stopped
                    progress(
                        {
                            "step": done,
                            "steps": base.steps,
                            "configs": c_count,
                            "stopped": int(stopped.sum()),
                            "best_valid_rmse_min": float(rmse[live].min())
                            if bool(live.any())
                            else float("nan"),
                        }
                    )
        train = mse(x_tr, y_tr, batch)

    def rmse(values, c):
        return np.sqrt(values[c].double().cpu().numpy()) * ystd

    results = []
    for c, config in enumerate(configs):
        if aborted_at[c] is not None:
            nan = np.full(p, np.nan)
            results.append(
                SetupResult(
                    config=config,
                    status="nan",
                    ystd=ystd.copy(),
                    last_train_rmse=nan,
                    last_valid_rmse=nan,
                    last_test_rmse=nan,
                    best_valid_rmse=nan,
                    best_test_rmse=nan,
                    best_step=np.full(p, -1, dtype=np.int64),
                    test_bayes_rmse=dist.bayes_rmse,
                    aborted_at_step=aborted_at[c],
                )
            )
            continue
        results.append(
            SetupResult(
                config=config,
                status="ok",
                ystd=ystd.copy(),
                last_train_rmse=rmse(train, c),
                last_valid_rmse=rmse(valid, c),
                last_test_rmse=rmse(test, c),
                best_valid_rmse=rmse(best_valid, c),
                best_test_rmse=rmse(best_test, c),
                best_step=best_step[c].cpu().numpy(),
                test_bayes_rmse=dist.bayes_rmse,
            )
        )
        if keep_model:
            results[-1].model = {
                name: getattr(nets, name)[c].cpu().clone()
                for name in ("w1", "b1", "w2", "b2")
            }
            results[-1].model.update(
                scale1=torch.tensor(nets.scale1),
                scale2=torch.tensor(nets.scale2),
                x_mean=data.x_mean,
                x_std=data.x_std,
                y_mean=data.y_mean,
                y_std=data.y_std,
            )
    return results
