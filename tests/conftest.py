"""Shared test setup: one torch thread per process (much faster on small CPUs)."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)
