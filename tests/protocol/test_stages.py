"""The whole transition matrix of both state machines, in every mode (STYLE.md §6)."""

from __future__ import annotations

import itertools

import pytest

from ssddl.exceptions import UnexpectedMessage
from ssddl.protocol import Mode
from ssddl.protocol.messages import MessageKind as K
from ssddl.protocol.stages import (
    Control,
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

MODES = list(Mode)
PARTICIPANT_INBOX = {
    K.SESSION_ANNOUNCE,
    K.KEY_DIRECTORY,
    K.ROUND_START,
    K.SHARE_DELIVERY,
    K.REVEAL_REQUEST,
    K.ROUND_END,
    K.SESSION_END,
}

# The expected tables, written out by hand: a change to the protocol must change both.
EXPECTED_PARTICIPANT = {
    Mode.PRG: {
        (P.CREATED, K.SESSION_ANNOUNCE): P.KEYED,
        (P.KEYED, K.KEY_DIRECTORY): P.READY,
        (P.KEYED, K.SESSION_END): P.DONE,
        (P.READY, K.ROUND_START): P.UPLOADED,
        (P.READY, K.ROUND_END): P.READY,
        (P.UPLOADED, K.ROUND_END): P.READY,
        (P.UPLOADED, K.REVEAL_REQUEST): P.UPLOADED,
        (P.READY, K.SESSION_END): P.DONE,
    },
    Mode.PLAIN: {
        (P.CREATED, K.SESSION_ANNOUNCE): P.READY,
        (P.READY, K.ROUND_START): P.UPLOADED,
        (P.READY, K.ROUND_END): P.READY,
        (P.UPLOADED, K.ROUND_END): P.READY,
        (P.READY, K.SESSION_END): P.DONE,
    },
}
for _relayed in (Mode.EXPLICIT, Mode.SHAMIR):
    EXPECTED_PARTICIPANT[_relayed] = {
        (P.CREATED, K.SESSION_ANNOUNCE): P.KEYED,
        (P.KEYED, K.KEY_DIRECTORY): P.READY,
        (P.KEYED, K.SESSION_END): P.DONE,
        (P.READY, K.ROUND_START): P.SHARED,
        (P.SHARED, K.SHARE_DELIVERY): P.UPLOADED,
        (P.SHARED, K.ROUND_END): P.READY,
        (P.READY, K.ROUND_END): P.READY,
        (P.UPLOADED, K.ROUND_END): P.READY,
        (P.READY, K.SESSION_END): P.DONE,
    }


@pytest.mark.parametrize("mode", MODES)
def test_participant_table_is_exactly_the_protocol(mode):
    assert participant_transitions(mode) == EXPECTED_PARTICIPANT[mode]


@pytest.mark.parametrize("mode", MODES)
def test_participant_matrix(mode):
    table = EXPECTED_PARTICIPANT[mode]
    for stage, kind in itertools.product(P, K):
        if (stage, kind) in table:
            assert participant_next(mode, stage, kind) is table[(stage, kind)]
        else:
            with pytest.raises(UnexpectedMessage):
                participant_next(mode, stage, kind)


def test_participants_only_accept_server_messages():
    for mode in MODES:
        assert {kind for _, kind in participant_transitions(mode)} <= PARTICIPANT_INBOX


@pytest.mark.parametrize("mode", MODES)
def test_server_matrix(mode):
    table = server_transitions(mode)
    events = [*K, *Control]
    accepted = 0
    for stage, event in itertools.product(S, events):
        if (stage, event) in table:
            assert server_check(mode, stage, event) == table[(stage, event)]
            accepted += 1
        else:
            with pytest.raises(UnexpectedMessage):
                server_check(mode, stage, event)
    assert accepted == len(table)
    # the server never accepts a message a server sends
    for _stage, event in table:
        assert event not in PARTICIPANT_INBOX
    # nothing leaves DONE
    assert not any(stage is S.DONE for stage, _ in table)


def test_server_tables_per_mode():
    prg = server_transitions(Mode.PRG)
    assert (S.COLLECTING_REVEALS, K.REVEAL_RESPONSE) in prg
    assert (S.COLLECTING_SHARES, K.SHARE_BUNDLE) not in prg
    for mode in (Mode.EXPLICIT, Mode.SHAMIR):
        table = server_transitions(mode)
        assert table[(S.IDLE, Control.START_ROUND)] == {S.COLLECTING_SHARES}
        assert (S.COLLECTING_REVEALS, K.REVEAL_RESPONSE) not in table
    plain = server_transitions(Mode.PLAIN)
    assert (S.COLLECTING_UPLOADS, K.PLAIN_UPLOAD) in plain
    assert (S.COLLECTING_UPLOADS, K.UPLOAD) not in plain
    assert plain[(S.CREATED, Control.START)] == {S.IDLE}
