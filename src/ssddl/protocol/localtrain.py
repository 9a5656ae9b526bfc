"""LocalTrain: the participant's training callback and the checks its result must pass.

The protocol needs no torch: LocalTrain is a callback ``trainer(w^r, round) -> LocalUpdate``
that the runtime supplies (``ssddl.learning`` provides one for PyTorch models). Before
anything is shared, the update is checked: shape, dtype, finiteness, sample count.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ssddl.exceptions import ConfigurationError, NonFiniteError
from ssddl.hazmat.codec import all_finite
from ssddl.protocol.config import SessionParams

__all__ = ["Inspector", "LocalUpdate", "Trainer", "check_update"]


@dataclass(frozen=True)
class LocalUpdate:
    """What LocalTrain hands to ParaShare: Δw = w_i − w^r and the number of samples."""

    delta: np.ndarray = field(repr=False)  # a raw update: never printed
    num_samples: int
    metrics: Mapping[str, float] = field(default_factory=dict)


#: LocalTrain: (global weights w^r, round number) -> the local parameter change.
Trainer = Callable[[np.ndarray, int], LocalUpdate]
#: Test and validation hook: (round, the encoded vector x_i) — never sent anywhere.
Inspector = Callable[[int, np.ndarray], None]


def check_update(
    update: Any, params: SessionParams, model_size: int, participant_id: int
) -> tuple[np.ndarray, int]:
    """The checked (Δw, sample count) of a LocalTrain result, or a named error."""
    if not isinstance(update, LocalUpdate):
        raise ConfigurationError("the trainer must return a LocalUpdate")
    delta = np.asarray(update.delta)
    if delta.shape != (model_size,) or delta.dtype.kind != "f":
        raise ConfigurationError(
            f"participant {participant_id}: the update has shape {delta.shape} and dtype "
            f"{delta.dtype}; expected a float vector of {model_size} entries"
        )
    if not all_finite(delta):
        bad = ~np.isfinite(delta)
        raise NonFiniteError(
            f"participant {participant_id}: the local update has {int(bad.sum())} non-finite "
            f"entries (first at index {int(np.argmax(bad))}); nothing was sent — lower the "
            f"learning rate or check the local data"
        )
    count = update.num_samples
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise ConfigurationError(
            f"participant {participant_id}: num_samples must be a positive int"
        )
    if params.weighted and count > params.max_samples:
        raise ConfigurationError(
            f"participant {participant_id}: {count} samples exceed max_samples="
            f"{params.max_samples}; raise max_samples in the session config"
        )
    return delta, int(count)
