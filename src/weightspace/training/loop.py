"""Epoch-based training with per-epoch metrics, atomic checkpoints, exact resume and divergence detection.

A checkpoint written after every completed epoch holds the model, optimizer and scheduler states, the
metric history, and every random state the next epoch consumes (torch CPU and CUDA, numpy's and
Python's global generators, and the generators of the data loaders). Resuming from it therefore
replays the remaining epochs exactly: on CPU a killed-and-resumed run ends bit-identical to an
uninterrupted one, and a killed job loses at most the epoch in progress.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from weightspace.provenance.atomic import atomic_torch_save

from .devices import resolve_device

CHECKPOINT_FORMAT = "weightspace-train-checkpoint-v1"
COMPLETED = "completed"
DIVERGED = "diverged"

_logger = logging.getLogger(__name__)


@dataclasses.dataclass
class TrainResult:
    """Outcome of ``train``: status ``"completed"`` or ``"diverged"``, and one metrics dict per epoch.

    ``history[i]`` holds ``epoch``, ``train_loss``, ``train_acc`` (classification only), ``lr``,
    ``<loader>_loss`` / ``<loader>_acc`` (/ ``<loader>_top5``) per evaluation loader, ``seconds``,
    and whatever ``on_epoch_end`` returned. With ``eval_before_training`` the first entry is epoch 0
    (evaluation of the initial model only). On divergence ``diverged_epoch`` / ``diverged_step``
    (1-based step within that epoch) / ``diverged_global_step`` say where the loss or the weights
    stopped being finite; the history ends with the last finite epoch.
    """

    status: str
    epochs: int
    epochs_completed: int
    history: list[dict[str, Any]]
    diverged_epoch: int | None = None
    diverged_step: int | None = None
    diverged_global_step: int | None = None
    diverged_loss: float | None = None
    resumed_from_epoch: int | None = None
    seconds: float = 0.0
    checkpoint_path: str | None = None

    @property
    def completed(self) -> bool:
        return self.status == COMPLETED

    @property
    def final(self) -> dict[str, Any]:
        """Metrics of the last recorded epoch (empty if none)."""
        return dict(self.history[-1]) if self.history else {}

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable copy; non-finite floats (a diverged loss) become None, as strict JSON requires."""
        return _json_safe(dataclasses.asdict(self))


def _json_safe(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _plain(value, where: str):
    """Metrics as plain Python numbers/containers, so checkpoints load with ``weights_only=True``
    and run records serialise to JSON."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): _plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise TypeError(
        f"metric {where} has type {type(value).__name__}; on_epoch_end must return numbers, strings, "
        "lists or dicts of them (convert arrays with .tolist())"
    )


# ----------------------------------------------------------------------------------------------
# checkpoints


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by ``train`` (tensors on the CPU)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise RuntimeError(
            f"cannot read checkpoint {path} ({type(error).__name__}: {error}); delete it to train from scratch"
        ) from error
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise RuntimeError(
            f"{path} is not a training checkpoint of this version; delete it to train from scratch"
        )
    return state


def _loader_generators(loaders: Iterable) -> list[torch.Generator]:
    """Every torch.Generator that drives a loader's shuffling or worker seeds (deduplicated, stable order)."""
    found: list[torch.Generator] = []
    for loader in loaders:
        sampler = getattr(loader, "sampler", None)
        batch_sampler = getattr(loader, "batch_sampler", None)
        candidates = [
            getattr(loader, "generator", None),
            getattr(sampler, "generator", None),
            getattr(getattr(batch_sampler, "sampler", None), "generator", None),
        ]
        for generator in candidates:
            if isinstance(generator, torch.Generator) and all(
                generator is not g for g in found
            ):
                found.append(generator)
    return found


def _rng_state(generators: list[torch.Generator]) -> dict[str, Any]:
    np_state = np.random.get_state()
    version, key, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None,
        "numpy": [
            np_state[0],
            np_state[1].tolist(),
            int(np_state[2]),
            int(np_state[3]),
            float(np_state[4]),
        ],
        "python": [version, list(key), gauss_next],
        "generators": [g.get_state() for g in generators],
    }


