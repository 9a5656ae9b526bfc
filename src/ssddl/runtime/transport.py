"""The transport interface and its in-memory implementation that counts every byte.

The protocol state machines never see a transport: a driver takes their envelopes, hands them
to a transport, and feeds what arrives back in. A transport moves *wire bytes* — the
in-memory one encodes and decodes every message exactly as a network transport would, so the
bytes it counts are the bytes a real deployment sends.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from ssddl.protocol.messages import SERVER, Message, MessageKind

__all__ = ["Delivery", "InMemoryTransport", "TrafficRecord", "Transport"]


@dataclass(frozen=True)
class Delivery:
    sender: int
    recipient: int
    data: bytes


@dataclass(frozen=True)
class TrafficRecord:
    round: int
    kind: MessageKind
    sender: int
    recipient: int
    nbytes: int


class Transport(Protocol):
    """Moves encoded messages between the server (address 0) and participants (1, 2, …)."""

    def send(self, sender: int, recipient: int, message: Message) -> None: ...

    def receive(self) -> Delivery | None: ...


#: A hook that sees every frame in flight and may replace it (tamper) or drop it (None).
Interceptor = Callable[[Delivery], Delivery | None]


class InMemoryTransport:
    """A FIFO of wire frames in one process, with a traffic log.

    ``round`` is set by the driver so that each frame is attributed to the round it belongs
    to (Init traffic is round −1).
    """

    def __init__(self, *, interceptor: Interceptor | None = None) -> None:
        self._queue: deque[Delivery] = deque()
        self.records: list[TrafficRecord] = []
        self.round = -1
        self.interceptor = interceptor

    def send(self, sender: int, recipient: int, message: Message) -> None:
        data = message.encode()
        self.records.append(TrafficRecord(self.round, message.KIND, sender, recipient, len(data)))
        self._queue.append(Delivery(sender, recipient, data))

    def inject(self, delivery: Delivery) -> None:
        """Put raw bytes on the wire (tests: malformed, replayed or forged frames)."""
        self._queue.append(delivery)

    def receive(self) -> Delivery | None:
        while self._queue:
            delivery = self._queue.popleft()
            if self.interceptor is not None:
                replaced = self.interceptor(delivery)
                if replaced is None:
                    continue
                delivery = replaced
            return delivery
        return None

    # -- accounting ------------------------------------------------------------------------

    def bytes_by_participant(
        self, round_number: int | None = None, kinds: Iterable[MessageKind] | None = None
    ) -> dict[int, dict[str, int]]:
        """{participant: {"up": bytes sent to the server, "down": bytes received}}."""
        wanted = set(kinds) if kinds is not None else None
        out: dict[int, dict[str, int]] = defaultdict(lambda: {"up": 0, "down": 0})
        for rec in self.records:
            if round_number is not None and rec.round != round_number:
                continue
            if wanted is not None and rec.kind not in wanted:
                continue
            if rec.sender != SERVER:
                out[rec.sender]["up"] += rec.nbytes
            if rec.recipient != SERVER:
                out[rec.recipient]["down"] += rec.nbytes
        return dict(out)

    def bytes_by_kind(self, round_number: int | None = None) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for rec in self.records:
            if round_number is None or rec.round == round_number:
                out[rec.kind.name.lower()] += rec.nbytes
        return dict(out)

    def total_bytes(self) -> int:
        return sum(rec.nbytes for rec in self.records)
