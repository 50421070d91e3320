"""Cost of one training step of ResNet-18 under each credit-assignment rule against plain
autograd (Kunin et al., weightspace.credit).

The library's ResNet-18 v1 (1000 classes, batch 8 of 3x64x64 by default: the model is
size-agnostic) with feedback layers is trained for one step by ``train_step``, as the
training run does it: forward, cross-entropy + L2 on the forward kernels (and the dense
bias) + the rule's alignment loss, backward, one step of SGD with Nesterov momentum over
W and B (``make_optimizer("momentum")`` in ``NoisyUpdates`` of variance 0). The rules are
built by ``make_variant`` with the paper's alignment settings (mirror and information on
N(0, 1) noise inputs). The reference, in the same run and with the same shapes and
initial W, is the same model built from plain nn.Conv2d / nn.Linear and trained by the
same loss and optimiser in plain autograd. Two extra rows isolate the layers' own
overhead: ``backprop`` (the rule: feedback layers in backprop mode, plain ops) and
``backprop_custom`` (the custom autograd Function with B tied to W, exact backprop).

Every variant is warmed up, then timed one step per round for N rounds, the variants
interleaved within a round (the order reversed every other round) so that machine load
affects all of them alike; the best round counts. CPU steps are timed in thread CPU
time (``time.thread_time``) on one torch thread; CUDA steps in wall time
(``time.perf_counter``) with the device synchronised before each clock reading.
Goals: step / plain under 1.5x for the rules without an alignment loss (feedback
alignment, sign symmetry, Kolen-Pollack), under 2x for those with one (mirror,
information, symmetric, activation).

    python benchmarks/bench_credit.py
    python benchmarks/bench_credit.py --out benchmarks/results/credit_cpu.json
    python benchmarks/bench_credit.py --device cuda --batch 64 --size 224
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time

import torch
import torch.nn.functional as F

from weightspace.credit.layers import feedback_layers
from weightspace.credit.models import build_model
from weightspace.credit.optim import NoisyUpdates, make_optimizer
from weightspace.credit.presets import VARIANTS as PRESET_VARIANTS
from weightspace.credit.rules import RateSchedule, make_rule
from weightspace.credit.runs import make_variant
from weightspace.credit.training import train_step

MODEL = "resnet18"
WEIGHT_DECAY = 1e-4  # the paper protocol's λ (config/paper.yaml)
LEARNING_RATE = 0.01  # small enough that repeated steps on one batch stay finite
# the paper protocol's alignment settings, without the information rule's alternation
# (every timed step carries both the task and the alignment loss)
ALIGNMENT = {
    "coefficient_scale": 1.0,
    "coefficients": {},
    "kp_alpha": None,
    "noise_inputs": {"distribution": "normal", "stddev": 1.0},
}
VARIANTS = (
    "backprop",
    "backprop_custom",
    "feedback",
    "sign_symmetry",
    "kolen_pollack",
    "mirror",
    "information",
    "symmetric",
    "activation",
)
EXTRA_VARIANTS = ("mirror_real_inputs",)
LABELS = {
    "plain": "plain autograd (nn.Conv2d / nn.Linear)",
    "backprop": "BP (rule: feedback layers in backprop mode)",
    "backprop_custom": "BP through the custom Function (B = W)",
    "feedback": "FA",
    "sign_symmetry": "SS",
    "kolen_pollack": "KP",
    "mirror": "WM (noise inputs)",
    "mirror_real_inputs": "WM (real inputs)",
    "information": "IA (noise inputs)",
    "symmetric": "SA",
    "activation": "AA",
}
NO_ALIGNMENT_GOAL = 1.5  # FA, SS, KP: no alignment loss
ALIGNMENT_GOAL = 2.0  # WM, IA, SA, AA
GOALS = {
    "feedback": NO_ALIGNMENT_GOAL,
    "sign_symmetry": NO_ALIGNMENT_GOAL,
    "kolen_pollack": NO_ALIGNMENT_GOAL,
    "mirror": ALIGNMENT_GOAL,
    "mirror_real_inputs": ALIGNMENT_GOAL,
    "information": ALIGNMENT_GOAL,
    "symmetric": ALIGNMENT_GOAL,
    "activation": ALIGNMENT_GOAL,
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device: torch.device):
    """(seconds, result) of one call of ``fn``."""
    clock = time.perf_counter if device.type == "cuda" else time.thread_time
    _sync(device)
    start = clock()
    result = fn()
    _sync(device)
    return clock() - start, result


def _loadavg() -> list[float] | None:
    try:
        with open("/proc/loadavg") as f:
            return [float(v) for v in f.read().split()[:3]]
    except OSError:
        return None


def _model(feedback: bool, device: torch.device, seed: int):
    # the same generator seed gives every variant the same initial W
    generator = torch.Generator().manual_seed(seed)
    model = build_model(MODEL, feedback=feedback, generator=generator)
    return model.to(device)


def _optimizer(model):
    optimizer = make_optimizer("momentum", model.parameters(), LEARNING_RATE)
    return NoisyUpdates(optimizer, 0.0)


def _plain_step(model, optimizer, x, y):
    """``train_step``'s loss and update in plain autograd (no backward weights)."""
    model.train()
    outputs = model(x)
    task_loss = F.cross_entropy(outputs, y)
    penalised = [
        p
        for m in model.modules()
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))
        for p in (m.weight, *([m.bias] if isinstance(m, torch.nn.Linear) else []))
    ]
    l2_loss = 0.5 * WEIGHT_DECAY * sum(p.square().sum() for p in penalised)
    loss = task_loss + l2_loss
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    accuracy = (outputs.detach().argmax(dim=1) == y).float().mean()
    return {
        "loss": loss.item(),
        "task_loss": task_loss.item(),
        "l2_loss": l2_loss.item(),
        "accuracy": accuracy.item(),
    }


