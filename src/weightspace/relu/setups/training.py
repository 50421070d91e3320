"""Training one configuration of the setups grid (torch.optim and autograd), the best-
validation bookkeeping, and the outputs of a kept model."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch

from weightspace.data.seeds import torch_generator
from weightspace.relu.batched import BatchedTwoLayer
from weightspace.relu.distributions import get_distribution
from weightspace.relu.setups.config import SetupConfig
from weightspace.relu.setups.data import make_data
from weightspace.relu.setups.initialisation import init_setup_nets
from weightspace.relu.setups.optimizers import make_optimizer
from weightspace.relu.setups.result import SetupResult
from weightspace.relu.shared import torch_dtype


def update_best(
    best_valid: torch.Tensor | None,
    best_test: torch.Tensor | None,
    valid: torch.Tensor,
    test: torch.Tensor,
    *,
    best_test_uses_valid: bool = False,
):
    """Fold one validation check into the running (best_valid, best_test) per net.

    A net improves when its validation MSE is strictly below its best so far; its best test MSE is
    then its current test MSE (or, with the original's defect, its current validation MSE).
    Returns (best_valid, best_test, improved).
    """
    if best_valid is None:
        return valid.clone(), test.clone(), torch.ones_like(valid, dtype=torch.bool)
    improved = valid < best_valid
    new_test = valid if best_test_uses_valid else test
    return (
        torch.where(improved, valid, best_valid),
        torch.where(improved, new_test, best_test),
        improved,
    )


def _mse_in_batches(net, x, y, batch):
    total = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    for start in range(0, x.shape[1], batch):
        diff = net(x[:, start : start + batch]) - y[:, start : start + batch]
        total += (diff * diff).sum(1)
    return total / x.shape[1]


def predict(model: Mapping, x: torch.Tensor) -> torch.Tensor:
    """Outputs in y units of a model kept by ``run_setup(keep_model=True)`` at raw inputs x
    ((n, d) shared or (P, n, d)): standardise with the train statistics, apply, undo."""
    net = BatchedTwoLayer(
        model["w1"],
        model["b1"],
        model["w2"],
        model["b2"],
        scale1=float(model["scale1"]),
        scale2=float(model["scale2"]),
    )
    x = x.to(model["w1"].dtype)
    z = (x - model["x_mean"].to(x.dtype)) / model["x_std"].to(x.dtype)
    with torch.no_grad():
        out = net(z)
    return out * model["y_std"].to(out.dtype) + model["y_mean"].to(out.dtype)


def run_setup(
    config: SetupConfig,
    seed: int,
    device="cpu",
    progress: Callable[[dict], None] | None = None,
    *,
    shared_dataset: bool = False,
    keep_model: bool = False,
) -> SetupResult:
    """Train config.n_nets nets of one configuration and return their metrics.

    Random streams derive from ``seed``: the data sets from (seed, distribution), the initial
    weights from (seed, d, width), the minibatch order from (seed, n_train, batch size). So runs
    with one seed that differ only in lr, optimiser, bias init or parameterisation see the same
    data and the same underlying normals (paired comparisons, as the original's fixed seed gives).
    ``progress(info)`` is called at every validation check. ``shared_dataset`` trains all nets on
    one data set (the example figure); ``keep_model`` puts the final parameters and the
    standardisation into ``result.model`` (CPU tensors, see ``predict``).
    """
    dist = get_distribution(config.distribution)
    dtype = torch_dtype(config.dtype)
    p, n_train, batch = config.n_nets, config.n_train, config.batch_size
    data = make_data(
        config.distribution,
        p,
        n_train,
        config.n_valid,
        config.n_test,
        seed,
        shared_dataset=shared_dataset,
    )
    ystd = data.y_std.squeeze(1)

    net = init_setup_nets(
        config.parameterisation, config.bias_init, config.width, p, seed, data, dtype
    )
    x_tr, y_tr, x_va, y_va, x_te, y_te = data.splits(device, dtype)
    for name in ("w1", "b1", "w2", "b2"):
        setattr(net, name, getattr(net, name).to(device).requires_grad_(True))
    opt = make_optimizer(config.optimizer, net.parameters(), config.lr)

    batch_gen = torch_generator(seed, "setups", "batches", n_train, batch)
    steps_per_epoch = n_train // batch
    rows = torch.arange(p, device=device).unsqueeze(1)
    nan_seen = torch.zeros((), dtype=torch.bool, device=device)
    best_valid = best_test = valid = test = None
    best_step = torch.zeros(p, dtype=torch.int64, device=device)
    perm = None

    def aborted(step):
        nan = np.full(p, np.nan)
        return SetupResult(
            config=config,
            status="nan",
            ystd=ystd.double().cpu().numpy(),
            last_train_rmse=nan,
            last_valid_rmse=nan,
            last_test_rmse=nan,
            best_valid_rmse=nan,
            best_test_rmse=nan,
            best_step=np.full(p, -1, dtype=np.int64),
            test_bayes_rmse=dist.bayes_rmse,
            aborted_at_step=step,
        )

    for step in range(config.steps):
        k = step % steps_per_epoch
        if k == 0:
            # A fresh permutation per net and epoch: batches without replacement, as randperm.
            perm = torch.argsort(torch.rand(p, n_train, generator=batch_gen), dim=1).to(
                device
            )
        idx = perm[:, k * batch : (k + 1) * batch]
        diff = net(x_tr[rows, idx]) - y_tr[rows, idx]
        loss = (diff * diff).mean(1).sum()
        nan_seen |= torch.isnan(loss.detach())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        done = step + 1
        if done % config.valid_every == 0 or done == config.steps:
            # One host sync per check instead of per step; the aborted outcome is the same.
            if bool(nan_seen):
                return aborted(done)
            with torch.no_grad():
                valid = _mse_in_batches(net, x_va, y_va, 1024)
                test = _mse_in_batches(net, x_te, y_te, 1024)
            best_valid, best_test, improved = update_best(
                best_valid,
                best_test,
                valid,
                test,
                best_test_uses_valid=config.best_test_uses_valid,
            )
            best_step = torch.where(improved, done, best_step)
            if progress is not None:
                scale = ystd.to(device=device, dtype=valid.dtype)
                progress(
                    {
                        "step": done,
                        "steps": config.steps,
                        "train_loss": float(loss.detach()) / p,
                        "valid_rmse": float((valid.sqrt() * scale).mean()),
                        "best_valid_rmse": float((best_valid.sqrt() * scale).mean()),
                    }
                )

    with torch.no_grad():
        train = _mse_in_batches(net, x_tr, y_tr, batch)

    scale = ystd.double().cpu().numpy()

    def rmse(mse):
        return np.sqrt(mse.double().cpu().numpy()) * scale

    result = SetupResult(
        config=config,
        status="ok",
        ystd=scale,
        last_train_rmse=rmse(train),
        last_valid_rmse=rmse(valid),
        last_test_rmse=rmse(test),
        best_valid_rmse=rmse(best_valid),
        best_test_rmse=rmse(best_test),
        best_step=best_step.cpu().numpy(),
        test_bayes_rmse=dist.bayes_rmse,
    )
    if keep_model:
        result.model = {
            name: getattr(net, name).detach().cpu().clone()
            for name in ("w1", "b1", "w2", "b2")
        }
        result.model.update(
            scale1=torch.tensor(net.scale1),
            scale2=torch.tensor(net.scale2),
            x_mean=data.x_mean,
            x_std=data.x_std,
            y_mean=data.y_mean,
            y_std=data.y_std,
        )
    return result
