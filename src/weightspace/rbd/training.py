"""Training a network with SGD, RBD, FPD or NES (random_bases.md §2-§5).

Every method runs an ordinary forward (and, except NES, backward) pass on the network;
the methods differ in the update:

- ``sgd``: theta <- theta - eta g (the baseline: no momentum, schedule or decay);
- ``rbd``: theta <- theta - eta Phi_t Phi_t^T g with fresh directions every step;
- ``fpd``: the same with directions fixed for the run; ``fpd_stale_coordinates``
  reproduces the original, whose coordinates were not reset, so the gradient at step t
  was taken at theta_t + Phi c_{t-1} (theta_{t-1} when eta = 1);
- ``nes``: population d, each offspring theta + sigma eps_i evaluated on its own next
  batch, centred ranks u_i (highest loss -0.5), theta <- theta + eta/(sigma d)
  sum_i u_i eps_i / sqrt(D) (the original's update, §4). The offspring noise comes from
  the same counter-based directions as RBD (one direction per chunk).

Per step the cosine between the update and the true mini-batch gradient is recorded,
for the whole network and per variable (RBD and FPD; rbd_fig_correlation).

``workers`` > 1 simulates data-parallel RBD in one process (random_bases.md §9): each
logical worker takes its own batch and its own directions, only the W x sum_k d_k
coordinates would cross the network, and every worker applies the sum of all W steps
(the Ray version's rule: eta per worker, steps added). Once per epoch the summed step
is rebuilt from the exchanged coordinates alone, as a remote worker would, and
compared bit for bit with the step applied (``copies_identical``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from weightspace.rbd.compartments import compartments
from weightspace.rbd.descent import RandomBases, cosine
from weightspace.rbd.directions import DirectionKey, directions, draw, expand

METHODS = ("sgd", "rbd", "fpd", "nes")


@dataclass(frozen=True)
class Method:
    name: str
    lr: float
    d: int = 250
    weights_per_compartment: float = 1e10
    split_dimensions: bool = False
    normalize_per_compartment: bool = False
    fpd_stale_coordinates: bool = False
    nes_sigma: float = 0.01
    chunk: int = 50
    generator: str = "torch"  # of the directions: "torch" or "philox"
    workers: int = 1
    # FPD: draw the fixed directions once and keep them (d x D floats); the same
    # numbers as regenerating them every step, in a fraction of the time
    keep_projection_in_memory: bool = True

    def __post_init__(self):
        if self.name not in METHODS:
            raise ValueError(f"unknown method {self.name!r}; use one of {METHODS}")
        if self.workers < 1 or (self.workers > 1 and self.name != "rbd"):
            raise ValueError(
                f"workers={self.workers}: use workers >= 1, and more than one only "
                "with rbd"
            )


def parameter_layout(model: nn.Module) -> tuple[list[int], list[int]]:
    """Sizes of the trainable parameters in registration order and the id of the layer
    (module) that owns each."""
    sizes, layers, owners = [], [], {}
    for module in model.modules():
        for param in module.parameters(recurse=False):
            if param.requires_grad:
                sizes.append(param.numel())
                layers.append(owners.setdefault(id(module), len(owners)))
    return sizes, layers


def _params(model: nn.Module) -> list[nn.Parameter]:
    return [
        p
        for module in model.modules()
        for p in module.parameters(recurse=False)
        if p.requires_grad
    ]


@torch.no_grad()
def _add(params: list[nn.Parameter], vector: torch.Tensor, alpha: float) -> None:
    offset = 0
    for p in params:
        p.add_(vector[offset : offset + p.numel()].view_as(p), alpha=alpha)
        offset += p.numel()


class Trainer:
    """One network trained by one method; ``step`` consumes batches from an iterator
    (NES takes d of them per update)."""

    def __init__(self, model: nn.Module, method: Method, seed: int):
        self.model, self.method = model, method
        self.params = _params(model)
        sizes, layers = parameter_layout(model)
        self.size = sum(sizes)
        parts = compartments(
            sizes,
            layers,
            method.d,
            method.weights_per_compartment,
            method.split_dimensions,
        )
        self.bases = RandomBases(
            tuple(parts),
            seed,
            fixed=method.name == "fpd",
            normalize_per_compartment=method.normalize_per_compartment,
            chunk=method.chunk,
            generator=method.generator,
        )
        self.seed = seed
        self._projection = None
        if method.name == "fpd" and method.keep_projection_in_memory:
            self._projection = [
                torch.cat(
                    [
                        phi
                        for _, phi in directions(
                            key,
                            part.d,
                            part.size,
                            self.params[0].device,
                            chunk=method.chunk,
                            generator=method.generator,
                        )
                    ]
                )
                / norm
                for part, key, norm in self.bases.compartments(0)
            ]
        self.updates = 0
        self.images = 0
        self._stale: torch.Tensor | None = None
        self.variable_sizes = sizes
        self.scalars_per_step = (
            0
            if method.name == "sgd"
            else method.workers * sum(part.d for part in parts)
        )

    def variable_cosines(self, update: torch.Tensor, g: torch.Tensor) -> list[float]:
        return [
            cosine(u, v)
            for u, v in zip(
                update.split(self.variable_sizes), g.split(self.variable_sizes)
            )
        ]

    def _gradient(self, x, y) -> tuple[torch.Tensor, torch.Tensor]:
        self.model.zero_grad(set_to_none=True)
        out = self.model(x)
        loss = F.cross_entropy(out, y)
        loss.backward()
        g = torch.cat([p.grad.flatten() for p in self.params])
        return g, out.detach()

    def step(self, batches: Iterator, verify_copies: bool = False) -> dict:
        """One update; returns its train loss, accuracy and (RBD, FPD) cosines."""
        if self.method.name == "nes":
            return self._nes(batches)
        if self.method.workers > 1:
            return self._workers_step(batches, verify_copies)
        x, y = next(batches)
        self.images += len(y)
        stale = self._stale if self.method.fpd_stale_coordinates else None
        if stale is not None:
            _add(self.params, stale, 1.0)
        g, out = self._gradient(x, y)
        if stale is not None:
            _add(self.params, stale, -1.0)
        row = {
            "loss": float(F.cross_entropy(out, y)),
            "acc": float((out.argmax(1) == y).float().mean()),
        }
        if self.method.name == "sgd":
            update = g
        else:
            if self._projection is not None:
                update = self._fixed_step(g)
            else:
                update, _ = self.bases.step(g, self.updates)
            row["cosine"] = cosine(update, g)
            row["variable_cosines"] = self.variable_cosines(update, g)
            self._stale = update  # Phi c*_t, what the original's forward adds next
        _add(self.params, update, -self.method.lr)
        self.updates += 1
        return row

    def _workers_step(self, batches: Iterator, verify_copies: bool) -> dict:
        gradients, losses, correct, seen = [], [], 0, 0
        for _ in range(self.method.workers):
            x, y = next(batches)
            g, out = self._gradient(x, y)
            gradients.append(g)
            losses.append(float(F.cross_entropy(out, y)))
            correct += int((out.argmax(1) == y).sum())
            seen += len(y)
        self.images += seen
        total, _ = self.bases.workers_step(gradients, self.updates)
        mean_g = sum(gradients) / len(gradients)
        row = {
            "loss": sum(losses) / len(losses),
            "acc": correct / seen,
            "cosine": cosine(total, mean_g),
            "variable_cosines": self.variable_cosines(total, mean_g),
        }
        if verify_copies:
            shared = [
                self.bases.coordinates(g, self.updates, w)
                for w, g in enumerate(gradients)
            ]
            rebuilt = sum(
                self.bases.step_vector(c, self.updates, w) for w, c in enumerate(shared)
            )
            row["copies_identical"] = bool(torch.equal(rebuilt, total))
        _add(self.params, total, -self.method.lr)
        self.updates += 1
        return row

    def _fixed_step(self, g: torch.Tensor) -> torch.Tensor:
        out = torch.empty_like(g)
        for part, phi in zip(self.bases.parts, self._projection):
            piece = g[part.start : part.stop]
            out[part.start : part.stop] = (phi @ piece) @ phi
        return out

    @torch.no_grad()
    def _nes(self, batches: Iterator) -> dict:
        m = self.method
        key = DirectionKey(self.seed, self.updates)
        losses = torch.empty(m.d, device=self.params[0].device)
        for i in range(m.d):
            eps = draw(
                key, i, 1, self.size, self.params[0].device, generator=m.generator
            )[0]
            _add(self.params, eps, m.nes_sigma)
            x, y = next(batches)
            losses[i] = F.cross_entropy(self.model(x), y)
            _add(self.params, eps, -m.nes_sigma)
            self.images += len(y)
        ranks = torch.empty(m.d, device=losses.device)
        ranks[losses.argsort(descending=True)] = torch.arange(
            m.d, dtype=torch.float32, device=losses.device
        )
        utility = ranks / (m.d - 1) - 0.5
        step = expand(
            utility,
            key,
            self.size,
            math.sqrt(self.size),
            chunk=1,
            generator=m.generator,
        )
        _add(self.params, step, m.lr / (m.nes_sigma * m.d))
        self.updates += 1
        return {"loss": float(losses.mean())}


def evaluate_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict:
    """Loss and top-1 accuracy of ``model`` on (x, y), in batches of 5,000 (the
    original's evaluation batch)."""
    model.eval()
    loss, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(y), 5000):
            out = model(x[start : start + 5000])
            target = y[start : start + 5000]
            loss += float(F.cross_entropy(out, target, reduction="sum"))
            correct += int((out.argmax(1) == target).sum())
    model.train()
    return {"loss": loss / len(y), "acc": correct / len(y)}


