"""Schemes whose shares travel through the server: ``explicit`` and ``shamir``.

Round: each member splits x_i into one share per member, seals every share for its receiver
(AEAD under a key derived from the pair's share key of the round; associated data = session,
round, sender, receiver) and sends the bundle; the server relays to each contributor the
ciphertexts addressed to it; each contributor opens them, adds them to its own share and
uploads the sum. A member refuses a contributor list that does not split the group or is
shorter than the round needs; with the consistency check it also needs the list signed by at
least t members (one more round trip). A subclass says how to split and add shares, how many
contributors a round needs, and how the server turns uploads into the sum.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from time import perf_counter
from typing import Any, ClassVar

import numpy as np

from ssddl.exceptions import MalformedMessage, UnexpectedMessage
from ssddl.hazmat.packing import pack_words, packed_size, unpack_words
from ssddl.protocol.config import SessionParams
from ssddl.protocol.consistency import answer_request, check_partition, check_signed
from ssddl.protocol.messages import (
    Kind,
    Message,
    MessageKind,
    ShareBundle,
    ShareDelivery,
    Upload,
    decode_message,
)
from ssddl.protocol.roles import Envelope, MemberRole, ServerRole
from ssddl.protocol.schemes._common import (
    check_signature,
    check_upload,
    close_signatures,
    open_from,
    request_signatures,
    seal_for,
)
from ssddl.protocol.schemes.base import ParticipantHandler, Scheme, ServerCheck, ServerCloser
from ssddl.protocol.stages import (
    BaseServerStage,
    Control,
    ParticipantStage,
    ParticipantTable,
    ServerStage,
    ServerTable,
    Variant,
)
from ssddl.protocol.state import Record, record_kind
from ssddl.protocol.wire import ARRAY, BLOBS, IDS

__all__ = ["RelayedScheme"]

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
    """The server's data after the shares phase: who shared (``included``) and who did not,
    and — until they are delivered — the bundles' frames."""

    KIND: ClassVar[int] = 151
    SCHEMA: ClassVar = (("included", IDS), ("excluded", IDS), ("bundles", BLOBS))
    included: tuple[int, ...]
    excluded: tuple[int, ...]
    bundles: tuple[bytes, ...] = ()


