"""The public generators a session derives from its ``seed``, in one place for every runtime.

Group selection, stochastic rounding and local training draw from generators derived from
the run's public seed (never keys, masks or shares). The simulator and the Flower runtime
derive them with these functions, so the same seed and configuration give the same model
whichever runtime carried the messages.
"""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["derive_seed", "rounding_rng", "selection_rng", "train_seed"]


def derive_seed(seed: int, *parts: object) -> int:
    """A 63-bit seed (valid for torch and numpy) for the purpose named by ``parts``."""
    digest = hashlib.sha256(repr((seed, *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def selection_rng(seed: int) -> np.random.Generator:
    """The server's group-selection generator (``UniformSubset``)."""
    return np.random.default_rng(derive_seed(seed, "select"))


def rounding_rng(seed: int, participant: int) -> np.random.Generator:
    """Participant ``participant``'s stochastic-rounding generator."""
    return np.random.default_rng(derive_seed(seed, "rounding", participant))


def train_seed(seed: int, participant: int, round_number: int) -> int:
    """The seed of participant ``participant``'s local training in ``round_number``."""
    return derive_seed(seed, "train", participant, round_number)
