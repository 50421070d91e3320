"""Distributed RBD on localhost: two gloo processes exchange only coordinates and end
with identical parameters, equal to the in-process simulation of the same workers."""

import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from weightspace.models import build_model
from weightspace.rbd.compartments import communicated_scalars, compartments
from weightspace.rbd.descent import RandomBases
from weightspace.rbd.distributed import worker_steps
from weightspace.rbd.training import parameter_layout

STEPS, WORKERS, LR, D = 4, 2, 1.0, 20


def _model():
    torch.manual_seed(0)
    return build_model("mlp", in_channels=1, image_size=8)


def _bases(model):
    sizes, layers = parameter_layout(model)
    return RandomBases(tuple(compartments(sizes, layers, D, -1)), seed=11)


def _batch(worker, step):
    g = torch.Generator().manual_seed(1000 * worker + step)
    return torch.randn(16, 1, 8, 8, generator=g), torch.randint(
        0, 10, (16,), generator=g
    )


def _worker(rank, port, out):
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORKERS)
    try:
        model = _model()
        batches = (_batch(rank, s) for s in range(STEPS))
        result = worker_steps(model, _bases(model), batches, LR, STEPS)
        torch.save(result, f"{out}/worker{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_workers_stay_identical_and_equal_the_simulation(tmp_path):
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORKERS, join=True)
    results = [torch.load(tmp_path / f"worker{r}.pt") for r in range(WORKERS)]
    assert torch.equal(results[0]["parameters"], results[1]["parameters"])
    assert results[0]["checksum"] == results[1]["checksum"]

    model = _model()  # the same workers in one process
    bases = _bases(model)
    params = list(model.parameters())
    for step in range(STEPS):
        grads = []
        for w in range(WORKERS):
            x, y = _batch(w, step)
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            grads.append(torch.cat([p.grad.flatten() for p in params]))
        total, scalars = bases.workers_step(grads, step)
        with torch.no_grad():
            torch.nn.utils.vector_to_parameters(
                torch.nn.utils.parameters_to_vector(params) - LR * total, params
            )
    simulated = torch.nn.utils.parameters_to_vector(params).detach()
    assert torch.equal(results[0]["parameters"], simulated)  # bit for bit
    # only coordinates travel: W x sum_k d_k, against D floats for a gradient all-reduce
    assert (
        results[0]["scalars_per_step"]
        == scalars
        == communicated_scalars(bases.parts, WORKERS)
        == 2 * 2 * D
    )
    assert scalars < simulated.numel() / 100


def test_torchrun_entry_point_trains_identical_workers(tmp_path):
    import subprocess
    import sys

    import numpy as np

    rng = np.random.default_rng(0)
    npz = tmp_path / "subset.npz"
    np.savez(
        npz,
        x_train=rng.random((128, 1, 28, 28), dtype=np.float32),
        y_train=rng.integers(0, 10, 128),
        x_test=rng.random((32, 1, 28, 28), dtype=np.float32),
        y_test=rng.integers(0, 10, 32),
    )
    out = tmp_path / "w2.json"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc-per-node",
            "2",
            "--master-port",
            str(_free_port()),
            "-m",
            "weightspace.rbd.distributed",
            "--mnist-file",
            str(npz),
            "--directions",
            "10",
            "--steps",
            "3",
            "--out",
            str(out),
        ],
        check=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    report = __import__("json").loads(out.read_text())
    assert report["workers"] == 2 and report["steps"] == 2  # 128 / (32 x 2) steps
    assert (
        report["copies_identical"] and report["checksums"][0] == report["checksums"][1]
    )
    assert report["scalars_per_step"] == 2 * 10
