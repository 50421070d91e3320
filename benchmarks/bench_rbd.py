"""Cost of one random bases descent step against one SGD step plus drawing the d x D
normals it needs (random bases paper), and the step's peak extra memory.

FC-MNIST (the paper's 784-100-... network, D = 101,770), batch 32, d = 250, chunks of
50 directions, CPU, one thread. For each direction generator ("torch": torch.randn
from a generator seeded per chunk; "philox": the counter-based C generator) the script
times, in alternating rounds after warm-up (medians): an SGD step, drawing d x D normals
with that generator, and an RBD step (forward, backward, coordinates and step, drawing
each direction once). Target of the issue: RBD step at most 1.5x (SGD step + draw).
Peak extra memory of a step is read in a fresh process per generator from its peak
resident set (VmHWM, reset through /proc/self/clear_refs, with glibc's mmap threshold
fixed so that freed buffers leave the resident set) and compared with one chunk of
directions.

    python benchmarks/bench_rbd.py
    python benchmarks/bench_rbd.py --rounds 9 --out benchmarks/results/rbd_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import torch

from weightspace.models import build_model, initialize_weights
from weightspace.rbd.directions import DirectionKey, directions
from weightspace.rbd.presets import NETWORKS
from weightspace.rbd.training import Method, Trainer

GENERATORS = ("torch", "philox")


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _status(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _peak_extra(fn) -> int | None:
    """Bytes of resident memory above the start that ``fn`` needed at its peak."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak resident set to the current one
    except OSError:
        return None
    before = _status("VmRSS")
    fn()
    peak = _status("VmHWM")
    return None if before is None or peak is None else peak - before


def _peak_in_subprocess(generator: str, d: int, chunk: int, batch: int) -> int | None:
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1"}
    args = [sys.executable, __file__, "--peak", generator, "--d", str(d)]
    args += ["--chunk", str(chunk), "--batch", str(batch)]
    out = subprocess.run(args, env=env, capture_output=True, text=True, check=True)
    value = out.stdout.strip().splitlines()[-1]
    return None if value == "None" else int(value)


def peak_step_memory(generator: str, d: int, chunk: int, batch: int) -> int | None:
    trainer = Trainer(
        _network(),
        Method("rbd", lr=0.01, d=d, chunk=chunk, generator=generator),
        seed=1,
    )
    x, y = torch.randn(batch, 1, 28, 28), torch.randint(0, 10, (batch,))
    stream = iter(lambda: (x, y), None)
    trainer.step(stream)  # warm-up: gradients and lazily built state exist
    return _peak_extra(lambda: trainer.step(stream))


def _network():
    torch.manual_seed(0)
    model = build_model(NETWORKS["fc"], in_channels=1, image_size=28)
    return initialize_weights(model, "xavier_uniform")


def bench(rounds: int, d: int, chunk: int, batch: int) -> dict:
    x = torch.randn(batch, 1, 28, 28)
    y = torch.randint(0, 10, (batch,))

    def batches():
        while True:
            yield x, y

    sgd = Trainer(_network(), Method("sgd", lr=0.01), seed=1)
    size = sgd.size
    trainers = {
        g: Trainer(
            _network(), Method("rbd", lr=0.01, d=d, chunk=chunk, generator=g), seed=1
        )
        for g in GENERATORS
    }
    stream = batches()

    def draw(generator, step):
        for _ in directions(
            DirectionKey(9, step), d, size, chunk=chunk, generator=generator
        ):
            pass

    times = {
        name: []
        for name in ["sgd", *[f"{k}_{g}" for k in ("draw", "rbd") for g in GENERATORS]]
    }
    for r in range(2 + rounds):
        jobs = [("sgd", lambda: sgd.step(stream))]
        for g in GENERATORS:
            jobs.append((f"draw_{g}", lambda g=g, r=r: draw(g, r)))
            jobs.append((f"rbd_{g}", lambda g=g: trainers[g].step(stream)))
        for name, fn in jobs if r % 2 else jobs[::-1]:
            elapsed = _time(fn)
            if r >= 2:
                times[name].append(elapsed)
    med = {name: statistics.median(t) for name, t in times.items()}
    rows = []
    for g in GENERATORS:
        reference = med["sgd"] + med[f"draw_{g}"]
        rows.append(
            {
                "generator": g,
                "sgd_step_s": med["sgd"],
                "draw_s": med[f"draw_{g}"],
                "rbd_step_s": med[f"rbd_{g}"],
                "rbd_vs_sgd_plus_draw": med[f"rbd_{g}"] / reference,
                "rbd_vs_sgd_plus_torch_draw": med[f"rbd_{g}"]
                / (med["sgd"] + med["draw_torch"]),
                "peak_extra_bytes": _peak_in_subprocess(g, d, chunk, batch),
            }
        )
    return {
        "network": "fc",
        "parameters": size,
        "d": d,
        "chunk": chunk,
        "batch": batch,
        "chunk_bytes": chunk * size * 4,
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--d", type=int, default=250)
    parser.add_argument("--chunk", type=int, default=50)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--out")
    parser.add_argument("--peak", choices=GENERATORS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.peak:
        print(peak_step_memory(args.peak, args.d, args.chunk, args.batch))
        return
    result = bench(args.rounds, args.d, args.chunk, args.batch)
    mb = 1 / 2**20
    print(
        f"FC-MNIST D = {result['parameters']:,}, d = {args.d}, chunk {args.chunk} "
        f"({result['chunk_bytes'] * mb:.1f} MiB of directions)"
    )
    print(
        "| generator | SGD step (ms) | draw d x D (ms) | RBD step (ms) "
        "| RBD / (SGD + draw) | RBD / (SGD + torch draw) | peak extra (MiB) |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in result["rows"]:
        peak = r["peak_extra_bytes"]
        print(
            f"| {r['generator']} | {r['sgd_step_s'] * 1e3:.1f} | {r['draw_s'] * 1e3:.1f} "
            f"| {r['rbd_step_s'] * 1e3:.1f} | {r['rbd_vs_sgd_plus_draw']:.2f} "
            f"| {r['rbd_vs_sgd_plus_torch_draw']:.2f} "
            f"| {'n/a' if peak is None else f'{peak * mb:.1f}'} |"
        )
    if args.out:
        meta = {
            "machine": platform.platform(),
            "processor": platform.processor(),
            "torch": torch.__version__,
            "threads": 1,
            "rounds": args.rounds,
        }
        with open(args.out, "w") as f:
            json.dump({"meta": meta, **result}, f, indent=1)


if __name__ == "__main__":
    main()
