"""A model factory: ``factory(input_shape, num_classes) -> torch.nn.Module``.

ssddl calls it under a torch RNG seeded with the run's ``--seed``, so the initial weights are
the same in every run with that seed. The model must return one logit per class.
"""

from __future__ import annotations

import math

from torch import nn


def tiny_mlp(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """One hidden layer of 32 units over the flattened input."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(math.prod(input_shape), 32),
        nn.ReLU(),
        nn.Linear(32, num_classes),
    )
