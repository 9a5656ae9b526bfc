"""The seam between the server and its participants, shaped like Flower's ``Grid``.

The server reaches participants only through an :class:`Exchange`: send a batch of frames,
get back the replies that arrived before a timeout — what ``Grid.send_and_receive`` does. The
:class:`Driver` runs the server's state machine over any exchange: the in-memory one
(:mod:`ssddl.runtime.inmemory`) and the Flower one (:mod:`ssddl.runtime.flower`) alike.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from time import perf_counter
from typing import Protocol

from ssddl.exceptions import ProtocolError, SSDDLError
from ssddl.protocol.messages import SERVER, decode_message, kind_of
from ssddl.protocol.server import Envelope, RoundOutcome, Server

__all__ = ["Driver", "Exchange", "Frame", "Rejection", "frame_kind"]

_SEQUENCE = itertools.count()


@dataclass(frozen=True)
class Frame:
    """One encoded protocol message (``Message.encode()`` bytes) and its two ends."""

    sender: int  #: protocol id: 0 = server, participants 1..N
    recipient: int
    data: bytes = field(repr=False)


def frame_kind(data: bytes) -> str:
    """The message kind named in a frame's header, for logs ("?" if it has none)."""
    try:
        return kind_of(data[5]).name.lower()
    except (IndexError, ValueError):
        return "?"


class Exchange(Protocol):
    def send_and_receive(
        self, frames: Sequence[Frame], *, timeout: float | None, round_number: int = -1
    ) -> list[Frame]:
        """Deliver every frame to its recipient (one batch per recipient), wait at most
        ``timeout`` seconds, return every reply frame that arrived. A recipient may reply
        with zero or more frames. The sender of a reply is the transport's authenticated idea
        of who sent it, never a value read from the payload. ``round_number`` labels the
        traffic (−1 for Init)."""
        ...


@dataclass(frozen=True)
class Rejection:
    """A message that was refused, and by whom — the error's class and text, never a payload."""

    round: int
    at: int  #: 0 = server, else the participant that refused
    sender: int
    kind: str
    error: str
    detail: str
    seq: int = field(default_factory=lambda: next(_SEQUENCE), compare=False, repr=False)


def rejection(round_number: int, at: int, sender: int, kind: str, exc: Exception) -> Rejection:
    return Rejection(round_number, at, sender, kind, type(exc).__name__, str(exc))


class Driver:
    """Runs the server's side of a session over an exchange: Init, rounds, the end.

    A phase ends when every awaited reply has arrived, or when a batch's replies are in and
    the server still waits (the exchange's timeout passed): then the server's ``deadline()``
    goes on with what arrived.

    ``defer_idle=True`` saves round trips on a slow transport: frames the server sends when
    it waits for nothing (the key directory, a round's end, the session's end) expect no
    reply, so they are held and go out in front of the next batch to the same recipients
    (in order: every participant handles its frames in sequence); :meth:`finish` sends what
    is still held.
    """

    #: a phase that keeps producing work this many times over is a bug, not a network
    MAX_STEPS = 10_000

    def __init__(
        self,
        server: Server,
        exchange: Exchange,
        *,
        timeout: float | None = None,
        on_outcome: Callable[[RoundOutcome], None] | None = None,
        defer_idle: bool = False,
    ) -> None:
        self.server = server
        self.defer_idle = defer_idle
        self._held: list[Frame] = []
        self.exchange = exchange
        self.timeout = timeout
        self.server_rejections: list[Rejection] = []
        self.server_seconds = 0.0
        self._on_outcome = on_outcome
        self._round_label = -1

    @property
    def rejections(self) -> list[Rejection]:
        """Every refused message, at the server and (when the exchange reports them) at the
        participants, in the order they happened."""
        remote: list[Rejection] = list(getattr(self.exchange, "rejections", []))
        return sorted(self.server_rejections + remote, key=lambda r: r.seq)

    # -- session ---------------------------------------------------------------------------

    def init(self) -> None:
        """Init: announce, collect and distribute keys."""
        self._round_label = -1
        self.run(self._timed(self.server.start))

    def round(self) -> RoundOutcome:
        """SelectGroup → LocalTrain → ParaShare → ParaUpdate for one round."""
        self.server_seconds = 0.0
        self._round_label = self.server.round + 1
        self.run(self._timed(self.server.start_round))
        outcome = self.server.history[-1]
        if self._on_outcome is not None:
            self._on_outcome(outcome)
        return outcome

    def finish(self) -> None:
        self.run(self._timed(self.server.finish))
        self.flush()

    def flush(self) -> None:
        """Send the frames held by ``defer_idle`` (their replies, if any, are fed as usual)."""
        held, self._held = self._held, []
        if held:
            self.feed(
                self.exchange.send_and_receive(
                    held, timeout=self.timeout, round_number=self._round_label
                )
            )

    def start_round(self) -> list[Frame]:
        """SelectGroup only: send the round's start and return the replies unprocessed
        (tests that hold messages back use this, then :meth:`run`)."""
        self.server_seconds = 0.0
        self._round_label = self.server.round + 1
        return self._send(self._timed(self.server.start_round))

    # -- loop ------------------------------------------------------------------------------

    def run(self, envelopes: Sequence[Envelope] = ()) -> None:
        """Send ``envelopes`` and keep going until the server waits for nothing."""
        pending = list(envelopes)
        for _ in range(self.MAX_STEPS):
            out = self.feed(self._send(pending))
            if out:
                pending = out
                continue
            if not self.server.waiting:
                return
            pending = self._timed(self.server.deadline)
        raise ProtocolError("the session did not settle; the server keeps producing messages")

    def feed(self, replies: Sequence[Frame]) -> list[Envelope]:
        """Hand reply frames to the server; return what it wants sent next."""
        out: list[Envelope] = []
        for frame in replies:
            kind = frame_kind(frame.data)
            try:
                message = decode_message(frame.data)
                out += self._timed(partial(self.server.handle, frame.sender, message))
            except SSDDLError as exc:
                self.server_rejections.append(
                    rejection(self._round_label, SERVER, frame.sender, kind, exc)
                )
        return out

    def _send(self, envelopes: Sequence[Envelope]) -> list[Frame]:
        # One message to many recipients (a round's start carries the model) is encoded once.
        encoded: dict[int, bytes] = {}
        frames = []
        for env in envelopes:
            data = encoded.get(id(env.message))
            if data is None:
                data = encoded[id(env.message)] = env.message.encode()
            frames.append(Frame(SERVER, env.recipient, data))
        if self.defer_idle:
            if not self.server.waiting:
                self._held += frames
                return []
            frames, self._held = self._held + frames, []
        return self.exchange.send_and_receive(
            frames, timeout=self.timeout, round_number=self._round_label
        )

    def _timed(self, call: Callable[[], list[Envelope]]) -> list[Envelope]:
        started = perf_counter()
        out = call()
        self.server_seconds += perf_counter() - started
        return out
