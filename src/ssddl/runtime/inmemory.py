"""The in-memory exchange: participants in this process, every byte counted, faults injected.

Every frame is encoded and decoded exactly as a network runtime would, so the bytes counted
here are the bytes a deployment sends. A participant lives behind a *host*
(:mod:`ssddl.runtime.hosts`: the Python object kept, or only its state bytes, rebuilt for
every message as a Flower ClientApp must).

Faults are data, applied by the exchange (never by the protocol or the driver):
:class:`Vanish` (a participant disappears for good), :class:`Delay` (a reply misses the
deadline and arrives with the next batch), :class:`Drop` (a frame is lost), :class:`Duplicate`
(a reply arrives twice) and :class:`Reorder` (a round's replies arrive in reverse order).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

from ssddl.exceptions import ConfigurationError, SSDDLError, UnknownSender
from ssddl.protocol.messages import SERVER, Kind, MessageKind, kind_of
from ssddl.runtime.exchange import Exchange, Frame, Rejection, frame_kind, rejection
from ssddl.runtime.hosts import LiveHost, ParticipantHost, PersistedHost

__all__ = [
    "Delay",
    "Drop",
    "Duplicate",
    "Fault",
    "InMemoryExchange",
    "LiveHost",
    "Metered",
    "ParticipantHost",
    "PersistedHost",
    "Reorder",
    "TrafficLog",
    "TrafficRecord",
    "Vanish",
    "VanishAt",
    "VanishPhase",
    "metered",
]


# -- faults ------------------------------------------------------------------------------


class VanishPhase(str, Enum):
    """When a vanishing participant stops answering."""

    ROUND_START = "round_start"  #: on the round's start: never trains, never shares
    AFTER_SHARE = "after_share"  #: after its first reply of the round (shares, or its upload)


@dataclass(frozen=True)
class Vanish:
    """Participant ``participant`` disappears for good at ``phase`` of the first round, from
    ``round`` on, whose group it is in; from then on it answers nothing."""

    participant: int
    round: int
    phase: VanishPhase = VanishPhase.ROUND_START

    def __post_init__(self) -> None:
        object.__setattr__(self, "phase", VanishPhase(self.phase))
        if self.participant < 1 or self.round < 0:
            raise ConfigurationError("vanish needs a participant id >= 1 and a round >= 0")


@dataclass(frozen=True)
class VanishAt:
    """Participant ``participant`` disappears for good when a frame of ``kind`` reaches it in
    round ``round`` (it never handles that frame nor anything after): a dropout at any stage."""

    participant: int
    round: int
    kind: MessageKind


@dataclass(frozen=True)
class Delay:
    """``participant``'s reply of ``kind`` in ``round`` misses the deadline: the server sees
    it only with the next batch, after it has gone on without it."""

    participant: int
    round: int
    kind: MessageKind


@dataclass(frozen=True)
class Drop:
    """The frame of ``kind`` in ``round`` to (``upward=False``) or from ``participant`` is lost."""

    participant: int
    round: int
    kind: MessageKind
    upward: bool = True


@dataclass(frozen=True)
class Duplicate:
    """``participant``'s reply of ``kind`` in ``round`` arrives twice."""

    participant: int
    round: int
    kind: MessageKind


@dataclass(frozen=True)
class Reorder:
    """Every batch of replies in ``round`` arrives in reverse order."""

    round: int


Fault = Vanish | VanishAt | Delay | Drop | Duplicate | Reorder


@dataclass(frozen=True)
class TrafficRecord:
    round: int
    kind: Kind
    sender: int
    recipient: int
    nbytes: int


#: A hook that sees every frame in flight and may replace it (tamper) or drop it (None).
Interceptor = Callable[[Frame], Frame | None]


def _matches(fault: Fault, pid: int, round_number: int, kind: str) -> bool:
    return (
        getattr(fault, "participant", None) == pid
        and fault.round == round_number
        and getattr(fault, "kind", MessageKind.UPLOAD).name.lower() == kind
    )


