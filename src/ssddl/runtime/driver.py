"""Drive one server and N participants through a transport, in one process.

The driver is the only code that knows both sides exist: it moves envelopes into the
transport and delivered frames into the state machines, decides when a phase's wait is over
(when nothing is left in flight, every message that can still come has come), and plays
participants that vanish. A Flower ServerApp workflow does the same with Flower's Message API:
``start``/``start_round``/``handle``/``deadline`` on the server and ``handle`` on each
participant, with the bytes of ``Message.encode`` as payload.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from functools import partial
from time import perf_counter

from ssddl.exceptions import ConfigurationError, SSDDLError
from ssddl.protocol.messages import SERVER, MessageKind, decode_message
from ssddl.protocol.participant import Participant
from ssddl.protocol.server import Envelope, RoundOutcome, Server
from ssddl.runtime.transport import InMemoryTransport

__all__ = ["Driver", "Rejection", "Vanish", "VanishPhase"]


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
class Rejection:
    """A message that was refused, and by whom — the error's class and text, never a payload."""

    round: int
    at: int  #: 0 = server, else the participant that refused
    sender: int
    kind: str
    error: str
    detail: str


class Driver:
    """Runs the message loop of one session."""

    def __init__(
        self,
        server: Server,
        participants: Mapping[int, Participant],
        transport: InMemoryTransport | None = None,
        *,
        vanish: tuple[Vanish, ...] = (),
    ) -> None:
        missing = sorted(set(server.roster) - set(participants))
        if missing:
            raise ConfigurationError(f"no participant object for roster ids {missing}")
        self.server = server
        self.participants = dict(participants)
        self.transport = transport if transport is not None else InMemoryTransport()
        self.vanish = {v.participant: v for v in vanish}
        self.gone: set[int] = set()
        self.rejections: list[Rejection] = []
        self.server_seconds = 0.0

    # -- session ---------------------------------------------------------------------------

    def init(self) -> None:
        """Init: announce, collect and distribute keys."""
        self.transport.round = -1
        self._send(self._timed(self.server.start))
        self._run_phases()

    def round(self) -> RoundOutcome:
        """SelectGroup → LocalTrain → ParaShare → ParaUpdate for one round."""
        self.server_seconds = 0.0
        self.transport.round = self.server.round + 1
        self._send(self._timed(self.server.start_round))
        self._run_phases()
        return self.server.history[-1]

    def finish(self) -> None:
        self._send(self._timed(self.server.finish))
        self._pump()

    # -- loop ------------------------------------------------------------------------------

    def _run_phases(self) -> None:
        while True:
            self._pump()
            if not self.server.waiting:
                return
            self._send(self._timed(self.server.deadline))

    def _timed(self, call: Callable[[], list[Envelope]]) -> list[Envelope]:
        started = perf_counter()
        out = call()
        self.server_seconds += perf_counter() - started
        return out

    def _send(self, envelopes: list[Envelope]) -> None:
        for env in envelopes:
            self.transport.send(SERVER, env.recipient, env.message)

    def _pump(self) -> None:
        while (delivery := self.transport.receive()) is not None:
            try:
                message = decode_message(delivery.data)
            except SSDDLError as exc:
                self._reject(delivery.recipient, delivery.sender, "?", exc)
                continue
            if delivery.recipient == SERVER:
                try:
                    out = self._timed(partial(self.server.handle, delivery.sender, message))
                except SSDDLError as exc:
                    self._reject(SERVER, delivery.sender, message.KIND.name.lower(), exc)
                    continue
                self._send(out)
                continue
            pid = delivery.recipient
            if self._vanishes(pid, message.KIND, before=True):
                continue
            participant = self.participants.get(pid)
            if participant is None:
                self._reject(
                    pid,
                    delivery.sender,
                    message.KIND.name.lower(),
                    ConfigurationError(f"no participant {pid}"),
                )
                continue
            try:
                replies = participant.handle(message)
            except SSDDLError as exc:
                self._reject(pid, delivery.sender, message.KIND.name.lower(), exc)
                continue
            for reply in replies:
                self.transport.send(pid, SERVER, reply)
            self._vanishes(pid, message.KIND, before=False)

    def _vanishes(self, pid: int, kind: MessageKind, *, before: bool) -> bool:
        """True if ``pid`` is gone (or goes now) and must not see this message."""
        if pid in self.gone:
            return True
        spec = self.vanish.get(pid)
        if spec is None or kind is not MessageKind.ROUND_START:
            return False
        if self.transport.round < spec.round:
            return False
        if before and spec.phase is VanishPhase.ROUND_START:
            self.gone.add(pid)
            return True
        if not before and spec.phase is VanishPhase.AFTER_SHARE:
            self.gone.add(pid)
        return False

    def _reject(self, at: int, sender: int, kind: str, exc: Exception) -> None:
        self.rejections.append(
            Rejection(self.transport.round, at, sender, kind, type(exc).__name__, str(exc))
        )
