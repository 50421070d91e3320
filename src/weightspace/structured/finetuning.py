"""The fine-tuning protocols of the structured-layer targets (spec §5): the ESANN SSS
fine-tuning (Adam, early stopping on validation accuracy; structured_fig_finetune) and
the survey's halving-lr SGD (structured_table_finetune), both on an 80/20 split of the
training features, training the structured layer under a frozen head.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from weightspace.structured.approximation import Approximation
from weightspace.structured.layers.hierarchical import HMatLayer
from weightspace.structured.layers.low_rank import LowRankLayer
from weightspace.structured.layers.psm import PSMLayer
from weightspace.structured.layers.sss import SSSLayer

# The layers the survey's fine-tuning table trains, by approximation method.
TRAINABLE = {"SSS": SSSLayer, "LR": LowRankLayer, "PSM": PSMLayer, "HMat": HMatLayer}


def layer_from_approximation(approx: Approximation, bias: np.ndarray) -> nn.Module:
    """A trainable layer y = W̃u + b from an approximation (SSS, LR, PSM or HMat),
    float32."""
    if approx.method not in TRAINABLE:
        raise ValueError(
            f"no trainable layer for method {approx.method!r}; "
            f"choose one of {', '.join(TRAINABLE)}"
        )
    if approx.method == "PSM" and approx.structure is None:
        raise ValueError(
            "the PSM factorisation failed (zero matrix); no layer to fine-tune"
        )
    layer_type = TRAINABLE[approx.method]
    return layer_type.from_approximation(approx, bias=np.asarray(bias, np.float64))


def inner_split(
    n: int, seed: int, val_fraction: float = 0.2
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a random 80/20 split (the original's train_test_split(random_state=42)
    role)."""
    perm = np.random.default_rng(seed).permutation(n)
    n_val = int(round(val_fraction * n))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


class _Net(nn.Module):
    def __init__(self, layer: nn.Module, head: nn.Module, double_softmax: bool = False):
        super().__init__()
        self.layer, self.head, self.double_softmax = layer, head, double_softmax

    def forward(self, u):
        out = self.head(self.layer(u))
        return torch.softmax(out, dim=1) if self.double_softmax else out


@torch.no_grad()
def evaluate(
    net: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 4096
) -> tuple[float, float]:
    """(mean cross-entropy, top-1 accuracy) of net on (x, y)."""
    net.eval()
    loss, correct = 0.0, 0
    for start in range(0, len(y), batch_size):
        out = net(x[start : start + batch_size])
        loss += float(
            F.cross_entropy(out, y[start : start + batch_size], reduction="sum")
        )
        correct += int((out.argmax(dim=1) == y[start : start + batch_size]).sum())
    return loss / max(len(y), 1), correct / max(len(y), 1)


def _epoch(net, optimizer, x, y, batch_size, generator):
    net.train()
    perm = torch.randperm(len(y), generator=generator)
    for start in range(0, len(y), batch_size):
        idx = perm[start : start + batch_size]
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(x[idx]), y[idx])
        if not torch.isfinite(loss):
            return False
        loss.backward()
        optimizer.step()
    return True


