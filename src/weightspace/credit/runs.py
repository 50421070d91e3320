"""One training run of the credit targets (credit_assignment.md "Targets", §5, §6, §9,
§11): a rule variant trains a model on a data set, evaluated on the held-out part at a
fixed cadence (top-1, top-5, per-layer angle(W, B̃) and the probes of §2), with optional
noisy updates. No I/O: the caller gives the data, the starting state of a resumed run
and a callback that stores checkpoints.

Protocol. Total loss loss_rate·(CE + L2 on forward kernels) + alignment_rate·Σ R; SGD
with Nesterov momentum by default; the learning rate is constant or the §5 schedule
(linear warm-up, then ×0.1 at epochs 30, 60, 80). A rule that alternates k task steps
with one alignment step (the paper's IA) takes (k + 1) steps per task epoch, and its
schedule boundaries stretch with it. Evaluation before the first step, every
``eval_every_steps`` steps (or ``eval_every_epochs`` epochs of steps) and after the
last step. A non-finite loss stops the run as ``diverged``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F

from weightspace.credit.layers import clear_records, feedback_layers
from weightspace.credit.metrics import layer_probes, weight_angles
from weightspace.credit.models import (
    build_model,
    count_backward_parameters,
    count_forward_parameters,
)
from weightspace.credit.optim import (
    NoisyUpdates,
    learning_rate,
    make_optimizer,
    noise_targets,
    set_learning_rate,
)
from weightspace.credit.presets import rule_of, uses_noise_inputs
from weightspace.credit.primitives import AlignmentOptions
from weightspace.credit.rules import LearningRule, RateSchedule, make_rule
from weightspace.credit.training import train_step
from weightspace.data.seeds import derive_seed

COMPLETED, DIVERGED = "completed", "diverged"


@dataclass(frozen=True)
class Protocol:
    """The training protocol of a job (the ``credit`` keys of ``jobs.PROTOCOL``)."""

    epochs: int
    batch_size: int
    max_steps_per_epoch: int | None
    optimizer: str
    learning_rate: float
    constant_lr: bool
    lr_drop_epochs: list[float]
    warmup_epochs: float
    weight_decay: float
    eval_every_steps: int | None
    eval_every_epochs: float | None
    eval_batch_size: int
    drop_eval_remainder: bool
    probe_batch: int
    checkpoint_every_steps: int | None
    num_workers: int

    @classmethod
    def from_job(cls, job: Mapping) -> Protocol:
        names = {f.name for f in fields(cls)}
        return cls(
            epochs=job["epochs"], **{k: job["protocol"][k] for k in names - {"epochs"}}
        )


@dataclass(frozen=True)
class Variant:
    """A rule variant resolved for a run: the rule, its rate schedule and epochs."""

    name: str
    rule: LearningRule
    rates: RateSchedule
    epochs: int
    alternate_step_freq: int | None


def make_variant(
    variant: str, alignment: Mapping, weight_decay: float, epochs: int
) -> Variant:
    """The learning rule of a variant with the job's coefficients: the §4 defaults
    times ``coefficient_scale`` unless ``coefficients`` gives a rule its own values,
    Kolen-Pollack's α = ``kp_alpha`` (None: λ/2), noise inputs for WM and IA
    (``noise_inputs``), and a rule's own ``rule_schedules`` (epochs, alternation)."""
    rule_name = rule_of(variant)
    given = dict(alignment.get("coefficients", {}).get(rule_name, {}))
    if rule_name == "kolen_pollack":
        given["alpha"] = alignment.get("kp_alpha")
    options = None
    if uses_noise_inputs(variant):
        noise = alignment["noise_inputs"]
        options = AlignmentOptions(
            input_distribution=noise["distribution"], input_stddev=noise["stddev"]
        )
    rule = make_rule(
        rule_name,
        alpha=given.get("alpha"),
        beta=given.get("beta"),
        gamma=given.get("gamma"),
        coefficient_scale=alignment["coefficient_scale"],
        weight_decay=weight_decay,
        options=options,
    )
    schedule = alignment.get("rule_schedules", {}).get(rule_name, {})
    alternate = schedule.get("alternate_step_freq")
    return Variant(
        variant,
        rule,
        RateSchedule(alternate_step_freq=alternate),
        schedule.get("epochs") or epochs,
        alternate,
    )


