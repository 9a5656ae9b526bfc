"""Mode ``prg`` (default): pairwise shares regenerated from forward-secure PRNGs.

Member i uploads ``u_i = x_i + Σ_{j>i} m_ij − Σ_{j<i} m_ij``; the masks cancel in the sum, so
one ring vector goes up and no share crosses the network. A member lost before its upload is
recovered from: the survivors reveal their round keys with it (never a PRNG state), and the
server removes the survivors' halves of those pair masks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ssddl.exceptions import GroupTooSmall, MalformedMessage, ReplayedMessage, UnknownSender
from ssddl.hazmat.codec import ring_sum
from ssddl.protocol.masks import apply_pair_masks, remove_pair_mask
from ssddl.protocol.messages import Message, MessageKind, RevealRequest, RevealResponse, Upload
from ssddl.protocol.schemes._common import check_upload
from ssddl.protocol.schemes.base import ParticipantHandler, Scheme, ServerCheck, ServerCloser
from ssddl.protocol.server import Envelope
from ssddl.protocol.stages import Control, Event, ParticipantStage, ServerStage
from ssddl.protocol.state import Record, record_kind
from ssddl.protocol.wire import ARRAY, IDS, U64

if TYPE_CHECKING:
    from ssddl.protocol.participant import Participant
    from ssddl.protocol.server import Server

__all__ = ["SCHEME", "PrgScheme"]

K = MessageKind
P = ParticipantStage
S = ServerStage


@record_kind
@dataclass(frozen=True, repr=False)
class _Recovery(Record):
    """The server's data while it waits for round keys: the partial sum of the uploads,
    who uploaded, who vanished."""

    KIND: ClassVar[int] = 140
    SCHEMA: ClassVar = (("partial", ARRAY), ("uploaded", IDS), ("dropped", IDS))
    partial: np.ndarray
    uploaded: tuple[int, ...]
    dropped: tuple[int, ...]


@record_kind
@dataclass(frozen=True, repr=False)
class _Revealed(Record):
    KIND: ClassVar[int] = 141
    SCHEMA: ClassVar = (("revealed", U64),)
    revealed: int


class PrgScheme(Scheme):
    name = "prg"
    min_group_floor = 2

    def participant_table(self) -> dict[tuple[ParticipantStage, MessageKind], ParticipantStage]:
        return {
            (P.READY, K.ROUND_START): P.UPLOADED,
            (P.UPLOADED, K.REVEAL_REQUEST): P.UPLOADED,
        }

    def server_table(self) -> dict[tuple[ServerStage, Event], frozenset[ServerStage]]:
        after = frozenset({S.COLLECTING_UPLOADS, S.IDLE, S.COLLECTING_REVEALS})
        return {
            (S.COLLECTING_UPLOADS, K.UPLOAD): after,
            (S.COLLECTING_UPLOADS, Control.DEADLINE): after - {S.COLLECTING_UPLOADS},
            (S.COLLECTING_REVEALS, K.REVEAL_RESPONSE): frozenset({S.COLLECTING_REVEALS, S.IDLE}),
            (S.COLLECTING_REVEALS, Control.DEADLINE): frozenset({S.IDLE}),
        }

    # -- participant -----------------------------------------------------------------------

    def contribute(self, participant: Participant, delta: np.ndarray, count: int) -> list[Message]:
        x = participant.encode_update(delta, count)
        params = participant.params
        apply_pair_masks(
            x,
            participant.round_keys,
            owner=participant.id,
            session_id=participant.session_id,
            round_number=participant.round,
            cipher=params.cipher,
        )
        participant.scheme_state = False  # no keys revealed yet this round
        return [Upload(participant.session_id, participant.round, participant.id, x)]

    def participant_handlers(self) -> Mapping[MessageKind, ParticipantHandler]:
        return {K.REVEAL_REQUEST: _reveal}

    def encode_participant_state(self, state: Any) -> bytes:
        return b"" if state is None else _Revealed(int(bool(state))).to_bytes()

    def decode_participant_state(self, data: bytes) -> Any:
        return bool(_Revealed.from_bytes(data).revealed) if data else None

    # -- server ----------------------------------------------------------------------------

    def server_checks(self) -> Mapping[MessageKind, ServerCheck]:
        return {
            K.UPLOAD: lambda server, msg: check_upload(server, msg, field=False),
            K.REVEAL_RESPONSE: _check_reveal,
        }

    def server_closers(self) -> Mapping[ServerStage, ServerCloser]:
        return {S.COLLECTING_UPLOADS: _close_uploads, S.COLLECTING_REVEALS: _close_reveals}

    def encode_server_data(self, data: Any) -> bytes:
        return b"" if data is None else data.to_bytes()

    def decode_server_data(self, data: bytes) -> Any:
        return _Recovery.from_bytes(data) if data else None


def _reveal(participant: Participant, msg: RevealRequest) -> list[Message]:
    """Reveal this round's pair keys with the members the server says vanished."""
    params = participant.params
    participant.check_round(msg.round)
    if participant.scheme_state:
        raise ReplayedMessage(f"round {msg.round}'s keys were already revealed once")
    group = participant.group
    if participant.id in msg.dropped or not set(msg.dropped) <= set(group):
        raise UnknownSender(
            f"round {msg.round}: the vanished members {list(msg.dropped)} must be other "
            f"members of the group"
        )
    survivors = len(group) - len(msg.dropped)
    if survivors < params.min_group_size:
        raise GroupTooSmall(
            f"round {msg.round}: revealing keys would leave {survivors} survivors, below "
            f"min_group_size={params.min_group_size}; refused"
        )
    participant.scheme_state = True
    keys = tuple(participant.round_keys[p] for p in msg.dropped)
    return [
        RevealResponse(participant.session_id, msg.round, participant.id, msg.dropped, keys)
    ]


