"""Train the quick-scale SmallCNN on the MNIST subset (Adam, fixed seed), checkpointed every epoch."""

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from weightspace.data.seeds import derive_seed
from weightspace.models import small_cnn
from weightspace.pipeline.job import script_job
from weightspace.provenance.atomic import atomic_torch_save
from weightspace.training.loop import train

sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    cfg = job.config["structured.cnn"]
    seed = derive_seed(job.config["seed"], "structured", "small_cnn")
    job.record.seeds["train"] = seed
    data = np.load(sm.input.data)
    x_tr, y_tr = (
        torch.from_numpy(data["x_train"]),
        torch.from_numpy(data["y_train"]).long(),
    )
    x_te, y_te = (
        torch.from_numpy(data["x_test"]),
        torch.from_numpy(data["y_test"]).long(),
    )
    torch.manual_seed(seed)
    model = small_cnn()
    gen = torch.Generator().manual_seed(seed)
    train_loader = DataLoader(
        TensorDataset(x_tr, y_tr),
        batch_size=cfg["batch_size"],
        shuffle=True,
        generator=gen,
    )
    test_loader = DataLoader(TensorDataset(x_te, y_te), batch_size=1000)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    checkpoint = job.checkpoint(seed=seed)  # written by train() every epoch
    result = train(
        model,
        train_loader,
        {"test": test_loader},
        optimizer,
        cfg["epochs"],
        checkpoint_path=checkpoint.path,
        log=job.log,
    )
    if not result.completed:
        raise RuntimeError(
            f"SmallCNN training diverged at epoch {result.diverged_epoch}"
        )
    atomic_torch_save(model.state_dict(), sm.output.model)
    final = result.final
    job.record.metrics.update(
        test_acc=final["test_acc"],
        train_acc=final["train_acc"],
        test_loss=final["test_loss"],
        epochs=result.epochs_completed,
        parameters=sum(p.numel() for p in model.parameters()),
    )
    job.log.info(
        "SmallCNN: test accuracy %.4f after %d epochs",
        final["test_acc"],
        result.epochs_completed,
    )