def _top_k(outputs: torch.Tensor, targets: torch.Tensor, k: int) -> int:
    k = min(k, outputs.shape[1])
    top = outputs.topk(k, dim=1).indices
    return int((top == targets[:, None]).any(dim=1).sum())


@torch.no_grad()
def evaluate(model, batches, device) -> dict[str, float]:
    """Top-1, top-5 (%) and mean cross-entropy over the evaluation batches."""
    model.eval()
    n = correct1 = correct5 = 0
    loss = 0.0
    for x, y in batches:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        outputs = model(x)
        loss += F.cross_entropy(outputs, y, reduction="sum").item()
        correct1 += _top_k(outputs, y, 1)
        correct5 += _top_k(outputs, y, 5)
        n += len(y)
    clear_records(model)
    return {"top1": 100 * correct1 / n, "top5": 100 * correct5 / n, "loss": loss / n}


def _finite(model) -> bool:
    return all(torch.isfinite(p).all() for p in model.parameters())


def train_run(
    model_name: str,
    variant_name: str,
    seed: int,
    data,
    protocol: Protocol,
    alignment: Mapping,
    noise: Mapping,
    *,
    num_classes: int,
    in_channels: int,
    device: str | torch.device = "cpu",
    resume: Mapping | None = None,
    on_checkpoint: Callable[[dict], None] | None = None,
    log: logging.Logger | None = None,
) -> dict:
    """Train and evaluate one run; returns its result (history of evaluations, final
    accuracies, status, the resolved rule).

    ``seed`` fixes the initial W and B, the minibatch order and every other draw; it
    should not depend on the rule or the noise, so that runs compare on the same draws.
    ``noise``: ``variance`` (0: no noise, bit-identical to the plain run) and
    ``distribution`` of the noisy updates (§6: all updated parameters get += lr·ξ;
    the backward kernels only under KP; the forward ones only under BP, which has no
    backward weights in the original). ``on_checkpoint(state)`` is called every
    ``checkpoint_every_steps`` steps; the state holds live model and optimizer tensors,
    so it must be stored (e.g. ``torch.save``) before the callback returns.
    ``resume``: such a state of an earlier, killed attempt of this run.
    """
    device = torch.device(device)
    variant = make_variant(
        variant_name, alignment, protocol.weight_decay, protocol.epochs
    )
    steps_per_epoch = data.steps_per_epoch
    if protocol.max_steps_per_epoch is not None:
        steps_per_epoch = min(steps_per_epoch, protocol.max_steps_per_epoch)
    stretch = 1 + (variant.alternate_step_freq or 0)
    total_steps = variant.epochs * stretch * steps_per_epoch
    eval_every = protocol.eval_every_steps or max(
        1, round(protocol.eval_every_epochs * steps_per_epoch)
    )
    torch.manual_seed(derive_seed(seed, "torch"))  # in-process augmentation draws
    model = build_model(
        model_name,
        num_classes=num_classes,
        in_channels=in_channels,
        generator=torch.Generator().manual_seed(derive_seed(seed, "init")),
    ).to(device)
    variant.rule.attach(model)
    optimizer = make_optimizer(
        protocol.optimizer, model.parameters(), protocol.learning_rate
    )
    variance = float(noise.get("variance", 0.0))
    targets = noise_targets(model, variant.rule.name)
    if variant.rule.name == "backprop":  # the original's BP layers have no B to perturb
        backward = {id(layer.backward_weight) for _, layer in feedback_layers(model)}
        targets = [p for p in model.parameters() if id(p) not in backward]
    noise_generator = torch.Generator(device=device).manual_seed(
        derive_seed(seed, "update_noise")
    )
    updates = NoisyUpdates(
        optimizer,
        variance,
        noise.get("distribution", "normal"),
        params=targets,
        generator=noise_generator,
    )
    alignment_generator = torch.Generator(device=device).manual_seed(
        derive_seed(seed, "alignment_inputs")
    )
    l2_dense_bias = model_name.startswith("resnet")  # §7: the ResNets' dense bias too
    probe = None
    if protocol.probe_batch:
        x, y = next(iter(data.eval_batches()))
        probe = (
            x[: protocol.probe_batch].to(device),
            y[: protocol.probe_batch].to(device),
        )

    def evaluation(step: int, running: dict) -> dict:
        entry = {
            "step": step,
            "epoch": step / steps_per_epoch,
            "lr": optimizer.param_groups[0]["lr"],
            **evaluate(model, data.eval_batches(), device),
            "angles": weight_angles(model),
        }
        if running["steps"]:
            entry["train_loss"] = running["loss"] / running["steps"]
            entry["train_accuracy"] = 100 * running["accuracy"] / running["steps"]
            entry["alignment_loss"] = running["alignment_loss"] / running["steps"]
        if probe is not None:
            entry["probes"] = layer_probes(model, *probe)
        running.update(steps=0, loss=0.0, accuracy=0.0, alignment_loss=0.0)
        if log is not None:
            mean_angle = _mean([a for a in entry["angles"].values()])
            log.info(
                "%s %s step %d/%d: top-1 %.2f%%, top-5 %.2f%%, mean angle %.1f deg",
                model_name,
                variant_name,
                step,
                total_steps,
                entry["top1"],
                entry["top5"],
                mean_angle,
            )
        return entry

    running = {"steps": 0, "loss": 0.0, "accuracy": 0.0, "alignment_loss": 0.0}
    status, step, history = COMPLETED, 0, []
    if resume is not None:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        noise_generator.set_state(resume["rng"]["update_noise"])
        alignment_generator.set_state(resume["rng"]["alignment_inputs"])
        torch.set_rng_state(resume["rng"]["torch"])
        step, history, running = (
            resume["step"],
            list(resume["history"]),
            dict(resume["running"]),
        )
        if log is not None:
            log.info("resuming %s %s at step %d", model_name, variant_name, step)
    else:
        history.append(evaluation(0, running))

    def state() -> dict:
        # model and optimizer tensors are live: the callback stores them before
        # training goes on
        return {
            "step": step,
            "history": list(history),
            "running": dict(running),
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "rng": {
                "update_noise": noise_generator.get_state(),
                "alignment_inputs": alignment_generator.get_state(),
                "torch": torch.get_rng_state(),
            },
        }

    while step < total_steps and status == COMPLETED:
        epoch, start = divmod(step, steps_per_epoch)
        for x, y in data.train_batches(seed, epoch, start, steps_per_epoch):
            lr = learning_rate(
                step / steps_per_epoch,
                protocol.learning_rate,
                constant_lr=protocol.constant_lr,
                warmup_epochs=protocol.warmup_epochs,
                drop_epochs=tuple(protocol.lr_drop_epochs),
                alternate_step_freq=variant.alternate_step_freq,
            )
            set_learning_rate(optimizer, lr)
            metrics = train_step(
                model,
                variant.rule,
                updates,
                x.to(device, non_blocking=True),
                y.to(device, non_blocking=True),
                step=step,
                steps_per_epoch=steps_per_epoch,
                train_epochs=total_steps / steps_per_epoch,
                weight_decay=protocol.weight_decay,
                l2_dense_bias=l2_dense_bias,
                rates=variant.rates,
                generator=alignment_generator,
            )
            step += 1
            if not (metrics["finite"] and math.isfinite(metrics["loss"])):
                status = DIVERGED
                if log is not None:
                    log.warning(
                        "%s %s diverged at step %d", model_name, variant_name, step
                    )
                break
            running["steps"] += 1
            running["loss"] += metrics["task_loss"]
            running["accuracy"] += metrics.get("accuracy", math.nan)
            running["alignment_loss"] += metrics["alignment_loss"]
            if step % eval_every == 0 or step == total_steps:
                history.append(evaluation(step, running))
            every = protocol.checkpoint_every_steps
            if on_checkpoint and every and step % every == 0 and step < total_steps:
                on_checkpoint(state())
            if step >= total_steps:
                break
    if status == COMPLETED and not _finite(model):
        status = DIVERGED
    final = history[-1] if status == COMPLETED else {}
    return {
        "model": model_name,
        "variant": variant_name,
        "rule": variant.rule.describe(),
        "seed": seed,
        "noise": dict(noise),
        "status": status,
        "steps": step,
        "total_steps": total_steps,
        "steps_per_epoch": steps_per_epoch,
        "epochs": variant.epochs,
        "alternate_step_freq": variant.alternate_step_freq,
        "top1": final.get("top1"),
        "top5": final.get("top5"),
        "history": history,
        "forward_parameters": count_forward_parameters(model),
        "backward_parameters": count_backward_parameters(model),
    }


def _mean(values) -> float:
    values = [v for v in values if v is not None and math.isfinite(v)]
    return sum(values) / len(values) if values else math.nan
