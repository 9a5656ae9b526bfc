"""Schemes whose shares travel through the server: ``explicit`` and ``shamir``.

Round: each member splits x_i into one share per member, seals every share for its receiver
(AEAD under a key derived from the pair's round key; associated data = session, round,
sender, receiver) and sends the bundle; the server relays to each contributor the ciphertexts
addressed to it; each contributor opens them, adds them to its own share and uploads the sum.
A subclass says how to split and how to add two shares, and how many contributors the round
needs.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ssddl.exceptions import MalformedMessage, UnexpectedMessage, UnknownSender
from ssddl.hazmat.aead import open_sealed, seal
from ssddl.hazmat.keys import derive_key
from ssddl.protocol.messages import (
    Message,
    MessageKind,
    ShareBundle,
    ShareDelivery,
    Upload,
)
from ssddl.protocol.schemes._common import check_upload
from ssddl.protocol.schemes.base import ParticipantHandler, Scheme, ServerCheck, ServerCloser
from ssddl.protocol.server import Envelope
from ssddl.protocol.stages import Control, Event, ParticipantStage, ServerStage
from ssddl.protocol.state import Record, record_kind
from ssddl.protocol.wire import ARRAY, IDS

if TYPE_CHECKING:
    from ssddl.protocol.participant import Participant
    from ssddl.protocol.server import Server

__all__ = ["SHARE_AEAD_PURPOSE", "RelayedScheme"]

SHARE_AEAD_PURPOSE = b"ssddl/share-aead/v1"

K = MessageKind
P = ParticipantStage
S = ServerStage


@record_kind
@dataclass(frozen=True, repr=False)
class _OwnShare(Record):
    """The member's own share, kept between its bundle and the delivery (a secret)."""

    KIND: ClassVar[int] = 150
    SCHEMA: ClassVar = (("share", ARRAY),)
    share: np.ndarray


@record_kind
@dataclass(frozen=True, repr=False)
class _Contributors(Record):
    KIND: ClassVar[int] = 151
    SCHEMA: ClassVar = (("contributors", IDS),)
    contributors: tuple[int, ...]


def aead_key(participant: Participant, peer: int) -> bytes:
    return derive_key(participant.round_keys[peer], SHARE_AEAD_PURPOSE, participant.session_id)