def train_method(
    model: nn.Module,
    method: Method,
    seed: int,
    batches: Iterator,
    validation: tuple[torch.Tensor, torch.Tensor],
    epochs: int,
    steps_per_epoch: int,
    log=None,
) -> dict:
    """Train for ``epochs`` x ``steps_per_epoch`` updates (NES: one update per step, each
    consuming d batches), evaluating on ``validation`` after every epoch. Returns the
    per-epoch history (train loss, validation loss and accuracy, cosine mean/min/max
    and per-variable means for RBD and FPD; with workers, whether the step rebuilt from
    the coordinates matched), the updates made, the images seen and the scalars a step
    communicates. A non-finite loss stops the run (status ``diverged``)."""
    trainer = Trainer(model, method, seed)
    history = [{"epoch": 0, **_prefixed(evaluate_accuracy(model, *validation))}]
    status = "completed"
    started = time.perf_counter()
    for epoch in range(1, epochs + 1):
        rows = [
            trainer.step(batches, verify_copies=i == steps_per_epoch - 1)
            for i in range(steps_per_epoch)
        ]
        losses = torch.tensor([r["loss"] for r in rows])
        entry = {"epoch": epoch, "train_loss": float(losses.mean())}
        if "cosine" in rows[0]:
            cos = torch.tensor([r["cosine"] for r in rows])
            entry.update(
                cosine_mean=float(cos.mean()),
                cosine_min=float(cos.min()),
                cosine_max=float(cos.max()),
                variable_cosine_mean=torch.tensor(
                    [r["variable_cosines"] for r in rows], dtype=torch.float64
                )
                .mean(0)
                .tolist(),
            )
        if "copies_identical" in rows[-1]:
            entry["copies_identical"] = rows[-1]["copies_identical"]
        entry.update(_prefixed(evaluate_accuracy(model, *validation)))
        history.append(entry)
        if log is not None:
            elapsed = time.perf_counter() - started
            eta = elapsed / epoch * (epochs - epoch)
            log(
                f"{method.name} epoch {epoch}/{epochs} ({elapsed:.0f}s, eta "
                f"{eta:.0f}s): {entry}"
            )
        if not math.isfinite(entry["train_loss"]) or not math.isfinite(
            entry["val_loss"]
        ):
            status = "diverged"
            break
    return {
        "status": status,
        "history": history,
        "updates": trainer.updates,
        "images": trainer.images,
        "parameters": trainer.size,
        "variable_sizes": trainer.variable_sizes,
        "compartment_parts": [
            {"size": part.size, "d": part.d} for part in trainer.bases.parts
        ],
        "scalars_per_step": trainer.scalars_per_step,
    }


def _prefixed(metrics: dict) -> dict:
    return {f"val_{k}": v for k, v in metrics.items()}
