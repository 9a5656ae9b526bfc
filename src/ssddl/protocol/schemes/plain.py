"""Mode ``plain``: no sharing. The clipped change goes up in the clear — the reference every
secure mode is checked against, never a private mode."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ssddl.exceptions import MalformedMessage, NonFiniteError
from ssddl.protocol.config import SessionParams
from ssddl.protocol.messages import Kind, Message, MessageKind, PlainUpload
from ssddl.protocol.roles import Envelope, MemberRole, ServerRole
from ssddl.protocol.schemes._common import Guarantee
from ssddl.protocol.schemes.base import Scheme, ServerCheck, ServerCloser
from ssddl.protocol.stages import (
    BaseServerStage,
    Control,
    ParticipantStage,
    ParticipantTable,
    ServerStage,
    ServerTable,
    Variant,
)

__all__ = [
    "ONE_UPLOAD_PARTICIPANT_TABLE",
    "SCHEME",
    "PlainScheme",
    "one_upload_server_table",
]

K = MessageKind
P = ParticipantStage
S = ServerStage


#: A round of one upload per member and nothing after it (plain, and baselines like it).
ONE_UPLOAD_PARTICIPANT_TABLE: ParticipantTable = {(P.READY, K.ROUND_START): P.UPLOADED}


def one_upload_server_table(
    upload: Kind,
) -> ServerTable:
    """The server side of a one-upload round: collect ``upload`` messages until every member
    has sent one, or the deadline."""
    return {
        (S.COLLECTING_UPLOADS, upload): frozenset({S.COLLECTING_UPLOADS, S.IDLE}),
        (S.COLLECTING_UPLOADS, Control.DEADLINE): frozenset({S.IDLE}),
    }


class PlainScheme(Scheme):
    name = "plain"
    secure = False
    needs_keys = False

    def guarantee(self, params: SessionParams) -> Guarantee:
        return Guarantee(
            0,
            params.group_size - params.min_group_size,
            1,
            "no protection: every change is sent in the clear (the reference run)",
        )

    def participant_table(self, variant: Variant) -> ParticipantTable:
        return ONE_UPLOAD_PARTICIPANT_TABLE

    def server_table(self, variant: Variant) -> ServerTable:
        return one_upload_server_table(K.PLAIN_UPLOAD)

    def contribute(self, participant: MemberRole, delta: np.ndarray, count: int) -> list[Message]:
        clip = participant.params.clip
        clipped = np.clip(delta, -clip, clip).astype(np.float32)
        return [
            PlainUpload(participant.session_id, participant.round, participant.id, count, clipped)
        ]

    def server_checks(self) -> Mapping[Kind, ServerCheck]:
        return {K.PLAIN_UPLOAD: _check}

    def server_closers(self) -> Mapping[BaseServerStage, ServerCloser]:
        return {S.COLLECTING_UPLOADS: _close}


def _check(server: ServerRole, msg: PlainUpload) -> None:
    if msg.delta.shape != (server.model_size,):
        raise MalformedMessage(
            f"upload from participant {msg.sender} has {msg.delta.size} entries; "
            f"expected {server.model_size}"
        )
    if not np.isfinite(msg.delta).all():
        raise NonFiniteError(f"upload from participant {msg.sender} is not finite")
    if np.abs(msg.delta).max(initial=0.0) > server.config.clip:
        raise MalformedMessage(f"upload from participant {msg.sender} exceeds clip")
    limit = server.config.max_samples if server.config.weighted else None
    if msg.num_samples < 1 or (limit is not None and msg.num_samples > limit):
        raise MalformedMessage(f"upload from participant {msg.sender}: bad num_samples")


def _close(server: ServerRole) -> list[Envelope]:
    uploads = server.received(PlainUpload)
    if len(uploads) < server.config.min_group_size:
        return server.abort(
            f"{len(uploads)} uploads; min_group_size={server.config.min_group_size}"
        )
    return server.apply_plain(uploads)


SCHEME = PlainScheme()
