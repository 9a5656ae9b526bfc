"""ParaUpdate: how the server turns the decoded sum of the changes into the next model.

``w^{r+1} = w^r + server_lr · rule(ΣΔw, N, k)`` where ``ΣΔw`` is the decoded sum of the
(clipped, possibly sample-weighted) changes, ``N`` the total the shared vectors carried (the
total sample count when weighted, else the number of contributors) and ``k`` the number of
contributors. Rules are small frozen objects; baselines bring their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ssddl.protocol.config import Aggregation, SessionParams
from ssddl.validators import check_float, check_int

__all__ = ["Mean", "Sum", "UpdateRule", "WeightedMean", "update_rule_for"]


class UpdateRule(Protocol):
    @property
    def server_lr(self) -> float:
        """The server learning rate η_g applied to the change."""
        ...

    def change(self, summed: np.ndarray, total: int, contributors: int) -> np.ndarray:
        """The float64 change to apply, before the server learning rate."""
        ...


@dataclass(frozen=True)
class Mean:
    """The plain mean of the contributors' changes (each shared vector counts 1)."""

    server_lr: float = 1.0

    def __post_init__(self) -> None:
        check_float(self.server_lr, "server_lr", positive=True)

    def change(self, summed: np.ndarray, total: int, contributors: int) -> np.ndarray:
        return summed / total


@dataclass(frozen=True)
class WeightedMean:
    """The sample-weighted mean: members shared ``Δw · n_i / max_samples`` and ``n_i``."""

    max_samples: int
    server_lr: float = 1.0

    def __post_init__(self) -> None:
        check_int(self.max_samples, "max_samples", low=1)
        check_float(self.server_lr, "server_lr", positive=True)

    def change(self, summed: np.ndarray, total: int, contributors: int) -> np.ndarray:
        return summed * (self.max_samples / total)


@dataclass(frozen=True)
class Sum:
    """DSSGD-style summation: the (weighted) mean times the number of contributors."""

    inner: Mean | WeightedMean
    server_lr: float = 1.0

    def change(self, summed: np.ndarray, total: int, contributors: int) -> np.ndarray:
        return self.inner.change(summed, total, contributors) * contributors


def update_rule_for(params: SessionParams) -> UpdateRule:
    """The rule a session's published parameters ask for."""
    inner: Mean | WeightedMean = (
        WeightedMean(params.max_samples, params.server_lr)
        if params.weighted
        else Mean(params.server_lr)
    )
    if params.aggregation is Aggregation.SUM:
        return Sum(inner, params.server_lr)
    return inner
