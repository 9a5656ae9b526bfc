"""The Grid-shaped seam: the driver over the in-memory exchange, its byte counts and the
faults it injects (vanish, delay past the deadline, drop, duplicate, reorder)."""

from __future__ import annotations

import numpy as np
import pytest

from ssddl.exceptions import ConfigurationError, UnknownSender
from ssddl.protocol import Mode, ProtocolConfig, RoundStatus
from ssddl.protocol.messages import MessageKind
from ssddl.runtime import Delay, Drop, Duplicate, Frame, NodeMap, Reorder, Vanish, make_members
from tests.protocol.helpers import make_session, ring_sum, seeded

SECURE = [Mode.PRG, Mode.EXPLICIT, Mode.SHAMIR]


def run(mode, faults=(), rounds=1, **cfg):
    session = make_session(ProtocolConfig(mode=mode, rounds=rounds, **cfg), vanish=faults)
    session.driver.init()
    outcomes = [session.driver.round() for _ in range(rounds)]
    return session, outcomes


def exact(session, outcome):
    xs = session.plaintexts[outcome.round]
    return np.array_equal(outcome.aggregate, ring_sum([xs[p] for p in outcome.contributors]))


def test_every_byte_is_counted_per_kind_participant_and_round():
    session, _ = run(Mode.PRG, rounds=2)
    records = session.transport.records
    assert {r.round for r in records} == {-1, 0, 1}
    by_kind = session.transport.bytes_by_kind(0)
    assert set(by_kind) == {
        "round_start",
        "masked_upload",
        "unmask_request",
        "unmask_response",
        "round_end",
    }
    per = session.transport.bytes_by_participant(0)
    ups = {MessageKind.MASKED_UPLOAD, MessageKind.UNMASK_RESPONSE}
    uploads = [r for r in records if r.round == 0 and r.kind in ups]
    assert sum(p["up"] for p in per.values()) == sum(r.nbytes for r in uploads)
    assert session.transport.total_bytes() == sum(r.nbytes for r in records)


@pytest.mark.parametrize("mode", [Mode.PRG, Mode.SHAMIR, Mode.PLAIN])
def test_a_delayed_upload_misses_the_deadline_and_is_refused_late(mode):
    kind = {
        Mode.PLAIN: MessageKind.PLAIN_UPLOAD,
        Mode.PRG: MessageKind.MASKED_UPLOAD,
        Mode.SHAMIR: MessageKind.UPLOAD,
    }[mode]
    session, (outcome,) = run(mode, faults=(Delay(3, 0, kind),), rounds=1)
    assert outcome.status is RoundStatus.APPLIED
    assert 3 not in outcome.contributors or mode is Mode.SHAMIR
    if mode is not Mode.PLAIN:
        assert exact(session, outcome)
    # the late frame did arrive, after the round had moved on, and was refused
    late = [r for r in session.driver.rejections if r.sender == 3 and r.at == 0]
    assert late and late[0].error in {"UnexpectedMessage", "ReplayedMessage", "UnknownSender"}


@pytest.mark.parametrize("mode", SECURE)
def test_a_dropped_frame_to_a_member_is_a_dropout(mode):
    session, (outcome,) = run(mode, faults=(Drop(2, 0, MessageKind.ROUND_START, upward=False),))
    assert 2 not in outcome.contributors
    if mode is Mode.EXPLICIT:  # every member's share of every change is needed: clean abort
        assert outcome.status is RoundStatus.ABORTED and "4 of 5 members shared" in outcome.reason
        assert outcome.update is None and not session.server.weights.any()
    else:
        assert outcome.status is RoundStatus.APPLIED and exact(session, outcome)


@pytest.mark.parametrize("mode", SECURE)
def test_a_duplicated_reply_is_refused_once_and_changes_nothing(mode):
    kind = MessageKind.MASKED_UPLOAD if mode is Mode.PRG else MessageKind.SHARE_BUNDLE
    session, (outcome,) = run(mode, faults=(Duplicate(4, 0, kind),))
    assert outcome.status is RoundStatus.APPLIED and exact(session, outcome)
    assert [(r.sender, r.error) for r in session.driver.rejections] == [(4, "ReplayedMessage")]


@pytest.mark.parametrize("mode", SECURE)
def test_reordered_replies_give_the_same_model(mode):
    ordered, _ = run(mode, rounds=2)
    shuffled, outcomes = run(mode, faults=(Reorder(0), Reorder(1)), rounds=2)
    assert all(o.status is RoundStatus.APPLIED for o in outcomes)
    assert np.array_equal(ordered.server.weights, shuffled.server.weights)


def test_frames_to_unknown_participants_are_rejected_not_lost():
    session, _ = run(Mode.PRG)
    out = session.transport.send_and_receive([Frame(0, 99, b"x")], timeout=None)
    assert out == []
    assert session.transport.rejections[-1].error == "UnknownSender"


def test_node_map_is_one_to_one_and_order_independent():
    nodes = [2**63 + 5, 17, 2**40]
    a, b = NodeMap(nodes), NodeMap(reversed(nodes))
    assert [a.protocol_id(n) for n in nodes] == [b.protocol_id(n) for n in nodes] == [3, 1, 2]
    assert all(a.node_id(a.protocol_id(n)) == n for n in nodes)
    assert a.protocol_ids == (1, 2, 3) and len(a) == 3
    with pytest.raises(UnknownSender):
        a.protocol_id(4)
    with pytest.raises(UnknownSender):
        a.node_id(9)
    with pytest.raises(ConfigurationError):
        a.node_id(0)
    with pytest.raises(ConfigurationError):
        NodeMap([])
    with pytest.raises(ConfigurationError):
        NodeMap([-1])


def test_members_have_matching_roster_and_report_progress():
    seen = []
    members = make_members(
        [3, 1, 2], lambda p: seeded(f"m/{p}"), progress=lambda d, t: seen.append((d, t))
    )
    assert members.ids == (1, 2, 3)
    assert all(members.roster[p] == members.identities[p].public_bytes for p in members.ids)
    assert seen == [(1, 3), (2, 3), (3, 3)]
    assert "IdentityKey" not in repr(members)
    with pytest.raises(ConfigurationError):
        make_members([0], lambda p: seeded("x"))


def test_vanish_validation():
    with pytest.raises(ConfigurationError):
        Vanish(0, 0)