class RelayedScheme(Scheme):
    first_stage = ServerStage.COLLECTING_SHARES
    field_upload: ClassVar[bool] = False

    @abstractmethod
    def split(self, participant: MemberRole, x: np.ndarray) -> list[np.ndarray]:
        """One share of x_i per member of the round's group, in group order."""

    @abstractmethod
    def add(self, total: np.ndarray, share: np.ndarray, sender: int) -> np.ndarray:
        """``total + share`` in the scheme's algebra (the share is checked first)."""

    @abstractmethod
    def needed(self, params: SessionParams, group_size: int) -> int:
        """How many members must have shared for the round to go on."""

    @abstractmethod
    def aggregate(self, server: ServerRole, uploads: dict[int, np.ndarray]) -> list[Envelope]:
        """ParaUpdate from the uploads of the contributors."""

    # -- stage tables ------------------------------------------------------------------------

    def participant_table(self, variant: Variant) -> ParticipantTable:
        asked = P.SIGNED if variant.consistency else P.SHARED
        table: ParticipantTable = {
            (P.READY, K.ROUND_START): P.SHARED,
            (asked, K.SHARE_DELIVERY): P.UPLOADED,
            (P.SHARED, K.ROUND_END): P.READY,  # round aborted before delivery
        }
        if variant.consistency:
            table |= {
                (P.SHARED, K.CONSISTENCY_REQUEST): P.SIGNED,
                (P.SIGNED, K.ROUND_END): P.READY,
            }
        return table

    def server_table(self, variant: Variant) -> ServerTable:
        after_shares = S.COLLECTING_SIGNATURES if variant.consistency else S.COLLECTING_UPLOADS
        table: ServerTable = {
            (S.COLLECTING_SHARES, K.SHARE_BUNDLE): frozenset({S.COLLECTING_SHARES, after_shares}),
            (S.COLLECTING_SHARES, Control.DEADLINE): frozenset({after_shares, S.IDLE}),
            (S.COLLECTING_UPLOADS, K.UPLOAD): frozenset({S.COLLECTING_UPLOADS, S.IDLE}),
            (S.COLLECTING_UPLOADS, Control.DEADLINE): frozenset({S.IDLE}),
        }
        if variant.consistency:
            signed = frozenset({S.COLLECTING_SIGNATURES, S.COLLECTING_UPLOADS, S.IDLE})
            table |= {
                (S.COLLECTING_SIGNATURES, K.CONSISTENCY_SIGNATURE): signed,
                (S.COLLECTING_SIGNATURES, Control.DEADLINE): signed - {S.COLLECTING_SIGNATURES},
            }
        return table

    # -- participant -----------------------------------------------------------------------

    def contribute(self, participant: MemberRole, delta: np.ndarray, count: int) -> list[Message]:
        x = participant.encode_update(delta, count)
        group = participant.group
        by_member = dict(zip(group, self.split(participant, x), strict=True))
        participant.scheme_state = by_member[participant.id]
        others = tuple(p for p in group if p != participant.id)
        bits = self._wire_bits(participant.params)
        ciphertexts = tuple(
            seal_for(participant, peer, _share_bytes(by_member[peer], bits)) for peer in others
        )
        bundle = ShareBundle(
            participant.session_id, participant.round, participant.id, others, ciphertexts
        )
        return [bundle]

    def participant_handlers(self) -> Mapping[Kind, ParticipantHandler]:
        return {K.SHARE_DELIVERY: self._on_delivery, K.CONSISTENCY_REQUEST: self._on_request}

    def _on_request(self, participant: MemberRole, msg: Any) -> list[Message]:
        return answer_request(
            participant, msg, at_least=self._floor(participant), what="contributors"
        )

    def _floor(self, participant: MemberRole) -> int:
        """The fewest contributors the member shares its sum for: the scheme's need and
        the member's own floor (its policy's max_colluders + 2), whichever is larger."""
        needed = self.needed(participant.params, len(participant.group))
        return max(needed, participant.min_contributors)

    def _on_delivery(self, participant: MemberRole, msg: ShareDelivery) -> list[Message]:
        participant.check_round(msg.round)
        group = participant.group
        excluded = tuple(p for p in group if p not in msg.contributors)
        check_partition(
            group,
            msg.contributors,
            excluded,
            member=participant.id,
            at_least=self._floor(participant),
            what="contributors",
        )
        check_signed(participant, msg.contributors, excluded, msg.signers, msg.signatures)
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
        bits = self._wire_bits(participant.params)
        for sender, blob in zip(msg.senders, msg.ciphertexts, strict=True):
            share = _share_words(open_from(participant, sender, blob), total, bits, sender)
            total = self.add(total, share, sender)
        participant.scheme_state = None
        timings = participant.timings
        timings["share"] = timings.get("share", 0.0) + perf_counter() - started
        return [Upload(participant.session_id, msg.round, participant.id, total, wire_bits=bits)]

    def _wire_bits(self, params: SessionParams) -> int:
        """The width of the member's words on the wire: ``bits`` where the scheme sums in
        the ring (its shares and sums are then shares and sums in Z_(2**bits)); field
        elements travel whole."""
        return 0 if self.field_upload else params.bits

    def encode_participant_state(self, state: Any) -> bytes:
        return b"" if state is None else _OwnShare(state).to_bytes()

    def decode_participant_state(self, data: bytes) -> Any:
        return _OwnShare.from_bytes(data).share if data else None

    # -- server ----------------------------------------------------------------------------

    def server_checks(self) -> Mapping[Kind, ServerCheck]:
        return {
            K.SHARE_BUNDLE: _check_bundle,
            K.UPLOAD: self._check_upload,
            K.CONSISTENCY_SIGNATURE: check_signature,
        }

    def _check_upload(self, server: ServerRole, msg: Upload) -> None:
        check_upload(server, msg, field=self.field_upload)

    def server_closers(self) -> Mapping[BaseServerStage, ServerCloser]:
        return {
            S.COLLECTING_SHARES: self._close_shares,
            S.COLLECTING_SIGNATURES: lambda server: close_signatures(server, self._deliver),
            S.COLLECTING_UPLOADS: self._close_uploads,
        }

    def _close_shares(self, server: ServerRole) -> list[Envelope]:
        contributors = tuple(server.received(ShareBundle))
        needed = self.needed(server.config, len(server.open.group))
        if len(contributors) < needed:
            return server.abort(
                f"{len(contributors)} of {len(server.open.group)} members shared; "
                f"{needed} are needed"
            )
        excluded = tuple(p for p in server.open.group if p not in contributors)
        frames = tuple(m.encode() for m in server.received(ShareBundle).values())
        data = _Contributors(contributors, excluded, frames)
        if server.config.consistency:  # the bundles wait in the round's data
            return request_signatures(server, contributors, excluded, data)
        return self._deliver(server, (), (), data)

    def _deliver(
        self,
        server: ServerRole,
        signers: tuple[int, ...],
        signatures: tuple[bytes, ...],
        data: _Contributors | None = None,
    ) -> list[Envelope]:
        data = data if data is not None else server.open.data
        decoded = [decode_message(frame) for frame in data.bundles]
        bundles = {m.sender: m for m in decoded if isinstance(m, ShareBundle)}
        contributors = data.included
        deliveries = []
        for member in signers if server.config.consistency else contributors:
            senders = tuple(p for p in contributors if p != member)
            blobs = tuple(
                bundles[p].ciphertexts[bundles[p].receivers.index(member)] for p in senders
            )
            delivery = ShareDelivery(
                server.session_id, server.round, contributors, senders, blobs, signers, signatures
            )
            deliveries.append(Envelope(member, delivery))
        return server.next_phase(
            S.COLLECTING_UPLOADS,
            frozenset(contributors),
            deliveries,
            _Contributors(contributors, data.excluded),
        )

    def _close_uploads(self, server: ServerRole) -> list[Envelope]:
        uploads = {p: m.payload for p, m in server.received(Upload).items()}
        return self.aggregate(server, uploads)

    def encode_server_data(self, data: Any) -> bytes:
        return b"" if data is None else data.to_bytes()

    def decode_server_data(self, data: bytes) -> Any:
        return _Contributors.from_bytes(data) if data else None


