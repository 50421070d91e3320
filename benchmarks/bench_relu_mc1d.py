"""Throughput of the vectorised 1D Monte Carlo (relu_fig_mc), run on demand.

For each width m and kernel (default: the eager-PyTorch scatter kernel and the fused C kernel), one
GD step on P = elements/m nets (He init, p̂ from n_s = m² samples, large
step, after a few hundred warm-up steps) is timed next to reference passes over contiguous
(P, 6, m) float64 tensors, measured in the same run:

    inplace  ``Z.mul_(1.0)``                   reads and writes each of the P·6·m entries once
    out      ``torch.mul(Z, 1.0, out=Z2)``     reads Z, writes a second tensor
    addcmul  ``torch.addcmul(Z, Z2, Z3, out=Z4)``  reads three tensors, writes a fourth

each a single fused elementwise op without broadcasting. "step / pass" is step time over the
in-place pass (the strictest of the three); the issue's target is ≤ 8 passes. Timing rounds
alternate between step and passes and the best round counts (as timeit does), on the CPU in
thread CPU time, so other processes on a shared machine disturb the figures less (they still
compete for memory bandwidth).

The default elements = P·m = 2^20 makes each (P, m) tensor 8 MiB and Z 48 MiB, beyond the
last-level cache of typical CPUs: the memory-bound regime of large chunks. With
--elements 65536 (the original code's chunk sizes) everything is cache-resident, and the per-op
dispatch cost of eager PyTorch (~30 ops per step) dominates instead.

The sufficient criterion, evaluated once per check, is timed per network on the trained nets.

A whole SGD chunk of the quick variant (small step, minibatches of 16, early stopping, checks of
1,000 steps, P = 256 nets) is timed per kernel as process time per net·check (one check of one
net is 1,000 steps and their minibatch draws), the unit in which it compares with the original
code's chunks.

    python benchmarks/bench_relu_mc1d.py                      # CPU, 1 thread, widths 16…1024
    python benchmarks/bench_relu_mc1d.py --kernel scatter     # one kernel only
    python benchmarks/bench_relu_mc1d.py --elements 65536 --out bench.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch

from weightspace.relu import criterion as crit
from weightspace.relu import mc1d


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, reps, device):
    clock = time.perf_counter if device.type == "cuda" else time.thread_time
    _sync(device)
    t0 = clock()
    for _ in range(reps):
        fn()
    _sync(device)
    return (clock() - t0) / reps


def _reps(fn, device, target_s=0.05):
    probe = _timed(fn, 2, device)
    return max(1, int(target_s / max(probe, 1e-7)))


def _initial_nets(n, m, device, seed=0):
    rng = np.random.default_rng(seed)
    p = torch.tensor(mc1d.sample_frequencies(rng, n, m * m), device=device)
    a = torch.tensor(rng.standard_normal((n, m)) * np.sqrt(2.0), device=device)
    w = torch.tensor(rng.standard_normal((n, m)) * np.sqrt(2.0 / m), device=device)
    b = torch.zeros_like(a)
    c = torch.zeros(n, dtype=torch.float64, device=device)
    h = crit.large_step_sizes(a, b, w, p)
    return a, b, c, w, p, h


def bench_width(m, elements, kernel, device, rounds, warmup_steps, crit_nets):
    n = max(1, elements // m)
    a, b, c, w, p, h = _initial_nets(n, m, device)
    y = crit.labels(0.0, device)
    stepper = mc1d.GDStepper(a, b, c, w, p, h, y, kernel=kernel)
    stepper.step(
        warmup_steps
    )  # move the kinks off 0 so the activity classes are realistic
    z = [torch.ones(n, 6, m, dtype=torch.float64, device=device) for _ in range(4)]
    jobs = {
        "step": lambda: stepper.step(1),
        "inplace": lambda: z[0].mul_(1.0),
        "out": lambda: torch.mul(z[0], 1.0, out=z[1]),
        "addcmul": lambda: torch.addcmul(z[0], z[1], z[2], out=z[3]),
    }
    reps = {k: _reps(fn, device) for k, fn in jobs.items()}
    best = {k: float("inf") for k in jobs}
    for _ in range(rounds):
        for k, fn in jobs.items():
            best[k] = min(best[k], _timed(fn, reps[k], device))
    z.clear()  # free the buffers before timing the criterion

    k = min(crit_nets, n)
    ta, tb, tc, tw = (t[:k] for t in stepper.params)
    t_crit = min(
        _timed(
            lambda: crit.sufficient_criterion(ta, tb, tc, tw, h[:k], p[:k], y),
            1,
            device,
        )
        for _ in range(max(3, rounds // 2))
    )
    return {
        "width": m,
        "nets": n,
        "kernel": stepper.kernel,
        "step_ms": best["step"] * 1e3,
        "pass_inplace_ms": best["inplace"] * 1e3,
        "pass_out_ms": best["out"] * 1e3,
        "pass_addcmul_ms": best["addcmul"] * 1e3,
        "ratio_inplace": best["step"] / best["inplace"],
        "ratio_out": best["step"] / best["out"],
        "ratio_addcmul": best["step"] / best["addcmul"],
        "net_steps_per_s": n / best["step"],
        "criterion_us_per_net": t_crit / k * 1e6,
        "criterion_nets": k,
        "criterion_vs_1000_steps": t_crit / k / (1000 * best["step"] / n),
    }


def bench_sgd_chunk(m, nets, kernel, seed=1):
    """Process time of one quick-scale SGD chunk, per net·check (1,000 steps of one net)."""
    cfg = mc1d.MCConfig(
        optimizer="sgd",
        step_size="small",
        sufficient_criterion=False,
        early_stopping=True,
        steps_per_check=1000,
        max_checks=200,
        kernel=kernel,
    )
    mc1d.run_chunk(cfg, seed=seed + 1, n_runs=4, width=m, offset=0.0)  # build, warm up
    t0 = time.process_time()
    res = mc1d.run_chunk(cfg, seed=seed, n_runs=nets, width=m, offset=0.0)
    elapsed = time.process_time() - t0
    net_checks = int(np.minimum(res.stop_check, res.checks_run).sum())
    return {
        "width": m,
        "nets": nets,
        "kernel": kernel,
        "seed": seed,
        "chunk_s": elapsed,
        "net_checks": net_checks,
        "us_per_net_check": elapsed / net_checks * 1e6,
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--widths", type=int, nargs="+", default=[16, 64, 256, 1024])
    ap.add_argument(
        "--elements", type=int, default=2**20, help="P·m per width (default 2^20)"
    )
    ap.add_argument(
        "--kernel",
        nargs="+",
        default=["scatter", "c"],
        choices=mc1d.KERNELS,
        help="kernels to time, one row each per width (default: scatter c)",
    )
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--warmup-steps", type=int, default=300)
    ap.add_argument("--criterion-nets", type=int, default=1024)
    ap.add_argument(
        "--sgd-widths",
        type=int,
        nargs="*",
        default=[16, 64],
        help="widths of the timed SGD chunks (none: skip them)",
    )
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = [
        bench_width(
            m,
            args.elements,
            kernel,
            device,
            args.rounds,
            args.warmup_steps,
            args.criterion_nets,
        )
        for m in args.widths
        for kernel in args.kernel
    ]

    print(
        f"device={device} threads={args.threads} float64 elements=P·m={args.elements} "
        f"torch={torch.__version__}"
    )
    print(
        "| m | P | kernel | step (ms) | pass in-place / out= / addcmul (ms) | step / pass "
        "(in-place, out=, addcmul) | nets·steps/s | criterion (µs/net) | criterion / 1000 steps |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['width']} | {r['nets']} | {r['kernel']} | {r['step_ms']:.2f} "
            f"| {r['pass_inplace_ms']:.2f} / {r['pass_out_ms']:.2f} / {r['pass_addcmul_ms']:.2f} "
            f"| {r['ratio_inplace']:.1f}, {r['ratio_out']:.1f}, {r['ratio_addcmul']:.1f} "
            f"| {r['net_steps_per_s']:.3g} | {r['criterion_us_per_net']:.1f} "
            f"| {r['criterion_vs_1000_steps']:.3f} |"
        )
    sgd_rows = [
        bench_sgd_chunk(m, 256, kernel)
        for m in args.sgd_widths
        for kernel in args.kernel
        if args.device == "cpu" or kernel != "c"
    ]
    if sgd_rows:
        print("\nSGD chunk (small step, early stopping, 1,000 steps per check)")
        print("| m | P | kernel | chunk (s) | net·checks | µs per net·check |")
        print("|---|---|---|---|---|---|")
        for r in sgd_rows:
            print(
                f"| {r['width']} | {r['nets']} | {r['kernel']} | {r['chunk_s']:.2f} "
                f"| {r['net_checks']} | {r['us_per_net_check']:.0f} |"
            )
    if args.out:
        meta = {
            "device": str(device),
            "threads": args.threads,
            "elements": args.elements,
            "torch": torch.__version__,
            "machine": platform.machine(),
            "passes": {
                "inplace": "Z.mul_(1.0)",
                "out": "torch.mul(Z, 1.0, out=Z2)",
                "addcmul": "torch.addcmul(Z, Z2, Z3, out=Z4)",
            },
            "shape": "(P, 6, m) float64, contiguous",
            "timing": "best of rounds, thread CPU time",
        }
        with open(args.out, "w") as fh:
            json.dump(
                {"meta": meta, "rows": rows, "sgd_chunks": sgd_rows}, fh, indent=2
            )


if __name__ == "__main__":
    main()
