"""Training loop with checkpoint/resume, evaluation, and device helpers shared by the papers."""

from .batches import TensorBatches
from .devices import acquire_gpu, resolve_device, set_threads, visible_gpu_ids
from .loop import (
    CHECKPOINT_FORMAT,
    COMPLETED,
    DIVERGED,
    TrainResult,
    atomic_torch_save,
    evaluate,
    load_checkpoint,
    train,
)

__all__ = [
    "CHECKPOINT_FORMAT",
    "COMPLETED",
    "DIVERGED",
    "TensorBatches",
    "TrainResult",
    "acquire_gpu",
    "atomic_torch_save",
    "evaluate",
    "load_checkpoint",
    "resolve_device",
    "set_threads",
    "train",
    "visible_gpu_ids",
]
