"""Shared test setup: one torch thread per process (much faster on small CPUs), and the
session's SLURM cluster fixture."""

import os

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def slurm_cluster():
    """A running single-node SLURM (started when needed, as root): tests/slurm_cluster.py."""
    from slurm_cluster import get_slurm_cluster

    return get_slurm_cluster()
