"""SSS identification time and SSS-layer latency against dense, run on demand (structured paper).

1. Identification (Hankel-block SVD realisation) next to one full SVD of the same matrix, timed in
   the same run: a 300×300 exactly-SSS matrix (30 stages of 10, state dimension 5; the survey's test
   family) and a random last layer in the structured-layer orientation W̃ ∈ R^{k×F} = 100×2048 with
   50 stages at share 0.2 (d = 7, the ESANN setting).
2. Layer forward: SSSLayer (4096×4096, 64 stages, state dimension 16) against nn.Linear(4096, 4096),
   float32, one thread, batch 1 and 256, inference (no autograd) and with autograd recording.
   Timings alternate between the two layers in rounds after warm-up and report medians, so a noisy
   machine affects both alike. The requirement is SSS ≥ 10× faster than dense at both batch sizes.
   "cold" is the first SSS call at batch 1, which also builds the cached scan operators.
3. Layer inference on the quick shapes (100×2048 with 50 stages, 256×1024 with 32 stages; shares
   0.05 to 0.3) and the paper's 1000×2048 last layer (50 stages, share 0.05), approximations of
   random Gaussian matrices (full rank, so the state dimension is the largest the budget allows),
   against nn.Linear of the same shape in the same rounds, float32, batch 1 and 256, no autograd.
   The requirement is SSS at least as fast as dense on every row. "path" says whether the C
   kernel of layers.sss_native ran (float32 inference on one thread) or the PyTorch path.

    python benchmarks/bench_structured_sss.py
    python benchmarks/bench_structured_sss.py --out results.json --rounds 10
"""

from __future__ import annotations

import os

# One thread for LAPACK too (set before numpy loads it), so SVD timings compare like with like.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from functools import partial  # noqa: E402

import numpy as np  # noqa: E402
import scipy.linalg  # noqa: E402
import torch  # noqa: E402

from weightspace.structured import (  # noqa: E402
    SSSLayer,
    approximate_sss,
    identify_sss,
    random_realisation,
    stage_sizes,
)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_time(fn, reps):
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _alternating_medians(dense, sss, x, rounds, reps, warmup, device):
    """Median call time of the two layers on x, timed in alternating rounds of reps
    calls after warmup untimed calls of each (a noisy machine affects both alike)."""
    times = {"dense": [], "sss": []}
    for _ in range(warmup):
        dense(x), sss(x)
    _sync(device)
    for _ in range(rounds):
        for name, layer in (("dense", dense), ("sss", sss)):
            for _ in range(reps):
                t0 = time.perf_counter()
                layer(x)
                _sync(device)
                times[name].append(time.perf_counter() - t0)
    return statistics.median(times["dense"]), statistics.median(times["sss"])


def bench_identification(reps: int) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    square = random_realisation([10] * 30, [10] * 30, 5, rng).to_dense()
    last = rng.uniform(-1, 1, size=(100, 2048)) / np.sqrt(2048)
    cases = [
        ("300×300 exact SSS, K=30, d=5", square, 30, 5),
        ("100×2048 last layer, K=50, share 0.2 (d=7)", last, 50, 7),
    ]
    for name, weight, n_stages, state_dim in cases:
        times, errors = {}, {}
        for hankel in ("compressed", "full"):
            run = partial(identify_sss, weight, n_stages, state_dim, hankel=hankel)
            real = run()
            errors[hankel] = float(
                np.linalg.norm(real.to_dense() - weight) / np.linalg.norm(weight)
            )
            times[hankel] = _median_time(run, reps)
        t_svd = _median_time(
            partial(scipy.linalg.svd, weight, full_matrices=False, check_finite=False),
            reps,
        )
        rows.append(
            {
                "case": name,
                "sss_s": times["compressed"],
                "sss_full_s": times["full"],
                "full_svd_s": t_svd,
                "ratio": times["compressed"] / t_svd,
                "state_dim": real.max_state_dim,
                "rel_error": errors["compressed"],
                "rel_error_full": errors["full"],
            }
        )
    return rows


def bench_layer(batches, rounds: int, reps: int, device) -> list[dict]:
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    n, n_stages, d = 4096, 64, 16
    real = random_realisation(
        stage_sizes(n, n_stages), stage_sizes(n, n_stages), d, rng
    )
    sss = SSSLayer.from_structure(real, bias=True, device=device)
    dense = torch.nn.Linear(n, n, device=device)
    # Correctness at the benchmark size, against the float64 stage recursion.
    u = torch.randn(4, n, device=device)
    with torch.no_grad():
        ref = real.apply(u.double().cpu().numpy().T).T + sss.bias.double().cpu().numpy()
        err = float(
            np.abs(sss(u).double().cpu().numpy() - ref).max() / np.abs(ref).max()
        )
    rows = []
    for batch in batches:
        x = torch.randn(batch, n, device=device)
        fresh = SSSLayer.from_structure(real, bias=True, device=device)
        with torch.no_grad():
            t0 = time.perf_counter()
            fresh(x)
            _sync(device)
            cold = time.perf_counter() - t0
        for grad in (False, True):
            with torch.set_grad_enabled(grad):
                t_dense, t_sss = _alternating_medians(
                    dense, sss, x, rounds, reps, 3, device
                )
            rows.append(
                {
                    "batch": batch,
                    "autograd": grad,
                    "dense_ms": 1e3 * t_dense,
                    "sss_ms": 1e3 * t_sss,
                    "speedup": t_dense / t_sss,
                    "sss_cold_ms": 1e3 * cold if not grad else None,
                }
            )
    meta = {
        "shape": [n, n],
        "n_stages": n_stages,
        "state_dim": d,
        "sss_weight_params": sss.n_weight_params(),
        "dense_weight_params": n * n,
        "flop_ratio": n * n / sss.n_weight_params(),
        "rel_error_vs_float64": err,
    }
    return rows, meta


