"""The whole transition matrix of both state machines, in every mode and every variant
(recovery, consistency check) (STYLE.md §6)."""

from __future__ import annotations

import itertools

import pytest

from ssddl.exceptions import UnexpectedMessage
from ssddl.protocol import Mode
from ssddl.protocol.config import Recovery
from ssddl.protocol.messages import MessageKind as K
from ssddl.protocol.stages import (
    Control,
    Variant,
    participant_next,
    participant_transitions,
    server_check,
    server_transitions,
)
from ssddl.protocol.stages import (
    ParticipantStage as P,
)
from ssddl.protocol.stages import (
    ServerStage as S,
)

PARTICIPANT_INBOX = {
    K.SESSION_ANNOUNCE,
    K.KEY_DIRECTORY,
    K.ROUND_START,
    K.SHARE_DELIVERY,
    K.REVEAL_REQUEST,
    K.CONSISTENCY_REQUEST,
    K.UNMASK_REQUEST,
    K.ROUND_END,
    K.SESSION_END,
}
DM, NONE, UNSAFE = Recovery.DOUBLE_MASK, Recovery.NONE, Recovery.UNSAFE_REVEAL

KEYED_INIT = {
    (P.CREATED, K.SESSION_ANNOUNCE): P.KEYED,
    (P.KEYED, K.KEY_DIRECTORY): P.READY,
    (P.KEYED, K.SESSION_END): P.DONE,
    (P.READY, K.ROUND_END): P.READY,
    (P.UPLOADED, K.ROUND_END): P.READY,
    (P.READY, K.SESSION_END): P.DONE,
}

# The expected tables, written out by hand: a change to the protocol must change both.
EXPECTED_PARTICIPANT = {
    (Mode.PRG, Variant(DM)): KEYED_INIT
    | {
        (P.READY, K.ROUND_START): P.UPLOADED,
        (P.UPLOADED, K.UNMASK_REQUEST): P.UNMASKED,
        (P.UNMASKED, K.ROUND_END): P.READY,
    },
    (Mode.PRG, Variant(DM, True)): KEYED_INIT
    | {
        (P.READY, K.ROUND_START): P.UPLOADED,
        (P.UPLOADED, K.CONSISTENCY_REQUEST): P.SIGNED,
        (P.SIGNED, K.UNMASK_REQUEST): P.UNMASKED,
        (P.SIGNED, K.ROUND_END): P.READY,
        (P.UNMASKED, K.ROUND_END): P.READY,
    },
    (Mode.PRG, Variant(UNSAFE)): KEYED_INIT
    | {
        (P.READY, K.ROUND_START): P.UPLOADED,
        (P.UPLOADED, K.REVEAL_REQUEST): P.UNMASKED,
        (P.UNMASKED, K.ROUND_END): P.READY,
    },
    (Mode.PRG, Variant(NONE)): KEYED_INIT | {(P.READY, K.ROUND_START): P.UPLOADED},
    (Mode.PLAIN, Variant(NONE)): {
        (P.CREATED, K.SESSION_ANNOUNCE): P.READY,
        (P.READY, K.ROUND_START): P.UPLOADED,
        (P.READY, K.ROUND_END): P.READY,
        (P.UPLOADED, K.ROUND_END): P.READY,
        (P.READY, K.SESSION_END): P.DONE,
    },
}
for _relayed in (Mode.EXPLICIT, Mode.SHAMIR):
    EXPECTED_PARTICIPANT[(_relayed, Variant(NONE))] = KEYED_INIT | {
        (P.READY, K.ROUND_START): P.SHARED,
        (P.SHARED, K.SHARE_DELIVERY): P.UPLOADED,
        (P.SHARED, K.ROUND_END): P.READY,
    }
    EXPECTED_PARTICIPANT[(_relayed, Variant(NONE, True))] = KEYED_INIT | {
        (P.READY, K.ROUND_START): P.SHARED,
        (P.SHARED, K.CONSISTENCY_REQUEST): P.SIGNED,
        (P.SIGNED, K.SHARE_DELIVERY): P.UPLOADED,
        (P.SHARED, K.ROUND_END): P.READY,
        (P.SIGNED, K.ROUND_END): P.READY,
    }