def _set_rng_state(
    state: dict[str, Any], generators: list[torch.Generator], path
) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, key, pos, has_gauss, cached = state["numpy"]
    np.random.set_state(
        (name, np.asarray(key, dtype=np.uint32), pos, has_gauss, cached)
    )
    version, key, gauss_next = state["python"]
    random.setstate((version, tuple(key), gauss_next))
    if len(state["generators"]) != len(generators):
        raise RuntimeError(
            f"checkpoint {path} saved {len(state['generators'])} data-loader generator(s) but the loaders now "
            f"have {len(generators)}; build the loaders as in the original run, or delete the checkpoint"
        )
    for generator, generator_state in zip(generators, state["generators"]):
        generator.set_state(generator_state)


# ----------------------------------------------------------------------------------------------
# evaluation


def _classification(outputs: torch.Tensor, targets: torch.Tensor) -> bool:
    return outputs.ndim == 2 and targets.ndim == 1 and not targets.is_floating_point()


def _unpack(batch, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(batch, (list, tuple)) or len(batch) != 2:
        raise TypeError("data loaders must yield (inputs, targets) pairs")
    inputs, targets = batch
    return inputs.to(device, non_blocking=True), targets.to(device, non_blocking=True)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable,
    loss_fn: Callable | None = None,
    device: str | torch.device = "cpu",
    top5: bool = False,
) -> dict[str, float]:
    """Mean loss over samples (batches weighted by size) and, for classification, top-1 accuracy
    (``acc``) and optionally top-5 (``top5``), in eval mode; the model's train/eval mode is restored.

    ``loss_fn`` must return the batch mean (the default is cross-entropy).
    """
    loss_fn = nn.CrossEntropyLoss() if loss_fn is None else loss_fn
    device = resolve_device(device)
    was_training = model.training
    model.eval()
    total_loss, correct, correct5, count = 0.0, 0, 0, 0
    classification = True
    try:
        for batch in loader:
            inputs, targets = _unpack(batch, device)
            outputs = model(inputs)
            n = targets.shape[0]
            total_loss += loss_fn(outputs, targets).item() * n
            count += n
            classification = classification and _classification(outputs, targets)
            if classification:
                correct += (outputs.argmax(dim=1) == targets).sum().item()
                if top5:
                    k = min(5, outputs.shape[1])
                    correct5 += (
                        (outputs.topk(k, dim=1).indices == targets[:, None])
                        .any(dim=1)
                        .sum()
                        .item()
                    )
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("evaluation loader yielded no samples")
    metrics = {"loss": total_loss / count}
    if classification:
        metrics["acc"] = correct / count
        if top5:
            metrics["top5"] = correct5 / count
    return metrics


# ----------------------------------------------------------------------------------------------
# training


def _log_function(log) -> Callable[[str], None]:
    if log is None:
        return _logger.info
    if isinstance(log, logging.Logger):
        return log.info
    if callable(log):
        return log
    raise TypeError(
        f"log must be a logging.Logger, a callable taking a string, or None; got {type(log).__name__}"
    )


def _format_metrics(metrics: Mapping[str, Any]) -> str:
    parts = []
    for key, value in metrics.items():
        if key in ("epoch", "seconds"):
            continue
        if isinstance(value, float):
            parts.append(f"{key} {value:.4g}")
        elif isinstance(value, (int, str)):
            parts.append(f"{key} {value}")
    return " ".join(parts)


