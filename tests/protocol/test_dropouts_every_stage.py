"""For every mode and every stage of a round: 0 … (tolerance) members vanishing there give the
exact sum of the members that uploaded; one more aborts the round with no partial aggregate
and the model unchanged (issue 7, item 5)."""

from __future__ import annotations

import numpy as np
import pytest

from ssddl.protocol import ProtocolConfig, RoundStatus, get_scheme
from ssddl.protocol.messages import MessageKind as K
from ssddl.runtime import VanishAt
from tests.protocol.helpers import make_session, ring_sum

N = 5

#: (name, config, stage -> how many may vanish there). t = 3 wherever a threshold applies,
#: but in prg without the signed round, where a split of survivor lists needs t = 4 at n = 5.
CASES = [
    ("prg double-mask", {"mode": "prg", "threshold": 4}, {K.ROUND_START: 1, K.UNMASK_REQUEST: 1}),
    (
        "prg double-mask + consistency",
        {"mode": "prg", "threshold": 3, "consistency": True},
        {K.ROUND_START: 2, K.CONSISTENCY_REQUEST: 2, K.UNMASK_REQUEST: 2},
    ),
    ("prg none", {"mode": "prg", "recovery": "none"}, {K.ROUND_START: 0}),
    (
        "prg unsafe-reveal-keys",
        {"mode": "prg", "recovery": "unsafe-reveal-keys", "min_group_size": 3, "max_colluders": 1},
        {K.ROUND_START: 2},
    ),
    ("explicit", {"mode": "explicit"}, {K.ROUND_START: 0, K.SHARE_DELIVERY: 0}),
    ("shamir", {"mode": "shamir", "threshold": 3}, {K.ROUND_START: 2, K.SHARE_DELIVERY: 2}),
    (
        "shamir + consistency",
        {"mode": "shamir", "threshold": 3, "consistency": True},
        {K.ROUND_START: 2, K.CONSISTENCY_REQUEST: 2, K.SHARE_DELIVERY: 2},
    ),
    ("plain", {"mode": "plain", "min_group_size": 3}, {K.ROUND_START: 2}),
]
PARAMS = [
    (name, cfg, stage, gone)
    for name, cfg, stages in CASES
    for stage, tolerance in stages.items()
    for gone in range(tolerance + 2)
    if gone <= N - 1
]


@pytest.mark.parametrize(
    "name,cfg,stage,gone", PARAMS, ids=[f"{p[0]}-{p[2].name.lower()}-{p[3]}" for p in PARAMS]
)
def test_vanishing_at_a_stage(name, cfg, stage, gone):
    tolerance = dict(next(c for c in CASES if c[0] == name)[2])[stage]
    leaving = tuple(range(N, N - gone, -1))
    faults = tuple(VanishAt(p, 0, stage) for p in leaving)
    session = make_session(ProtocolConfig(rounds=1, **cfg), n=N, vanish=faults, seed=name)
    session.driver.init()
    outcome = session.driver.round()
    if gone <= tolerance:
        assert outcome.status is RoundStatus.APPLIED, outcome.reason
        uploaded = outcome.contributors
        if stage is K.ROUND_START:
            assert set(uploaded) == set(range(1, N + 1)) - set(leaving)
        else:  # they uploaded before vanishing: their changes count
            assert set(uploaded) == set(range(1, N + 1))
        if cfg["mode"] != "plain":
            xs = session.plaintexts[0]
            assert np.array_equal(outcome.aggregate, ring_sum([xs[p] for p in uploaded]))
    else:
        assert outcome.status is RoundStatus.ABORTED
        assert outcome.aggregate is None and outcome.update is None
        assert not session.server.weights.any()  # the model did not move
        assert outcome.reason


def test_the_stated_dropout_bound_matches_the_tested_tolerance():
    for _name, cfg, stages in CASES:
        params = ProtocolConfig(rounds=1, max_samples=64, **cfg).resolve(N)
        stated = get_scheme(params.mode).guarantee(params).dropout_bound
        assert stated == stages[K.ROUND_START], (cfg, stated)


def test_the_next_round_proceeds_after_an_abort():
    faults = (VanishAt(5, 0, K.SHARE_DELIVERY),)
    session = make_session(ProtocolConfig(mode="explicit", rounds=2), n=N, vanish=faults)
    session.driver.init()
    first = session.driver.round()
    # member 5 is gone for good; explicit needs every member, so the session can only abort;
    # with shamir the next round runs on the four that remain
    assert first.status is RoundStatus.ABORTED
    shamir = make_session(
        ProtocolConfig(mode="shamir", rounds=2, threshold=3),
        n=N,
        vanish=(VanishAt(5, 0, K.SHARE_DELIVERY), VanishAt(4, 1, K.ROUND_START)),
    )
    shamir.driver.init()
    outcomes = [shamir.driver.round() for _ in range(2)]
    assert [o.status for o in outcomes] == [RoundStatus.APPLIED, RoundStatus.APPLIED]
    assert outcomes[1].contributors == (1, 2, 3)


@pytest.mark.parametrize(
    "cfg,second",
    [
        ({"mode": "prg", "threshold": 4}, K.UNMASK_REQUEST),
        ({"mode": "prg", "recovery": "unsafe-reveal-keys"}, K.REVEAL_REQUEST),
    ],
)
def test_a_survivor_lost_while_recovering_a_dropout_aborts(cfg, second):
    """The survivors' pair keys with a member that did not upload are needed from every
    survivor: losing one more while recovering aborts the round (docs/threat-model.md)."""
    faults = (VanishAt(5, 0, K.ROUND_START), VanishAt(4, 0, second))
    session = make_session(ProtocolConfig(rounds=1, **cfg), n=N, vanish=faults)
    session.driver.init()
    outcome = session.driver.round()
    assert outcome.status is RoundStatus.ABORTED and outcome.aggregate is None
    assert "vanished" in outcome.reason
