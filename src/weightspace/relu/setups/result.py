"""Per-net metrics of one trained configuration of the setups grid."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from weightspace.relu.setups.config import SetupConfig

METRICS = (
    "last_train_rmse",
    "last_valid_rmse",
    "last_test_rmse",
    "best_valid_rmse",
    "best_test_rmse",
)


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
    model: dict | None = (
        None  # final parameters and standardisation, with keep_model=True
    )

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
        out = {
            "status": self.status,
            "lr": self.config.lr,
            "n_nets": self.n_nets,
            "test_bayes_rmse": self.test_bayes_rmse,
            "aborted_at_step": self.aborted_at_step,
        }
        for metric in METRICS:
            out[metric] = self.mean(metric)
            out[f"{metric}_std"] = self.std(metric)
        return out

    def to_dict(self) -> dict:
        """JSON-ready form (lists instead of arrays)."""
        out = {
            "config": self.config.to_dict(),
            "status": self.status,
            "test_bayes_rmse": self.test_bayes_rmse,
            "aborted_at_step": self.aborted_at_step,
        }
        for name in ("ystd", "best_step") + METRICS:
            out[name] = np.asarray(getattr(self, name)).tolist()
        return out

    @classmethod
    def from_dict(cls, data: Mapping) -> SetupResult:
        arrays = {
            name: np.asarray(data[name], dtype=np.float64)
            for name in ("ystd",) + METRICS
        }
        return cls(
            config=SetupConfig.from_dict(data["config"]),
            status=data["status"],
            best_step=np.asarray(data["best_step"], dtype=np.int64),
            test_bayes_rmse=float(data["test_bayes_rmse"]),
            aborted_at_step=data.get("aborted_at_step"),
            **arrays,
        )


def merge_results(results: Sequence[SetupResult]) -> SetupResult:
    """Pool the nets of runs of one configuration (e.g. 2 × 50 nets with different seeds).

    A single aborted run makes the pooled configuration "nan", as for one run of all nets.
    """
    if not results:
        raise ValueError("no results to merge")
    first = results[0]

    def same(config):
        return dataclasses.replace(config, n_nets=1) == dataclasses.replace(
            first.config, n_nets=1
        )

    if not all(same(r.config) for r in results):
        raise ValueError(
            "merge_results needs runs of one configuration (all config fields but "
            "n_nets equal)"
        )
    arrays = {
        name: np.concatenate([getattr(r, name) for r in results])
        for name in ("ystd", "best_step") + METRICS
    }
    bad = [r for r in results if not r.ok]
    config = dataclasses.replace(
        first.config, n_nets=sum(r.config.n_nets for r in results)
    )
    return SetupResult(
        config=config,
        status="nan" if bad else "ok",
        test_bayes_rmse=first.test_bayes_rmse,
        aborted_at_step=bad[0].aborted_at_step if bad else None,
        **arrays,
    )