def _check_reveal(server: Server, msg: RevealResponse) -> None:
    recovery = server.open.data
    if tuple(msg.peers) != recovery.dropped:
        raise MalformedMessage(
            f"participant {msg.sender} revealed keys for {list(msg.peers)}; "
            f"asked for {list(recovery.dropped)}"
        )


def _close_uploads(server: Server) -> list[Envelope]:
    uploads = {p: m.payload for p, m in server.received(Upload).items()}
    aggregate = ring_sum(list(uploads.values())) if uploads else None
    survivors = tuple(uploads)
    dropped = tuple(p for p in server.open.group if p not in uploads)
    if not dropped:
        return server.apply_secure(aggregate, survivors)
    if len(survivors) < server.config.min_group_size or aggregate is None:
        return server.abort(
            f"{len(survivors)} uploads; min_group_size={server.config.min_group_size}"
        )
    request = RevealRequest(server.session_id, server.round, dropped)
    return server.next_phase(
        S.COLLECTING_REVEALS,
        frozenset(survivors),
        [Envelope(p, request) for p in survivors],
        _Recovery(aggregate, survivors, dropped),
    )


def _close_reveals(server: Server) -> list[Envelope]:
    recovery: _Recovery = server.open.data
    responses = server.received(RevealResponse)
    if set(responses) != set(recovery.uploaded):
        missing = sorted(set(recovery.uploaded) - set(responses))
        return server.abort(f"members {missing} vanished during dropout recovery")
    aggregate = recovery.partial.copy()
    for survivor, response in responses.items():
        for peer, key in zip(response.peers, response.round_keys, strict=True):
            remove_pair_mask(
                aggregate,
                key,
                owner=survivor,
                peer=peer,
                session_id=server.session_id,
                round_number=server.round,
                cipher=server.config.cipher,
            )
    return server.apply_secure(aggregate, recovery.uploaded)


SCHEME = PrgScheme()