class RelayedScheme(Scheme):
    first_stage = ServerStage.COLLECTING_SHARES

    @abstractmethod
    def split(self, participant: Participant, x: np.ndarray) -> list[np.ndarray]:
        """One share of x_i per member of the round's group, in group order."""

    @abstractmethod
    def add(self, total: np.ndarray, share: np.ndarray, sender: int) -> np.ndarray:
        """``total + share`` in the scheme's algebra (the share is checked first)."""

    @abstractmethod
    def needed(self, server: Server) -> int:
        """How many members must have shared for the round to go on."""

    @abstractmethod
    def aggregate(self, server: Server, uploads: dict[int, np.ndarray]) -> list[Envelope]:
        """ParaUpdate from the uploads of the contributors."""

    def participant_table(self) -> dict[tuple[ParticipantStage, MessageKind], ParticipantStage]:
        return {
            (P.READY, K.ROUND_START): P.SHARED,
            (P.SHARED, K.SHARE_DELIVERY): P.UPLOADED,
            (P.SHARED, K.ROUND_END): P.READY,  # round aborted before delivery
        }

    def server_table(self) -> dict[tuple[ServerStage, Event], frozenset[ServerStage]]:
        after_shares = frozenset({S.COLLECTING_UPLOADS, S.IDLE})
        return {
            (S.COLLECTING_SHARES, K.SHARE_BUNDLE): frozenset(
                {S.COLLECTING_SHARES, S.COLLECTING_UPLOADS}
            ),
            (S.COLLECTING_SHARES, Control.DEADLINE): after_shares,
            (S.COLLECTING_UPLOADS, K.UPLOAD): after_shares,
            (S.COLLECTING_UPLOADS, Control.DEADLINE): frozenset({S.IDLE}),
        }

    # -- participant -----------------------------------------------------------------------

    def contribute(self, participant: Participant, delta: np.ndarray, count: int) -> list[Message]:
        x = participant.encode_update(delta, count)
        group = participant.group
        by_member = dict(zip(group, self.split(participant, x), strict=True))
        participant.scheme_state = by_member[participant.id]
        others = tuple(p for p in group if p != participant.id)
        ciphertexts = tuple(
            seal(
                aead_key(participant, peer),
                by_member[peer].astype(by_member[peer].dtype.newbyteorder("<")).tobytes(),
                session_id=participant.session_id,
                round_number=participant.round,
                sender=participant.id,
                receiver=peer,
                nonce=participant.random.random_bytes(12),
                algorithm=participant.params.aead,
            )
            for peer in others
        )
        bundle = ShareBundle(
            participant.session_id, participant.round, participant.id, others, ciphertexts
        )
        return [bundle]

    def participant_handlers(self) -> Mapping[MessageKind, ParticipantHandler]:
        return {K.SHARE_DELIVERY: self._on_delivery}

    def _on_delivery(self, participant: Participant, msg: ShareDelivery) -> list[Message]:
        participant.check_round(msg.round)
        if participant.id not in msg.contributors or not set(msg.contributors) <= set(
            participant.group
        ):
            raise UnknownSender(
                f"the contributors of round {msg.round} do not fit its group {participant.group}"
            )
        expected = sorted(p for p in msg.contributors if p != participant.id)
        if sorted(msg.senders) != expected:
            raise MalformedMessage(
                f"round {msg.round}: shares from {sorted(msg.senders)} but the contributors "
                f"are {expected}; every contributor's share is needed"
            )
        started = perf_counter()
        own = participant.scheme_state
        if own is None:
            raise UnexpectedMessage(f"round {msg.round}: no own share to add the delivery to")
        total = own.copy()
        for sender, blob in zip(msg.senders, msg.ciphertexts, strict=True):
            plain = open_sealed(
                aead_key(participant, sender),
                blob,
                session_id=participant.session_id,
                round_number=msg.round,
                sender=sender,
                receiver=participant.id,
                algorithm=participant.params.aead,
            )
            if len(plain) != total.nbytes:
                raise MalformedMessage(
                    f"the share from participant {sender} has {len(plain)} bytes; "
                    f"expected {total.nbytes}"
                )
            share = np.frombuffer(plain, dtype=total.dtype.newbyteorder("<")).astype(total.dtype)
            total = self.add(total, share, sender)
        participant.scheme_state = None
        timings = participant.timings
        timings["share"] = timings.get("share", 0.0) + perf_counter() - started
        return [Upload(participant.session_id, msg.round, participant.id, total)]

    def encode_participant_state(self, state: Any) -> bytes:
        return b"" if state is None else _OwnShare(state).to_bytes()

    def decode_participant_state(self, data: bytes) -> Any:
        return _OwnShare.from_bytes(data).share if data else None

    # -- server ----------------------------------------------------------------------------

    def server_checks(self) -> Mapping[MessageKind, ServerCheck]:
        return {K.SHARE_BUNDLE: _check_bundle, K.UPLOAD: self._check_upload}

    def _check_upload(self, server: Server, msg: Upload) -> None:
        check_upload(server, msg, field=self.field_upload)

    field_upload: ClassVar[bool] = False

    def server_closers(self) -> Mapping[ServerStage, ServerCloser]:
        return {S.COLLECTING_SHARES: self._close_shares, S.COLLECTING_UPLOADS: self._close_uploads}

    def _close_shares(self, server: Server) -> list[Envelope]:
        bundles = server.received(ShareBundle)
        contributors = tuple(bundles)
        needed = self.needed(server)
        if len(contributors) < needed:
            return server.abort(
                f"{len(contributors)} of {len(server.open.group)} members shared; "
                f"{needed} are needed"
            )
        deliveries = []
        for member in contributors:
            senders = tuple(p for p in contributors if p != member)
            blobs = tuple(
                bundles[p].ciphertexts[bundles[p].receivers.index(member)] for p in senders
            )
            delivery = ShareDelivery(server.session_id, server.round, contributors, senders, blobs)
            deliveries.append(Envelope(member, delivery))
        return server.next_phase(
            S.COLLECTING_UPLOADS, frozenset(contributors), deliveries, _Contributors(contributors)
        )

    def _close_uploads(self, server: Server) -> list[Envelope]:
        uploads = {p: m.payload for p, m in server.received(Upload).items()}
        return self.aggregate(server, uploads)

    def encode_server_data(self, data: Any) -> bytes:
        return b"" if data is None else data.to_bytes()

    def decode_server_data(self, data: bytes) -> Any:
        return _Contributors.from_bytes(data) if data else None


def contributors_of(server: Server) -> tuple[int, ...]:
    data: _Contributors = server.open.data
    return data.contributors


def _check_bundle(server: Server, msg: ShareBundle) -> None:
    expected = tuple(p for p in server.open.group if p != msg.sender)
    if tuple(sorted(msg.receivers)) != expected:
        raise MalformedMessage(
            f"participant {msg.sender} addressed shares to {sorted(msg.receivers)}; "
            f"the other members are {list(expected)}"
        )
