"""Where a participant lives between messages: a *host* takes frames in and gives reply
frames out, so every runtime moves bytes, never Python objects.

A :class:`LiveHost` keeps the :class:`~ssddl.protocol.participant.Participant` object; a
:class:`PersistedHost` keeps only its state bytes and rebuilds it for every message, as a
Flower ClientApp must (its protocol state lives in ``context.state``). A new runtime that
runs participants in this process hands each frame to ``host.handle`` and ships the replies;
one whose participants live elsewhere (Flower) runs a host on every node.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from ssddl.protocol.messages import Message, MessageKind, decode_message
from ssddl.protocol.participant import Participant

__all__ = ["LiveHost", "ParticipantHost", "PersistedHost", "decode_broadcast"]

#: Init's broadcasts: every field immutable (bytes, ints and tuples of them), so one decoded
#: object can serve every member of this process
_SHARED_KINDS = frozenset({int(MessageKind.SESSION_ANNOUNCE), int(MessageKind.KEY_DIRECTORY)})
_last_broadcast: list[tuple[bytes, Message] | None] = [None]


def decode_broadcast(data: bytes) -> Message:
    """``decode_message(data)``, decoded once for the many members of one process that
    receive the very same frame object (Init's announcement and key directory: about 100 kB
    for 1000 members, which each of them decoded and checked again, O(N²) in all). Only
    frames whose messages hold nothing mutable are shared; every other frame, or another
    bytes object with equal contents, is decoded afresh, and a frame that fails to decode is
    never kept."""
    if len(data) < 6 or data[5] not in _SHARED_KINDS:
        return decode_message(data)
    cached = _last_broadcast[0]  # one read: a (frame, message) pair, never half of one
    if cached is not None and cached[0] is data:
        return cached[1]
    message = decode_message(data)
    _last_broadcast[0] = (data, message)  # one write: readers see the old pair or this
    return message


class ParticipantHost(Protocol):
    """Where a participant lives: frames in, reply frames out (SSDDLError on refusal)."""

    def handle(self, data: bytes) -> list[bytes]: ...


class LiveHost:
    """A participant kept as a Python object between messages."""

    def __init__(self, participant: Participant) -> None:
        self.participant = participant

    def handle(self, data: bytes) -> list[bytes]:
        return [m.encode() for m in self.participant.handle(decode_broadcast(data))]


class PersistedHost:
    """A participant kept only as its state bytes: rebuilt for every message, saved after
    it, exactly like a Flower ClientApp with ``context.state``. A refused message leaves the
    saved state as it was."""

    def __init__(self, participant: Participant, rebuild: Callable[[bytes], Participant]) -> None:
        self.state = participant.to_bytes()
        self._rebuild = rebuild
        self.participant = participant  #: the last rebuilt object (for metrics only)

    def handle(self, data: bytes) -> list[bytes]:
        participant = self._rebuild(self.state)
        replies = participant.handle(decode_broadcast(data))
        self.state = participant.to_bytes()
        self.participant = participant
        return [m.encode() for m in replies]
