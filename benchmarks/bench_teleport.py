"""Cost of teleport() against one in-place multiply of every parameter, and the
training-step overhead of a teleportable model against the plain one (teleport paper).

Models (10 classes, random weights, batch 32 of 3x32x32, CPU, one thread): torchvision's
resnet18 and densenet121, and our CIFAR ResNet-18 (``resnet(stem="small_maxpool")``,
the paper's). The step overhead is measured in three cases: untouched (CoB of ones),
after an intra_landscape r = 0.9 teleport and after an inter_landscape r = 0.9 one (the
paper's training condition). Teleport and step timings alternate with their references
in rounds after warm-up; medians are reported. Targets of the teleport issue: teleport
within 5x of the multiply; step overhead under 10 %.

    python benchmarks/bench_teleport.py
    python benchmarks/bench_teleport.py --rounds 9 --out results.json
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import time

import torch
import torch.nn.functional as F
import torchvision

from weightspace.models import resnet
from weightspace.teleport import TeleportableModel

MODELS = {
    "resnet18": lambda: torchvision.models.resnet18(num_classes=10),
    "densenet121": lambda: torchvision.models.densenet121(num_classes=10),
    "cifar_resnet18": lambda: resnet(stem="small_maxpool"),
}
CASES = {
    "ones": None,
    "intra_0.9": ("intra_landscape", 0.9),
    "inter_0.9": ("inter_landscape", 0.9),
}


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench(name: str, rounds: int, batch: int, size: int) -> tuple[dict, list[dict]]:
    torch.manual_seed(0)
    model = MODELS[name]()
    plain = copy.deepcopy(model)
    x = torch.rand(batch, 3, size, size)
    y = torch.randint(0, 10, (batch,))
    tm = TeleportableModel(model, x)
    params = list(model.parameters())
    generator = torch.Generator().manual_seed(1)
    inter = [
        tm.generate_random_cob(0.9, "inter_landscape", generator=generator)
        for _ in range(2)
    ]

    @torch.no_grad()
    def multiply():
        for p in params:
            p.mul_(1.0001)

    # the first teleport of an untouched model also generates the forward code
    first = _time(lambda: tm.teleport(inter[0]))
    t_mul, t_tp = [], []
    for r in range(2 + rounds):  # two warm-up rounds
        a, b = _time(multiply), _time(lambda cob=inter[r % 2]: tm.teleport(cob))
        if r >= 2:
            t_mul.append(a)
            t_tp.append(b)
    med = statistics.median
    teleport_row = {
        "model": name,
        "params": sum(p.numel() for p in params),
        "cob_size": tm.get_cob_size(),
        "multiply_s": med(t_mul),
        "teleport_s": med(t_tp),
        "teleport_vs_multiply": med(t_tp) / med(t_mul),
        "first_teleport_s": first,
        "first_teleport_vs_multiply": first / med(t_mul),
    }

    def step(net, opt):
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()

    opt_tm = torch.optim.SGD(tm.parameters(), lr=1e-4, momentum=0.9)
    opt_plain = torch.optim.SGD(plain.parameters(), lr=1e-4, momentum=0.9)
    step_rows = []
    for case, sampling in CASES.items():
        if sampling is None:
            tm.undo_teleportation()
        else:
            tm.random_teleport(sampling[1], sampling[0], generator=generator)
        t_tm, t_plain = [], []
        for r in range(2 + rounds):
            pair = [
                (t_tm, lambda: step(tm, opt_tm)),
                (t_plain, lambda: step(plain, opt_plain)),
            ]
            for times, fn in pair if r % 2 else pair[::-1]:  # alternate the order
                elapsed = _time(fn)
                if r >= 2:
                    times.append(elapsed)
        step_rows.append(
            {
                "model": name,
                "case": case,
                "step_s": med(t_tm),
                "plain_step_s": med(t_plain),
                "step_overhead": med(t_tm) / med(t_plain) - 1,
                "batch": batch,
                "input": size,
            }
        )
    return teleport_row, step_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.set_num_threads(1)
    teleports, steps = [], []
    for name in args.models:
        row, rows = bench(name, args.rounds, args.batch, args.size)
        teleports.append(row)
        steps += rows
    print(
        "| model | params | CoB | teleport (ms) | / multiply | first teleport / multiply |"
    )
    print("|---|---|---|---|---|---|")
    for r in teleports:
        print(
            f"| {r['model']} | {r['params']:,} | {r['cob_size']:,} | "
            f"{r['teleport_s'] * 1e3:.1f} | {r['teleport_vs_multiply']:.2f} | "
            f"{r['first_teleport_vs_multiply']:.2f} |"
        )
    print("\n| model | case | step (ms) | plain step (ms) | overhead |")
    print("|---|---|---|---|---|")
    for r in steps:
        print(
            f"| {r['model']} | {r['case']} | {r['step_s'] * 1e3:.0f} | "
            f"{r['plain_step_s'] * 1e3:.0f} | {r['step_overhead']:+.1%} |"
        )
    if args.out:
        meta = {
            "machine": platform.platform(),
            "torch": torch.__version__,
            "threads": 1,
            "rounds": args.rounds,
        }
        with open(args.out, "w") as f:
            json.dump(
                {"meta": meta, "teleport": teleports, "steps": steps}, f, indent=1
            )


if __name__ == "__main__":
    main()
