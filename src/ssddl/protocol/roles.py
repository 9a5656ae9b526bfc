"""What a scheme may see of a member and of the server's round (STYLE §18).

A scheme (:mod:`ssddl.protocol.schemes`) is handed the :class:`~ssddl.protocol.participant.
Participant` or the :class:`~ssddl.protocol.server.Server` that calls it, but types against
these roles only: :class:`MemberRole` and :class:`ServerRole` list every attribute and method
scheme code touches, and nothing else. The participant and the server satisfy them
structurally (mypy checks it where they pass themselves to a scheme); scheme code never
imports either class, not even for type checking, so a scheme's surface is stated here, in
one place, and a change to the hosts that breaks it shows up as a type error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple, Protocol, TypeVar, runtime_checkable

import numpy as np

from ssddl.hazmat.codec import FixedPoint
from ssddl.hazmat.rand import RewindableSource
from ssddl.protocol.config import SessionParams
from ssddl.protocol.masks import RoundKeys
from ssddl.protocol.messages import Message, PlainUpload
from ssddl.protocol.ports import MaskBuilder, PendingMask
from ssddl.protocol.stages import BaseServerStage

__all__ = ["Envelope", "MaskPrecomputer", "MemberRole", "OpenRound", "ServerRole"]

M = TypeVar("M", bound=Message)


class Envelope(NamedTuple):
    """A server message and the participant it goes to."""

    recipient: int
    message: Message


class MemberRole(Protocol):
    """A member of a session, as its scheme sees it: the open round's group and keys, its
    randomness and mask builder, its encoding and signature, and the scheme's own round
    state (``scheme_state``, persisted by the scheme's ``encode_participant_state``)."""

    #: the member's id (its key in the roster)
    id: int
    session_id: bytes
    #: the open round (-1 before the first)
    round: int
    #: the open round's group, sorted
    group: tuple[int, ...]
    #: the open round's pair mask keys and pair share-sealing keys, by peer
    round_keys: dict[int, bytes]
    share_keys: dict[int, bytes]
    #: AEAD keys agreed this round, by peer: (share key, derived AEAD key)
    aead_keys: dict[int, tuple[bytes, bytes]]
    #: the digest of the model this round's group was sent (:mod:`ssddl.protocol.binding`)
    model_digest: bytes
    #: the scheme's state of the open round
    scheme_state: Any
    #: the set of members signed this round (the consistency check)
    signed_set: tuple[int, ...]
    #: seconds spent in the round's steps ("train", "share")
    timings: dict[str, float]
    #: the member's randomness: every draw a scheme makes comes from here
    random: RewindableSource
    #: where the member's masks are built
    masks: MaskBuilder
    #: the model's length M
    model_size: int

    @property
    def params(self) -> SessionParams:
        """The session's resolved parameters."""
        ...

    @property
    def codec(self) -> FixedPoint:
        """The session's fixed-point code."""
        ...

    @property
    def min_contributors(self) -> int:
        """The fewest contributors for which the member releases anything that completes a
        round."""
        ...

    @property
    def roster(self) -> Mapping[int, bytes]:
        """Every participant's public identity key, by id."""
        ...

    def check_round(self, round_number: int) -> None:
        """Refuse a message of another round than the open one."""
        ...

    def encode_update(
        self, delta: np.ndarray, count: int, *, onto: np.ndarray | None = None
    ) -> np.ndarray:
        """x_i: the clipped (weighted) change in fixed point plus its count word (added onto
        ``onto`` in place, if given)."""
        ...

    def sign(self, message: bytes) -> bytes:
        """An Ed25519 signature with the member's identity key."""
        ...

    def take_seed(self, size: int) -> bytes:
        """A fresh secret seed of ``size`` bytes."""
        ...

    def take_precomputed(self) -> PendingMask | None:
        """The mask built for the open round before the update existed, once (or None)."""
        ...

    def give_back_draws(self, pending: PendingMask) -> None:
        """Return the randomness drawn early for a refused update to the random source."""
        ...


@runtime_checkable
class MaskPrecomputer(Protocol):
    """A scheme whose masks can be built from the round keys before the update exists (on
    the member's :class:`~ssddl.protocol.ports.MaskBuilder`)."""

    def precompute(self, participant: MemberRole, keys: RoundKeys) -> PendingMask:
        """Start building ``participant``'s combined mask of ``keys.round_number`` (and what
        else the share step can do before the update exists)."""
        ...

    def precompute_ahead(self, participant: MemberRole, keys: RoundKeys) -> PendingMask | None:
        """:meth:`precompute` before the round starts (None: not now, nothing was drawn)."""
        ...


class OpenRound(Protocol):
    """The server's open round, as a scheme reads it."""

    @property
    def group(self) -> tuple[int, ...]:
        """The round's group, sorted."""
        ...

    @property
    def data(self) -> Any:
        """The scheme's data of the open phase (set by :meth:`ServerRole.next_phase`)."""
        ...


class ServerRole(Protocol):
    """The server, as a scheme sees it while one of its rounds is open: the session's
    parameters and members, the open round and what arrived in its phase, and the ways a
    phase ends — the next phase, ParaUpdate (secure or plain) or an abort."""

    session_id: bytes
    #: the open round's number
    round: int
    #: the model's length M
    model_size: int
    #: the members in the key directory
    registered: tuple[int, ...]

    @property
    def config(self) -> SessionParams:
        """The session's resolved parameters."""
        ...

    @property
    def open(self) -> OpenRound:
        """The open round."""
        ...

    @property
    def roster(self) -> Mapping[int, bytes]:
        """Every participant's public identity key, by id."""
        ...

    def graph_seed(self) -> bytes:
        """The session's pairing-graph seed."""
        ...

    def model_digest(self) -> bytes:
        """The digest of the model the open round's group was sent."""
        ...

    def received(self, kind: type[M]) -> dict[int, M]:
        """The messages of ``kind`` of the open phase, by sender id."""
        ...

    def summed(self) -> np.ndarray | None:
        """The running sum of the phase's summed uploads (None: none arrived)."""
        ...

    def next_phase(
        self,
        stage: BaseServerStage,
        expected: frozenset[int],
        envelopes: list[Envelope],
        data: Any,
    ) -> list[Envelope]:
        """Open the next phase of the round, waiting for ``expected``; ``envelopes`` go out."""
        ...

    def apply_secure(
        self, aggregate: np.ndarray | None, contributors: tuple[int, ...]
    ) -> list[Envelope]:
        """ParaUpdate from Σ x_i (ring words, count word last)."""
        ...

    def apply_plain(self, uploads: Mapping[int, PlainUpload]) -> list[Envelope]:
        """ParaUpdate from clear changes."""
        ...

    def abort(self, reason: str) -> list[Envelope]:
        """End the round without an update."""
        ...
