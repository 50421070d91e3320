"""Training loop (learning, exact resume, divergence, atomic checkpoints, evaluation) and device helpers."""

import json
import logging
import math
import multiprocessing
import os
import random
import time

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from weightspace.training import (
    DIVERGED,
    acquire_gpu,
    evaluate,
    load_checkpoint,
    resolve_device,
    set_threads,
    train,
    visible_gpu_ids,
)
from weightspace.training import loop as loop_module

torch.set_num_threads(1)


def blobs(n=256, dim=8, separation=6.0, seed=0):
    """Two Gaussian blobs (unit variance) whose means are ``separation`` apart: linearly separable in practice."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    centre = torch.zeros(dim)
    centre[0] = separation / 2
    x = torch.randn(n, dim, generator=generator) + torch.where(
        labels[:, None] == 1, centre, -centre
    )
    return x, labels


class NoisyBlobs(Dataset):
    """Blobs with per-draw noise from numpy's and Python's global generators, so resuming must restore both."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, index):
        noise = torch.from_numpy(
            np.random.normal(0.0, 0.1, size=self.x.shape[1]).astype(np.float32)
        )
        return self.x[index] + noise + random.gauss(0.0, 0.1), self.y[index]


def make_run(model_seed=0, loader_seed=1, lr=0.05):
    """A fresh model/optimizer/scheduler/loaders set; dropout draws from torch's global generator."""
    torch.manual_seed(model_seed)
    model = nn.Sequential(
        nn.Linear(8, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 2)
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
    x, y = blobs()
    train_loader = DataLoader(
        NoisyBlobs(x, y),
        batch_size=20,
        shuffle=True,
        generator=torch.Generator().manual_seed(loader_seed),
    )
    xv, yv = blobs(n=64, seed=1)
    eval_loaders = {"val": DataLoader(TensorDataset(xv, yv), batch_size=30)}
    return model, optimizer, scheduler, train_loader, eval_loaders


def seed_everything(seed):
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def without_timing(history):
    return [{k: v for k, v in entry.items() if k != "seconds"} for entry in history]


def test_training_learns_a_separable_problem():
    seed_everything(0)
    model, optimizer, scheduler, train_loader, eval_loaders = make_run()
    messages = []
    result = train(
        model,
        train_loader,
        eval_loaders,
        optimizer,
        4,
        log=messages.append,
        scheduler=scheduler,
        eval_before_training=True,
    )
    assert result.status == "completed" and result.epochs_completed == 4
    assert [entry["epoch"] for entry in result.history] == [0, 1, 2, 3, 4]
    losses = [entry["train_loss"] for entry in result.history[1:]]
    # dropout and input noise make single epochs noisy; the trend must be a large drop
    assert losses[-1] < 0.2 * losses[0], losses
    # means 6 std apart (Bayes error Phi(-3) = 0.13 %): a trained classifier gets all 64 fixed validation points right
    assert result.final["val_acc"] == 1.0
    assert result.final["val_loss"] < 0.5 * result.history[0]["val_loss"]
    assert [entry["lr"] for entry in result.history[1:]] == pytest.approx(
        [0.05, 0.035, 0.0245, 0.01715]
    )
    assert sum(m.startswith("epoch ") and "/4 " in m for m in messages) == 5
    assert any("val_acc" in m for m in messages)


def test_resumed_run_is_bit_identical_to_an_uninterrupted_one(tmp_path):
    seed_everything(0)
    model, optimizer, scheduler, train_loader, eval_loaders = make_run()
    straight = train(
        model,
        train_loader,
        eval_loaders,
        optimizer,
        4,
        scheduler=scheduler,
        checkpoint_path=tmp_path / "straight.pt",
        log=lambda _: None,
    )

    class Killed(Exception):
        pass

    def kill_during_epoch_3(epoch, metrics):
        if epoch == 3:
            raise Killed  # after epoch 3's work, before its checkpoint: the file still holds epoch 2

    seed_everything(0)
    model_a, optimizer_a, scheduler_a, train_loader_a, eval_loaders_a = make_run()
    with pytest.raises(Killed):
        train(
            model_a,
            train_loader_a,
            eval_loaders_a,
            optimizer_a,
            4,
            scheduler=scheduler_a,
            checkpoint_path=tmp_path / "run.pt",
            on_epoch_end=kill_during_epoch_3,
            log=lambda _: None,
        )
    assert load_checkpoint(tmp_path / "run.pt")["epoch"] == 2

    # a new "process": different global random states, a different initialisation and loader seed
    seed_everything(12345)
    model_b, optimizer_b, scheduler_b, train_loader_b, eval_loaders_b = make_run(
        model_seed=7, loader_seed=99
    )
    resumed = train(
        model_b,
        train_loader_b,
        eval_loaders_b,
        optimizer_b,
        4,
        scheduler=scheduler_b,
        checkpoint_path=tmp_path / "run.pt",
        log=lambda _: None,
    )

    assert resumed.status == "completed" and resumed.resumed_from_epoch == 2
    assert without_timing(resumed.history) == without_timing(straight.history)
    for (name, expected), actual in zip(
        model.state_dict().items(), model_b.state_dict().values()
    ):
        assert torch.equal(expected, actual), name
    momentum = [optimizer.state[p]["momentum_buffer"] for p in model.parameters()]
    momentum_b = [optimizer_b.state[p]["momentum_buffer"] for p in model_b.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(momentum, momentum_b))
    assert scheduler_b.get_last_lr() == scheduler.get_last_lr()


def test_finished_checkpoint_returns_without_training(tmp_path):
    seed_everything(0)
    model, optimizer, scheduler, train_loader, eval_loaders = make_run()
    first = train(
        model,
        train_loader,
        eval_loaders,
        optimizer,
        2,
        scheduler=scheduler,
        checkpoint_path=tmp_path / "c.pt",
        log=lambda _: None,
    )
    model_b, optimizer_b, scheduler_b, train_loader_b, eval_loaders_b = make_run(
        model_seed=3
    )
    again = train(
        model_b,
        train_loader_b,
        eval_loaders_b,
        optimizer_b,
        2,
        scheduler=scheduler_b,
        checkpoint_path=tmp_path / "c.pt",
        log=lambda _: None,
    )
    assert again.status == "completed" and again.resumed_from_epoch == 2
    assert again.history == first.history
    assert all(
        torch.equal(a, b) for a, b in zip(model.parameters(), model_b.parameters())
    )


def test_divergence_is_recorded_not_raised(tmp_path):
    seed_everything(0)
    model, optimizer, _, train_loader, eval_loaders = make_run()
    # normal steps for epochs 1-2, then a learning rate of 1e11: the weights blow up within a few steps
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda e: 1.0 if e < 2 else 2e12
    )
    result = train(
        model,
        train_loader,
        eval_loaders,
        optimizer,
        5,
        scheduler=scheduler,
        checkpoint_path=tmp_path / "d.pt",
        log=lambda _: None,
    )
    assert result.status == DIVERGED
    assert result.diverged_epoch == 3
    # step 1 of epoch 3 starts from finite weights, so its loss is finite; 13 steps of 20 make an epoch
    assert 2 <= result.diverged_step <= 13
    assert result.diverged_global_step == 2 * 13 + result.diverged_step
    assert not math.isfinite(result.diverged_loss)
    assert result.epochs_completed == 2 and [e["epoch"] for e in result.history] == [
        1,
        2,
    ]
    assert load_checkpoint(tmp_path / "d.pt")["epoch"] == 2, (
        "the checkpoint keeps the last finite epoch"
    )
    record = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert record["status"] == "diverged" and record["diverged_loss"] is None
    assert record["history"][1]["train_loss"] == result.history[1]["train_loss"]


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    seed_everything(0)
    model, optimizer, scheduler, train_loader, eval_loaders = make_run()
    path = tmp_path / "ckpt" / "run.pt"
    train(
        model,
        train_loader,
        eval_loaders,
        optimizer,
        1,
        scheduler=scheduler,
        checkpoint_path=path,
        log=lambda _: None,
    )
    assert os.listdir(path.parent) == ["run.pt"], "no temporary file may be left behind"
    saved = load_checkpoint(path)
    assert saved["epoch"] == 1
    assert all(torch.equal(saved["model"][k], v) for k, v in model.state_dict().items())

    real_save = torch.save

    def save_then_die(obj, handle):
        real_save(obj, handle)
        handle.truncate(100)  # half-written file, then the process is interrupted
        raise KeyboardInterrupt

    monkeypatch.setattr(loop_module.torch, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(
            model,
            train_loader,
            eval_loaders,
            optimizer,
            2,
            scheduler=scheduler,
            checkpoint_path=path,
            log=lambda _: None,
        )
    monkeypatch.undo()
    assert os.listdir(path.parent) == ["run.pt"]
    assert load_checkpoint(path)["epoch"] == 1, (
        "an interrupted write must leave the previous checkpoint intact"
    )


def test_checkpoint_from_another_model_is_refused(tmp_path):
    seed_everything(0)
    model, optimizer, scheduler, train_loader, eval_loaders = make_run()
    train(
        model,
        train_loader,
        eval_loaders,
        optimizer,
        1,
        scheduler=scheduler,
        checkpoint_path=tmp_path / "c.pt",
        log=lambda _: None,
    )
    other = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    other_optimizer = torch.optim.SGD(other.parameters(), lr=0.1)
    other_scheduler = torch.optim.lr_scheduler.StepLR(other_optimizer, 1)
    with pytest.raises(
        RuntimeError,
        match="(?s)does not match this model.*delete it to train from scratch",
    ):
        train(
            other,
            train_loader,
            eval_loaders,
            other_optimizer,
            2,
            scheduler=other_scheduler,
            checkpoint_path=tmp_path / "c.pt",
            log=lambda _: None,
        )
    with pytest.raises(ValueError, match="with a learning-rate scheduler"):
        train(
            model,
            train_loader,
            eval_loaders,
            optimizer,
            2,
            checkpoint_path=tmp_path / "c.pt",
            log=lambda _: None,
        )


def test_on_epoch_end_metrics_are_recorded_and_checkpointed(tmp_path):
    seed_everything(0)
    model, optimizer, scheduler, train_loader, eval_loaders = make_run()
    seen = []

    def weight_norm(epoch, metrics):
        seen.append((epoch, set(metrics)))
        return {
            "weight_norm": torch.linalg.vector_norm(model[0].weight),
            "tag": np.int64(epoch),
        }

    result = train(
        model,
        train_loader,
        eval_loaders,
        optimizer,
        2,
        scheduler=scheduler,
        on_epoch_end=weight_norm,
        checkpoint_path=tmp_path / "c.pt",
        log=lambda _: None,
    )
    assert [epoch for epoch, _ in seen] == [1, 2]
    assert {"train_loss", "train_acc", "val_loss", "val_acc", "lr"} <= seen[0][1]
    assert result.final["weight_norm"] == pytest.approx(
        torch.linalg.vector_norm(model[0].weight).item(), rel=0, abs=0
    )
    assert result.final["tag"] == 2 and isinstance(result.final["tag"], int)
    assert load_checkpoint(tmp_path / "c.pt")["history"] == result.history
    json.dumps(result.to_dict(), allow_nan=False)


def test_logger_receives_progress(caplog):
    seed_everything(0)
    model, optimizer, scheduler, train_loader, eval_loaders = make_run()
    logger = logging.getLogger("weightspace.test.progress")
    with caplog.at_level(logging.INFO, logger="weightspace.test.progress"):
        train(
            model,
            train_loader,
            eval_loaders,
            optimizer,
            2,
            scheduler=scheduler,
            log=logger,
            log_every=5,
        )
    lines = [r.getMessage() for r in caplog.records]
    assert any(
        line.startswith("epoch 2/2 train_loss") and "val_acc" in line for line in lines
    )
    assert any(line.startswith("epoch 1/2 step 10 train_loss") for line in lines)


def test_evaluate_weights_batches_by_size():
    torch.manual_seed(0)
    model = nn.Linear(6, 7)
    x, y = torch.randn(23, 6), torch.randint(0, 7, (23,))
    loader = DataLoader(TensorDataset(x, y), batch_size=10)  # batches of 10, 10, 3
    model.train()
    metrics = evaluate(model, loader, top5=True)
    assert model.training, "the caller's mode is restored"
    with torch.no_grad():
        logits = model(x)
    assert metrics["loss"] == pytest.approx(
        nn.functional.cross_entropy(logits, y).item(), rel=1e-6
    )
    assert metrics["acc"] == (logits.argmax(1) == y).sum().item() / 23
    assert (
        metrics["top5"]
        == (logits.topk(5, 1).indices == y[:, None]).any(1).sum().item() / 23
    )


def test_regression_losses_report_no_accuracy():
    x = torch.randn(12, 3)
    loader = DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=5)
    metrics = evaluate(nn.Linear(3, 1), loader, loss_fn=nn.MSELoss())
    assert set(metrics) == {"loss"}


