"""Sparse pairing when groups are smaller than the registered set: a graph per round over the
round's group, lazily agreed pair keys, and the server's streaming sum."""

from __future__ import annotations

import hashlib
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssddl.exceptions import PolicyViolation
from ssddl.protocol import ProtocolConfig, RoundStatus
from ssddl.protocol.messages import decode_message
from ssddl.protocol.pairing import (
    isolated_members,
    pairing_graph,
    round_graph,
    round_graph_seed,
    sparse_parameters,
)
from ssddl.protocol.policy import ParticipantPolicy
from ssddl.protocol.state import ParticipantState
from ssddl.runtime import Vanish, VanishPhase
from tests.protocol.helpers import make_session, ring_sum, tap_uploads

#: N = 40 registered, groups of 12: k = 8 neighbours, threshold 3 (20 % corrupt, 10 % dropouts)
SUBSET = {"group_size": 12, "sparse_from": 12, "corrupt_fraction": 0.2, "dropout_fraction": 0.1}
SEED = hashlib.sha256(b"directory").digest()


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(1, 200), min_size=12, max_size=40, unique=True),
    st.integers(0, 10**6),
)
def test_round_graph_is_regular_over_the_group_and_changes_with_round_and_group(group, rnd):
    registered = tuple(range(1, 201))
    k = 8
    graph = round_graph(SEED, rnd, group, registered, k)
    assert set(graph) == set(group)
    assert all(len(peers) == k and m not in peers for m, peers in graph.items())
    assert all(m in graph[p] for m, peers in graph.items() for p in peers)  # symmetric
    assert all(peers <= set(group) for peers in graph.values())
    assert isolated_members(graph, set()) == []  # H(k, n) is k-connected
    assert round_graph(SEED, rnd, tuple(reversed(group)), registered, k) == graph  # order-free
    assert round_graph(SEED, rnd + 1, group, registered, k) != graph
    other = [*sorted(group)[1:], next(p for p in registered if p not in group)]
    assert round_graph_seed(SEED, rnd, other) != round_graph_seed(SEED, rnd, group)
    assert round_graph(bytes(32), rnd, group, registered, k) != graph


def test_a_group_of_every_registered_member_keeps_the_session_graph():
    registered = tuple(range(1, 31))
    fixed = pairing_graph(SEED, registered, 8)
    assert round_graph(SEED, 0, registered, registered, 8) == fixed
    assert round_graph(SEED, 7, registered, registered, 8) == fixed


def _breaks(graph, coalition, dropped, threshold):
    """The coalition isolates an honest survivor or splits the honest survivors, or holds
    ``threshold`` shares of an honest member's seed."""
    if isolated_members(graph, coalition | dropped):
        return True
    return any(len(graph[m] & coalition) >= threshold for m in graph if m not in coalition)


def _break_rate(n, k, t, trials, *, registered=1000, corrupt=1 / 3, dropouts=1 / 20):
    """Fraction of per-round graphs (fresh group and round each) that a coalition of
    ⌊corrupt·n⌋ group members, fixed before the graph, breaks with ⌊dropouts·n⌋ dropouts."""
    rng = np.random.default_rng(11)
    population = tuple(range(1, registered + 1))
    broken = 0
    for rnd in range(trials):
        group = sorted(int(p) for p in rng.choice(population, n, replace=False))
        picked = rng.permutation(group)
        coalition = frozenset(int(p) for p in picked[: int(corrupt * n)])
        gone = int(corrupt * n) + int(dropouts * n)
        dropped = frozenset(int(p) for p in picked[int(corrupt * n) : gone])
        broken += _breaks(round_graph(SEED, rnd, group, population, k), coalition, dropped, t)
    return broken / trials


def test_a_coalition_of_the_stated_size_breaks_no_sampled_round_graph():
    k, t = sparse_parameters(100)  # groups of 100 out of 1000 registered
    assert _break_rate(100, k, t, 200) == 0.0  # stated: below 2^-40 per round
    assert _break_rate(100, 4, 3, 40) > 0.2  # the same check catches a too sparse graph


