"""The server's side of SSDDL (DESIGN.md §2), read top-down as the paper's modules:

1. **Init** — ``start()`` announces the session; key adverts are collected and the directory
   of registered participants is published (``init``).
2. **SelectGroup** — ``start_round()`` asks the selection policy for the round's group
   (``select``) and sends it the global weights.
3. **LocalTrain** happens at the participants.
4. **ParaShare** — the session's scheme (``schemes``) checks each message and closes each of
   its phases: relaying encrypted shares, collecting uploads, recovering from dropouts.
5. **ParaUpdate** — the scheme hands the aggregate to ``apply_secure``/``apply_plain``, which
   decode it and let the update rule (``update``) move the model; ``RoundEnd`` tells everyone.

The server is honest-but-curious: it follows the protocol and sees only what the messages
carry. It is a state machine driven by ``start()``, ``start_round()``, ``handle(sender,
msg)``, ``deadline()`` (the runtime's word that a phase's wait is over) and ``finish()``, each
returning the envelopes to send. A message that does not fit raises a named error and changes
nothing. Its session and open round are a :class:`~ssddl.protocol.state.ServerState`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from time import perf_counter
from typing import Any, TypeVar

import numpy as np

from ssddl.exceptions import (
    ConfigurationError,
    GroupTooSmall,
    MalformedMessage,
    NonFiniteError,
    ReplayedMessage,
    UnexpectedMessage,
    UnknownSender,
)
from ssddl.hazmat.codec import all_finite, decode
from ssddl.hazmat.dp import unwrap
from ssddl.hazmat.keys import verify_exchange_key
from ssddl.hazmat.rand import OsRandom, RandomSource
from ssddl.protocol.binding import model_digest
from ssddl.protocol.config import ProtocolConfig, SessionParams
from ssddl.protocol.dp import decode_noised
from ssddl.protocol.init import graph_seed, key_directory
from ssddl.protocol.messages import (
    SESSION_ID_SIZE,
    KeyAdvert,
    KeyDirectory,
    Kind,
    Message,
    MessageKind,
    PlainUpload,
    RoundEnd,
    RoundStart,
    RoundStatus,
    SessionAnnounce,
    SessionEnd,
    decode_message,
)
from ssddl.protocol.roles import Envelope
from ssddl.protocol.schemes import Scheme
from ssddl.protocol.select import SelectionPolicy
from ssddl.protocol.stages import BaseServerStage, Control, ServerStage, server_check, server_stage
from ssddl.protocol.state import ServerState
from ssddl.protocol.update import UpdateRule, update_rule_for

__all__ = ["Envelope", "RoundOutcome", "RoundState", "RoundStatus", "Server"]

S = ServerStage
K = MessageKind
M = TypeVar("M", bound=Message)
_NO_TOTAL = np.zeros(0, dtype=np.uint32)


@dataclass(frozen=True)
class RoundOutcome:
    """What the server learned and did in one round (no participant's own values).

    ``aggregate`` and ``update`` are M-sized: ``Server.history`` keeps them for its latest
    round only (older entries carry ``None``), so a long session does not grow by M words a
    round; a caller that wants every round's arrays keeps the outcomes ``Driver.round``
    returns.
    """

    round: int
    status: RoundStatus
    group: tuple[int, ...]
    contributors: tuple[int, ...]
    dropped: tuple[int, ...]
    total_samples: int
    aggregate: np.ndarray | None = field(repr=False)  #: ring words Σ x_i, for validation
    update: np.ndarray | None = field(repr=False)  #: the float change applied to the model
    reason: str = ""
    seconds: float = 0.0

    def without_arrays(self) -> RoundOutcome:
        """The same outcome without its M-sized ``aggregate`` and ``update``."""
        return dataclasses.replace(self, aggregate=None, update=None)


@dataclass
class RoundState:
    """The open round as one value: who is in it, whom the phase waits for, what arrived,
    and the scheme's own data. A new round (or the end of one) replaces it whole.

    ``total`` is the running ring sum of the phase's uploads that the scheme sums
    (``Scheme.summed_uploads``): each is added on arrival and kept in ``received`` without
    its payload, so the server holds O(M) words while uploads arrive, not one vector per
    member."""

    group: tuple[int, ...] = ()
    expected: frozenset[int] = frozenset()
    received: dict[int, Message] = field(default_factory=dict)
    data: Any = None
    started: float = field(default_factory=perf_counter)
    total: np.ndarray | None = field(default=None, repr=False)


class Server:
    """The SSDDL server for one session."""

    def __init__(
        self,
        config: ProtocolConfig,
        roster: Mapping[int, bytes],
        initial_weights: np.ndarray,
        *,
        selection: SelectionPolicy,
        update_rule: UpdateRule | None = None,
        random: RandomSource | None = None,
        session_id: bytes | None = None,
    ) -> None:
        if not roster or any(not isinstance(p, int) or p < 1 for p in roster):
            raise ConfigurationError("the roster needs participant ids >= 1 (0 is the server)")
        weights = np.asarray(initial_weights)
        if weights.ndim != 1 or weights.dtype != np.float32 or weights.size == 0:
            raise ConfigurationError("initial_weights must be a non-empty 1-D float32 vector")
        if not np.isfinite(weights).all():
            raise NonFiniteError("initial_weights hold NaN or Inf")
        self.config: SessionParams = config.resolve(len(roster))
        self.scheme: Scheme = self.config.scheme  # resolved with the parameters
        self.roster = dict(sorted(roster.items()))
        self.weights = weights.copy()
        self.model_size = int(weights.size)
        self._selection = selection
        self._rule = update_rule if update_rule is not None else update_rule_for(self.config)
        source = random if random is not None else OsRandom()
        self.session_id = (
            session_id if session_id is not None else source.random_bytes(SESSION_ID_SIZE)
        )
        if len(self.session_id) != SESSION_ID_SIZE:
            raise ConfigurationError(f"session_id must be {SESSION_ID_SIZE} bytes")
        self.stage: BaseServerStage = S.CREATED
        self.round = -1
        self.registered: tuple[int, ...] = ()
        #: the runtime's record; not protocol state (arrays of the latest round only)
        self.history: list[RoundOutcome] = []
        self._adverts: dict[int, KeyAdvert] = {}
        self._model64: np.ndarray | None = None  # ParaUpdate's float64 model, reused
        self._graph_seed: bytes | None = None
        #: (round, group, weights) -> the model digest of the round (a cache, not state)
        self._digest: tuple[int, tuple[int, ...], np.ndarray, bytes] | None = None
        self.open = RoundState()
        self._checks: dict[Kind, Callable[[Any], None]] = {K.KEY_ADVERT: self._on_advert}
        self._closers: dict[BaseServerStage, Callable[[], list[Envelope]]] = {
            S.COLLECTING_KEYS: self._close_keys
        }
        for kind, check in self.scheme.server_checks().items():
            self._checks[kind] = partial(check, self)
        for stage, closer in self.scheme.server_closers().items():
            self._closers[stage] = partial(closer, self)

    def __repr__(self) -> str:
        return f"Server(mode={self.config.mode!r}, stage={self.stage.value}, round={self.round})"

    # -- 1. Init ---------------------------------------------------------------------------

    def start(self) -> list[Envelope]:
        """Init: publish the session (config, model size, participants)."""
        target = S.COLLECTING_KEYS if self.scheme.needs_keys else S.IDLE
        self._move(Control.START, target)
        if target is S.COLLECTING_KEYS:
            self.open = RoundState(expected=frozenset(self.roster))
        else:
            self.registered = tuple(self.roster)
        announce = SessionAnnounce(
            self.session_id, self.config.canonical_json(), self.model_size, tuple(self.roster)
        )
        return [Envelope(p, announce) for p in self.roster]

    def _on_advert(self, msg: KeyAdvert) -> None:
        """A bad signature drops only its sender from the session, not everyone's directory."""
        if len(msg.exchange_public) != 32 or len(msg.signature) != 64:
            raise MalformedMessage("a key advert needs a 32-byte key and a 64-byte signature")
        verify_exchange_key(
            self.roster[msg.sender], self.session_id, msg.sender, msg.exchange_public, msg.signature
        )

    def _close_keys(self) -> list[Envelope]:
        adverts = {p: m for p, m in sorted(self.open.received.items()) if isinstance(m, KeyAdvert)}
        self.registered = tuple(adverts)
        if len(self.registered) < self.config.min_group_size:
            self.stage = S.DONE
            end = SessionEnd(self.session_id, 0)
            return [Envelope(p, end) for p in self.registered]
        self._adverts = adverts
        self._graph_seed = None
        self.open = RoundState()
        self.stage = S.IDLE
        directory = key_directory(self.session_id, adverts)
        return [Envelope(p, directory) for p in self.registered]

    def directory(self) -> KeyDirectory:
        """The key directory Init published (the registered members' signed keys)."""
        return key_directory(self.session_id, self._adverts)

    def graph_seed(self) -> bytes:
        """The session's pairing-graph seed: a hash of the key directory (computed once)."""
        if self._graph_seed is None:
            self._graph_seed = graph_seed(self.directory())
        return self._graph_seed

    # -- 2. SelectGroup --------------------------------------------------------------------

    def start_round(self) -> list[Envelope]:
        """SelectGroup: pick the round's group and send it the global weights."""
        server_check(self.config, self.stage, Control.START_ROUND)
        size = min(self.config.group_size, len(self.registered))
        if size < self.config.min_group_size:
            raise GroupTooSmall(
                f"only {len(self.registered)} participants are registered; min_group_size="
                f"{self.config.min_group_size}"
            )
        group = self._selection.select(self.registered, size, self.round + 1)
        self.round += 1
        self.open = RoundState(group=group, expected=frozenset(group))
        self.stage = self.scheme.first_stage
        start = RoundStart(self.session_id, self.round, group, self.weights)
        return [Envelope(p, start) for p in group]

    def model_digest(self) -> bytes:
        """The digest of the model this server sent the open round's group
        (:mod:`ssddl.protocol.binding`): what an honest member binds its shares, signature
        and (without seed shares) pair masks to. Computed once a round."""
        cached = self._digest
        group = self.open.group
        if cached is not None and cached[:2] == (self.round, group) and cached[2] is self.weights:
            return cached[3]
        digest = model_digest(self.session_id, self.round, group, self.weights)
        self._digest = (self.round, group, self.weights, digest)
        return digest

    # -- 4. ParaShare: messages and phases -------------------------------------------------

    def awaiting(self) -> frozenset[int]:
        """Participants whose message the current phase still waits for."""
        return frozenset(self.open.expected - set(self.open.received))

    @property
    def waiting(self) -> bool:
        return self.stage not in (S.CREATED, S.IDLE, S.DONE)

    def handle(self, sender: int, message: Message) -> list[Envelope]:
        """Take one message that the transport says came from ``sender``."""
        if message.session_id != self.session_id:
            raise ReplayedMessage(f"{message.describe()} belongs to another session")
        targets = server_check(self.config, self.stage, message.KIND)
        self._check_sender(sender, message)
        self._checks[message.KIND](message)  # validates fully before storing
        self.open.received[sender] = self._absorb(message)
        out: list[Envelope] = []
        if not self.awaiting():
            out = self._closers[self.stage]()
        if self.stage not in targets:
            raise UnexpectedMessage(f"the server moved to {self.stage.value} unexpectedly")
        return out

    def _check_sender(self, sender: int, message: Message) -> None:
        claimed = getattr(message, "sender", None)
        if claimed != sender:
            raise UnknownSender(f"{message.describe()} arrived from participant {sender}")
        if sender not in self.roster:
            raise UnknownSender(f"participant {sender} is not in the roster")
        msg_round = getattr(message, "round", None)
        if msg_round is not None and msg_round != self.round:
            raise ReplayedMessage(
                f"{message.describe()} is for round {msg_round}, round {self.round} is open"
            )
        if sender not in self.open.expected:
            raise UnknownSender(f"participant {sender} is not expected in this phase")
        if sender in self.open.received:
            raise ReplayedMessage(f"{message.describe()} was already received")

    def _absorb(self, message: Message) -> Message:
        """Streaming sum: an upload the scheme sums goes into the round's running total at
        once (mod Q) and is kept without its payload."""
        if message.KIND not in self.scheme.summed_uploads:
            return message
        payload: np.ndarray = message.payload  # type: ignore[attr-defined]
        if self.open.total is None:
            self.open.total = payload.copy()
        else:
            np.add(self.open.total, payload, out=self.open.total)  # wraps mod 2^ring_bits
        empty = np.empty(0, dtype=payload.dtype)
        return dataclasses.replace(message, payload=empty)  # type: ignore[call-arg]

    def summed(self) -> np.ndarray | None:
        """For schemes: the running sum of the phase's summed uploads (None: none arrived)."""
        return self.open.total

    def deadline(self) -> list[Envelope]:
        """The wait for the current phase is over: go on with what arrived."""
        server_check(self.config, self.stage, Control.DEADLINE)
        return self._closers[self.stage]()

    def next_phase(
        self,
        stage: BaseServerStage,
        expected: frozenset[int],
        envelopes: list[Envelope],
        data: Any,
    ) -> list[Envelope]:
        """For schemes: open the next phase of the round, waiting for ``expected``."""
        self.open = RoundState(self.open.group, expected, {}, data, self.open.started)
        self.stage = stage
        return envelopes

    def received(self, kind: type[M]) -> dict[int, M]:
        """For schemes: the messages of ``kind`` of the open phase, by sender id."""
        return {p: m for p, m in sorted(self.open.received.items()) if isinstance(m, kind)}

    # -- 5. ParaUpdate ---------------------------------------------------------------------

    def apply_secure(
        self, aggregate: np.ndarray | None, contributors: tuple[int, ...]
    ) -> list[Envelope]:
        """Decode Σ x_i (ring words, count word last) and update the model; with ``bits``
        the sum is taken modulo ``2**bits`` (and recorded so)."""
        if aggregate is None:
            return self.abort("no uploads arrived")
        codec = self.config.codec()
        words, modulus = aggregate, codec.modulus
        if self.config.bits:  # the sum lives in Z_(2**bits): kept so, decoded signed
            modulus = 1 << self.config.bits
            aggregate = aggregate & np.asarray(modulus - 1, dtype=aggregate.dtype)
            words = unwrap(aggregate, self.config.bits).view(np.uint64).astype(codec.dtype)
        total = int(words[-1])
        if total < 1 or total >= modulus // 2:
            return self.abort("the aggregated sample count is out of range")
        if self.config.dp:  # distributed DP: Σ z_i mod 2**bits, unrotated
            summed = decode_noised(self.config, self.session_id, self.round, words[:-1])
        else:
            summed = decode(words[:-1], codec)
        return self._apply(summed, total, contributors, aggregate)

    def apply_plain(self, uploads: Mapping[int, PlainUpload]) -> list[Envelope]:
        """Sum clear changes with the same clipping and weighting as the secure modes."""
        summed = np.zeros(self.model_size, dtype=np.float64)
        total = 0
        weighted = self.config.weighted
        for msg in uploads.values():
            count = msg.num_samples if weighted else 1
            weight = count / self.config.max_samples if weighted else 1.0
            summed += weight * msg.delta.astype(np.float64)
            total += count
        return self._apply(summed, total, tuple(uploads), None)

    def _apply(
        self,
        summed: np.ndarray,
        total: int,
        contributors: tuple[int, ...],
        aggregate: np.ndarray | None,
    ) -> list[Envelope]:
        update = self._rule.change(summed, total, len(contributors))
        if self._model64 is None or self._model64.shape != self.weights.shape:
            self._model64 = np.empty(self.weights.shape, dtype=np.float64)
        new64 = self._model64  # w^r in float64 (exact), in the buffer of every round
        np.copyto(new64, self.weights)
        lr = self._rule.server_lr
        new64 += update if lr == 1.0 else lr * update  # 1.0 · u is u: the same bits
        new = new64.astype(np.float32)
        if not all_finite(new):
            return self.abort("the update would make the model non-finite")
        self.weights = new
        group = self.open.group
        dropped = tuple(p for p in group if p not in contributors)
        self._record(RoundStatus.APPLIED, contributors, dropped, total, aggregate, update, "")
        return self._end_round(RoundStatus.APPLIED, contributors)

    def abort(self, reason: str) -> list[Envelope]:
        """End the round without touching the model; everyone's PRNGs still advance."""
        self._record(RoundStatus.ABORTED, (), self.open.group, 0, None, None, reason)
        return self._end_round(RoundStatus.ABORTED, ())

    def _record(
        self,
        status: RoundStatus,
        contributors: tuple[int, ...],
        dropped: tuple[int, ...],
        total: int,
        aggregate: np.ndarray | None,
        update: np.ndarray | None,
        reason: str,
    ) -> None:
        if self.history:  # the previous round's arrays go: O(M) words, not O(rounds · M)
            self.history[-1] = self.history[-1].without_arrays()
        self.history.append(
            RoundOutcome(
                self.round,
                status,
                self.open.group,
                contributors,
                dropped,
                total,
                aggregate,
                update,
                reason=reason,
                seconds=perf_counter() - self.open.started,
            )
        )

    def _end_round(self, status: RoundStatus, contributors: tuple[int, ...]) -> list[Envelope]:
        self.open = RoundState()
        self.stage = S.IDLE
        end = RoundEnd(self.session_id, self.round, int(status), contributors)
        return [Envelope(p, end) for p in self.registered]

    def finish(self) -> list[Envelope]:
        self._move(Control.FINISH, S.DONE)
        end = SessionEnd(self.session_id, self.round + 1)
        return [Envelope(p, end) for p in self.registered]

    # -- helpers ---------------------------------------------------------------------------

    def _move(self, event: Control, target: BaseServerStage) -> None:
        if target not in server_check(self.config, self.stage, event):
            raise UnexpectedMessage(f"the server cannot move to {target.value} on {event.value}")
        self.stage = target

    # -- persistence -----------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The session and the open round (not ``history``, the runtime's record)."""
        received = sorted(self.open.received.items())
        return ServerState(
            config=self.config.canonical_json(),
            session_id=self.session_id,
            stage=self.stage.value,
            round_plus_one=self.round + 1,
            weights=self.weights,
            registered=self.registered,
            advert_frames=tuple(m.encode() for _, m in sorted(self._adverts.items())),
            selection=self._selection.state(),
            group=self.open.group,
            expected=tuple(sorted(self.open.expected)),
            received_from=tuple(p for p, _ in received),
            received_frames=tuple(m.encode() for _, m in received),
            scheme_data=self.scheme.encode_server_data(self.open.data),
            total=self.open.total if self.open.total is not None else _NO_TOTAL,
        ).to_bytes()

    @classmethod
    def restore(
        cls,
        data: bytes,
        roster: Mapping[int, bytes],
        *,
        selection: SelectionPolicy,
        update_rule: UpdateRule | None = None,
    ) -> Server:
        """Rebuild a server from :meth:`to_bytes` with the same roster and policy objects."""
        state = ServerState.from_bytes(data)
        params = SessionParams.from_announcement(state.config, len(roster))
        server = cls(
            params.config(),
            roster,
            state.weights,
            selection=selection,
            update_rule=update_rule,
            session_id=state.session_id,
        )
        server.stage = server_stage(state.stage)  # the common ones and the schemes' own
        server.round = state.round_plus_one - 1
        server.registered = state.registered
        adverts = [decode_message(f) for f in state.advert_frames]
        server._adverts = {m.sender: m for m in adverts if isinstance(m, KeyAdvert)}
        selection.restore(state.selection)
        server.open = RoundState(
            group=state.group,
            expected=frozenset(state.expected),
            received={
                p: decode_message(f)
                for p, f in zip(state.received_from, state.received_frames, strict=True)
            },
            data=server.scheme.decode_server_data(state.scheme_data),
            total=state.total.copy() if state.total.size else None,
        )
        return server
