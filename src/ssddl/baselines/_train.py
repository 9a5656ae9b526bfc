"""Helpers the training loops of the baselines share (private): argument checks, derived
seeds, pooled data, and the per-round record."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from torch import nn

from ssddl.exceptions import ConfigurationError
from ssddl.learning import ArrayDataset, EvalResult, LocalTrainConfig, evaluate

__all__ = [
    "RoundRecord",
    "check_training_inputs",
    "derive_seed",
    "evaluate_or_none",
    "fresh_copy",
    "pool",
]


@dataclass(frozen=True)
class RoundRecord:
    """One round (or epoch) of a baseline: test metrics (``None`` without a test set), the
    bytes one participant sent and received in it on average, and wall-clock seconds."""

    round: int
    accuracy: float | None
    loss: float | None
    upload_bytes: float = 0.0
    download_bytes: float = 0.0
    seconds: float = 0.0


def derive_seed(seed: int, *path: int) -> int:
    """A seed in ``[0, 2**63)`` for the run ``seed`` and position ``path`` (round,
    participant, ...), independent across positions (numpy's SeedSequence)."""
    words = np.random.SeedSequence([seed, *path]).generate_state(2, dtype=np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])


def check_training_inputs(
    model: nn.Module,
    datasets: Sequence[ArrayDataset],
    config: LocalTrainConfig,
    seed: int,
    *,
    rounds: int,
    rounds_name: str = "rounds",
) -> list[ArrayDataset]:
    """Validate the arguments every baseline takes; return the datasets as a list."""
    if not isinstance(model, nn.Module):
        raise ConfigurationError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(datasets, ArrayDataset) or not isinstance(datasets, Sequence):
        raise ConfigurationError("datasets must be a sequence of ArrayDataset, one per participant")
    items = list(datasets)
    if not items:
        raise ConfigurationError("datasets must hold at least one participant's dataset")
    for index, data in enumerate(items):
        if not isinstance(data, ArrayDataset) or len(data) == 0:
            raise ConfigurationError(f"datasets[{index}] must be a non-empty ArrayDataset")
    if not isinstance(config, LocalTrainConfig):
        raise ConfigurationError(f"config must be a LocalTrainConfig, got {type(config).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise ConfigurationError(f"seed must be an int in [0, 2**63), got {seed!r}")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ConfigurationError(f"{rounds_name} must be an int >= 1, got {rounds!r}")
    return items


def pool(datasets: Sequence[ArrayDataset]) -> ArrayDataset:
    """All participants' samples in one dataset (in participant order)."""
    first = datasets[0]
    for index, data in enumerate(datasets):
        if data.input_shape != first.input_shape or data.num_classes != first.num_classes:
            raise ConfigurationError(
                f"datasets[{index}] has input shape {data.input_shape} and "
                f"{data.num_classes} classes, unlike datasets[0]; they cannot be pooled"
            )
    return ArrayDataset(
        np.concatenate([d.x for d in datasets]),
        np.concatenate([d.y for d in datasets]),
        first.num_classes,
        first.name,
    )


def evaluate_or_none(model: nn.Module, test: ArrayDataset | None) -> EvalResult | None:
    """``evaluate(model, test)``, or ``None`` without a test set."""
    if test is None:
        return None
    if not isinstance(test, ArrayDataset):
        raise ConfigurationError(f"test must be an ArrayDataset or None, got {type(test).__name__}")
    return evaluate(model, test)


def fresh_copy(model: nn.Module) -> nn.Module:
    """A deep copy, so that the caller's model is never trained in place."""
    return copy.deepcopy(model)
