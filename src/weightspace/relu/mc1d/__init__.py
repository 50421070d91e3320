"""Vectorised 1D Monte Carlo of §2: do kinks of GD-trained two-layer ReLU nets reach a
data point?

P networks f(x) = c + Σ_i w_i relu(a_i x + b_i) of width m are trained at once on the
six-point distribution (POINTS, LABELS + Δ) with per-net sample frequencies p̂ (n_s = m²
samples), loss L = ½ Σ_j p̂_j (f(x_j) − y_j)², in checks of K steps. Parameters live in
(P, m) tensors (c: (P,)); a step is a fixed sequence of tensor ops over all live nets,
with no host synchronisation.

The scatter step (``kernel="scatter"``) never forms the (P, 6, m) activation pattern.
Since x ↦ a_i x + b_i is monotone, neuron i is active on the k_i leftmost points (a_i <
0) or on the 6 − k_i rightmost ones (a_i > 0), k_i being the number of data points left
of its kink −b_i/a_i. Per net, running sums over these 14 classes of w·a and w·b give f
at all six points; running sums of the residuals give back, per class, S0 = Σ_{j active}
r_j and S1 = Σ_{j active} r_j x_j, which each neuron gathers. The gradients are ∂b = w
S0, ∂a = w S1, ∂w = a S1 + b S0, ∂c = Σ_j r_j: O(P·m) work in about thirty fused tensor
ops, run on cache-sized blocks of nets (rows are independent, so the blocking changes no
result). ``kernel="dense"`` builds the (P, 6, m) mask and contracts it with batched
matrix products instead; it is the default on CUDA, where scatter_add_ uses float
atomics and would not be bit-reproducible. ``kernel="c"`` (the CPU default for float64
when a C compiler is found, see relu/ckernel.py) does the scatter kernel's arithmetic,
operation for operation, in C: one call runs a whole check of GD or SGD steps, net after
net, and gives the same bits; for SGD it draws the minibatches itself.

Statuses (codes as in the original): a check first marks nets whose running max of
|b_i/a_i| (over all steps and neurons) reached min_j |x_j| = 1 as CROSSED, then applies
early stopping, then the sufficient criterion (LOCALLY_CONVERGED, A_DEGENERATE,
X_DEGENERATE; later wins among these three). A net that fires several at the same check
keeps the first in the order CROSSED > EARLY_STOPPED > X_DEGENERATE > A_DEGENERATE >
LOCALLY_CONVERGED, which is what the original's sequence of removals does: a crossing is
never hidden by a later stopping rule. A net whose parameters stop being finite counts
as CROSSED (its kinks are undefined).

Randomness: a numpy Generator seeded with ``seed`` draws, in this order, p̂, the
validation p̂, the initial parameters, and the seed of a torch Generator (on the run's
device), so initial states do not depend on the device. That generator draws one 64-bit
key per check; the minibatch counts Multinomial(16, p̂) of a step are drawn directly from
a counter-based SplitMix64 stream of that key, indexed by (net, step, draw)
(``minibatches``), the same numbers in C and PyTorch and whatever nets remain live.

Modules: ``config`` (MCConfig), ``network`` (the dense reference), ``kernel`` (what the
kernels share), ``scatter``, ``dense``, ``c_kernel`` (the kernels), ``gd`` (kernel
choice and full-batch GD helpers), ``minibatches``, ``state`` (initial, saved and final
chunk state) and ``chunk`` (``run_chunk``).
"""

from weightspace.relu.criterion import LABELS, POINTS
from weightspace.relu.mc1d.chunk import run_chunk
from weightspace.relu.mc1d.config import KERNELS, OPTIMIZERS, STEP_SIZES, MCConfig

# The kernels by name and the nets' parameters, for tests that drive a kernel directly.
from weightspace.relu.mc1d.gd import (  # noqa: F401
    GDStepper,
    _make_kernel,
    _resolve_kernel,
    gd_step,
    gradients,
    kernel_output,
    train_gd,
)
from weightspace.relu.mc1d.kernel import _Nets  # noqa: F401
from weightspace.relu.mc1d.minibatches import minibatch_frequencies
from weightspace.relu.mc1d.network import loss, network_output
from weightspace.relu.mc1d.state import ChunkResult, ChunkState, sample_frequencies
from weightspace.relu.statistics import (
    Status,
    estimate_crossing_probability,
    wilson_interval,
)

__all__ = [
    "ChunkResult",
    "ChunkState",
    "GDStepper",
    "KERNELS",
    "LABELS",
    "MCConfig",
    "OPTIMIZERS",
    "POINTS",
    "STEP_SIZES",
    "Status",
    "estimate_crossing_probability",
    "gd_step",
    "gradients",
    "kernel_output",
    "loss",
    "minibatch_frequencies",
    "network_output",
    "run_chunk",
    "sample_frequencies",
    "train_gd",
    "wilson_interval",
]
