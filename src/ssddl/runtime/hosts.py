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

from ssddl.protocol.messages import decode_message
from ssddl.protocol.participant import Participant

__all__ = ["LiveHost", "ParticipantHost", "PersistedHost"]


class ParticipantHost(Protocol):
    """Where a participant lives: frames in, reply frames out (SSDDLError on refusal)."""

    def handle(self, data: bytes) -> list[bytes]: ...


class LiveHost:
    """A participant kept as a Python object between messages."""

    def __init__(self, participant: Participant) -> None:
        self.participant = participant

    def handle(self, data: bytes) -> list[bytes]:
        return [m.encode() for m in self.participant.handle(decode_message(data))]


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
        replies = participant.handle(decode_message(data))
        self.state = participant.to_bytes()
        self.participant = participant
        return [m.encode() for m in replies]
