"""Setups grid of §5 (v3 Section 10; relu_fig_setups, relu_table_setups).

One configuration = (parameterisation, optimiser, bias init, distribution, learning rate) trained on
P nets at once, each with its own data set. The nets are TwoLayerReluNet d → width ReLU → 1 with a
zero-initialised (trained) output bias:

- ``kaiming``: W₁ ~ N(0, 2/d), W₂ ~ N(0, 2/width), forward factor 1;
- ``ntk``: W₁, W₂ ~ N(0, 1), forward multiplied by √(2/fan_in) per layer (biases not scaled).

Both draw the same standard normals for the same seed, so at a zero bias init they are the same
function (the scale sits either in the weight or in the forward pass).

Hidden-bias inits (pre-activation units): ``zero``; ``unif`` U(−√6, √6); ``unif-pos`` U(0, √6);
``unif-neg`` U(−√6, 0); ``kink-neg-unif`` −U(0, √3)·‖s₁w_i‖, so the kink hyperplane's distance to
the origin is U(0, √3) on the origin's inactive side; ``pytorch`` U(±1/√d); ``kink-neg-point``: a
random training point x_j per neuron, w_i flipped where s₁w_iᵀx_j < 0, b_i = −|s₁w_iᵀx_j|, so the
kink passes through x_j. The original picks the point on its first forward pass, which is the whole
(standardised) training set; so do we.

Protocol: n_train = 256·d, n_valid = n_test = 1024, minibatches of 256 from a fresh per-net
permutation every epoch, ``steps`` updates in total, validation every ``valid_every`` steps. X and y
are standardised per net with the training mean and (unbiased) std. Loss = Σ_nets mean_batch
(f − y)². A NaN loss aborts the configuration (status "nan"); the check runs at validation points,
which gives the same outcome as stopping at once. Metrics are RMSEs in y units (× ystd);
``best_test_rmse`` is the test RMSE at the best-validation check. The original stores the
validation MSE there on every improvement; ``best_test_uses_valid=True`` reproduces that.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from weightspace.data.seeds import numpy_rng, torch_generator
from weightspace.relu.batched import BatchedTwoLayer
from weightspace.relu.distributions import get_distribution

PARAMETERISATIONS = ("kaiming", "ntk")
OPTIMIZERS = ("gd", "gd-mom", "adam")
BIAS_INITS = ("zero", "unif", "unif-pos", "unif-neg", "kink-neg-unif", "pytorch", "kink-neg-point")
METRICS = ("last_train_rmse", "last_valid_rmse", "last_test_rmse", "best_valid_rmse",
           "best_test_rmse")
# √3·√fan_in·(forward factor)·(init std) is √6 for both parameterisations.
UNIF_BIAS_RANGE = math.sqrt(6.0)
KINK_RANGE = math.sqrt(3.0)
MOMENTUM = 0.9
ADAM_BETAS = (0.9, 0.999)  # torch.optim.Adam's defaults, as the original
ADAM_EPS = 1e-8
_DTYPES = {"float32": torch.float32, "float64": torch.float64}


# ---------------------------------------------------------------------------------------------
# Learning-rate grids


def base_lr(optimizer: str, parameterisation: str) -> float:
    """Centre of the lr grid: Adam 1e-2 (kaiming) / 8e-2 (ntk), SGD(+momentum) 8e-3 / 8e-1."""
    _check_choice("optimizer", optimizer, OPTIMIZERS)
    _check_choice("parameterisation", parameterisation, PARAMETERISATIONS)
    if optimizer == "adam":
        return 8e-2 if parameterisation == "ntk" else 1e-2
    return 8e-1 if parameterisation == "ntk" else 8e-3


def lr_grid(optimizer: str, parameterisation: str, ks: Iterable[int] = range(-12, 11),
            factor: float = math.sqrt(2.0)) -> list[float]:
    """base · factor^k for k in ks (the paper: factor √2, k = −12 … 10, 23 values)."""
    base = base_lr(optimizer, parameterisation)
    return [base * factor ** k for k in ks]


def refined_lr_grid(best_lr: float, ks: Iterable[int] = range(-3, 4)) -> list[float]:
    """best · 2^{k/8}, k = −3 … 3: the refinement around the best grid lr."""
    return [best_lr * 2.0 ** (k / 8) for k in ks]


# ---------------------------------------------------------------------------------------------
# Configuration and result


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


@dataclass(frozen=True)
class SetupConfig:
    parameterisation: str = "kaiming"
    optimizer: str = "gd"
    bias_init: str = "zero"
    distribution: str = "ex-distr"
    lr: float = 8e-3
    width: int = 512
    n_nets: int = 100
    steps: int = 8192
    batch_size: int = 256
    valid_every: int = 64
    train_per_dim: int = 256  # n_train = train_per_dim · d
    n_valid: int = 1024
    n_test: int = 1024
    best_test_uses_valid: bool = False  # reproduce the original's best_test_rmse defect
    dtype: str = "float32"

    def __post_init__(self):
        _check_choice("parameterisation", self.parameterisation, PARAMETERISATIONS)
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_choice("bias_init", self.bias_init, BIAS_INITS)
        _check_choice("dtype", self.dtype, tuple(_DTYPES))
        get_distribution(self.distribution)
        for name in ("width", "n_nets", "steps", "batch_size", "valid_every", "train_per_dim",
                     "n_valid", "n_test"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if self.n_train % self.batch_size:
            raise ValueError(f"n_train = {self.n_train} is not a multiple of batch_size = "
                             f"{self.batch_size}; change train_per_dim or batch_size")

    @property
    def dim(self) -> int:
        return get_distribution(self.distribution).dim

    @property
    def n_train(self) -> int:
        return self.train_per_dim * self.dim

    @property
    def setting(self) -> tuple[str, str, str, str]:
        """The key a best lr is chosen for: (parameterisation, optimizer, bias_init, dist.)."""
        return (self.parameterisation, self.optimizer, self.bias_init, self.distribution)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> SetupConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown SetupConfig keys {unknown}; known keys: {sorted(known)}")
        return cls(**dict(data))


@dataclass
class SetupResult:
    """Per-net metrics of one configuration; all-NaN arrays when status is "nan"."""

    config: SetupConfig
    status: str  # "ok" or "nan"
    ystd: np.ndarray
    last_train_rmse: np.ndarray
    last_valid_rmse: np.ndarray
    last_test_rmse: np.ndarray
    best_valid_rmse: np.ndarray
    best_test_rmse: np.ndarray
    best_step: np.ndarray  # (P,) step count at each net's best validation check
    test_bayes_rmse: float
    aborted_at_step: int | None = None
    model: dict | None = None  # final parameters and standardisation, with keep_model=True

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def n_nets(self) -> int:
        return len(self.ystd)

    def mean(self, metric: str) -> float:
        return float(np.mean(getattr(self, metric)))

    def std(self, metric: str) -> float:
        """Unbiased std over nets (as torch's default in the original)."""
        values = getattr(self, metric)
        return float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")

    def summary(self) -> dict:
        out = {"status": self.status, "lr": self.config.lr, "n_nets": self.n_nets,
               "test_bayes_rmse": self.test_bayes_rmse, "aborted_at_step": self.aborted_at_step}
        for metric in METRICS:
            out[metric] = self.mean(metric)
            out[f"{metric}_std"] = self.std(metric)
        return out

    def to_dict(self) -> dict:
        """JSON-ready form (lists instead of arrays)."""
        out = {"config": self.config.to_dict(), "status": self.status,
               "test_bayes_rmse": self.test_bayes_rmse, "aborted_at_step": self.aborted_at_step}
        for name in ("ystd", "best_step") + METRICS:
            out[name] = np.asarray(getattr(self, name)).tolist()
        return out

    @classmethod
    def from_dict(cls, data: Mapping) -> SetupResult:
        arrays = {name: np.asarray(data[name], dtype=np.float64) for name in ("ystd",) + METRICS}
        return cls(config=SetupConfig.from_dict(data["config"]), status=data["status"],
                   best_step=np.asarray(data["best_step"], dtype=np.int64),
                   test_bayes_rmse=float(data["test_bayes_rmse"]),
                   aborted_at_step=data.get("aborted_at_step"), **arrays)


def merge_results(results: Sequence[SetupResult]) -> SetupResult:
    """Pool the nets of runs of one configuration (e.g. 2 × 50 nets with different seeds).

    A single aborted run makes the pooled configuration "nan", as for one run of all nets.
    """
    if not results:
        raise ValueError("no results to merge")
    first = results[0]
    def same(config):
        return dataclasses.replace(config, n_nets=1) == dataclasses.replace(first.config, n_nets=1)

    if not all(same(r.config) for r in results):
        raise ValueError("merge_results needs runs of one configuration (all config fields but "
                         "n_nets equal)")
    arrays = {name: np.concatenate([getattr(r, name) for r in results])
              for name in ("ystd", "best_step") + METRICS}
    bad = [r for r in results if not r.ok]
    config = dataclasses.replace(first.config, n_nets=sum(r.config.n_nets for r in results))
    return SetupResult(config=config, status="nan" if bad else "ok",
                       test_bayes_rmse=first.test_bayes_rmse,
                       aborted_at_step=bad[0].aborted_at_step if bad else None, **arrays)


# ---------------------------------------------------------------------------------------------
# Model initialisation


def forward_scales(parameterisation: str, dim: int, width: int) -> tuple[float, float]:
    if parameterisation == "ntk":
        return math.sqrt(2.0 / dim), math.sqrt(2.0 / width)
    return 1.0, 1.0


def init_two_layer(parameterisation: str, bias_init: str, dim: int, width: int, n_nets: int,
                   generator: torch.Generator, x_train: torch.Tensor | None = None,
                   dtype=torch.float32) -> BatchedTwoLayer:
    """P nets as in the module docstring, drawn on the generator's device in float64, then cast.

    Draw order: W₁ normals, W₂ normals, then what the bias init needs, so every bias init and both
    parameterisations share the weights of one seed. ``x_train`` (P, n, d) is needed only by
    ``kink-neg-point``.
    """
    _check_choice("parameterisation", parameterisation, PARAMETERISATIONS)
    _check_choice("bias_init", bias_init, BIAS_INITS)
    f64 = dict(generator=generator, dtype=torch.float64)
    w1 = torch.randn(n_nets, dim, width, **f64)
    w2 = torch.randn(n_nets, width, **f64)
    s1, s2 = forward_scales(parameterisation, dim, width)
    if parameterisation == "kaiming":
        w1 = w1 * math.sqrt(2.0 / dim)
        w2 = w2 * math.sqrt(2.0 / width)
    net = BatchedTwoLayer(w1, torch.zeros(n_nets, width, dtype=torch.float64), w2,
                          torch.zeros(n_nets, dtype=torch.float64), scale1=s1, scale2=s2)

    def uniform(low, high):
        return low + (high - low) * torch.rand(n_nets, width, **f64)

    if bias_init == "unif":
        net.b1 = uniform(-UNIF_BIAS_RANGE, UNIF_BIAS_RANGE)
    elif bias_init == "unif-pos":
        net.b1 = uniform(0.0, UNIF_BIAS_RANGE)
    elif bias_init == "unif-neg":
        net.b1 = uniform(-UNIF_BIAS_RANGE, 0.0)
    elif bias_init == "kink-neg-unif":
        norms = torch.linalg.vector_norm(net.effective_w1(), dim=1)  # (P, m)
        net.b1 = uniform(-KINK_RANGE, 0.0) * norms
    elif bias_init == "pytorch":
        bound = 1.0 / math.sqrt(dim)
        net.b1 = uniform(-bound, bound)
    elif bias_init == "kink-neg-point":
        if x_train is None:
            raise ValueError("bias_init 'kink-neg-point' needs the training inputs x_train")
        kink_through_points(net, x_train.to(torch.float64), generator)
    for name in ("w1", "b1", "w2", "b2"):
        setattr(net, name, getattr(net, name).to(dtype))
    return net


def kink_through_points(net: BatchedTwoLayer, x_train: torch.Tensor,
                        generator: torch.Generator) -> torch.Tensor:
    """The kink-neg-point init, in place: returns the chosen point index per neuron (P, m)."""
    p, n = x_train.shape[0], x_train.shape[1]
    idx = torch.randint(0, n, (p, net.width), generator=generator, device=generator.device)
    gather_idx = idx.to(x_train.device).unsqueeze(2).expand(-1, -1, net.in_dim)
    points = torch.gather(x_train, 1, gather_idx)
    z = torch.einsum("pmd,pdm->pm", points, net.w1) * net.scale1
    sign = torch.where(z < 0, -1.0, 1.0).to(net.w1.dtype)
    net.w1 = net.w1 * sign.unsqueeze(1)
    net.b1 = -z.abs()
    return idx


# ---------------------------------------------------------------------------------------------
# Training


def update_best(best_valid: torch.Tensor | None, best_test: torch.Tensor | None,
                valid: torch.Tensor, test: torch.Tensor, *, best_test_uses_valid: bool = False):
    """Fold one validation check into the running (best_valid, best_test) per net.

    A net improves when its validation MSE is strictly below its best so far; its best test MSE is
    then its current test MSE (or, with the original's defect, its current validation MSE).
    Returns (best_valid, best_test, improved).
    """
    if best_valid is None:
        return valid.clone(), test.clone(), torch.ones_like(valid, dtype=torch.bool)
    improved = valid < best_valid
    new_test = valid if best_test_uses_valid else test
    return (torch.where(improved, valid, best_valid), torch.where(improved, new_test, best_test),
            improved)


@dataclass
class SetupData:
    """Standardised train/valid/test sets of P nets and the train statistics used."""

    x_train: torch.Tensor  # (P, n_train, d)
    y_train: torch.Tensor  # (P, n_train)
    x_valid: torch.Tensor
    y_valid: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    x_mean: torch.Tensor  # (P, 1, d)
    x_std: torch.Tensor
    y_mean: torch.Tensor  # (P, 1)
    y_std: torch.Tensor


def make_data(distribution: str, n_nets: int, n_train: int, n_valid: int, n_test: int,
              seed: int, shared_dataset: bool = False) -> SetupData:
    """Draw one data set per net (or one shared by all nets) and standardise X and y per net
    with the training mean and unbiased std, in float64 on the CPU."""
    dist = get_distribution(distribution)
    rng = numpy_rng(seed, "setups", "data", dist.name)
    n_sets = 1 if shared_dataset else n_nets
    sets = [dist.sample(n_sets, n, rng, dtype=torch.float64) for n in (n_train, n_valid, n_test)]
    if shared_dataset:
        sets = [(x.expand(n_nets, -1, -1), y.expand(n_nets, -1)) for x, y in sets]
    xs, ys = [s[0] for s in sets], [s[1] for s in sets]
    x_mean, x_std = xs[0].mean(1, keepdim=True), xs[0].std(1, keepdim=True)
    y_mean, y_std = ys[0].mean(1, keepdim=True), ys[0].std(1, keepdim=True)
    xs = [(x - x_mean) / x_std for x in xs]
    ys = [(y - y_mean) / y_std for y in ys]
    return SetupData(xs[0], ys[0], xs[1], ys[1], xs[2], ys[2], x_mean, x_std, y_mean, y_std)


def _mse_in_batches(net, x, y, batch):
    total = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    for start in range(0, x.shape[1], batch):
        diff = net(x[:, start:start + batch]) - y[:, start:start + batch]
        total += (diff * diff).sum(1)
    return total / x.shape[1]


def make_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    _check_choice("optimizer", name, OPTIMIZERS)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    return torch.optim.SGD(params, lr=lr, momentum=MOMENTUM if name == "gd-mom" else 0.0)


def predict(model: Mapping, x: torch.Tensor) -> torch.Tensor:
    """Outputs in y units of a model kept by ``run_setup(keep_model=True)`` at raw inputs x
    ((n, d) shared or (P, n, d)): standardise with the train statistics, apply, undo."""
    net = BatchedTwoLayer(model["w1"], model["b1"], model["w2"], model["b2"],
                          scale1=float(model["scale1"]), scale2=float(model["scale2"]))
    x = x.to(model["w1"].dtype)
    z = (x - model["x_mean"].to(x.dtype)) / model["x_std"].to(x.dtype)
    with torch.no_grad():
        out = net(z)
    return out * model["y_std"].to(out.dtype) + model["y_mean"].to(out.dtype)


def run_setup(config: SetupConfig, seed: int, device="cpu",
              progress: Callable[[dict], None] | None = None, *, shared_dataset: bool = False,
              keep_model: bool = False) -> SetupResult:
    """Train config.n_nets nets of one configuration and return their metrics.

    Random streams derive from ``seed``: the data sets from (seed, distribution), the initial
    weights from (seed, d, width), the minibatch order from (seed, n_train, batch size). So runs
    with one seed that differ only in lr, optimiser, bias init or parameterisation see the same
    data and the same underlying normals (paired comparisons, as the original's fixed seed gives).
    ``progress(info)`` is called at every validation check. ``shared_dataset`` trains all nets on
    one data set (the example figure); ``keep_model`` puts the final parameters and the
    standardisation into ``result.model`` (CPU tensors, see ``predict``).
    """
    dist = get_distribution(config.distribution)
    dtype = _DTYPES[config.dtype]
    p, n_train, batch = config.n_nets, config.n_train, config.batch_size
    data = make_data(config.distribution, p, n_train, config.n_valid, config.n_test, seed,
                     shared_dataset=shared_dataset)
    ystd = data.y_std.squeeze(1)

    net = init_two_layer(config.parameterisation, config.bias_init, dist.dim, config.width, p,
                         torch_generator(seed, "setups", "init", dist.dim, config.width),
                         x_train=data.x_train, dtype=dtype)
    x_tr, y_tr, x_va, y_va, x_te, y_te = (
        t.to(device=device, dtype=dtype).contiguous()
        for t in (data.x_train, data.y_train, data.x_valid, data.y_valid, data.x_test, data.y_test))
    for name in ("w1", "b1", "w2", "b2"):
        setattr(net, name, getattr(net, name).to(device).requires_grad_(True))
    opt = make_optimizer(config.optimizer, net.parameters(), config.lr)

    batch_gen = torch_generator(seed, "setups", "batches", n_train, batch)
    steps_per_epoch = n_train // batch
    rows = torch.arange(p, device=device).unsqueeze(1)
    nan_seen = torch.zeros((), dtype=torch.bool, device=device)
    best_valid = best_test = valid = test = None
    best_step = torch.zeros(p, dtype=torch.int64, device=device)
    perm = None

    def aborted(step):
        nan = np.full(p, np.nan)
        return SetupResult(config=config, status="nan", ystd=ystd.double().cpu().numpy(),
                           last_train_rmse=nan, last_valid_rmse=nan, last_test_rmse=nan,
                           best_valid_rmse=nan, best_test_rmse=nan,
                           best_step=np.full(p, -1, dtype=np.int64),
                           test_bayes_rmse=dist.bayes_rmse, aborted_at_step=step)

    for step in range(config.steps):
        k = step % steps_per_epoch
        if k == 0:
            # A fresh permutation per net and epoch: batches without replacement, as randperm.
            perm = torch.argsort(torch.rand(p, n_train, generator=batch_gen), dim=1).to(device)
        idx = perm[:, k * batch:(k + 1) * batch]
        diff = net(x_tr[rows, idx]) - y_tr[rows, idx]
        loss = (diff * diff).mean(1).sum()
        nan_seen |= torch.isnan(loss.detach())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        done = step + 1
        if done % config.valid_every == 0 or done == config.steps:
            # One host sync per check instead of per step; the aborted outcome is the same.
            if bool(nan_seen):
                return aborted(done)
            with torch.no_grad():
                valid = _mse_in_batches(net, x_va, y_va, 1024)
                test = _mse_in_batches(net, x_te, y_te, 1024)
            best_valid, best_test, improved = update_best(
                best_valid, best_test, valid, test,
                best_test_uses_valid=config.best_test_uses_valid)
            best_step = torch.where(improved, done, best_step)
            if progress is not None:
                scale = ystd.to(device=device, dtype=valid.dtype)
                progress({"step": done, "steps": config.steps,
                          "train_loss": float(loss.detach()) / p,
                          "valid_rmse": float((valid.sqrt() * scale).mean()),
                          "best_valid_rmse": float((best_valid.sqrt() * scale).mean())})

    with torch.no_grad():
        train = _mse_in_batches(net, x_tr, y_tr, batch)

    scale = ystd.double().cpu().numpy()

    def rmse(mse):
        return np.sqrt(mse.double().cpu().numpy()) * scale

    result = SetupResult(config=config, status="ok", ystd=scale,
                         last_train_rmse=rmse(train), last_valid_rmse=rmse(valid),
                         last_test_rmse=rmse(test), best_valid_rmse=rmse(best_valid),
                         best_test_rmse=rmse(best_test), best_step=best_step.cpu().numpy(),
                         test_bayes_rmse=dist.bayes_rmse)
    if keep_model:
        result.model = {name: getattr(net, name).detach().cpu().clone()
                        for name in ("w1", "b1", "w2", "b2")}
        result.model.update(scale1=torch.tensor(net.scale1), scale2=torch.tensor(net.scale2),
                            x_mean=data.x_mean, x_std=data.x_std, y_mean=data.y_mean,
                            y_std=data.y_std)
    return result


# ---------------------------------------------------------------------------------------------
# Many configurations at once


@dataclass
class _GridNets:
    """C configurations × P nets as one batched model: parameters (C, P, …), per-config lr."""

    w1: torch.Tensor  # (C, P, d, m)
    b1: torch.Tensor  # (C, P, m)
    w2: torch.Tensor  # (C, P, m)
    b2: torch.Tensor  # (C, P)
    scale1: float
    scale2: float

    def parameters(self) -> list[torch.Tensor]:
        return [self.w1, self.b1, self.w2, self.b2]

    def preactivations(self, x: torch.Tensor) -> torch.Tensor:
        """x (P, n, d) shared by the C configurations → (C, P, n, m)."""
        if x.shape[-1] == 1:
            # d = 1: an outer product; broadcasting beats a batched matmul with k = 1 on CPU.
            z = x.unsqueeze(0) * self.w1
        else:
            z = torch.matmul(x.unsqueeze(0), self.w1)
        if self.scale1 != 1.0:
            z.mul_(self.scale1)
        return z.add_(self.b1.unsqueeze(2))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu_(self.preactivations(x))
        out = (h * self.w2.unsqueeze(2)).sum(3)
        if self.scale2 != 1.0:
            out = out * self.scale2
        return out + self.b2.unsqueeze(2)


def _grid_loss_and_grads(nets: _GridNets, x: torch.Tensor, y: torch.Tensor):
    """Per-net mean squared error over the batch (C, P) and its gradients, by explicit formulas
    (a one-hidden-layer ReLU net needs no autograd graph): ∂/∂f_j = 2 (f_j − y_j)/B."""
    h = torch.relu_(nets.preactivations(x))
    out = (h * nets.w2.unsqueeze(2)).sum(3)
    if nets.scale2 != 1.0:
        out = out * nets.scale2
    diff = out.add_(nets.b2.unsqueeze(2)).sub_(y)  # (C, P, B)
    loss = (diff * diff).mean(2)
    r = diff.mul_(2.0 / diff.shape[2])
    g_b2 = r.sum(2)
    g_w2 = torch.matmul(r.unsqueeze(2), h).squeeze(2)
    w2 = nets.w2
    if nets.scale2 != 1.0:
        g_w2.mul_(nets.scale2)
        w2 = w2 * nets.scale2
    # ∂/∂z = ∂/∂h · 1[z > 0] = 1[h > 0]: relu's own backward, one fused op without a bool mask.
    back = torch.ops.aten.threshold_backward(r.unsqueeze(3) * w2.unsqueeze(2), h, 0.0)
    g_b1 = back.sum(2)
    g_w1 = torch.matmul(x.transpose(1, 2).unsqueeze(0), back)  # (C, P, d, m)
    if nets.scale1 != 1.0:
        g_w1.mul_(nets.scale1)
    return loss, [g_w1, g_b1, g_w2, g_b2]


class BatchedOptimizer:
    """SGD, SGD with momentum 0.9 and Adam in place on parameters whose leading dimension
    indexes configurations, one learning rate per configuration (``lrs`` (C,)), with
    torch.optim's update rules (no dampening, no Nesterov, no weight decay; Adam β = (0.9,
    0.999), ε = 1e-8 with bias correction). ``step(grads)`` takes the gradients explicitly."""

    def __init__(self, name: str, params: list[torch.Tensor], lrs: torch.Tensor):
        _check_choice("optimizer", name, OPTIMIZERS)
        self.name, self.params, self.t = name, params, 0
        self.lrs = [lrs.view(-1, *([1] * (p.dim() - 1))).to(p) for p in params]
        self.state = [[] for _ in params]

    def step(self, grads: list[torch.Tensor]) -> None:
        self.t += 1
        for i, (p, g, lr) in enumerate(zip(self.params, grads, self.lrs)):
            st = self.state[i]
            if self.name == "gd":
                p.sub_(g * lr)
            elif self.name == "gd-mom":
                if not st:
                    st.append(g.clone())
                else:
                    st[0].mul_(MOMENTUM).add_(g)
                p.sub_(st[0] * lr)
            else:
                beta1, beta2 = ADAM_BETAS
                if not st:
                    st.extend([torch.zeros_like(p), torch.zeros_like(p)])
                m, v = st
                m.lerp_(g, 1.0 - beta1)
                v.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
                bc1 = 1.0 - beta1 ** self.t
                bc2 = 1.0 - beta2 ** self.t
                denom = (v.sqrt() / math.sqrt(bc2)).add_(ADAM_EPS)
                p.sub_(m / denom * (lr / bc1))

    def silence(self, mask: torch.Tensor) -> None:
        """Stop configurations (mask (C,)): zero their parameters, states and learning rates."""
        for i, p in enumerate(self.params):
            view = mask.view(-1, *([1] * (p.dim() - 1)))
            p.masked_fill_(view, 0.0)
            self.lrs[i] = self.lrs[i].masked_fill(view, 0.0)
            for s in self.state[i]:
                s.masked_fill_(view, 0.0)


def run_setup_grid(base: SetupConfig, settings: Sequence[tuple[str, float]], seed: int,
                   device="cpu", progress: Callable[[dict], None] | None = None, *,
                   shared_dataset: bool = False, keep_model: bool = False) -> list[SetupResult]:
    """Train the configurations ``replace(base, bias_init=b, lr=lr)`` for every (b, lr) in
    ``settings`` at once, as one batched model of len(settings) × base.n_nets independent nets.

    Each result equals ``run_setup`` of its configuration with the same seed up to floating-point
    rounding: the same data sets, initial weights and minibatch order (all nets of a column p share
    net p's data set, as configurations of one seed do), the same update rules (explicit gradients
    and per-configuration learning rates instead of autograd and torch.optim), and the same NaN
    rule (a configuration whose loss is NaN at some step stops at the next validation check; its
    parameters are then zeroed so that it no longer produces non-finite values).
    ``shared_dataset`` and ``keep_model`` are as in ``run_setup``.
    """
    if not settings:
        return []
    configs = [dataclasses.replace(base, bias_init=b, lr=float(lr)) for b, lr in settings]
    dist = get_distribution(base.distribution)
    dtype = _DTYPES[base.dtype]
    c_count, p, n_train, batch = len(configs), base.n_nets, base.n_train, base.batch_size
    data = make_data(base.distribution, p, n_train, base.n_valid, base.n_test, seed,
                     shared_dataset=shared_dataset)
    ystd = data.y_std.squeeze(1).double().numpy()

    inits = {}
    for b in dict.fromkeys(c.bias_init for c in configs):
        inits[b] = init_two_layer(base.parameterisation, b, dist.dim, base.width, p,
                                  torch_generator(seed, "setups", "init", dist.dim, base.width),
                                  x_train=data.x_train, dtype=dtype)
    first = inits[configs[0].bias_init]
    nets = _GridNets(*(torch.stack([getattr(inits[c.bias_init], name) for c in configs]).to(device)
                       .contiguous() for name in ("w1", "b1", "w2", "b2")),
                     scale1=first.scale1, scale2=first.scale2)
    del inits
    x_tr, y_tr, x_va, y_va, x_te, y_te = (
        t.to(device=device, dtype=dtype).contiguous()
        for t in (data.x_train, data.y_train, data.x_valid, data.y_valid, data.x_test, data.y_test))
    lrs = torch.tensor([c.lr for c in configs], dtype=torch.float64, device=device)
    opt = BatchedOptimizer(base.optimizer, nets.parameters(), lrs)

    batch_gen = torch_generator(seed, "setups", "batches", n_train, batch)
    steps_per_epoch = n_train // batch
    rows = torch.arange(p, device=device).unsqueeze(1)
    nan_seen = torch.zeros(c_count, dtype=torch.bool, device=device)
    stopped = torch.zeros(c_count, dtype=torch.bool, device=device)
    aborted_at = [None] * c_count
    best_valid = best_test = valid = test = None
    best_step = torch.zeros(c_count, p, dtype=torch.int64, device=device)
    perm = None

    def mse(x, y, chunk):
        total = torch.zeros(c_count, p, dtype=x.dtype, device=x.device)
        with torch.no_grad():
            for start in range(0, x.shape[1], chunk):
                diff = nets(x[:, start:start + chunk]) - y[:, start:start + chunk]
                total += (diff * diff).sum(2)
        return total / x.shape[1]

    with torch.no_grad():
        for step in range(base.steps):
            k = step % steps_per_epoch
            if k == 0:
                perm = torch.argsort(torch.rand(p, n_train, generator=batch_gen), dim=1).to(device)
            idx = perm[:, k * batch:(k + 1) * batch]
            loss, grads = _grid_loss_and_grads(nets, x_tr[rows, idx], y_tr[rows, idx])
            nan_seen |= torch.isnan(loss.sum(1))
            opt.step(grads)
            done = step + 1
            if done % base.valid_every == 0 or done == base.steps:
                new = nan_seen & ~stopped
                if bool(new.any()):
                    for c in new.nonzero().flatten().tolist():
                        aborted_at[c] = done
                    stopped |= new
                    opt.silence(new)
                valid = mse(x_va, y_va, 1024)
                test = mse(x_te, y_te, 1024)
                best_valid, best_test, improved = update_best(
                    best_valid, best_test, valid, test,
                    best_test_uses_valid=base.best_test_uses_valid)
                best_step = torch.where(improved, done, best_step)
                if progress is not None:
                    scale = torch.as_tensor(ystd, device=device, dtype=valid.dtype)
                    rmse = (valid.sqrt() * scale).mean(1)
                    live = ~stopped
                    progress({"step": done, "steps": base.steps, "configs": c_count,
                              "stopped": int(stopped.sum()),
                              "best_valid_rmse_min": float(rmse[live].min()) if bool(live.any())
                              else float("nan")})
        train = mse(x_tr, y_tr, batch)

    def rmse(values, c):
        return np.sqrt(values[c].double().cpu().numpy()) * ystd

    results = []
    for c, config in enumerate(configs):
        if aborted_at[c] is not None:
            nan = np.full(p, np.nan)
            results.append(SetupResult(
                config=config, status="nan", ystd=ystd.copy(), last_train_rmse=nan,
                last_valid_rmse=nan, last_test_rmse=nan, best_valid_rmse=nan, best_test_rmse=nan,
                best_step=np.full(p, -1, dtype=np.int64), test_bayes_rmse=dist.bayes_rmse,
                aborted_at_step=aborted_at[c]))
            continue
        results.append(SetupResult(
            config=config, status="ok", ystd=ystd.copy(), last_train_rmse=rmse(train, c),
            last_valid_rmse=rmse(valid, c), last_test_rmse=rmse(test, c),
            best_valid_rmse=rmse(best_valid, c), best_test_rmse=rmse(best_test, c),
            best_step=best_step[c].cpu().numpy(), test_bayes_rmse=dist.bayes_rmse))
        if keep_model:
            results[-1].model = {name: getattr(nets, name)[c].cpu().clone()
                                 for name in ("w1", "b1", "w2", "b2")}
            results[-1].model.update(
                scale1=torch.tensor(nets.scale1), scale2=torch.tensor(nets.scale2),
                x_mean=data.x_mean, x_std=data.x_std, y_mean=data.y_mean, y_std=data.y_std)
    return results


# ---------------------------------------------------------------------------------------------
# Selection and aggregation


def run_distribution(settings: Mapping, distribution: str, seed: int, *, device="cpu",
                     done: Sequence[Mapping] = (), save: Callable[[list[dict]], None] | None = None,
                     log: Callable[..., None] | None = None) -> list[dict]:
    """Every configuration of the setups grid for one distribution, as ``SetupResult.to_dict()``
    entries (plus their ``stage``, "grid" or "refine") in grid order.

    Per (parameterisation, optimiser): the learning-rate grid base·lr_factor^k × bias inits, trained
    as batched models of at most ``max_batch_nets`` nets, then, if ``refine_exponents`` has non-zero
    entries, the refinement best·2^(k/8) around each bias init's best grid lr. ``settings`` holds the
    relu.setups config keys. ``done`` are entries of an interrupted run: they are not trained again.
    ``save(entries)`` gets all finished entries after every batch (for a checkpoint); ``log(fmt,
    *args)`` reports progress.
    """
    log = log or (lambda *args: None)

    def key(param, opt, bias, lr):
        return (param, opt, bias, repr(float(lr)))

    done = list(done)
    finished = {key(e["config"]["parameterisation"], e["config"]["optimizer"],
                    e["config"]["bias_init"], e["config"]["lr"]): e for e in done}
    per_batch = max(1, settings["max_batch_nets"] // settings["nets"])

    def train(base, pending, stage):
        """Results of (bias_init, lr) settings of one (parameterisation, optimiser), in order."""
        todo = [s for s in pending if key(base.parameterisation, base.optimizer, *s) not in finished]
        for start in range(0, len(todo), per_batch):
            batch = todo[start:start + per_batch]

            def progress(info):
                if info["step"] % (info["steps"] // 4 or 1) == 0 or info["step"] == info["steps"]:
                    log("%s/%s %s, configurations %d-%d of %d: step %d/%d, %d stopped (NaN), best "
                        "valid RMSE %.4g", base.parameterisation, base.optimizer, stage, start + 1,
                        start + len(batch), len(todo), info["step"], info["steps"], info["stopped"],
                        info["best_valid_rmse_min"])

            for result in run_setup_grid(base, batch, seed, device=device, progress=progress):
                c = result.config
                entry = result.to_dict() | {"stage": stage}
                finished[key(c.parameterisation, c.optimizer, c.bias_init, c.lr)] = entry
                done.append(entry)
            if save is not None:
                save(done)
        return [SetupResult.from_dict(finished[key(base.parameterisation, base.optimizer, *s)])
                for s in pending]

    protocol = {k: settings[k] for k in ("width", "steps", "batch_size", "valid_every", "train_per_dim",
                                         "n_valid", "n_test", "best_test_uses_valid", "dtype")}
    refine = [k for k in settings["refine_exponents"] if k != 0]
    order = []
    for param in settings["parameterisations"]:
        for opt in settings["optimizers"]:
            base = SetupConfig(parameterisation=param, optimizer=opt, distribution=distribution,
                               n_nets=settings["nets"], **protocol)
            centre = base_lr(opt, param)
            grid = [(b, centre * settings["lr_factor"] ** k)
                    for b in settings["bias_inits"] for k in settings["lr_exponents"]]
            results = train(base, grid, "grid")
            order += [key(param, opt, *s) for s in grid]
            if refine:
                finer = []
                for b in settings["bias_inits"]:
                    best = best_lr_result(r for r in results if r.config.bias_init == b)
                    if best is not None:
                        finer += [(b, lr) for lr in refined_lr_grid(best.config.lr, refine)]
                train(base, finer, "refine")
                order += [key(param, opt, *s) for s in finer]
    return [finished[k] for k in dict.fromkeys(order)]


def best_lr_result(results: Iterable[SetupResult]) -> SetupResult | None:
    """The finished run with the lowest mean best_valid_rmse (None if every lr diverged)."""
    ok = [r for r in results if r.ok and np.isfinite(r.mean("best_valid_rmse"))]
    return min(ok, key=lambda r: r.mean("best_valid_rmse")) if ok else None


def best_by_setting(results: Iterable[SetupResult]) -> dict[tuple, SetupResult]:
    """Best-lr result per (parameterisation, optimizer, bias_init, distribution)."""
    groups: dict[tuple, list[SetupResult]] = {}
    for r in results:
        groups.setdefault(r.config.setting, []).append(r)
    out = {}
    for key, group in groups.items():
        best = best_lr_result(group)
        if best is not None:
            out[key] = best
    return out


def mean_and_se(result: SetupResult, metric: str = "best_test_rmse") -> tuple[float, float]:
    """Mean over nets and its standard error std/√(P−1) (std unbiased), as the paper's table."""
    return result.mean(metric), result.std(metric) / math.sqrt(max(result.n_nets - 1, 1))


def setups_table(best: Mapping[tuple, SetupResult], distributions: Sequence[str],
                 metric: str = "best_test_rmse", factor: float = 1e4) -> list[dict]:
    """Rows of relu_table_setups: per (parameterisation, optimizer, bias_init), per distribution
    the mean and SE × factor (rounded) and a shade in [0, 100]: the cell's log-RMSE position
    between the column's best (0) and worst (100). Settings without a result are left out.
    """
    rows_keys = sorted({k[:3] for k in best})
    col_logs = {}
    for dist in distributions:
        logs = [math.log(best[(*rk, dist)].mean(metric)) for rk in rows_keys if (*rk, dist) in best]
        col_logs[dist] = (min(logs), max(logs)) if logs else None
    rows = []
    for rk in rows_keys:
        cells = {}
        for dist in distributions:
            r = best.get((*rk, dist))
            if r is None:
                continue
            mean, se = mean_and_se(r, metric)
            lo, hi = col_logs[dist]
            shade = 0.0 if hi == lo else (math.log(mean) - lo) / (hi - lo)
            cells[dist] = {"mean": mean, "se": se, "mean_scaled": int(round(factor * mean)),
                           "se_scaled": int(round(factor * se)), "shade": int(100 * shade),
                           "lr": r.config.lr}
        if cells:
            rows.append({"parameterisation": rk[0], "optimizer": rk[1], "bias_init": rk[2],
                         "cells": cells})
    return rows


def relative_curves(best: Mapping[tuple, SetupResult], parameterisation: str, optimizer: str,
                    bias_inits: Sequence[str], dims: Sequence[int], baseline: str = "zero",
                    metric: str = "best_test_rmse") -> dict[str, dict]:
    """One panel of relu_fig_setups: per bias init, mean and SE relative to the baseline's mean
    on rad-distr-d for each d (NaN where a result is missing)."""
    def get(bias, d):
        return best.get((parameterisation, optimizer, bias, f"rad-distr-{d}"))

    base = [get(baseline, d) for d in dims]
    curves = {}
    for bias in bias_inits:
        means, ses = [], []
        for d, b in zip(dims, base):
            r = get(bias, d)
            if r is None or b is None:
                means.append(float("nan"))
                ses.append(float("nan"))
                continue
            m, se = mean_and_se(r, metric)
            ref = b.mean(metric)
            means.append(m / ref)
            ses.append(se / ref)
        curves[bias] = {"dims": list(dims), "mean": means, "se": ses}
    return curves
