"""LocalTrain for a PyTorch model, as every runtime runs it.

:func:`model_trainer` turns a model, a local dataset and a :class:`LocalTrainConfig` into the
protocol's ``Trainer`` callback: load the global weights, train with the seed
:func:`~ssddl.runtime.seeds.train_seed` gives for (participant, round), return the change.
The simulator and the Flower ClientApp both use it, so their updates are bit-identical.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ssddl.learning.data import ArrayDataset
from ssddl.learning.train import LocalTrainConfig, train_local
from ssddl.learning.vector import model_to_vector, vector_to_model
from ssddl.protocol.localtrain import LocalUpdate, Trainer
from ssddl.runtime.seeds import train_seed

__all__ = ["model_trainer"]


def model_trainer(
    work_model: nn.Module,
    data: ArrayDataset,
    train: LocalTrainConfig,
    *,
    seed: int,
    participant: int,
    device: torch.device | None = None,
) -> Trainer:
    """The LocalTrain callback of participant ``participant``: ``work_model`` is overwritten
    with the global weights every round (it may be shared between participants)."""

    def trainer(weights: np.ndarray, round_number: int) -> LocalUpdate:
        vector_to_model(weights, work_model)
        result = train_local(
            work_model,
            data,
            train,
            seed=train_seed(seed, participant, round_number),
            device=device,
        )
        delta = model_to_vector(work_model) - weights
        return LocalUpdate(delta, result.num_samples, {"loss": result.mean_loss})

    return trainer
