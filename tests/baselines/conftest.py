"""Shared fixtures of the baseline tests: HE back ends and keys, made once per session.

The Paillier keys here are 512 bits, INSECURE and for tests only (``insecure_test_key``):
real runs use 2048 or 3072 bits.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from torch import nn

from ssddl.baselines.he import (
    BFVBackend,
    HEKeyPair,
    InsecureParametersWarning,
    PaillierBackend,
)
from ssddl.hazmat.codec import FixedPoint
from ssddl.learning import (
    MLP,
    ArrayDataset,
    DatasetSplit,
    LocalTrainConfig,
    load_digits,
    partition,
)

# TenSEAL has wheels for Python >= 3.11 only; there it must be installed (no silent skip).
if sys.version_info < (3, 11):  # pragma: no cover
    pytest.importorskip("tenseal")

CODEC = FixedPoint(ring_bits=32, frac_bits=16, clip=4.0)
MAX_SUMMANDS = 8
TEST_KEY_BITS = 512  # INSECURE: tests only


def make_paillier(max_summands: int = MAX_SUMMANDS) -> PaillierBackend:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureParametersWarning)
        return PaillierBackend(
            CODEC, max_summands=max_summands, key_bits=TEST_KEY_BITS, insecure_test_key=True
        )


@pytest.fixture(scope="session")
def paillier() -> PaillierBackend:
    return make_paillier()


@pytest.fixture(scope="session")
def paillier_keys(paillier: PaillierBackend) -> HEKeyPair:
    return paillier.keygen()


@pytest.fixture(scope="session")
def bfv() -> BFVBackend:
    return BFVBackend(CODEC, max_summands=MAX_SUMMANDS)


@pytest.fixture(scope="session")
def bfv_keys(bfv: BFVBackend) -> HEKeyPair:
    return bfv.keygen()


# --- a small learning task: digits, 4 participants, an MLP of 2,410 parameters -------------


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    # Small models train fastest on one thread, and other jobs share the cores.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def digits() -> DatasetSplit:
    return load_digits(seed=0)


@pytest.fixture(scope="session")
def participants(digits: DatasetSplit) -> list[ArrayDataset]:
    parts = partition(digits.train.y, 4, "iid", rng=np.random.default_rng(0))
    return [digits.train.subset(p) for p in parts]


def small_mlp(seed: int = 0) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return MLP(64, 10, hidden=(32,))


TRAIN = LocalTrainConfig(lr=0.05, epochs=1, batch_size=32)