CASES = sorted(EXPECTED_PARTICIPANT, key=str)


def test_default_variants():
    assert participant_transitions(Mode.PRG) == EXPECTED_PARTICIPANT[(Mode.PRG, Variant(DM))]
    assert (
        participant_transitions(Mode.SHAMIR) == EXPECTED_PARTICIPANT[(Mode.SHAMIR, Variant(NONE))]
    )


@pytest.mark.parametrize("mode,variant", CASES, ids=str)
def test_participant_table_is_exactly_the_protocol(mode, variant):
    assert participant_transitions(mode, variant) == EXPECTED_PARTICIPANT[(mode, variant)]


@pytest.mark.parametrize("mode,variant", CASES, ids=str)
def test_participant_matrix(mode, variant):
    table = EXPECTED_PARTICIPANT[(mode, variant)]
    for stage, kind in itertools.product(P, K):
        if (stage, kind) in table:
            assert participant_next(mode, stage, kind, variant) is table[(stage, kind)]
        else:
            with pytest.raises(UnexpectedMessage):
                participant_next(mode, stage, kind, variant)


@pytest.mark.parametrize("mode,variant", CASES, ids=str)
def test_participants_only_accept_server_messages(mode, variant):
    assert {kind for _, kind in participant_transitions(mode, variant)} <= PARTICIPANT_INBOX


@pytest.mark.parametrize("mode,variant", CASES, ids=str)
def test_server_matrix(mode, variant):
    table = server_transitions(mode, variant)
    events = [*K, *Control]
    accepted = 0
    for stage, event in itertools.product(S, events):
        if (stage, event) in table:
            assert server_check(mode, stage, event, variant) == table[(stage, event)]
            accepted += 1
        else:
            with pytest.raises(UnexpectedMessage):
                server_check(mode, stage, event, variant)
    assert accepted == len(table)
    # the server never accepts a message a server sends
    for _stage, event in table:
        assert event not in PARTICIPANT_INBOX
    # nothing leaves DONE, and every stage reached is either final or has a way out
    assert not any(stage is S.DONE for stage, _ in table)
    reached = {target for targets in table.values() for target in targets}
    for stage in reached - {S.DONE, S.IDLE}:
        assert (stage, Control.DEADLINE) in table, f"{stage} can wait for ever"


def test_server_tables_per_mode():
    prg = server_transitions(Mode.PRG)
    assert (S.COLLECTING_UPLOADS, K.MASKED_UPLOAD) in prg
    assert (S.COLLECTING_UNMASK, K.UNMASK_RESPONSE) in prg
    assert (S.COLLECTING_REVEALS, K.REVEAL_RESPONSE) not in prg
    assert (S.COLLECTING_SHARES, K.SHARE_BUNDLE) not in prg
    unsafe = server_transitions(Mode.PRG, Variant(UNSAFE))
    assert (S.COLLECTING_REVEALS, K.REVEAL_RESPONSE) in unsafe
    assert (S.COLLECTING_UPLOADS, K.MASKED_UPLOAD) not in unsafe
    checked = server_transitions(Mode.PRG, Variant(DM, True))
    assert checked[(S.COLLECTING_UPLOADS, Control.DEADLINE)] == {
        S.COLLECTING_SIGNATURES,
        S.IDLE,
    }
    for mode in (Mode.EXPLICIT, Mode.SHAMIR):
        table = server_transitions(mode)
        assert table[(S.IDLE, Control.START_ROUND)] == {S.COLLECTING_SHARES}
        assert (S.COLLECTING_REVEALS, K.REVEAL_RESPONSE) not in table
    plain = server_transitions(Mode.PLAIN)
    assert (S.COLLECTING_UPLOADS, K.PLAIN_UPLOAD) in plain
    assert (S.COLLECTING_UPLOADS, K.UPLOAD) not in plain
    assert plain[(S.CREATED, Control.START)] == {S.IDLE}
