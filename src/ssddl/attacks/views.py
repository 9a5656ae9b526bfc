"""What the attacker sees: the server's view of a run, and a coalition's.

A *server view* is every frame that crossed the exchange in a run, decoded exactly as the
server (or anyone on the wire) decodes it, labelled with its round and direction, plus the
aggregates the server computed. A *coalition view* adds, for each colluding participant, its
state as that participant held it during each round — taken from its own
:meth:`~ssddl.protocol.participant.Participant.to_bytes` (pair round keys, share keys, its own
share or seed share) — and its own encoded update x_i.

Everything is recorded through public hooks: the in-memory exchange's ``interceptor`` (it sees
every frame in flight, in both directions, and passes it on unchanged), the participants'
``inspector`` (their own encoded update, which a colluder knows anyway) and ``to_bytes()``.
Nothing reaches into a private attribute.

:func:`record_run` runs a real session (real keys, real masks, the unmodified participants
and server) and returns a :class:`RecordedRun`; :func:`record_dssgd` gives the server's view
of one DSSGD round from the baseline's own building blocks. The true updates of every
participant are kept apart in ``RecordedRun.truth``: they are the yardstick attacks are
measured against, never part of a view.
"""

from __future__ import annotations

import dataclasses
import hashlib
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ssddl.exceptions import ConfigurationError, MalformedMessage
from ssddl.hazmat.rand import InsecureSeededRandom, OsRandom, RandomSource
from ssddl.protocol import (
    AllParticipants,
    Message,
    Participant,
    ProtocolConfig,
    RoundOutcome,
    SessionParams,
    decode_message,
    get_scheme,
)
from ssddl.protocol.localtrain import Trainer
from ssddl.protocol.messages import SERVER
from ssddl.protocol.state import ParticipantState
from ssddl.runtime.exchange import Frame, frame_kind
from ssddl.runtime.inmemory import Fault
from ssddl.runtime.masking import MaskEngine
from ssddl.runtime.session import Session, in_memory

__all__ = [
    "CoalitionView",
    "MemberState",
    "RecordedRun",
    "ServerFrame",
    "ServerView",
    "ViewRecorder",
    "record_run",
]

UP = "up"  #: participant -> server
DOWN = "down"  #: server -> participant


