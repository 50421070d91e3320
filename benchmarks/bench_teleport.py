"""Cost of teleport() against one in-place multiply of every parameter, and the
training-step overhead of a teleportable model against the plain one (teleport paper).

Models: torchvision's resnet18 and densenet121 (random weights, 10 classes), CPU, one
thread, timed in alternating rounds after warm-up, medians reported. Targets of the
teleport issue: teleport within 5x of the multiply; step overhead under 10 %.

    python benchmarks/bench_teleport.py
    python benchmarks/bench_teleport.py --rounds 10 --out results.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch
import torch.nn.functional as F
import torchvision

from weightspace.teleport import TeleportableModel


def _median_time(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench(name: str, rounds: int, batch: int, size: int) -> dict:
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(num_classes=10)
    plain = getattr(torchvision.models, name)(num_classes=10)
    x = torch.rand(batch, 3, size, size)
    y = torch.randint(0, 10, (batch,))
    tm = TeleportableModel(model, x)
    params = list(model.parameters())
    generator = torch.Generator().manual_seed(1)
    cobs = [
        tm.generate_random_cob(0.9, "inter_landscape", generator=generator)
        for _ in range(4)
    ]

    @torch.no_grad()
    def multiply():
        for p in params:
            p.mul_(1.0001)

    def teleport():
        tm.teleport(cobs[0])

    def step(net, opt):
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()

    opt_tm = torch.optim.SGD(tm.parameters(), lr=1e-4, momentum=0.9)
    opt_plain = torch.optim.SGD(plain.parameters(), lr=1e-4, momentum=0.9)
    for _ in range(2):  # warm-up
        multiply(), teleport(), step(tm, opt_tm), step(plain, opt_plain)
    t_mul, t_tp, t_step, t_plain = [], [], [], []
    for _ in range(rounds):
        t_mul.append(_median_time(multiply, 3))
        t_tp.append(_median_time(teleport, 3))
        t_step.append(_median_time(lambda: step(tm, opt_tm), 1))
        t_plain.append(_median_time(lambda: step(plain, opt_plain), 1))
    med = statistics.median
    return {
        "model": name,
        "params": sum(p.numel() for p in params),
        "cob_size": tm.get_cob_size(),
        "multiply_s": med(t_mul),
        "teleport_s": med(t_tp),
        "teleport_vs_multiply": med(t_tp) / med(t_mul),
        "step_s": med(t_step),
        "plain_step_s": med(t_plain),
        "step_overhead": med(t_step) / med(t_plain) - 1,
        "batch": batch,
        "input": size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = [
        bench(m, args.rounds, args.batch, args.size)
        for m in ("resnet18", "densenet121")
    ]
    for r in rows:
        print(
            f"{r['model']:12s} {r['params']:>10,} params, CoB {r['cob_size']:>6,}: "
            f"teleport {r['teleport_s'] * 1e3:7.1f} ms = {r['teleport_vs_multiply']:5.2f}x "
            f"multiply ({r['multiply_s'] * 1e3:.1f} ms); step {r['step_s'] * 1e3:.0f} ms vs "
            f"plain {r['plain_step_s'] * 1e3:.0f} ms ({r['step_overhead']:+.1%})"
        )
    if args.out:
        meta = {
            "machine": platform.platform(),
            "torch": torch.__version__,
            "threads": 1,
        }
        with open(args.out, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