def _finetune_data(data: tuple, seed: int, split_seed: int, val_on_train: bool):
    """Seeded generator and the (fit, validation, test) tensors of the fine-tuning
    protocols: an 80/20 inner split of the training features; val_on_train validates on
    the fit part (HEAD bug)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    x_train, y_train, x_test, y_test = data
    x_tr, y_tr = torch.as_tensor(x_train), torch.as_tensor(y_train)
    fit, val = inner_split(len(y_tr), split_seed)
    fit_part = (x_tr[fit], y_tr[fit])
    val_part = fit_part if val_on_train else (x_tr[val], y_tr[val])
    return gen, fit_part, val_part, (torch.as_tensor(x_test), torch.as_tensor(y_test))


def _result(before: tuple, after: tuple, **extra) -> dict:
    """Test loss and accuracy before and after fine-tuning, then `extra`."""
    return {
        "test_loss_before": before[0],
        "test_acc_before": before[1],
        "test_loss_after": after[0],
        "test_acc_after": after[1],
        **extra,
    }


def finetune_esann(
    layer: nn.Module,
    head: nn.Module,
    data: tuple,
    *,
    seed: int,
    lr: float = 1e-3,
    batch_size: int = 64,
    patience: int = 10,
    max_epochs: int = 1000,
    split_seed: int = 42,
    val_on_train: bool = False,
    double_softmax: bool = False,
) -> dict:
    """The ESANN SSS fine-tuning (spec §5, ESANN commit) of `layer` under the frozen
    `head` on data = (x_train, y_train, x_test, y_test): Adam + cross-entropy on an
    80/20 split of the training features, best model by validation accuracy, stop after
    ≥ 2·patience epochs once the last `patience` epochs did not beat the earlier maximum
    (or after max_epochs). Returns test accuracy/loss before ("only approx") and after,
    and the history. val_on_train=True validates on the training features (the HEAD
    bug); double_softmax=True applies softmax before the cross-entropy (the
    original)."""
    gen, (x_fit, y_fit), (x_val, y_val), (x_te, y_te) = _finetune_data(
        data, seed, split_seed, val_on_train
    )
    net = _Net(layer, head, double_softmax)
    plain = _Net(layer, head, False)
    before = evaluate(plain, x_te, y_te)
    params = [p for p in layer.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr)
    history, best_acc, best_state = [], -1.0, copy.deepcopy(layer.state_dict())
    for epoch in range(1, max_epochs + 1):
        if not _epoch(net, optimizer, x_fit, y_fit, batch_size, gen):
            break
        val_loss, val_acc = evaluate(net, x_val, y_val)
        history.append({"epoch": epoch, "val_loss": val_loss, "val_acc": val_acc})
        if val_acc > best_acc:
            best_acc, best_state = val_acc, copy.deepcopy(layer.state_dict())
        accs = [h["val_acc"] for h in history]
        if epoch >= 2 * patience and max(accs[-patience:]) <= max(accs[:-patience]):
            break
    layer.load_state_dict(best_state)
    after = evaluate(plain, x_te, y_te)
    return _result(
        before, after, epochs=len(history), best_val_acc=best_acc, history=history
    )


def finetune_decreasing_lr(
    layer: nn.Module,
    head: nn.Module,
    data: tuple,
    *,
    seed: int,
    lr: float = 1.0,
    halvings: int = 9,
    batch_size: int = 256,
    patience: int = 2,
    min_improvement: float = 1e-2,
    max_epochs_per_stage: int = 1000,
    split_seed: int = 42,
    val_on_train: bool = False,
) -> dict:
    """The survey's train_with_decreasing_lr (spec §5) of `layer` under the frozen
    `head` on data = (x_train, y_train, x_test, y_test): SGD with lr, lr/2, …,
    lr/2^halvings; each stage trains until the last `patience` validation losses fail to
    improve on the earlier minimum by min_improvement (or max_epochs_per_stage), then
    restores the best-validation-loss model before the next stage."""
    gen, (x_fit, y_fit), (x_val, y_val), (x_te, y_te) = _finetune_data(
        data, seed, split_seed, val_on_train
    )
    net = _Net(layer, head)
    before = evaluate(net, x_te, y_te)
    params = [p for p in layer.parameters() if p.requires_grad]
    history, epochs = [], 0
    best_loss, best_state = (
        evaluate(net, x_val, y_val)[0],
        copy.deepcopy(layer.state_dict()),
    )
    for stage in range(halvings + 1):
        stage_lr = lr / 2**stage
        optimizer = torch.optim.SGD(params, lr=stage_lr)
        losses = []
        for _ in range(max_epochs_per_stage):
            ok = _epoch(net, optimizer, x_fit, y_fit, batch_size, gen)
            epochs += 1
            val_loss = evaluate(net, x_val, y_val)[0] if ok else math.inf
            val_loss = val_loss if math.isfinite(val_loss) else math.inf
            losses.append(val_loss)
            history.append({"stage": stage, "lr": stage_lr, "val_loss": val_loss})
            if val_loss < best_loss:
                best_loss, best_state = val_loss, copy.deepcopy(layer.state_dict())
            if not ok or not math.isfinite(val_loss):
                break
            if (
                len(losses) > patience
                and min(losses[-patience:]) >= min(losses[:-patience]) - min_improvement
            ):
                break
        layer.load_state_dict(best_state)
    after = evaluate(net, x_te, y_te)
    return _result(
        before, after, epochs=epochs, best_val_loss=best_loss, history=history
    )
