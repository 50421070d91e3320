"""The base class of every structured layer y = W̃u + b (spec §4).

A structured layer holds the factors of W̃ (out × in) as its parameters and never forms
W̃ in its forward pass. Every layer is built and read back the same ways:

- `from_structure(structure, bias)`: from the approximator's structure type
  (SSSRealisation, LowRankFactors, SparseFactors, ToeplitzLike, LDRFactors or HMatrix);
- `from_approximation(approx, bias)`: from an Approximation of the layer's method (the
  "rebuild" of the original); the zero matrix gives a layer without weights (y = b);
- `from_dense(weight, share, bias, **options)`: the layer of the approximation of W at a
  share (options go to the layer's approximator);
- `from_random(in_features, out_features, share, rng)`: the approximation of a
  Glorot-uniform matrix with a Glorot-uniform bias, as the original's constructors
  without an initial matrix;
- `structure()`: the current parameters as the structure type; `to_dense()`: W̃
  (float64); `n_weight_params()`: the weight matrix only, as the budgets count;
  `n_params()`: with bias.

A `bias` argument is None or False (no bias), True (zeros) or the values (array or
tensor).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from weightspace.structured.approximation import Approximation


def glorot(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    limit = np.sqrt(6.0 / sum(shape)) if sum(shape) else 0.0
    return rng.uniform(-limit, limit, size=shape)


def as_numpy(t: torch.Tensor) -> np.ndarray:
    """A float64 copy of a tensor."""
    return t.detach().cpu().double().numpy().copy()


def copy_values(param: torch.Tensor, values) -> None:
    """Copy array values (taken as float64, cast to the parameter's dtype) into a
    parameter."""
    with torch.no_grad():
        param.copy_(torch.from_numpy(np.asarray(values, dtype=np.float64)))


def has_bias(bias) -> bool:
    return bias is not None and bias is not False


class StructuredLayer(nn.Module):
    """y = W̃u + b with W̃ held as the factors of a structure (see the module doc).

    Subclasses set `methods` (the Approximation.method values they rebuild), `describes`
    (what they rebuild, for errors) and `approximator` (what `from_dense` calls), and
    implement `_build`, `forward`, `structure` and `n_weight_params`; their constructors
    pass `dtype` and `device` on (in `**kw`).
    """

    methods: tuple[str, ...] = ()
    describes = "a structured approximation"
    approximator = None

    def __init__(
        self, in_features: int, out_features: int, *, dtype=torch.float32, device=None
    ):
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        self._kw = {"dtype": dtype, "device": device}

    def _init_bias(self, bias: bool) -> None:
        """Register the bias parameter (zeros), or None."""
        if bias:
            self.bias = nn.Parameter(torch.zeros(self.out_features, **self._kw))
        else:
            self.bias = None

    def _set_bias(self, bias) -> None:
        """Copy bias values into the bias parameter (None, False and True leave it as it
        is)."""
        if bias is None or bias is False or bias is True:
            return
        values = as_numpy(bias) if torch.is_tensor(bias) else bias
        values = torch.as_tensor(np.asarray(values, dtype=np.float64))
        if values.numel() != self.out_features:
            raise ValueError(
                f"bias has {values.numel()} entries, expected {self.out_features}"
            )
        with torch.no_grad():
            self.bias.copy_(values.reshape(-1))

    def _check_input(self, u: torch.Tensor) -> None:
        if u.ndim != 2 or u.shape[1] != self.in_features:
            raise ValueError(
                f"expected input of shape (batch, {self.in_features}), "
                f"got {tuple(u.shape)}"
            )

    def _add_bias(self, y: torch.Tensor) -> torch.Tensor:
        return y if self.bias is None else y + self.bias

    # -- construction ------------------------------------------------------------------
    @classmethod
    def from_structure(
        cls,
        structure,
        bias=None,
        *,
        dtype: torch.dtype = torch.float32,
        device=None,
        **options,
    ) -> "StructuredLayer":
        """The layer computing structure·u + bias; `options` are the layer's own (e.g.
        scan_chunk of the SSS layer)."""
        kw = {"dtype": dtype, "device": device, **options}
        layer = cls._build(structure, has_bias(bias), **kw)
        layer._set_bias(bias)
        return layer

    @classmethod
    def _build(cls, structure, bias: bool, **kw) -> "StructuredLayer":
        """A layer holding the values of `structure` (and a zero bias if `bias`); kw go
        to the constructor."""
        raise NotImplementedError

    @classmethod
    def from_approximation(
        cls, approx: Approximation, bias=None, **kw
    ) -> "StructuredLayer":
        """The layer of an approximation; the zero matrix gives a weight-free layer."""
        if approx.method not in cls.methods:
            raise ValueError(f"expected {cls.describes}, got {approx.method!r}")
        if approx.structure is None:
            return cls._from_zero(approx, bias=bias, **kw)
        return cls.from_structure(approx.structure, bias=bias, **kw)

    @classmethod
    def _from_zero(cls, approx: Approximation, bias=None, **kw) -> "StructuredLayer":
        """The layer of a zero-matrix approximation (one without a structure)."""
        raise ValueError(
            f"the {approx.method} approximation has no structure to rebuild"
        )

    @classmethod
    def from_dense(
        cls,
        weight,
        share: float,
        bias=None,
        *,
        dtype: torch.dtype = torch.float32,
        device=None,
        **options,
    ) -> "StructuredLayer":
        """The layer of the approximation of W (out × in) at `share`; `options` go to
        the layer's approximator."""
        approx = cls.approximator(weight, share, **options)
        return cls.from_approximation(approx, bias=bias, dtype=dtype, device=device)

    @classmethod
    def from_random(cls, in_features, out_features, share, rng, *, bias=True, **kw):
        """The structured approximation of a Glorot-uniform matrix (out_features ×
        in_features) from the generator `rng`, with a Glorot-uniform bias (as the
        original); kw go to from_dense. Square-only structures override this."""
        weight = glorot(rng, (out_features, in_features))
        b = glorot(rng, (1, out_features)).ravel() if bias else None
        return cls.from_dense(weight, share, b, **kw)

    # -- inspection --------------------------------------------------------------------
    def structure(self):
        """The current parameters as the approximator's structure type."""
        raise NotImplementedError

    def to_dense(self) -> torch.Tensor:
        """W̃ (out × in) as float64, realised from the current parameters."""
        return torch.from_numpy(self.structure().to_dense())

    def n_weight_params(self) -> int:
        raise NotImplementedError

    def n_params(self, include_bias: bool = True, **count) -> int:
        """Weight parameters (`count` options as n_weight_params) plus the bias."""
        extra = self.bias.numel() if (include_bias and self.bias is not None) else 0
        return int(self.n_weight_params(**count) + extra)
