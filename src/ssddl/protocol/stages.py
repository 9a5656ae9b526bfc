"""The stages of the participant and server state machines and their transition tables.

The tables are data: a pure function looks a (stage, event) pair up and raises
``UnexpectedMessage`` for every pair outside them. The tests walk the whole matrix.
"""

from __future__ import annotations

import functools
from enum import Enum

from ssddl.exceptions import UnexpectedMessage
from ssddl.protocol.config import Mode
from ssddl.protocol.messages import MessageKind as K

__all__ = [
    "Control",
    "ParticipantStage",
    "ServerStage",
    "participant_next",
    "participant_transitions",
    "server_check",
    "server_transitions",
]


class ParticipantStage(Enum):
    CREATED = "created"  #: waiting for the session announcement (Init)
    KEYED = "keyed"  #: key advertised, waiting for the key directory (Init)
    READY = "ready"  #: between rounds (SelectGroup)
    SHARED = "shared"  #: shares sent, waiting for the shares addressed to it (ParaShare)
    UPLOADED = "uploaded"  #: aggregate of shares uploaded, waiting for the round's end
    DONE = "done"  #: session over; key material erased


class ServerStage(Enum):
    CREATED = "created"
    COLLECTING_KEYS = "collecting_keys"  #: Init
    IDLE = "idle"  #: between rounds
    COLLECTING_SHARES = "collecting_shares"  #: ParaShare relay (explicit, shamir)
    COLLECTING_UPLOADS = "collecting_uploads"  #: ParaShare → ParaUpdate
    COLLECTING_REVEALS = "collecting_reveals"  #: dropout recovery (prg)
    DONE = "done"


class Control(Enum):
    """Events that are not messages: the driver's calls into the server."""

    START = "start"
    START_ROUND = "start_round"
    DEADLINE = "deadline"
    FINISH = "finish"


P = ParticipantStage
S = ServerStage
Event = K | Control


@functools.cache
def participant_transitions(mode: Mode) -> dict[tuple[ParticipantStage, K], ParticipantStage]:
    """Every (stage, incoming message kind) a participant accepts in ``mode``, and the stage
    it moves to. Built once per mode (cached): do not mutate the result."""
    relayed = mode in (Mode.EXPLICIT, Mode.SHAMIR)
    table = {
        (P.CREATED, K.SESSION_ANNOUNCE): P.KEYED,
        (P.KEYED, K.KEY_DIRECTORY): P.READY,
        (P.KEYED, K.SESSION_END): P.DONE,
        (P.READY, K.ROUND_START): P.SHARED if relayed else P.UPLOADED,
        (P.READY, K.ROUND_END): P.READY,  # not selected, or refused to train: PRNGs advance
        (P.UPLOADED, K.ROUND_END): P.READY,
        (P.READY, K.SESSION_END): P.DONE,
    }
    if mode is Mode.PLAIN:
        # no keys in plain mode: the announcement leads straight to READY
        del table[(P.KEYED, K.KEY_DIRECTORY)]
        del table[(P.KEYED, K.SESSION_END)]
        table[(P.CREATED, K.SESSION_ANNOUNCE)] = P.READY
    if relayed:
        table[(P.SHARED, K.SHARE_DELIVERY)] = P.UPLOADED
        table[(P.SHARED, K.ROUND_END)] = P.READY  # round aborted before delivery
    if mode is Mode.PRG:
        table[(P.UPLOADED, K.REVEAL_REQUEST)] = P.UPLOADED
    return table


def participant_next(mode: Mode, stage: ParticipantStage, kind: K) -> ParticipantStage:
    target = participant_transitions(mode).get((stage, kind))
    if target is None:
        raise UnexpectedMessage(
            f"a participant in stage {stage.value!r} does not accept {kind.name.lower()} "
            f"in mode {mode.value!r} (out of order or replayed)"
        )
    return target


@functools.cache
def server_transitions(mode: Mode) -> dict[tuple[ServerStage, Event], frozenset[ServerStage]]:
    """Every (stage, event) the server accepts in ``mode`` and the stages it may move to
    (which one depends on whether the phase is complete)."""
    relayed = mode in (Mode.EXPLICIT, Mode.SHAMIR)
    upload = K.PLAIN_UPLOAD if mode is Mode.PLAIN else K.UPLOAD
    after_uploads = {S.COLLECTING_UPLOADS, S.IDLE}
    if mode is Mode.PRG:
        after_uploads.add(S.COLLECTING_REVEALS)
    table: dict[tuple[ServerStage, Event], frozenset[ServerStage]] = {
        (S.CREATED, Control.START): frozenset(
            {S.COLLECTING_KEYS} if mode is not Mode.PLAIN else {S.IDLE}
        ),
        (S.IDLE, Control.START_ROUND): frozenset(
            {S.COLLECTING_SHARES} if relayed else {S.COLLECTING_UPLOADS}
        ),
        (S.IDLE, Control.FINISH): frozenset({S.DONE}),
        (S.COLLECTING_UPLOADS, upload): frozenset(after_uploads),
        (S.COLLECTING_UPLOADS, Control.DEADLINE): frozenset(after_uploads - {S.COLLECTING_UPLOADS}),
    }
    if mode is not Mode.PLAIN:
        table[(S.COLLECTING_KEYS, K.KEY_ADVERT)] = frozenset({S.COLLECTING_KEYS, S.IDLE})
        table[(S.COLLECTING_KEYS, Control.DEADLINE)] = frozenset({S.IDLE, S.DONE})
    if relayed:
        table[(S.COLLECTING_SHARES, K.SHARE_BUNDLE)] = frozenset(
            {S.COLLECTING_SHARES, S.COLLECTING_UPLOADS}
        )
        table[(S.COLLECTING_SHARES, Control.DEADLINE)] = frozenset({S.COLLECTING_UPLOADS, S.IDLE})
    if mode is Mode.PRG:
        table[(S.COLLECTING_REVEALS, K.REVEAL_RESPONSE)] = frozenset({S.COLLECTING_REVEALS, S.IDLE})
        table[(S.COLLECTING_REVEALS, Control.DEADLINE)] = frozenset({S.IDLE})
    return table


def server_check(mode: Mode, stage: ServerStage, event: Event) -> frozenset[ServerStage]:
    """The stages the server may move to on ``event``; UnexpectedMessage if none."""
    targets = server_transitions(mode).get((stage, event))
    if targets is None:
        name = event.name.lower()
        raise UnexpectedMessage(
            f"the server in stage {stage.value!r} does not accept {name} in mode "
            f"{mode.value!r} (out of order or replayed)"
        )
    return targets