def test_the_break_rate_stays_below_a_loose_stated_bound():
    # at 2^-5 the union bounds are loose enough to be checked by sampling: the observed
    # rate must stay below the stated 1/32 (plus three standard deviations of 400 trials)
    k, t = sparse_parameters(30, 1 / 3, 1 / 20, security_bits=5, failure_bits=5)
    assert k < 29
    rate = _break_rate(30, k, t, 400, registered=300)
    assert rate <= 1 / 32 + 3 * np.sqrt((1 / 32) * (31 / 32) / 400)


def _groups(config, n):
    probe = make_session(config, n=n, size=23)
    probe.driver.init()
    groups = [probe.driver.round().group for _ in range(config.rounds)]
    return probe, groups


@pytest.mark.parametrize(
    ("pair_keys", "persisted"), [("eager", False), ("lazy", False), ("lazy", True)]
)
def test_subset_groups_sum_exactly_with_dropouts_along_per_round_graphs(pair_keys, persisted):
    config = ProtocolConfig(rounds=3, max_samples=512, pair_keys=pair_keys, **SUBSET)
    probe, groups = _groups(config, 40)
    params = probe.server.config
    k, registered = params.degree, probe.server.registered
    assert (k, params.threshold) == (8, 3)
    seed = probe.server.graph_seed()
    graphs = [round_graph(seed, r, g, registered, k) for r, g in enumerate(groups)]
    # round 1: one member never trains; round 2: one uploads, then vanishes (double masking)
    early = groups[1][0]
    late = groups[2][-1]
    vanish = (Vanish(early, 1, VanishPhase.ROUND_START), Vanish(late, 2, VanishPhase.AFTER_SHARE))
    session = make_session(config, n=40, size=23, vanish=vanish, persisted=persisted)
    uploads = tap_uploads(session)
    session.driver.init()
    assert session.server.session_id == probe.server.session_id
    outcomes = [session.driver.round() for _ in range(3)]
    for outcome, group in zip(outcomes, groups, strict=True):
        assert outcome.status is RoundStatus.APPLIED, outcome.reason
        assert outcome.group == group
        expected = ring_sum([session.plaintexts[outcome.round][p] for p in outcome.contributors])
        assert np.array_equal(outcome.aggregate, expected)  # bit for bit in the ring
    assert early not in outcomes[1].contributors and late in outcomes[2].contributors
    # every member masked with exactly its neighbours on its round's graph (the server
    # checks the same set: identical at both ends)
    by_round = {}
    for upload in uploads:
        by_round.setdefault(upload.round, []).append(upload)
        assert set(upload.receivers) == graphs[upload.round][upload.sender]
    assert [len(by_round[r]) for r in range(3)] == [12, 11, 12]
    used = {p: set() for p in range(1, 41)}
    for graph in graphs:
        for member, peers in graph.items():
            used[member] |= peers
    for pid in range(1, 41):
        pairs = set(session.participant(pid).pair_rounds)
        if pair_keys == "lazy":
            assert pairs <= used[pid]  # keys only for pairs that occurred
        else:
            assert pairs == set(range(1, 41)) - {pid}


def test_lazy_state_keeps_the_exchange_key_but_no_ended_round_key():
    config = ProtocolConfig(rounds=2, max_samples=512, pair_keys="lazy", **SUBSET)
    session = make_session(config, n=40, size=23, persisted=True)
    session.driver.init()
    outcome = session.driver.round()
    member = outcome.group[0]
    state = ParticipantState.from_bytes(session.transport.hosts[member].state)
    assert state.exchange_private  # lazy: kept to agree later pairs (weaker forward security)
    assert len(state.directory_keys) == 96 * 40 and state.round_keys == ()
    assert all(r == 1 for r in state.prng_rounds)  # used pairs stand past the ended round
    session.driver.round()
    session.driver.finish()
    final = ParticipantState.from_bytes(session.transport.hosts[member].state)
    assert final.exchange_private == b"" and final.prng_states == ()
    assert final.directory_keys == b""
    eager = make_session(ProtocolConfig(rounds=1, max_samples=512, **SUBSET), n=40, size=23)
    eager.driver.init()
    assert ParticipantState.from_bytes(eager.participant(1).to_bytes()).exchange_private == b""


