"""Reference points without privacy: centralized training and standalone training.

* **Centralized**: all participants' data pooled in one place and trained on by one model —
  the accuracy a private scheme should match.
* **Standalone**: each participant trains alone on its own data — what it gets without
  collaborating; reported as the mean and the (population) standard deviation of the
  participants' test accuracies.

Both train with :func:`ssddl.learning.train_local`, one epoch per call (a fresh optimizer each
epoch, as a participant of the distributed schemes has each round), and are reproducible from
``seed``: epoch ``e`` of participant ``i`` trains with the seed derived from
``(seed, e, i)``. The caller's model is copied, never trained in place.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn

from ssddl.baselines._train import (
    RoundRecord,
    check_training_inputs,
    derive_seed,
    evaluate_or_none,
    fresh_copy,
    pool,
)
from ssddl.exceptions import ConfigurationError
from ssddl.learning import ArrayDataset, LocalTrainConfig, evaluate, train_local

__all__ = [
    "CentralizedResult",
    "StandaloneRecord",
    "StandaloneResult",
    "train_centralized",
    "train_standalone",
]


def _one_epoch(config: LocalTrainConfig) -> LocalTrainConfig:
    return dataclasses.replace(config, epochs=1)


@dataclass(frozen=True)
class CentralizedResult:
    """The trained model and one :class:`RoundRecord` per epoch (``round`` = epoch, from 1;
    no bytes: nothing is sent)."""

    model: nn.Module
    history: tuple[RoundRecord, ...]

    @property
    def final_accuracy(self) -> float | None:
        return self.history[-1].accuracy


def train_centralized(
    model: nn.Module,
    datasets: Sequence[ArrayDataset],
    config: LocalTrainConfig,
    *,
    epochs: int,
    seed: int,
    test: ArrayDataset | None = None,
) -> CentralizedResult:
    """Train a copy of ``model`` on the union of ``datasets`` for ``epochs`` epochs
    (``config`` gives the optimizer, learning rate and batch size; its ``epochs`` is replaced
    by one pass per call), evaluating on ``test`` after every epoch."""
    items = check_training_inputs(
        model, datasets, config, seed, rounds=epochs, rounds_name="epochs"
    )
    data = pool(items)
    trained = fresh_copy(model)
    step = _one_epoch(config)
    history = []
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        train_local(trained, data, step, seed=derive_seed(seed, epoch, 0))
        seconds = time.perf_counter() - started
        result = evaluate_or_none(trained, test)
        history.append(
            RoundRecord(
                round=epoch,
                accuracy=None if result is None else result.accuracy,
                loss=None if result is None else result.loss,
                seconds=seconds,
            )
        )
    return CentralizedResult(model=trained, history=tuple(history))


@dataclass(frozen=True)
class StandaloneRecord:
    """After ``epoch`` epochs: each participant's test accuracy, their mean and their
    population standard deviation."""

    epoch: int
    accuracies: tuple[float, ...]
    mean_accuracy: float
    std_accuracy: float
    seconds: float


@dataclass(frozen=True)
class StandaloneResult:
    """Each participant's trained model and the per-epoch accuracy statistics."""

    models: tuple[nn.Module, ...]
    history: tuple[StandaloneRecord, ...]

    @property
    def accuracies(self) -> tuple[float, ...]:
        return self.history[-1].accuracies

    @property
    def mean_accuracy(self) -> float:
        return self.history[-1].mean_accuracy

    @property
    def std_accuracy(self) -> float:
        return self.history[-1].std_accuracy


def train_standalone(
    model: nn.Module,
    datasets: Sequence[ArrayDataset],
    config: LocalTrainConfig,
    *,
    epochs: int,
    seed: int,
    test: ArrayDataset,
) -> StandaloneResult:
    """Train one copy of ``model`` per participant on its own dataset only, for ``epochs``
    epochs, and evaluate every copy on ``test`` after every epoch."""
    items = check_training_inputs(
        model, datasets, config, seed, rounds=epochs, rounds_name="epochs"
    )
    if not isinstance(test, ArrayDataset):
        raise ConfigurationError("test must be an ArrayDataset: standalone reports accuracies")
    models = [fresh_copy(model) for _ in items]
    step = _one_epoch(config)
    history = []
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        for index, (local, data) in enumerate(zip(models, items, strict=True)):
            train_local(local, data, step, seed=derive_seed(seed, epoch, index))
        seconds = time.perf_counter() - started
        accuracies = tuple(evaluate(local, test).accuracy for local in models)
        history.append(
            StandaloneRecord(
                epoch=epoch,
                accuracies=accuracies,
                mean_accuracy=statistics.fmean(accuracies),
                std_accuracy=statistics.pstdev(accuracies) if len(accuracies) > 1 else 0.0,
                seconds=seconds,
            )
        )
    return StandaloneResult(models=tuple(models), history=tuple(history))
