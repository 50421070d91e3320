"""One training run of the teleportation matrix (teleport.md §7): build and initialise
the network, apply the run's arm before the first step, train with SGD and a plateau
scheduler on validation accuracy, evaluate the test set once at the end.

The seed of a run is shared by its arms: the standard and the teleported run of one cell
start from the same weights and see the same minibatches, so their difference is the
teleportation's. ``paper_eval_on_test`` reproduces the original, which evaluated (and
drove the scheduler with) the test set every epoch.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from weightspace.data.seeds import derive_seed
from weightspace.teleport.controls import Teleport, apply_arm
from weightspace.teleport.datasets import Parts, loader
from weightspace.teleport.networks import DATA_SHAPES, build_network, model_id
from weightspace.training.loop import evaluate, train

EVAL_BATCH = 1000


@dataclass(frozen=True)
class Protocol:
    """teleport.training of the config (the keys a training job reads)."""

    epochs: int
    batch_size: int
    validation: int
    paper_eval_on_test: bool
    cob_range: float
    sampling_type: str
    plateau_factor: float
    plateau_patience: int
    top5: bool
    num_workers: int = 0
    checkpoint: bool = True


def run_seed(base: int, dataset: str, spec: Mapping, init: str, optimizer: str, index):
    """The seed of a run: the same for every arm of one cell."""
    return derive_seed(
        base, "teleport", "train", dataset, model_id(spec), init, optimizer, index
    )


def prepare_network(dataset, spec, initializer, arm, protocol, seed):
    """The run's network, initialised from its seed, with its arm applied (and what the
    arm did)."""
    shape, classes = DATA_SHAPES[dataset]
    torch.manual_seed(seed)
    model = build_network(spec, shape, classes, initializer)
    example = torch.zeros(2, *shape)
    arm_generator = torch.Generator().manual_seed(derive_seed(seed, "arm", arm))
    teleport = Teleport(protocol.cob_range, protocol.sampling_type)
    return apply_arm(model, arm, example, teleport, arm_generator)


def minibatch_generator(seed: int) -> torch.Generator:
    """The generator of a run's minibatch order (shared by its arms)."""
    return torch.Generator().manual_seed(derive_seed(seed, "minibatches"))


def run_result(dataset, spec, initializer, arm, optimizer, seed, **outcome) -> dict:
    """A run's identity and outcome, as the figures read it."""
    return {
        "dataset": dataset,
        "model": model_id(spec),
        "initializer": initializer["name"],
        "arm": arm,
        "optimizer": optimizer["name"],
        "lr": optimizer["lr"],
        "momentum": optimizer["momentum"],
        "seed": seed,
        **outcome,
    }


def train_run(
    parts: Parts,
    dataset: str,
    spec: Mapping,
    initializer: Mapping,
    arm: str,
    optimizer: Mapping,
    protocol: Protocol,
    seed: int,
    device: str = "cpu",
    checkpoint_path=None,
    log: logging.Logger | None = None,
) -> dict:
    """Train one run; returns its identity, status, per-epoch history, what its arm did
    and the final test metrics (None when it diverged)."""
    started = time.perf_counter()
    model, arm_stats = prepare_network(dataset, spec, initializer, arm, protocol, seed)

    sgd = torch.optim.SGD(
        model.parameters(),
        lr=optimizer["lr"],
        momentum=optimizer["momentum"],
        weight_decay=optimizer["weight_decay"],
    )
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        sgd,
        mode="max",
        factor=protocol.plateau_factor,
        patience=protocol.plateau_patience,
    )
    order = minibatch_generator(seed)
    train_loader = loader(
        parts.train,
        parts,
        protocol.batch_size,
        shuffle=True,
        drop_last=True,
        generator=order,
        num_workers=protocol.num_workers,
    )
    test_loader = loader(
        parts.test, parts, EVAL_BATCH, num_workers=protocol.num_workers
    )
    if protocol.paper_eval_on_test:
        watched = {"test": test_loader}
    else:
        watched = {"val": loader(parts.validation, parts, EVAL_BATCH)}
    monitor = f"{next(iter(watched))}_acc"
    result = train(
        model,
        train_loader,
        watched,
        sgd,
        protocol.epochs,
        device=device,
        checkpoint_path=checkpoint_path,
        log=log,
        scheduler=scheduler,
        plateau_metric=monitor,
        top5=protocol.top5,
        eval_before_training=True,
    )
    test = None
    if result.completed:
        test = evaluate(model, test_loader, device=device, top5=protocol.top5)
    return run_result(
        dataset,
        spec,
        initializer,
        arm,
        optimizer,
        seed,
        status=result.status,
        diverged_epoch=result.diverged_epoch,
        monitor=monitor,
        history=result.to_dict()["history"],
        arm_stats=arm_stats,
        test=test,
        seconds=time.perf_counter() - started,
    )


def train_job(
    parts: Parts,
    job: Mapping,
    checkpoint,
    device: str = "cpu",
    log: logging.Logger | None = None,
) -> list[dict]:
    """Every run of one training job (``teleport.jobs.training_job_config``), in order;
    the runs of one job may belong to several arms of its cell.

    ``checkpoint`` (``load()``, ``save(payload)``, ``path``) holds the finished runs, so a
    killed job resumes after its last finished run; with ``protocol.checkpoint`` the run
    in progress resumes after its last finished epoch (file ``<checkpoint.path>.run``).
    """
    protocol = Protocol(**job["protocol"])
    done = checkpoint.load() or []
    run_file = f"{checkpoint.path}.run"
    for index, run in enumerate(job["runs"]):
        if index < len(done):
            continue
        optimizer = run["optimizer"]
        init = job["initializer"]
        seed = run_seed(
            job["seed"],
            job["dataset"],
            job["model"],
            init["name"],
            optimizer["name"],
            run["seed"],
        )
        if log is not None:
            log.info(
                "run %d/%d: %s seed %d (%s)",
                index + 1,
                len(job["runs"]),
                optimizer["name"],
                run["seed"],
                run["arm"],
            )
        result = train_run(
            parts,
            job["dataset"],
            job["model"],
            init,
            run["arm"],
            optimizer,
            protocol,
            seed,
            device=device,
            checkpoint_path=run_file if protocol.checkpoint else None,
            log=log,
        )
        result["seed_index"] = run["seed"]
        done.append(result)
        checkpoint.save(done)
        if os.path.exists(run_file):
            os.remove(run_file)
    return done
