"""Setups grid of §5 (v3 Section 10; relu_fig_setups, relu_table_setups).

One configuration = (parameterisation, optimiser, bias init, distribution, learning
rate) trained on P nets at once, each with its own data set. The nets are
TwoLayerReluNet d → width ReLU → 1 with a zero-initialised (trained) output bias:

- ``kaiming``: W₁ ~ N(0, 2/d), W₂ ~ N(0, 2/width), forward factor 1;
- ``ntk``: W₁, W₂ ~ N(0, 1), forward multiplied by √(2/fan_in) per layer (biases not
  scaled).

Both draw the same standard normals for the same seed, so at a zero bias init they are
the same function (the scale sits either in the weight or in the forward pass).

Hidden-bias inits (pre-activation units): ``zero``; ``unif`` U(−√6, √6); ``unif-pos``
U(0, √6); ``unif-neg`` U(−√6, 0); ``kink-neg-unif`` −U(0, √3)·‖s₁w_i‖, so the kink
hyperplane's distance to the origin is U(0, √3) on the origin's inactive side;
``pytorch`` U(±1/√d); ``kink-neg-point``: a random training point x_j per neuron, w_i
flipped where s₁w_iᵀx_j < 0, b_i = −|s₁w_iᵀx_j|, so the kink passes through x_j. The
original picks the point on its first forward pass, which is the whole (standardised)
training set; so do we.

Protocol: n_train = 256·d, n_valid = n_test = 1024, minibatches of 256 from a fresh
per-net permutation every epoch, ``steps`` updates in total, validation every
``valid_every`` steps. X and y are standardised per net with the training mean and
(unbiased) std. Loss = Σ_nets mean_batch (f − y)². A NaN loss aborts the configuration
(status "nan"); the check runs at validation points, which gives the same outcome as
stopping at once. Metrics are RMSEs in y units (× ystd); ``best_test_rmse`` is the test
RMSE at the best-validation check. The original stores the validation MSE there on every
improvement; ``best_test_uses_valid=True`` reproduces that.

Modules: ``config`` (SetupConfig and the learning-rate grids), ``result`` (SetupResult),
``initialisation``, ``data``, ``optimizers``, ``training`` (one configuration), ``grid``
(many configurations as one batched model), ``sweep`` (every configuration of one
distribution) and ``selection`` (best learning rates, the table and figure numbers).
"""

from weightspace.relu.setups.config import (
    BIAS_INITS,
    OPTIMIZERS,
    PARAMETERISATIONS,
    SetupConfig,
    base_lr,
    lr_grid,
    refined_lr_grid,
)
from weightspace.relu.setups.data import SetupData, make_data
from weightspace.relu.setups.grid import run_setup_grid
from weightspace.relu.setups.initialisation import (
    KINK_RANGE,
    UNIF_BIAS_RANGE,
    forward_scales,
    init_two_layer,
    kink_through_points,
)
from weightspace.relu.setups.optimizers import (
    MOMENTUM,
    BatchedOptimizer,
    make_optimizer,
)
from weightspace.relu.setups.result import METRICS, SetupResult, merge_results
from weightspace.relu.setups.selection import (
    best_by_setting,
    best_lr_result,
    mean_and_se,
    relative_curves,
    setups_table,
)
from weightspace.relu.setups.sweep import run_distribution
from weightspace.relu.setups.training import predict, run_setup, update_best

__all__ = [
    "BIAS_INITS",
    "BatchedOptimizer",
    "KINK_RANGE",
    "METRICS",
    "MOMENTUM",
    "OPTIMIZERS",
    "PARAMETERISATIONS",
    "SetupConfig",
    "SetupData",
    "SetupResult",
    "UNIF_BIAS_RANGE",
    "base_lr",
    "best_by_setting",
    "best_lr_result",
    "forward_scales",
    "init_two_layer",
    "kink_through_points",
    "lr_grid",
    "make_data",
    "make_optimizer",
    "mean_and_se",
    "merge_results",
    "predict",
    "refined_lr_grid",
    "relative_curves",
    "run_distribution",
    "run_setup",
    "run_setup_grid",
    "setups_table",
    "update_best",
]