def test_bad_training_arguments_are_named():
    model, optimizer, _, train_loader, eval_loaders = make_run()
    with pytest.raises(ValueError, match="epochs"):
        train(model, train_loader, eval_loaders, optimizer, -1)
    with pytest.raises(ValueError, match="other than 'train'"):
        train(model, train_loader, {"train": train_loader}, optimizer, 1)
    with pytest.raises(ValueError, match="scheduler_interval"):
        train(
            model, train_loader, eval_loaders, optimizer, 1, scheduler_interval="batch"
        )


# ------------------------------------------------------------------------------------------------
# devices


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == (
        "cuda" if torch.cuda.is_available() else "cpu"
    )
    with pytest.raises(ValueError, match="unknown device 'tpu'.*'auto', 'cpu', 'cuda'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available.*device: auto"):
            resolve_device("cuda")
    else:
        with pytest.raises(RuntimeError, match="does not exist"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")


def test_set_threads():
    previous = torch.get_num_threads()
    try:
        assert set_threads(2) == 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)
    with pytest.raises(ValueError, match="positive int"):
        set_threads(0)


def test_visible_gpu_ids_follow_cuda_visible_devices(monkeypatch, tmp_path):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,1")
    assert visible_gpu_ids() == ["3", "1"]
    with acquire_gpu(tmp_path) as first, acquire_gpu(tmp_path) as second:
        assert (first, second) == (0, 1)
        # locks are named by physical id, so other jobs see GPU 3 and GPU 1 as taken
        assert sorted(os.listdir(tmp_path)) == ["gpu1.lock", "gpu3.lock"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    with pytest.raises(RuntimeError, match="no GPU is visible"):
        with acquire_gpu(tmp_path):
            pass


def _hold_gpu_slot(lock_dir, n_devices, reply, release=None):
    with acquire_gpu(lock_dir, n_devices=n_devices, timeout=5) as index:
        reply.put(index)
        if release is None:
            time.sleep(
                60
            )  # until killed (an Event would deadlock its setter once a waiter is SIGKILLed)
        else:
            release.wait(30)


@pytest.fixture
def fork():
    # fork: the child needs only fcntl, and skipping a fresh interpreter keeps the test fast
    return multiprocessing.get_context("fork")


def test_concurrent_jobs_get_distinct_gpus_and_a_third_waits_then_fails(tmp_path, fork):
    reply, release = fork.Queue(), fork.Event()
    holders = [
        fork.Process(target=_hold_gpu_slot, args=(tmp_path, 2, reply, release))
        for _ in range(2)
    ]
    for holder in holders:
        holder.start()
    try:
        indices = sorted(reply.get(timeout=20) for _ in holders)
        assert indices == [0, 1]
        started = time.monotonic()
        with pytest.raises(TimeoutError, match="all 2 GPU slot.*busy.*pid"):
            with acquire_gpu(tmp_path, n_devices=2, timeout=0.6, poll_interval=0.1):
                pass
        assert time.monotonic() - started >= 0.6, (
            "it must wait for the timeout before failing"
        )
    finally:
        release.set()
        for holder in holders:
            holder.join(10)
    assert all(holder.exitcode == 0 for holder in holders)
    with acquire_gpu(tmp_path, n_devices=2, timeout=0) as index:
        assert index == 0, "released slots are free again"


def test_a_waiting_job_gets_the_slot_a_killed_holder_leaves(tmp_path, fork):
    reply = fork.Queue()
    holder = fork.Process(target=_hold_gpu_slot, args=(tmp_path, 1, reply))
    holder.start()
    try:
        assert reply.get(timeout=20) == 0
        with pytest.raises(TimeoutError):
            with acquire_gpu(tmp_path, n_devices=1, timeout=0.2, poll_interval=0.05):
                pass
        holder.kill()  # SIGKILL: no cleanup code runs, the kernel drops the flock
        holder.join(10)
        with acquire_gpu(tmp_path, n_devices=1, timeout=5, poll_interval=0.05) as index:
            assert index == 0
    finally:
        if holder.is_alive():
            holder.kill()
        holder.join(10)


def test_tensor_batches_shuffle_per_pass_and_drop_the_last_batch():
    from weightspace.training import TensorBatches

    x, y = torch.arange(10.0).view(10, 1), torch.arange(10)
    batches = TensorBatches(
        x,
        y,
        4,
        shuffle=True,
        drop_last=True,
        generator=torch.Generator().manual_seed(0),
    )
    first, second = list(batches), list(batches)
    assert len(batches) == 2 and [len(b[1]) for b in first] == [4, 4]
    assert not torch.equal(first[0][1], second[0][1])  # a fresh permutation per pass
    seen = torch.cat([b[1] for b in first])
    assert len(set(seen.tolist())) == 8
    assert [len(b[1]) for b in TensorBatches(x, y, 4)] == [4, 4, 2]
    with pytest.raises(ValueError, match="drop_last"):
        TensorBatches(x, y, 11, drop_last=True)


def test_plateau_scheduler_reads_the_named_metric():
    from weightspace.training import TensorBatches

    torch.manual_seed(0)
    x, y = torch.randn(64, 4), torch.randint(0, 2, (64,))
    model = nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # accuracy never improves
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", patience=0)
    val = TensorBatches(x, y, 64)
    result = train(
        model,
        TensorBatches(x, y, 16),
        {"val": val},
        opt,
        3,
        scheduler=sched,
        plateau_metric="val_acc",
    )
    assert [e["lr"] for e in result.history] == [0.0, 0.0, 0.0]
    assert sched.best == result.history[0]["val_acc"]
    with pytest.raises(ValueError, match="plateau_metric 'val_top9'"):
        train(
            model,
            TensorBatches(x, y, 16),
            {"val": val},
            opt,
            1,
            scheduler=sched,
            plateau_metric="val_top9",
        )