def _share_bytes(share: np.ndarray, bits: int) -> bytes:
    """A share's words as sealed: little-endian, or packed in ``bits`` bits a word."""
    if bits:
        return pack_words(share, bits)
    return share.astype(share.dtype.newbyteorder("<")).tobytes()


def _share_words(plain: bytes, like: np.ndarray, bits: int, sender: int) -> np.ndarray:
    """The inverse of :func:`_share_bytes`: as many words as ``like``, of its dtype."""
    size = packed_size(like.size, bits) if bits else like.nbytes
    if len(plain) != size:
        raise MalformedMessage(
            f"the share from participant {sender} has {len(plain)} bytes; expected {size}"
        )
    if bits:
        return unpack_words(plain, like.size, bits, like.dtype)
    return np.frombuffer(plain, dtype=like.dtype.newbyteorder("<")).astype(like.dtype)


def contributors_of(server: ServerRole) -> tuple[int, ...]:
    data: _Contributors = server.open.data
    return data.included


def _check_bundle(server: ServerRole, msg: ShareBundle) -> None:
    expected = tuple(p for p in server.open.group if p != msg.sender)
    if tuple(sorted(msg.receivers)) != expected:
        raise MalformedMessage(
            f"participant {msg.sender} addressed shares to {sorted(msg.receivers)}; "
            f"the other members are {list(expected)}"
        )