@dataclass(frozen=True)
class ServerFrame:
    """One frame on the wire as the server sees it: raw bytes and the decoded message."""

    round: int  #: the message's round (-1 for Init and session messages)
    direction: str  #: "up" (participant -> server) or "down"
    sender: int
    recipient: int
    kind: str
    data: bytes = field(repr=False)
    message: Message | None = field(repr=False)  #: None if the frame did not decode

    @property
    def nbytes(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class ServerView:
    """Everything the server received and sent in a run, and the aggregates it computed."""

    params: SessionParams
    session_id: bytes
    frames: tuple[ServerFrame, ...]
    outcomes: tuple[RoundOutcome, ...]

    def received(self, round_number: int | None = None, kind: str | None = None) -> list[Any]:
        """Decoded messages the server received, in arrival order (filtered)."""
        return [
            f.message
            for f in self.frames
            if f.direction == UP
            and f.message is not None
            and (round_number is None or f.round == round_number)
            and (kind is None or f.kind == kind)
        ]

    def sent(self, round_number: int | None = None, kind: str | None = None) -> list[Frame]:
        """Frames the server sent (with recipients), in order (filtered)."""
        return [
            Frame(f.sender, f.recipient, f.data)
            for f in self.frames
            if f.direction == DOWN
            and (round_number is None or f.round == round_number)
            and (kind is None or f.kind == kind)
        ]

    def uploads(self, round_number: int) -> dict[int, Any]:
        """Each member's upload message of a round (the first one that arrived)."""
        out: dict[int, Any] = {}
        for kind in ("plain_upload", "upload", "masked_upload"):
            for message in self.received(round_number, kind):
                out.setdefault(message.sender, message)
        return out

    def aggregate(self, round_number: int) -> np.ndarray | None:
        for outcome in self.outcomes:
            if outcome.round == round_number:
                return outcome.aggregate
        return None

    def rounds(self) -> tuple[int, ...]:
        return tuple(sorted({f.round for f in self.frames if f.round >= 0}))


@dataclass(frozen=True, repr=False)
class MemberState:
    """A participant's state during one round, from its own ``to_bytes()`` (a secret)."""

    participant: int
    round: int
    state: bytes  #: the full saved state
    round_keys: Mapping[int, bytes]  #: peer -> pair mask key of the round
    share_keys: Mapping[int, bytes]  #: peer -> pair share-sealing key of the round
    own_share: Any  #: the scheme's round state: own seed share (prg) or own share (relayed)
    update: np.ndarray | None  #: its own encoded update x_i (ring words, count word last)
    model_digest: bytes = b""  #: the digest of the model its round started with

    def __repr__(self) -> str:
        return f"MemberState(participant={self.participant}, round={self.round})"


@dataclass(frozen=True)
class CoalitionView:
    """The server's view plus the states of the colluding participants, per round."""

    server: ServerView
    members: Mapping[int, Mapping[int, MemberState]]  #: participant -> round -> state

    @property
    def colluders(self) -> tuple[int, ...]:
        return tuple(sorted(self.members))

    def member(self, participant: int, round_number: int) -> MemberState:
        try:
            return self.members[participant][round_number]
        except KeyError:
            raise ConfigurationError(
                f"participant {participant} is not a colluder with a state in round "
                f"{round_number}; colluders: {list(self.colluders)}"
            ) from None


def _member_state(data: bytes, update: np.ndarray | None) -> MemberState:
    state = ParticipantState.from_bytes(data)
    peers = state.round_key_peers
    own: Any = None
    if state.config:
        params = SessionParams.from_announcement(state.config, len(state.participants))
        own = get_scheme(params.mode).decode_participant_state(state.scheme_state)
    return MemberState(
        participant=state.participant_id,
        round=state.round_plus_one - 1,
        state=data,
        round_keys=dict(zip(peers, state.round_keys, strict=True)),
        share_keys=dict(zip(peers, state.share_keys, strict=True)),
        own_share=own,
        update=update,
        model_digest=state.model_digest,
    )


class ViewRecorder:
    """An exchange interceptor that records every frame and, on a participant's first reply
    of a round, that participant's state (``state_of(pid)`` gives its ``to_bytes()``).

    It never changes or drops a frame: the run is the run the protocol makes."""

    def __init__(self, state_of: Callable[[int], bytes]) -> None:
        self._state_of = state_of
        self.frames: list[ServerFrame] = []
        self.states: dict[int, dict[int, bytes]] = {}
        self.updates: dict[int, dict[int, np.ndarray]] = {}  #: participant -> round -> x_i

    def inspector(self, participant: int) -> Callable[[int, np.ndarray], None]:
        """The participant's inspector hook: its own encoded update of each round."""

        def record(round_number: int, x: np.ndarray) -> None:
            self.updates.setdefault(participant, {})[round_number] = x.copy()

        return record

    def __call__(self, frame: Frame) -> Frame:
        try:
            message: Message | None = decode_message(frame.data)
        except MalformedMessage:
            message = None
        round_number = int(getattr(message, "round", -1)) if message is not None else -1
        upward = frame.recipient == SERVER
        self.frames.append(
            ServerFrame(
                round_number,
                UP if upward else DOWN,
                frame.sender,
                frame.recipient,
                frame_kind(frame.data),
                frame.data,
                message,
            )
        )
        if upward and round_number >= 0:
            by_round = self.states.setdefault(frame.sender, {})
            if round_number not in by_round:
                by_round[round_number] = self._state_of(frame.sender)
        return frame


@dataclass(frozen=True, repr=False)
class RecordedRun:
    """A recorded session: the server's view, every participant's round states (from which
    coalitions are formed) and — apart, as ground truth only — every true encoded update."""

    server: ServerView
    states: Mapping[int, Mapping[int, bytes]]  #: participant -> round -> to_bytes()
    truth: Mapping[int, Mapping[int, np.ndarray]]  #: participant -> round -> x_i (ring words)
    participants: tuple[int, ...]

    @property
    def params(self) -> SessionParams:
        return self.server.params

    def coalition(self, colluders: Iterable[int]) -> CoalitionView:
        """The server plus ``colluders``: their states and their own updates per round."""
        chosen = sorted(set(colluders))
        unknown = [p for p in chosen if p not in self.participants]
        if unknown:
            raise ConfigurationError(
                f"colluders {unknown} are not participants of this run {list(self.participants)}"
            )
        members = {
            p: {
                r: _member_state(data, self.truth.get(p, {}).get(r))
                for r, data in self.states.get(p, {}).items()
            }
            for p in chosen
        }
        return CoalitionView(self.server, members)

    def __repr__(self) -> str:
        return f"RecordedRun(mode={self.params.mode!r}, participants={len(self.participants)})"


def _sources(crypto_seed: bytes | None) -> Callable[[str], RandomSource]:
    if crypto_seed is None:
        return lambda _label: OsRandom()
    if len(crypto_seed) != 32:
        raise ConfigurationError("crypto_seed must be 32 bytes (tests only) or None")

    def seeded(label: str) -> RandomSource:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return InsecureSeededRandom(hashlib.sha256(crypto_seed + label.encode()).digest())

    return seeded


def record_run(
    config: ProtocolConfig,
    trainers: Mapping[int, Trainer],
    initial_weights: np.ndarray,
    *,
    faults: Sequence[Fault] = (),
    crypto_seed: bytes | None = None,
) -> RecordedRun:
    """Run a real session of ``config`` over the in-memory exchange — participants ``ids``
    with their LocalTrain ``trainers``, every registered participant in every round — and
    record it. Keys, masks and shares come from the OS CSPRNG; ``crypto_seed`` (32 bytes,
    tests only) derives them from a seed so a statistical test is reproducible. Masks are
    built on a background thread while the members train (a
    :class:`~ssddl.runtime.masking.MaskEngine`, closed when the run ends)."""
    with MaskEngine("thread") as masks:
        return _record_run(config, trainers, initial_weights, faults, crypto_seed, masks)


def _record_run(
    config: ProtocolConfig,
    trainers: Mapping[int, Trainer],
    initial_weights: np.ndarray,
    faults: Sequence[Fault],
    crypto_seed: bytes | None,
    masks: MaskEngine,
) -> RecordedRun:
    ids = sorted(trainers)
    if len(ids) < 2 or ids[0] < 1:
        raise ConfigurationError("record_run needs at least two participants with ids >= 1")
    weights = np.asarray(initial_weights)
    if weights.ndim != 1 or weights.dtype != np.float32:
        raise ConfigurationError("initial_weights must be a 1-D float32 vector")
    if config.weighted and config.max_samples is None:
        config = dataclasses.replace(config, max_samples=1 << 16)
    source = _sources(crypto_seed)
    participants: dict[int, Participant] = {}  # filled once built; the recorder reads them
    recorder = ViewRecorder(lambda p: participants[p].to_bytes())
    session = Session.build(
        config,
        {p: trainers[p] for p in ids},
        weights,
        selection=AllParticipants(),
        sources=lambda label: source(label.replace("identity/", "id/")),
        masks=masks,
        inspectors=recorder.inspector,
        exchange=in_memory(faults, interceptor=recorder),
    )
    participants.update(session.participants)
    server, driver = session.server, session.driver
    driver.init()
    outcomes = tuple(driver.round() for _ in range(server.config.rounds))
    driver.finish()
    view = ServerView(server.config, server.session_id, tuple(recorder.frames), outcomes)
    return RecordedRun(
        server=view,
        states={p: dict(s) for p, s in recorder.states.items()},
        truth={p: dict(u) for p, u in recorder.updates.items()},
        participants=tuple(ids),
    )