class TrafficLog:
    """Every frame's size, kind and ends, by round: what the metrics and the audit count."""

    records: list[TrafficRecord]

    def _log(self, frame: Frame, round_number: int) -> None:
        try:
            kind = kind_of(frame.data[5])  # a registered kind, a scheme's own too
        except (IndexError, ValueError):
            return
        self.records.append(
            TrafficRecord(round_number, kind, frame.sender, frame.recipient, len(frame.data))
        )

    def bytes_by_participant(
        self, round_number: int | None = None, kinds: Iterable[Kind] | None = None
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


class InMemoryExchange(TrafficLog):
    """Participants in this process behind the Grid-shaped seam, with a traffic log."""

    def __init__(
        self,
        hosts: Mapping[int, ParticipantHost] | None = None,
        *,
        faults: Iterable[Fault] = (),
        interceptor: Interceptor | None = None,
    ) -> None:
        self.hosts: dict[int, ParticipantHost] = dict(hosts or {})
        self.faults: tuple[Fault, ...] = tuple(faults)
        self.interceptor = interceptor
        self.records: list[TrafficRecord] = []
        self.rejections: list[Rejection] = []
        self.gone: set[int] = set()
        self._pending: list[Frame] = []
        self._round = -1

    def attach(self, hosts: Mapping[int, ParticipantHost]) -> InMemoryExchange:
        """Carry frames to ``hosts`` too (an :data:`~ssddl.runtime.session.ExchangeFactory`:
        ``Session.build(..., exchange=exchange.attach)`` keeps this very object)."""
        self.hosts.update(hosts)
        return self

    def inject(self, frame: Frame) -> None:
        """Put a raw frame for the server on the wire: it arrives with the next batch
        (tests: malformed, replayed or forged frames)."""
        self._pending.append(frame)

    # -- the seam ----------------------------------------------------------------------------

    def send_and_receive(
        self, frames: Sequence[Frame], *, timeout: float | None = None, round_number: int = -1
    ) -> list[Frame]:
        self._round = round_number
        replies: list[Frame] = []
        for frame in frames:
            self._record(frame)
            replies += self._deliver(frame)
        arrived = self._pending
        self._pending = []
        for frame in replies:
            arrived += self._arrive(frame)
        if any(isinstance(f, Reorder) and f.round == round_number for f in self.faults):
            arrived.reverse()
        return arrived

    def _deliver(self, frame: Frame) -> list[Frame]:
        """Hand one server frame to its participant; its replies, recorded, not yet arrived."""
        intercepted = self.interceptor(frame) if self.interceptor is not None else frame
        if intercepted is None:
            return []
        pid = intercepted.recipient
        kind = frame_kind(intercepted.data)
        if self._vanishes(pid, kind, before=True) or self._fault(Drop, pid, kind, upward=False):
            return []
        host = self.hosts.get(pid)
        try:
            if host is None:
                raise UnknownSender(f"no participant {pid} in this exchange")
            out = host.handle(intercepted.data)
        except SSDDLError as exc:
            self.rejections.append(rejection(self._round, pid, intercepted.sender, kind, exc))
            return []
        self._vanishes(pid, kind, before=False)
        replies = [Frame(pid, SERVER, data) for data in out]
        for reply in replies:
            self._record(reply)
        return replies

    def _arrive(self, frame: Frame) -> list[Frame]:
        """What of one participant's reply reaches the server, and when."""
        intercepted = self.interceptor(frame) if self.interceptor is not None else frame
        if intercepted is None:
            return []
        kind = frame_kind(intercepted.data)
        pid = intercepted.sender
        if self._fault(Drop, pid, kind, upward=True):
            return []
        if self._fault(Delay, pid, kind):
            self._pending.append(intercepted)
            return []
        copies = 2 if self._fault(Duplicate, pid, kind) else 1
        return [intercepted] * copies

    def _record(self, frame: Frame) -> None:
        self._log(frame, self._round)

    def _fault(self, cls: type, pid: int, kind: str, **extra: bool) -> bool:
        return any(
            isinstance(f, cls)
            and _matches(f, pid, self._round, kind)
            and all(getattr(f, k) == v for k, v in extra.items())
            for f in self.faults
        )

    def _vanishes(self, pid: int, kind: str, *, before: bool) -> bool:
        """True if ``pid`` is gone (or goes now) and must not see this frame."""
        if pid in self.gone:
            return True
        if before and self._fault(VanishAt, pid, kind):
            self.gone.add(pid)
            return True
        spec = next(
            (f for f in self.faults if isinstance(f, Vanish) and f.participant == pid), None
        )
        if spec is None or kind != "round_start" or self._round < spec.round:
            return False
        if before and spec.phase is VanishPhase.ROUND_START:
            self.gone.add(pid)
            return True
        if not before and spec.phase is VanishPhase.AFTER_SHARE:
            self.gone.add(pid)
        return False


class Metered(TrafficLog):
    """Any :class:`~ssddl.runtime.exchange.Exchange` with its traffic counted at the seam:
    every frame the server sends and every reply that reaches it. ``interceptor`` sees the
    frames going out (and may drop or replace them), as on the in-memory exchange."""

    def __init__(self, inner: Exchange) -> None:
        self.inner = inner
        self.records: list[TrafficRecord] = []
        self.interceptor: Interceptor | None = None

    @property
    def rejections(self) -> list[Rejection]:
        return list(getattr(self.inner, "rejections", []))

    def send_and_receive(
        self, frames: Sequence[Frame], *, timeout: float | None = None, round_number: int = -1
    ) -> list[Frame]:
        sent = [self.interceptor(f) if self.interceptor else f for f in frames]
        out = [f for f in sent if f is not None]
        for frame in out:
            self._log(frame, round_number)
        replies = self.inner.send_and_receive(out, timeout=timeout, round_number=round_number)
        for frame in replies:
            self._log(frame, round_number)
        return replies


def metered(exchange: Exchange) -> InMemoryExchange | Metered:
    """``exchange`` if it counts its own traffic (the in-memory one), else wrapped to."""
    return exchange if isinstance(exchange, (InMemoryExchange, Metered)) else Metered(exchange)
