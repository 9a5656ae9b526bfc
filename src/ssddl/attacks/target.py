"""The victims the audit attacks: a small model, a single-sample LocalTrain, and the digits
samples the members hold (:class:`Victims`).

A two-layer network with a sigmoid between the layers (as in Zhu et al.'s DLG experiments:
a smooth activation makes gradient matching well posed), trained by the library's own
:func:`~ssddl.learning.train_local` for one plain SGD step on one sample — the update the
first-layer attack reads exactly and gradient inversion inverts.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ssddl.attacks.inversion import layer_slices
from ssddl.exceptions import ConfigurationError
from ssddl.learning import (
    ArrayDataset,
    LocalTrainConfig,
    load_digits,
    model_to_vector,
    train_local,
)
from ssddl.learning import vector_to_model as load_vector
from ssddl.protocol.localtrain import LocalUpdate

__all__ = [
    "FirstLayer",
    "SmallNet",
    "Victims",
    "batch_trainer",
    "first_layer",
    "one_step_config",
    "single_sample_trainer",
]


class SmallNet(nn.Module):
    """``in_features -> hidden`` (sigmoid) ``-> num_classes`` logits."""

    def __init__(self, in_features: int, num_classes: int, hidden: int = 32) -> None:
        super().__init__()
        for name, value in (
            ("in_features", in_features),
            ("num_classes", num_classes),
            ("hidden", hidden),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"SmallNet {name} must be an int >= 1, got {value!r}")
        self.first = nn.Linear(in_features, hidden)
        self.second = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.second(torch.sigmoid(self.first(x.flatten(1))))
        return out

    @classmethod
    def seeded(cls, in_features: int, num_classes: int, *, seed: int, hidden: int = 32) -> SmallNet:
        """Initialised from ``seed`` without touching the global torch RNG."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return cls(in_features, num_classes, hidden)


@dataclass(frozen=True)
class FirstLayer:
    """Where the first linear layer lies in the flat parameter vector."""

    weight: slice
    bias: slice
    in_features: int


def first_layer(model: nn.Module) -> FirstLayer:
    """The first ``nn.Linear`` of ``model`` (its weight and bias come first in the vector)."""
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    names = list(shapes)
    if len(names) < 2 or len(shapes[names[0]]) != 2 or shapes[names[1]] != shapes[names[0]][:1]:
        raise ConfigurationError(
            "the model's first parameters must be a linear layer's weight (out, in) and bias"
        )
    slices = layer_slices(shapes)
    return FirstLayer(slices[names[0]], slices[names[1]], shapes[names[0]][1])


def one_step_config(lr: float, batch: int = 1) -> LocalTrainConfig:
    """One plain SGD step on a batch of ``batch`` samples (the batch-mean loss): the update
    is exactly ``−lr · ∇``."""
    return LocalTrainConfig(optimizer="sgd", lr=lr, momentum=0.0, steps=1, batch_size=batch)


def batch_trainer(
    model: nn.Module,
    xs: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    *,
    lr: float,
    seed: int = 0,
) -> Callable[[np.ndarray, int], LocalUpdate]:
    """A LocalTrain callback: load the global weights into a private copy of ``model``,
    take one SGD step on all of ``(xs, labels)`` as one batch, return the change."""
    ys = np.asarray(labels, dtype=np.int64).reshape(-1)
    if ys.size < 1:
        raise ConfigurationError("batch_trainer needs at least one sample")
    data = ArrayDataset(
        np.asarray(xs, dtype=np.float32).reshape(ys.size, -1), ys, num_classes, "audit"
    )
    config = one_step_config(lr, ys.size)
    work = copy.deepcopy(model)

    def trainer(weights: np.ndarray, round_number: int) -> LocalUpdate:
        load_vector(weights, work)
        train_local(work, data, config, seed=seed + round_number)
        delta = model_to_vector(work) - weights
        return LocalUpdate(delta, int(ys.size))

    return trainer


def single_sample_trainer(
    model: nn.Module, x: np.ndarray, label: int, num_classes: int, *, lr: float, seed: int = 0
) -> Callable[[np.ndarray, int], LocalUpdate]:
    """A LocalTrain callback: load the global weights into a private copy of ``model``,
    take one SGD step on ``(x, label)``, return the change."""
    return batch_trainer(
        model, np.asarray(x)[None], np.array([label]), num_classes, lr=lr, seed=seed
    )


@dataclass(frozen=True)
class Victims:
    """n members with one 8×8 digits sample each (inputs in [0, 1]) on a seeded 64-32-10
    :class:`SmallNet`, where it lies in the vector (``layer``), and a larger pool of samples
    for the aggregate attacks (``xs`` first)."""

    xs: np.ndarray
    ys: np.ndarray
    model: SmallNet
    initial: np.ndarray
    layer: FirstLayer
    pool_x: np.ndarray
    pool_y: np.ndarray

    def trainers(self, lr: float) -> dict[int, Callable[[np.ndarray, int], LocalUpdate]]:
        """Member p (from 1) takes one plain SGD step of size ``lr`` on its own sample."""
        return {
            p: single_sample_trainer(self.model, self.xs[p - 1], int(self.ys[p - 1]), 10, lr=lr)
            for p in range(1, len(self.xs) + 1)
        }

    @classmethod
    def drawn(cls, members: int, pool: int, *, seed: int) -> Victims:
        """``members`` samples of distinct digits first (so a grid reads at a glance), then a
        pool of ``pool`` samples (at least ``members``), and the model seeded by ``seed``."""
        split = load_digits(seed=seed)
        xs, ys = split.train.x, split.train.y
        chosen: list[int] = []
        for label in range(10):
            chosen += [int(i) for i in np.flatnonzero(ys == label)[:1]]
        picked = list(dict.fromkeys([*chosen, *range(len(ys))]))[: max(members, pool)]
        model = SmallNet.seeded(64, 10, seed=seed)
        return cls(
            xs[picked[:members]],
            ys[picked[:members]],
            model,
            model_to_vector(model),
            first_layer(model),
            xs[picked],
            ys[picked],
        )
