"""Shared fixtures of the baseline tests: HE back ends and keys, made once per session.

The Paillier keys here are 512 bits, INSECURE and for tests only (``insecure_test_key``):
real runs use 2048 or 3072 bits.
"""

from __future__ import annotations

import sys
import warnings

import pytest

from ssddl.baselines.he import (
    BFVBackend,
    HEKeyPair,
    InsecureParametersWarning,
    PaillierBackend,
)
from ssddl.hazmat.codec import FixedPoint

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
