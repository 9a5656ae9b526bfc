"""Property: whoever vanishes, and when, a finished round's aggregate is exactly the ring sum
of its contributors' encoded updates; a round that cannot finish leaves the model alone."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ssddl.protocol import Mode, ProtocolConfig, RoundStatus
from ssddl.runtime import Vanish, VanishPhase
from tests.protocol.helpers import make_session, ring_sum


@st.composite
def scenarios(draw):
    mode = draw(st.sampled_from([Mode.PRG, Mode.EXPLICIT, Mode.SHAMIR, Mode.PLAIN]))
    n = draw(st.integers(3, 6))
    # any threshold a split of contributor lists cannot break (2t > n)
    threshold = draw(st.integers((n + 2) // 2, n)) if mode is Mode.SHAMIR else None
    gone = draw(st.lists(st.integers(1, n), unique=True, max_size=n))
    vanish = tuple(
        Vanish(p, draw(st.integers(0, 1)), draw(st.sampled_from(list(VanishPhase)))) for p in gone
    )
    ring_bits = draw(st.sampled_from([32, 64]))
    return mode, n, threshold, vanish, ring_bits


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_any_dropout_pattern_gives_the_exact_sum_or_a_clean_abort(scenario):
    mode, n, threshold, vanish, ring_bits = scenario
    config = ProtocolConfig(mode=mode, rounds=2, threshold=threshold, ring_bits=ring_bits)
    session = make_session(config, n=n, size=11, vanish=vanish)
    session.driver.init()
    weights_before = session.server.weights.copy()
    for _ in range(2):
        outcome = session.driver.round()
        if outcome.status is RoundStatus.ABORTED:
            assert np.array_equal(session.server.weights, weights_before)
            continue
        assert len(outcome.contributors) >= config.min_group_size
        if mode is not Mode.PLAIN:  # the participants' floor: max_colluders + 2, and t
            assert len(outcome.contributors) >= session.server.config.min_contributors
        if mode is Mode.SHAMIR:
            assert len(outcome.contributors) >= threshold
        if mode is not Mode.PLAIN:
            xs = session.plaintexts[outcome.round]
            assert np.array_equal(
                outcome.aggregate, ring_sum([xs[p] for p in outcome.contributors])
            )
        assert outcome.total_samples == sum(session.samples[p] for p in outcome.contributors)
        weights_before = session.server.weights.copy()
    # nobody was refused for a protocol reason: vanishing is silence, not bad input
    assert all(
        r.error not in {"UnexpectedMessage", "MalformedMessage"} for r in session.driver.rejections
    )


@settings(max_examples=15, deadline=None)
@given(st.integers(3, 6), st.data())
def test_rounds_without_dropouts_never_abort(n, data):
    mode = data.draw(st.sampled_from([Mode.PRG, Mode.EXPLICIT, Mode.SHAMIR, Mode.PLAIN]))
    session = make_session(ProtocolConfig(mode=mode, rounds=1), n=n, size=5)
    session.driver.init()
    outcome = session.driver.round()
    assert outcome.status is RoundStatus.APPLIED
    assert outcome.contributors == tuple(range(1, n + 1))