def _params_finite(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def _duration(seconds: float) -> str:
    """12s, 4m05s or 2h03m: an ETA for a log line."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def train(
    model: nn.Module,
    train_loader: Iterable,
    eval_loaders: Mapping[str, Iterable] | None,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    loss_fn: Callable | None = None,
    device: str | torch.device = "cpu",
    checkpoint_path: str | os.PathLike | None = None,
    log: logging.Logger | Callable[[str], None] | None = None,
    scheduler=None,
    on_epoch_end: Callable[[int, dict], Mapping | None] | None = None,
    scheduler_interval: str = "epoch",
    regularizer: Callable[[nn.Module], torch.Tensor] | None = None,
    max_grad_norm: float | None = None,
    eval_before_training: bool = False,
    top5: bool = False,
    log_every: int = 0,
    plateau_metric: str | None = None,
) -> TrainResult:
    """Train ``model`` for ``epochs`` epochs, evaluating on every loader of ``eval_loaders`` after each.

    - ``loss_fn(outputs, targets)`` returns the batch mean (default cross-entropy); ``regularizer(model)``,
      if given, is added to it (e.g. auxiliary losses collected during the forward pass).
    - ``scheduler`` steps once per epoch (``scheduler_interval="epoch"``; ReduceLROnPlateau receives
      the first evaluation loss, or the train loss) or after every optimizer step (``"step"``).
    - ``on_epoch_end(epoch, metrics)`` runs after evaluation and before the checkpoint, so changes it
      makes to the model or optimizer are saved; a dict it returns is merged into that epoch's metrics.
    - With ``checkpoint_path`` a checkpoint is written atomically after every epoch; if the file exists
      when ``train`` starts, training resumes after its epoch (model, optimizer, scheduler, history and
      random states restored; build the model, optimizer, scheduler and loaders as for the original run).
    - A non-finite loss (or non-finite weights after an epoch) stops training with status "diverged";
      the checkpoint keeps the last finite epoch.
    - ``log_every`` > 0 also logs the running train loss every that many steps.
    - ``plateau_metric`` names the metric a ReduceLROnPlateau scheduler reads (e.g.
      ``"val_acc"`` with ``mode="max"``); by default the first evaluation loss.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs must be a non-negative int, got {epochs!r}")
    if scheduler_interval not in ("epoch", "step"):
        raise ValueError(
            f"scheduler_interval must be 'epoch' or 'step', got {scheduler_interval!r}"
        )
    eval_loaders = dict(eval_loaders or {})
    for name in eval_loaders:
        if not isinstance(name, str) or not name or name == "train":
            raise ValueError(
                f"evaluation loader names must be non-empty strings other than 'train', got {name!r}"
            )
    loss_fn = nn.CrossEntropyLoss() if loss_fn is None else loss_fn
    emit = _log_function(log)
    device = resolve_device(device)
    model.to(device)
    generators = _loader_generators([train_loader, *eval_loaders.values()])
    plateau = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    checkpoint_path = Path(checkpoint_path) if checkpoint_path is not None else None

    history: list[dict[str, Any]] = []
    start_epoch, global_step, resumed_from = 0, 0, None
    started = time.perf_counter()

    def evaluate_all() -> dict[str, Any]:
        metrics = {}
        for name, loader in eval_loaders.items():
            for key, value in evaluate(
                model, loader, loss_fn, device, top5=top5
            ).items():
                metrics[f"{name}_{key}"] = value
        return metrics

    def result(status: str, **divergence) -> TrainResult:
        completed = sum(1 for entry in history if entry["epoch"] > 0)
        return TrainResult(
            status=status,
            epochs=epochs,
            epochs_completed=completed,
            history=history,
            resumed_from_epoch=resumed_from,
            seconds=time.perf_counter() - started,
            checkpoint_path=str(checkpoint_path)
            if checkpoint_path is not None
            else None,
            **divergence,
        )

    if checkpoint_path is not None and checkpoint_path.exists():
        state = load_checkpoint(checkpoint_path)
        if (state["scheduler"] is None) != (scheduler is None):
            raise ValueError(
                f"checkpoint {checkpoint_path} was written {'without' if state['scheduler'] is None else 'with'} "
                "a learning-rate scheduler but this run has the opposite; configure the run as before or delete "
                "the checkpoint"
            )
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            if scheduler is not None:
                scheduler.load_state_dict(state["scheduler"])
        except (RuntimeError, ValueError, KeyError) as error:
            raise RuntimeError(
                f"checkpoint {checkpoint_path} does not match this model/optimizer/scheduler ({error}); "
                "delete it to train from scratch"
            ) from error
        _set_rng_state(state["rng"], generators, checkpoint_path)
        start_epoch, global_step, history = (
            state["epoch"],
            state["global_step"],
            list(state["history"]),
        )
        resumed_from = start_epoch
        emit(f"resuming from {checkpoint_path} after epoch {start_epoch}/{epochs}")
    elif eval_before_training:
        initial = {"epoch": 0, "lr": optimizer.param_groups[0]["lr"], **evaluate_all()}
        history.append(initial)
        emit(f"epoch 0/{epochs} {_format_metrics(initial)}")

    epoch_seconds: list[float] = []  # this process's epochs, for the ETA in the log
    for epoch in range(start_epoch + 1, epochs + 1):
        epoch_started = time.perf_counter()
        model.train()
        lr = optimizer.param_groups[0]["lr"]
        total_loss, correct, count, step = 0.0, 0, 0, 0
        classification = True
        for step, batch in enumerate(train_loader, start=1):
            inputs, targets = _unpack(batch, device)
            optimizer.zero_grad(set_to_none=True)
            outputs = model(inputs)
            loss = loss_fn(outputs, targets)
            if regularizer is not None:
                loss = loss + regularizer(model)
            loss_value = loss.item()
            global_step += 1
            if not math.isfinite(loss_value):
                emit(
                    f"epoch {epoch}/{epochs}: loss became {loss_value} at step {step} (global step {global_step})"
                )
                return result(
                    DIVERGED,
                    diverged_epoch=epoch,
                    diverged_step=step,
                    diverged_global_step=global_step,
                    diverged_loss=loss_value,
                )
            loss.backward()
            if max_grad_norm is not None:
                nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
            optimizer.step()
            if scheduler is not None and scheduler_interval == "step":
                scheduler.step()

            n = targets.shape[0]
            total_loss += loss_value * n
            count += n
            classification = classification and _classification(outputs, targets)
            if classification:
                correct += (outputs.detach().argmax(dim=1) == targets).sum().item()
            if log_every and step % log_every == 0:
                emit(
                    f"epoch {epoch}/{epochs} step {step} train_loss {total_loss / count:.4g}"
                )
        if count == 0:
            raise ValueError("the training loader yielded no batches")
        if not _params_finite(model):
            emit(f"epoch {epoch}/{epochs}: weights became non-finite; stopping")
            return result(
                DIVERGED,
                diverged_epoch=epoch,
                diverged_step=step,
                diverged_global_step=global_step,
            )

        metrics: dict[str, Any] = {"epoch": epoch, "train_loss": total_loss / count}
        if classification:
            metrics["train_acc"] = correct / count
        metrics["lr"] = lr
        metrics.update(evaluate_all())
        if scheduler is not None and scheduler_interval == "epoch":
            if plateau and plateau_metric is not None:
                if plateau_metric not in metrics:
                    raise ValueError(
                        f"plateau_metric {plateau_metric!r} is not among this epoch's "
                        f"metrics ({', '.join(sorted(metrics))})"
                    )
                scheduler.step(metrics[plateau_metric])
            elif plateau:
                monitored = next(
                    (
                        v
                        for k, v in metrics.items()
                        if k.endswith("_loss") and k != "train_loss"
                    ),
                    None,
                )
                scheduler.step(
                    metrics["train_loss"] if monitored is None else monitored
                )
            else:
                scheduler.step()
        if on_epoch_end is not None:
            extra = on_epoch_end(epoch, dict(metrics))
            if extra:
                metrics.update(_plain(dict(extra), "on_epoch_end"))
        metrics["seconds"] = time.perf_counter() - epoch_started
        history.append(metrics)

        if checkpoint_path is not None:
            atomic_torch_save(
                {
                    "format": CHECKPOINT_FORMAT,
                    "epoch": epoch,
                    "global_step": global_step,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict()
                    if scheduler is not None
                    else None,
                    "history": history,
                    "rng": _rng_state(generators),
                },
                checkpoint_path,
            )
        epoch_seconds.append(metrics["seconds"])
        eta = sum(epoch_seconds) / len(epoch_seconds) * (epochs - epoch)
        emit(
            f"epoch {epoch}/{epochs} {_format_metrics(metrics)} "
            f"({metrics['seconds']:.1f}s, eta {_duration(eta)})"
        )

    return result(COMPLETED)
