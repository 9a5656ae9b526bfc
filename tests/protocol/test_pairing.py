"""Sparse pairing (SecAgg+-style random k-regular graph) for large groups."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from ssddl.exceptions import ConfigurationError
from ssddl.protocol import ProtocolConfig, RoundStatus
from ssddl.protocol.config import SessionParams
from ssddl.protocol.init import graph_seed
from ssddl.protocol.pairing import isolated_members, pairing_graph, sparse_parameters
from ssddl.runtime import Vanish, VanishPhase
from tests.protocol.helpers import make_session, ring_sum, tap_uploads

#: n = 20 with 10 % corrupt and 10 % dropouts: k = 10 neighbours, threshold 3
SPARSE = {"sparse_from": 20, "corrupt_fraction": 0.1, "dropout_fraction": 0.1}


def test_parameters_at_the_stated_security_levels():
    # gamma = 1/3 corrupt, delta = 1/20 dropouts, 2^-40 security, 2^-20 failure
    assert sparse_parameters(100) == (34, 29)
    assert sparse_parameters(1000) == (78, 60)
    assert sparse_parameters(20, 0.1, 0.1) == (10, 3)
    assert sparse_parameters(5) is None  # only the complete graph qualifies
    # stricter requirements never need fewer neighbours
    assert sparse_parameters(1000, 0.2, 0.1)[0] <= sparse_parameters(1000, 0.3, 0.1)[0]


def test_bad_fractions_are_named():
    with pytest.raises(ConfigurationError, match="corrupt_fraction"):
        sparse_parameters(100, 1.5, 0.1)
    with pytest.raises(ConfigurationError, match="corrupt_fraction \\+ dropout_fraction"):
        ProtocolConfig(corrupt_fraction=0.6, dropout_fraction=0.5)
    with pytest.raises(ConfigurationError, match="sparse_from"):
        ProtocolConfig(sparse_from=1)


@pytest.mark.parametrize(("n", "k"), [(20, 10), (101, 34), (7, 6), (6, 8)])
def test_graph_is_regular_symmetric_and_from_the_session_id(n, k):
    members = tuple(range(3, 3 + n))
    graph = pairing_graph(b"session-a", members, k)
    degree = min(k, n - 1)
    assert set(graph) == set(members)
    assert all(len(peers) == degree and m not in peers for m, peers in graph.items())
    assert all(m in graph[p] for m, peers in graph.items() for p in peers)
    assert isolated_members(graph, set()) == []
    assert pairing_graph(b"session-a", members, k) == graph
    if k < n - 1:
        assert pairing_graph(b"session-b", members, k) != graph


def _breaks(graph, coalition, dropped, threshold):
    """The coalition isolates an honest survivor, splits the honest survivors, or holds
    ``threshold`` shares of an honest member's seed."""
    removed = coalition | dropped
    if isolated_members(graph, removed):
        return True
    return any(len(graph[m] & coalition) >= threshold for m in graph if m not in coalition)


def test_a_coalition_of_the_stated_size_does_not_isolate_a_member():
    n, (k, t) = 100, sparse_parameters(100)
    members = tuple(range(1, n + 1))
    rng = np.random.default_rng(7)
    coalition = frozenset(int(m) for m in rng.choice(members, n // 3, replace=False))
    rest = [m for m in members if m not in coalition]
    dropped = frozenset(int(m) for m in rng.choice(rest, n // 20, replace=False))
    trials = 300
    failures = sum(
        _breaks(
            pairing_graph(hashlib.sha256(i.to_bytes(2, "big") + b"1").digest(), members, k),
            coalition,
            dropped,
            t,
        )
        for i in range(trials)
    )
    assert failures == 0  # expected rate below 2^-40
    # the same test catches a graph that is too sparse: k = 4 is broken often
    weak = sum(
        _breaks(
            pairing_graph(hashlib.sha256(i.to_bytes(2, "big") + b"2").digest(), members, 4),
            coalition,
            dropped,
            3,
        )
        for i in range(50)
    )
    assert weak > 10


def test_default_announcement_is_unchanged_and_custom_pairing_is_published():
    params = ProtocolConfig(max_samples=64).resolve(5)
    assert "sparse_from" not in params.canonical_json()
    assert params.degree == 0
    custom = ProtocolConfig(max_samples=64, **SPARSE).resolve(20)
    text = custom.canonical_json()
    assert '"sparse_from":20' in text and '"corrupt_fraction":0.1' in text
    again = SessionParams.from_announcement(text, 20)
    assert (again.degree, again.threshold) == (10, 3) == (custom.degree, custom.threshold)
    sub = ProtocolConfig(max_samples=64, group_size=20, **SPARSE)
    assert sub.resolve(21).degree == 10  # smaller groups: a graph per round over the group


def test_sparse_pairing_refuses_what_it_does_not_support():
    with pytest.raises(ConfigurationError, match="consistency"):
        ProtocolConfig(max_samples=64, consistency=True, **SPARSE).resolve(20)
    with pytest.raises(ConfigurationError, match="threshold is derived"):
        ProtocolConfig(max_samples=64, threshold=5, **SPARSE).resolve(20)
    complete = ProtocolConfig(max_samples=64, recovery="unsafe-reveal-keys", **SPARSE)
    assert complete.resolve(20).degree == 0


@pytest.mark.parametrize("persisted", [False, True])
def test_sparse_session_is_exact_and_agrees_keys_only_along_the_graph(persisted):
    config = ProtocolConfig(rounds=2, max_samples=512, **SPARSE)
    probe = make_session(config, n=20, size=29)
    probe.driver.init()
    graph = pairing_graph(graph_seed(probe.server.directory()), tuple(range(1, 21)), 10)
    # 4 never trains in round 1; a non-neighbour of 4 vanishes after uploading
    late = min(p for p in range(1, 21) if p != 4 and p not in graph[4])
    vanish = (Vanish(4, 1, VanishPhase.ROUND_START), Vanish(late, 1, VanishPhase.AFTER_SHARE))
    session = make_session(config, n=20, size=29, vanish=vanish, persisted=persisted)
    uploads = tap_uploads(session)
    session.driver.init()
    assert session.server.session_id == probe.server.session_id
    for pid in range(1, 21):
        assert set(session.participant(pid).pair_rounds) == graph[pid]  # k keys, not n - 1
    outcomes = [session.driver.round() for _ in range(2)]
    for outcome in outcomes:
        assert outcome.status is RoundStatus.APPLIED, outcome.reason
        expected = ring_sum([session.plaintexts[outcome.round][p] for p in outcome.contributors])
        assert np.array_equal(outcome.aggregate, expected)
    assert 4 not in outcomes[1].contributors and late in outcomes[1].contributors
    assert len(uploads) == 39
    assert all(set(u.receivers) == graph[u.sender] for u in uploads)


def test_sparse_guarantee_states_its_probability():
    from ssddl.protocol.schemes import get_scheme

    params = ProtocolConfig(max_samples=64).resolve(100)
    assert (params.degree, params.threshold) == (34, 29)  # sparse by default from n = 100
    guarantee = get_scheme("prg").guarantee(params)
    assert (guarantee.collusion_bound, guarantee.dropout_bound) == (33, 5)
    assert "2^-40" in guarantee.text and "k=34" in guarantee.text
    assert ProtocolConfig(max_samples=64).resolve(99).degree == 0
