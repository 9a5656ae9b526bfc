"""SelectGroup policies and ParaUpdate rules: the swappable parts of the paper's modules."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ssddl.exceptions import ConfigurationError, MalformedMessage
from ssddl.protocol import (
    AllParticipants,
    Mean,
    ProtocolConfig,
    RoundRobin,
    Sum,
    UniformSubset,
    WeightedMean,
    update_rule_for,
)
from tests.protocol.helpers import make_session

REGISTERED = tuple(range(1, 11))


@given(size=st.integers(1, 10), r=st.integers(0, 50), seed=st.integers(0, 2**32))
def test_uniform_subset_is_a_sorted_subset_of_the_right_size(size, r, seed):
    group = UniformSubset(np.random.default_rng(seed)).select(REGISTERED, size, r)
    assert len(group) == size and len(set(group)) == size
    assert set(group) <= set(REGISTERED) and list(group) == sorted(group)


def test_uniform_subset_is_uniform_enough_and_restorable():
    policy = UniformSubset(np.random.default_rng(1))
    counts = np.zeros(11)
    for r in range(3000):
        for p in policy.select(REGISTERED, 3, r):
            counts[p] += 1
    expected = 3000 * 3 / 10
    assert np.all(np.abs(counts[1:] - expected) < 5 * np.sqrt(expected))
    saved = policy.state()
    first = [policy.select(REGISTERED, 4, r) for r in range(5)]
    policy.restore(saved)
    assert [policy.select(REGISTERED, 4, r) for r in range(5)] == first
    with pytest.raises(MalformedMessage):
        policy.restore("{not json")
    with pytest.raises(ConfigurationError):
        UniformSubset(np.random.RandomState(0))  # type: ignore[arg-type]


@given(size=st.integers(1, 10), r=st.integers(0, 100))
def test_round_robin_covers_everyone_in_turn(size, r):
    policy = RoundRobin()
    group = policy.select(REGISTERED, size, r)
    assert len(group) == size and list(group) == sorted(group)
    # over n consecutive rounds every participant is selected exactly `size` times
    seen = [p for k in range(10) for p in policy.select(REGISTERED, size, r * 10 + k)]
    assert all(seen.count(p) == size for p in REGISTERED)


def test_all_participants_and_a_session_using_a_policy():
    assert AllParticipants().select(REGISTERED, 3, 0) == REGISTERED
    session = make_session(ProtocolConfig(rounds=4, group_size=3), n=6)
    session.server._selection = RoundRobin()
    session.driver.init()
    groups = [session.driver.round().group for _ in range(4)]
    assert groups == [(1, 2, 3), (4, 5, 6), (1, 2, 3), (4, 5, 6)]


def test_update_rules():
    summed = np.array([2.0, -4.0])
    assert np.array_equal(Mean().change(summed, 4, 4), [0.5, -1.0])
    assert np.array_equal(WeightedMean(64).change(summed, 128, 2), [1.0, -2.0])
    assert np.array_equal(Sum(Mean(), 0.5).change(summed, 4, 4), [2.0, -4.0])
    params = ProtocolConfig(aggregation="sum", server_lr=0.5, max_samples=8).resolve(3)
    rule = update_rule_for(params)
    assert isinstance(rule, Sum) and rule.server_lr == 0.5
    assert isinstance(update_rule_for(ProtocolConfig(weighted=False).resolve(3)), Mean)
    with pytest.raises(ConfigurationError, match="server_lr"):
        Mean(server_lr=0)
    with pytest.raises(ConfigurationError, match="max_samples"):
        WeightedMean(0)


def test_a_custom_update_rule_drives_the_model():
    session = make_session(ProtocolConfig(rounds=1, weighted=False))
    session.server._rule = Sum(Mean(), server_lr=1.0)
    session.driver.init()
    outcome = session.driver.round()
    assert np.allclose(session.server.weights, outcome.update * 1.0, atol=1e-6)
    mean = make_session(ProtocolConfig(rounds=1, weighted=False))
    mean.driver.init()
    mean.driver.round()
    assert np.allclose(session.server.weights, 5 * mean.server.weights, atol=1e-5)


def test_resolved_params_have_no_optional_fields():
    params = ProtocolConfig(max_samples=64).resolve(5)
    assert all(getattr(params, f) is not None for f in params.__dataclass_fields__)
    assert params.config().resolve(5) == params
    unweighted = ProtocolConfig(weighted=False).resolve(4)
    assert unweighted.to_dict()["max_samples"] is None and unweighted.max_samples == 1
    assert unweighted.config().resolve(4) == unweighted
