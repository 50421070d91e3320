"""Data-parallel RBD on torch.distributed (random_bases.md §9, issue "distributed
workers"): each worker computes the gradient of its own batch and its coordinates along
its own directions; only those coordinates are all-gathered (W x sum_k d_k scalars per
step, never a gradient); every worker regenerates every other worker's directions from
the shared key and applies all W steps in worker order, so all copies stay identical.

Start it with torchrun (gloo on CPU, nccl on GPU) or as a multi-task SLURM job; the
in-process ``RandomBases.workers_step`` computes the same step in one process:

    torchrun --nproc-per-node 2 -m weightspace.rbd.distributed \
        --mnist-file results/quick/data/mnist_subset.npz --steps 100 --out w2.json
    # SLURM, one task per worker (rank and world size from SLURM_PROCID/SLURM_NTASKS):
    export MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1)
    export MASTER_PORT=29500
    srun --ntasks 4 python -m weightspace.rbd.distributed --dataset mnist \
        --data-root /data --device cuda --generator torch --epochs 1 --out w4.json

Rank 0 writes the checksums of every worker's parameters (they must be equal), the
scalars a step exchanged and the validation accuracy.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterator

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from weightspace.rbd.descent import RandomBases


def exchange(coordinates: list[torch.Tensor]) -> list[list[torch.Tensor]]:
    """Every worker's coordinates (per compartment), from this worker's."""
    flat = torch.cat(coordinates)
    gathered = [torch.empty_like(flat) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, flat)
    sizes = [c.numel() for c in coordinates]
    return [list(g.split(sizes)) for g in gathered]


def worker_steps(
    model: nn.Module,
    bases: RandomBases,
    batches: Iterator,
    lr: float,
    steps: int,
    first_step: int = 0,
) -> dict:
    """Train this worker's copy for ``steps`` RBD steps; returns the scalars sent and
    received per step and a checksum of the parameters."""
    rank = dist.get_rank()
    params = [p for p in model.parameters() if p.requires_grad]
    scalars = 0
    for step in range(first_step, first_step + steps):
        x, y = next(batches)
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        g = torch.cat([p.grad.flatten() for p in params])
        everyone = exchange(bases.coordinates(g, step, rank))
        scalars = sum(c.numel() for coords in everyone for c in coords)
        total = sum(bases.step_vector(c, step, w) for w, c in enumerate(everyone))
        with torch.no_grad():
            offset = 0
            for p in params:
                p.sub_(lr * total[offset : offset + p.numel()].view_as(p))
                offset += p.numel()
    flat = torch.cat([p.detach().flatten() for p in params])
    return {
        "scalars_per_step": scalars,
        "checksum": float(flat.double().sum()),
        "parameters": flat,
    }


def _rank_from_environment() -> tuple[int, int]:
    """(rank, world size) from torchrun's variables, or a SLURM task's."""
    if "RANK" in os.environ:
        return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    if "SLURM_PROCID" in os.environ:
        if "MASTER_ADDR" not in os.environ:
            raise SystemExit(
                "a SLURM task needs MASTER_ADDR and MASTER_PORT: export MASTER_ADDR="
                '$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1)'
            )
        os.environ.setdefault("MASTER_PORT", "29500")
        return int(os.environ["SLURM_PROCID"]), int(os.environ["SLURM_NTASKS"])
    raise SystemExit(
        "start one process per worker with torchrun (--nproc-per-node W) or srun "
        "(--ntasks W)"
    )


def main(argv=None) -> None:
    from weightspace.data.seeds import derive_seed
    from weightspace.models import build_model, initialize_weights
    from weightspace.rbd.compartments import compartments
    from weightspace.rbd.datasets import batch_stream, evaluation_view, load_arrays
    from weightspace.rbd.presets import NETWORKS, learning_rate
    from weightspace.rbd.training import evaluate_accuracy, parameter_layout

    parser = argparse.ArgumentParser(
        description="data-parallel RBD, one process per worker"
    )
    parser.add_argument(
        "--dataset",
        default="mnist_subset",
        choices=["mnist_subset", "mnist", "fashion_mnist", "cifar10"],
    )
    parser.add_argument("--mnist-file", help="the MNIST subset (.npz) for mnist_subset")
    parser.add_argument("--data-root", help="torchvision data root for the other sets")
    parser.add_argument("--network", default="fc", choices=sorted(NETWORKS))
    parser.add_argument("--directions", type=int, default=250, help="d per worker")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--steps", type=int, help="stop after this many steps")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--generator", default="torch", choices=["torch", "philox"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", required=True, help="JSON written by rank 0")
    args = parser.parse_args(argv)
    if args.dataset == "mnist_subset" and not args.mnist_file:
        parser.error("--mnist-file is needed for mnist_subset (see data/ of a run)")
    if args.dataset != "mnist_subset" and not args.data_root:
        parser.error(f"--data-root is needed for {args.dataset}")

    rank, world = _rank_from_environment()
    device = torch.device(args.device)
    if device.type == "cuda":
        device = torch.device("cuda", rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    dist.init_process_group(
        "nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=world
    )
    try:
        arrays = load_arrays(
            args.dataset,
            mnist_file=args.mnist_file,
            data={"root": args.data_root, "verify_checksums": False},
            seed=derive_seed(args.seed, "rbd", "validation"),
        )
        seed = derive_seed(args.seed, "rbd", args.dataset, args.network, 0)
        torch.manual_seed(seed)  # every worker starts from the same weights
        channels, size = arrays.train[0].shape[1], arrays.train[0].shape[-1]
        model = build_model(
            NETWORKS[args.network], in_channels=channels, image_size=size
        )
        initialize_weights(model, "xavier_uniform").to(device)
        sizes, layers = parameter_layout(model)
        bases = RandomBases(
            tuple(compartments(sizes, layers, args.directions)),
            derive_seed(seed, "directions"),
            generator=args.generator,
        )
        batches = batch_stream(  # each worker its own batches
            arrays,
            args.batch_size,
            True,
            torch.Generator().manual_seed(derive_seed(seed, "batches", rank)),
            device,
        )
        steps = args.epochs * (len(arrays.train[1]) // (args.batch_size * world))
        steps = min(steps, args.steps or steps)
        lr = learning_rate(args.network, args.dataset, "rbd")
        result = worker_steps(model, bases, batches, lr, steps)
        checksums = [
            torch.zeros(1, dtype=torch.float64, device=device) for _ in range(world)
        ]
        dist.all_gather(
            checksums,
            torch.tensor([result["checksum"]], dtype=torch.float64, device=device),
        )
        if rank == 0:
            report = {
                "workers": world,
                "steps": steps,
                "d": args.directions,
                "parameters": sum(sizes),
                "scalars_per_step": result["scalars_per_step"],
                "checksums": [float(c) for c in checksums],
                "copies_identical": len({float(c) for c in checksums}) == 1,
                "validation": evaluate_accuracy(
                    model, *evaluation_view(arrays, arrays.validation, device)
                ),
            }
            with open(args.out, "w") as f:
                json.dump(report, f, indent=1)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