SHAPE_CASES = [
    *(("quick esann", 100, 2048, 50, share) for share in (0.05, 0.1, 0.2, 0.3)),
    *(("quick fc1", 256, 1024, 32, share) for share in (0.05, 0.1, 0.2, 0.3)),
    ("paper last layer", 1000, 2048, 50, 0.05),
]


def bench_shapes(rounds: int, device) -> list[dict]:
    rng = np.random.default_rng(2)
    rows = []
    for name, out_f, in_f, n_stages, share in SHAPE_CASES:
        weight = rng.standard_normal((out_f, in_f)) / np.sqrt(in_f)
        sss = SSSLayer.from_approximation(
            approximate_sss(weight, share, n_stages), bias=True, device=device
        )
        dense = torch.nn.Linear(in_f, out_f, device=device)
        for batch in (1, 256):
            x = torch.randn(batch, in_f, device=device)
            reps = 200 if batch == 1 else 10
            with torch.no_grad():
                native = sss._runs_natively(x)
                t_dense, t_sss = _alternating_medians(
                    dense, sss, x, rounds, reps, 5, device
                )
            rows.append(
                {
                    "case": name,
                    "shape": [out_f, in_f],
                    "n_stages": n_stages,
                    "share": share,
                    "state_dim": sss.d,
                    "batch": batch,
                    "path": "C" if native else "torch",
                    "dense_us": 1e6 * t_dense,
                    "sss_us": 1e6 * t_sss,
                    "speedup": t_dense / t_sss,
                }
            )
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="write the results as JSON to this path")
    parser.add_argument(
        "--rounds",
        type=int,
        default=6,
        help="alternating timing rounds per layer setting",
    )
    parser.add_argument(
        "--reps",
        type=int,
        default=None,
        help="calls per round (default: 60 at batch 1, 3 at 256)",
    )
    parser.add_argument("--svd-reps", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    ident = bench_identification(args.svd_reps)
    layer_rows = []
    meta = None
    for batch in (1, 256):
        reps = args.reps or (60 if batch == 1 else 3)
        rows, meta = bench_layer([batch], args.rounds, reps, device)
        layer_rows += rows

    shape_rows = bench_shapes(args.rounds, device)

    print("## SSS identification vs one full SVD (median of %d)\n" % args.svd_reps)
    print(
        "| case | state dim | rel. error | SSS identification (compressed) "
        "| one SVD per Hankel block | full SVD of W | compressed / full SVD |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in ident:
        print(
            f"| {r['case']} | {r['state_dim']} | {r['rel_error']:.2e} | {1e3 * r['sss_s']:.1f} ms "
            f"| {1e3 * r['sss_full_s']:.1f} ms | {1e3 * r['full_svd_s']:.1f} ms "
            f"| {r['ratio']:.2f}× |"
        )
    print(
        f"\n## SSS layer vs nn.Linear, 4096×4096, K=64, d=16, float32, {args.threads} thread(s), {device}\n"
    )
    print(
        f"SSS weight parameters {meta['sss_weight_params']:,} vs dense {meta['dense_weight_params']:,} "
        f"({meta['flop_ratio']:.1f}× fewer multiply-adds); "
        f"max rel. error vs float64 {meta['rel_error_vs_float64']:.1e}\n"
    )
    print("| batch | autograd | dense | SSS | speed-up | SSS first call |")
    print("|---|---|---|---|---|---|")
    for r in layer_rows:
        cold = f"{r['sss_cold_ms']:.3f} ms" if r["sss_cold_ms"] is not None else ""
        print(
            f"| {r['batch']} | {'yes' if r['autograd'] else 'no'} | {r['dense_ms']:.3f} ms | {r['sss_ms']:.3f} ms "
            f"| {r['speedup']:.1f}× | {cold} |"
        )
    ok = all(r["speedup"] >= 10 for r in layer_rows)
    print(
        f"\nrequirement (≥ 10× at batch 1 and 256, with and without autograd): {'met' if ok else 'NOT met'}"
    )

    print(
        f"\n## SSS layer inference vs nn.Linear on the quick and paper shapes, float32, "
        f"{args.threads} thread(s), {device}\n"
    )
    print("| case | shape | K | share | d | batch | path | dense | SSS | speed-up |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in shape_rows:
        print(
            f"| {r['case']} | {r['shape'][0]}×{r['shape'][1]} | {r['n_stages']} | "
            f"{r['share']} | {r['state_dim']} | {r['batch']} | {r['path']} | "
            f"{r['dense_us']:.1f} µs | {r['sss_us']:.1f} µs | {r['speedup']:.2f}× |"
        )
    shapes_ok = all(r["speedup"] >= 1 for r in shape_rows)
    print(
        f"\nrequirement (SSS at least as fast as dense on every row): "
        f"{'met' if shapes_ok else 'NOT met'}"
    )

    if args.out:
        result = {
            "identification": ident,
            "layer": layer_rows,
            "layer_meta": meta,
            "requirement_met": ok,
            "shapes": shape_rows,
            "shapes_requirement_met": shapes_ok,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "threads": args.threads,
            "device": str(device),
            "machine": platform.machine(),
            "processor": platform.processor(),
            "python": platform.python_version(),
        }
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
