"""Coalitions of the server with c members: nothing at c = n−2 (c = t−1 for shamir), the
target's update exactly at c = n−1 (c = t for shamir) — the bound is tight."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from ssddl.attacks.coalition import (
    ALPHA,
    coalition_experiment,
    same_distribution_pvalue,
    uniform_pvalue,
    unmask_target,
)
from ssddl.attacks.views import record_run
from ssddl.exceptions import ConfigurationError
from ssddl.protocol import LocalUpdate, ProtocolConfig

SEED = hashlib.sha256(b"tests/attacks/coalition").digest()
N = 5


@pytest.mark.parametrize(
    ("mode", "hidden", "exposed"),
    [("prg", N - 2, N - 1), ("explicit", N - 2, N - 1), ("shamir", 2, 3)],  # shamir: t = 3
)
def test_the_coalition_test_separates_the_bound_from_one_more(mode, hidden, exposed):
    """With every member contributing, the coalition's shares and keys alone: t − 1 colluders
    in shamir, n − 2 elsewhere (fewer contributors: tests/protocol/test_bounds.py)."""
    threshold = 3 if mode == "shamir" else None
    rows = {
        r.c: r
        for r in coalition_experiment(
            mode, n=N, size=1500, crypto_seed=SEED, sizes=(0, hidden, exposed), threshold=threshold
        )
    }
    for c in (0, hidden):
        assert not rows[c].recovered
        assert rows[c].indistinguishable, rows[c]
        assert rows[c].upload_uniform_p >= ALPHA
    assert rows[exposed].recovered and rows[exposed].max_abs_error == 0.0
    assert not rows[exposed].indistinguishable
    assert rows[exposed].same_p < ALPHA


def test_the_distribution_tests_reject_what_is_not_uniform_or_not_the_same():
    rng = np.random.default_rng(0)
    uniform = rng.integers(0, 1 << 32, 2000, dtype=np.uint64).astype(np.uint32)
    assert uniform_pvalue(uniform, 32) >= ALPHA
    assert uniform_pvalue(uniform // 2, 32) < ALPHA
    assert same_distribution_pvalue(uniform, uniform[::-1]) >= ALPHA
    assert same_distribution_pvalue(uniform, uniform // 2) < ALPHA


def test_the_target_cannot_be_its_own_colluder():
    trainers = {p: (lambda w, r: LocalUpdate(np.zeros(8, np.float32), 1)) for p in range(1, 4)}
    run = record_run(
        ProtocolConfig(mode="prg", rounds=1), trainers, np.zeros(8, np.float32), crypto_seed=SEED
    )
    with pytest.raises(ConfigurationError, match="target"):
        unmask_target(run.coalition([1, 2]), 1)