def _rule_job(name: str, device: torch.device, seed: int, x, y):
    """A closure that runs one ``train_step`` of ``name`` on (x, y)."""
    model = _model(True, device, seed)
    if name == "backprop_custom":
        # B is W itself: the custom Function's backward with exact backprop
        for _, layer in feedback_layers(model):
            layer.backward_weight = layer.weight
        rule, rates = make_rule("feedback"), RateSchedule()
    elif name not in PRESET_VARIANTS:  # sign symmetry: a rule, not a preset variant
        rule, rates = make_rule(name), RateSchedule()
    else:
        variant = make_variant(name, ALIGNMENT, WEIGHT_DECAY, epochs=1)
        rule, rates = variant.rule, variant.rates
    rule.attach(model)
    optimizer = _optimizer(model)
    generator = torch.Generator(device=device).manual_seed(seed + 1)
    state = {"step": 0}

    def step():
        metrics = train_step(
            model,
            rule,
            optimizer,
            x,
            y,
            step=state["step"],
            weight_decay=WEIGHT_DECAY,
            l2_dense_bias=True,
            rates=rates,
            generator=generator,
        )
        state["step"] += 1
        return metrics

    return step


def bench(
    variants, rounds: int, warmup: int, batch: int, size: int, device, seed: int = 0
) -> dict:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 3, size, size, generator=generator).to(device)
    y = torch.randint(0, 1000, (batch,), generator=generator).to(device)
    plain_model = _model(False, device, seed)
    plain_optimizer = _optimizer(plain_model)
    jobs = {"plain": lambda: _plain_step(plain_model, plain_optimizer, x, y)}
    for name in variants:
        jobs[name] = _rule_job(name, device, seed, x, y)
    last = {}
    for _ in range(warmup):
        for name, fn in jobs.items():
            last[name] = fn()
    best = {name: float("inf") for name in jobs}
    order = list(jobs)
    for r in range(rounds):
        for name in order if r % 2 == 0 else order[::-1]:
            elapsed, last[name] = _timed(jobs[name], device)
            best[name] = min(best[name], elapsed)
    plain = best["plain"]
    rows = []
    for name in jobs:
        goal = GOALS.get(name)
        ratio = best[name] / plain
        rows.append(
            {
                "variant": name,
                "label": LABELS[name],
                "step_ms": best[name] * 1e3,
                "ratio": ratio,
                "goal": goal,
                "meets_goal": None if goal is None else ratio < goal,
                # a diverged model would be timed on non-finite numbers
                "final_loss_finite": math.isfinite(last[name]["loss"]),
            }
        )
    return {
        "model": MODEL,
        "num_classes": 1000,
        "batch": batch,
        "image_size": size,
        "optimizer": "momentum (SGD, Nesterov 0.9)",
        "learning_rate": LEARNING_RATE,
        "weight_decay": WEIGHT_DECAY,
        "alignment": ALIGNMENT,
        "rows": rows,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rules",
        nargs="+",
        default=list(VARIANTS),
        choices=VARIANTS + EXTRA_VARIANTS,
        help="variants to time against plain autograd (default: all but "
        "mirror_real_inputs)",
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=64, help="input height and width")
    parser.add_argument(
        "--device", default="cpu", help="cpu (default) or cuda when available"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device available")
    torch.set_num_threads(args.threads)
    load_before = _loadavg()
    result = bench(args.rules, args.rounds, args.warmup, args.batch, args.size, device)
    load_after = _loadavg()
    clock = "perf_counter" if device.type == "cuda" else "thread_time"
    print(
        f"ResNet-18 v1, 1000 classes, batch {args.batch} of 3x{args.size}x{args.size}, "
        f"{device.type}, best of {args.rounds} rounds ({clock})"
    )
    print("| variant | rule | step (ms) | / plain | goal | met |")
    print("|---|---|---|---|---|---|")
    for r in result["rows"]:
        goal, met = r["goal"], r["meets_goal"]
        print(
            f"| {r['variant']} | {r['label']} | {r['step_ms']:.1f} | {r['ratio']:.2f} "
            f"| {'—' if goal is None else f'< {goal:g}×'} "
            f"| {'—' if met is None else ('yes' if met else 'no')} |"
        )
    diverged = [r["variant"] for r in result["rows"] if not r["final_loss_finite"]]
    if diverged:
        print(f"warning: non-finite loss after the timed steps: {diverged}")
    print(f"load average before {load_before}, after {load_after}")
    if args.out:
        meta = {
            "machine": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "device": (
                torch.cuda.get_device_name(device)
                if device.type == "cuda"
                else device.type
            ),
            "threads": args.threads,
            "rounds": args.rounds,
            "warmup": args.warmup,
            "statistic": "best of rounds",
            "clock": clock,
            "loadavg_before": load_before,
            "loadavg_after": load_after,
        }
        with open(args.out, "w") as f:
            json.dump({"meta": meta, **result}, f, indent=1)


if __name__ == "__main__":
    main()
