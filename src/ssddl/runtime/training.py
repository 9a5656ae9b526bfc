"""LocalTrain for a PyTorch model, as every runtime runs it.

:func:`model_trainer` turns a model, a local dataset and a :class:`LocalTrainConfig` into the
protocol's ``Trainer`` callback: load the global weights, train with the seed
:func:`~ssddl.runtime.seeds.train_seed` gives for (participant, round), return the change.
The simulator and the Flower ClientApp both use it, so their updates are bit-identical.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ssddl.learning.data import ArrayDataset
from ssddl.learning.train import LocalTrainConfig, TrainStep, evaluate, train_local
from ssddl.learning.vector import model_to_vector, vector_to_model
from ssddl.protocol.localtrain import LocalUpdate, Trainer
from ssddl.runtime.callbacks import ParticipantEval
from ssddl.runtime.seeds import train_seed

__all__ = ["model_evaluator", "model_trainer"]


def model_trainer(
    work_model: nn.Module,
    data: ArrayDataset,
    train: LocalTrainConfig,
    *,
    seed: int,
    participant: int,
    device: torch.device | None = None,
    step: TrainStep | None = None,
) -> Trainer:
    """The LocalTrain callback of participant ``participant``: ``work_model`` is overwritten
    with the global weights every round (it may be shared between participants). ``step``:
    a custom loss (:data:`~ssddl.learning.train.TrainStep`)."""

    def trainer(weights: np.ndarray, round_number: int) -> LocalUpdate:
        vector_to_model(weights, work_model)
        result = train_local(
            work_model,
            data,
            train,
            seed=train_seed(seed, participant, round_number),
            device=device,
            step=step,
        )
        delta = model_to_vector(work_model) - weights
        return LocalUpdate(delta, result.num_samples, {"loss": result.mean_loss})

    return trainer


def model_evaluator(
    work_model: nn.Module, heldout: ArrayDataset, *, participant: int
) -> Callable[[np.ndarray], ParticipantEval]:
    """Participant ``participant``'s evaluation of global weights on its own held-out split:
    it runs where the data lives and returns only accuracy, mean loss and the split's size
    (no sample, prediction or per-sample loss). ``work_model`` (on the CPU) is overwritten
    with the weights."""

    def evaluator(weights: np.ndarray) -> ParticipantEval:
        vector_to_model(weights, work_model)
        result = evaluate(work_model, heldout)
        return ParticipantEval(participant, result.accuracy, result.loss, result.num_samples)

    return evaluator
