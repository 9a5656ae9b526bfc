"""The Grid-shaped seam between the server's protocol driver and a transport.

Defined here until the lead engineer moves it into ``ssddl.runtime.exchange``; the names
``Frame`` and ``Exchange`` are the ones that move.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Exchange", "Frame"]


@dataclass(frozen=True)
class Frame:  # one encoded protocol message (Message.encode() bytes)
    sender: int  # protocol id: 0 = server, participants 1..N
    recipient: int
    data: bytes


class Exchange(Protocol):
    def send_and_receive(self, frames: Sequence[Frame], *, timeout: float | None) -> list[Frame]:
        """Deliver every frame to its recipient (one batch per recipient), wait at most
        `timeout` seconds, return every reply frame that arrived (replies to the server).
        A recipient may reply with zero or more frames. The sender of a reply is the
        transport's authenticated idea of who sent it, never a value read from the payload."""
        ...