def test_lazy_pair_keys_need_the_participants_consent():
    config = ProtocolConfig(rounds=1, max_samples=512, pair_keys="lazy", **SUBSET)
    assert ParticipantPolicy.for_config(config, 12).lazy_pair_keys
    strict = ParticipantPolicy(max_round=0)
    session = make_session(config, n=40, size=23, policy=strict)
    session.driver.init()
    refusals = [r for r in session.driver.rejections if r.kind == "session_announce"]
    assert {r.at for r in refusals} == set(range(1, 41))  # before any key is made
    assert all(r.error == PolicyViolation.__name__ and "lazy" in r.detail for r in refusals)
    assert '"pair_keys":"lazy"' in session.server.config.canonical_json()
    assert "pair_keys" not in ProtocolConfig(max_samples=64).resolve(5).canonical_json()


def _server_memory(n, words):
    """The traced bytes the server allocates and keeps while ``n`` uploads of ``words``
    ring words arrive one by one (frames made first, outside the trace)."""
    config = ProtocolConfig(rounds=1, max_samples=512, recovery="none")
    session = make_session(config, n=n, size=words)
    server, participants = session.server, session.participants
    session.driver.init()
    starts = server.start_round()
    frames = []
    for envelope in starts:
        for reply in participants[envelope.recipient].handle(envelope.message):
            frames.append((envelope.recipient, reply.encode()))
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        peak_before_close = 0
        for index, (sender, frame) in enumerate(frames):
            message = decode_message(frame)
            frames[index] = (sender, b"")
            last = index == len(frames) - 1
            if last:
                peak_before_close = tracemalloc.get_traced_memory()[1] - base
            server.handle(sender, message)
            del message
        kept = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert server.history[-1].status is RoundStatus.APPLIED
    expected = ring_sum([session.plaintexts[0][p] for p in range(1, n + 1)])
    assert np.array_equal(server.history[-1].aggregate, expected)
    return peak_before_close, kept


def test_the_server_sums_uploads_as_they_arrive_in_memory_independent_of_n():
    words = 50_000  # 200 kB a vector
    vector = 4 * (words + 1)
    small_peak, _ = _server_memory(5, words)
    large_peak, _ = _server_memory(40, words)
    # O(M): the running sum plus the upload being added, whatever n (O(n·M) would be 8 MB)
    assert large_peak < 3 * vector
    assert large_peak < small_peak + vector / 2


def test_the_server_holds_the_same_memory_after_many_rounds_as_after_one():
    """Its history keeps the arrays (Σ x_i, the float change) of the latest round only: a long
    session must not grow by M words a round (it kept 12 bytes an entry a round before)."""
    words = 50_000
    config = ProtocolConfig(rounds=10, max_samples=512, recovery="none")
    session = make_session(config, n=4, size=words)
    session.driver.init()
    tracemalloc.start()  # before the first round: what rounds replace is traced too
    try:
        first = session.driver.round()
        session.driver.round()
        session.plaintexts.clear()  # the test's own record of every x_i
        after_two = tracemalloc.get_traced_memory()[0]
        for _ in range(7):
            session.driver.round()
            session.plaintexts.clear()
        grown = tracemalloc.get_traced_memory()[0] - after_two
    finally:
        tracemalloc.stop()
    assert grown < 4 * words  # one round's arrays are 12 · words bytes
    history = session.server.history
    assert [o.round for o in history] == list(range(9))
    assert all(o.aggregate is None and o.update is None for o in history[:-1])
    assert history[-1].aggregate is not None and history[-1].update.shape == (words,)
    assert first.aggregate is not None  # what Driver.round returned keeps its arrays
