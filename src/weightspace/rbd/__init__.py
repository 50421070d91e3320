"""Random bases descent (Gressmann et al.), random_bases.md: training in random
low-dimensional subspaces that are redrawn every step.

- `directions`: the counter-based random directions (a key per seed, step, worker and
  compartment regenerates any chunk of them bit for bit) and the two products with them,
  c = Phi^T g and Phi c, in bounded memory (§2.2, §2.5, §12); `philox`: the
  counter-based C generator behind ``generator="philox"`` (csrc/philox_directions.c);
- `compartments`: how the parameter vector is cut into compartments, each with its own
  directions (§2.6);
- `descent`: one step of RBD, FPD and the in-process distributed RBD of W workers
  that exchange only their coordinates (§2.4, §3, §9);
- `data`: augmentation (MNIST crop and brightness, CIFAR crop, flip and
  standardisation) and the seeded validation block (§7);
- `distributed`: the same workers on torch.distributed (gloo or nccl), exchanging only
  their coordinates; ``python -m weightspace.rbd.distributed`` under torchrun or srun;
- `training`: a network trained by SGD, RBD, FPD or NES, one update at a time, with
  the cosine of each update with the true gradient (§2-§5);
- `datasets`: the data sets as in-memory tensors and their batch stream; `presets`:
  the paper's learning rates, networks and published Table 1; `table1` and
  `summaries`: the tables and figures' data with their claims (no torch); `config`,
  `jobs`: the config checks and the cut of every experiment into runs and jobs (no
  torch: the workflow reads them when it is parsed).

Attributes load their module on first use, so importing the package imports no torch.
"""

from weightspace.lazy import lazy_attributes

_LAZY = {
    "compartments": ["Compartment", "compartments"],
    "directions": ["DirectionKey", "expand", "project"],
    "data": ["augment_cifar", "augment_mnist", "standardize", "validation_block"],
    "descent": ["RandomBases", "cosine"],
    "training": ["METHODS", "Method", "Trainer", "parameter_layout", "train_method"],
}
__all__ = sorted(name for names in _LAZY.values() for name in names)
__getattr__ = lazy_attributes(__name__, _LAZY, globals())
