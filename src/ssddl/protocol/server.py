"""The server's side of SSDDL: Init, SelectGroup and ParaUpdate (DESIGN.md §2).

The server is honest-but-curious: it follows the protocol and sees only what the messages
carry — signed public keys, encrypted shares it relays, and aggregates of shares. It is a
state machine driven by four calls: ``start()``, ``start_round()``, ``handle(sender, msg)``
and ``deadline()`` (the driver's word that a phase's wait is over), each returning the
envelopes to send. A message that does not fit raises a named error and changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from time import perf_counter
from typing import NamedTuple

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
from ssddl.hazmat.codec import decode, ring_sum
from ssddl.hazmat.prg import accumulate_keystream
from ssddl.hazmat.rand import OsRandom, RandomSource
from ssddl.hazmat.sharing import SHAMIR_PRIME, field_to_ring, shamir_reconstruct
from ssddl.protocol.config import Aggregation, Mode, ProtocolConfig
from ssddl.protocol.messages import (
    SESSION_ID_SIZE,
    KeyAdvert,
    KeyDirectory,
    Message,
    PlainUpload,
    RevealRequest,
    RevealResponse,
    RoundEnd,
    RoundStart,
    RoundStatus,
    SessionAnnounce,
    SessionEnd,
    ShareBundle,
    ShareDelivery,
    Upload,
)
from ssddl.protocol.participant import mask_nonce
from ssddl.protocol.stages import Control, ServerStage, server_check

__all__ = ["Envelope", "RoundOutcome", "RoundStatus", "Server"]

S = ServerStage


class Envelope(NamedTuple):
    recipient: int
    message: Message


@dataclass(frozen=True)
class RoundOutcome:
    """What the server learned and did in one round (no participant's own values)."""

    round: int
    status: RoundStatus
    group: tuple[int, ...]
    contributors: tuple[int, ...]
    dropped: tuple[int, ...]
    total_samples: int
    aggregate: np.ndarray | None  #: ring words Σ x_i (secure modes), for validation
    update: np.ndarray | None  #: the float change applied to the model
    reason: str = ""
    seconds: float = 0.0


class Server:
    """The SSDDL server for one session."""

    def __init__(
        self,
        config: ProtocolConfig,
        roster: Mapping[int, bytes],
        initial_weights: np.ndarray,
        *,
        selection_rng: np.random.Generator,
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
        self.config = config.resolve(len(roster))
        self.roster = dict(sorted(roster.items()))
        self.weights = weights.copy()
        self.model_size = int(weights.size)
        self._rng = selection_rng
        source = random if random is not None else OsRandom()
        self.session_id = (
            session_id if session_id is not None else source.random_bytes(SESSION_ID_SIZE)
        )
        if len(self.session_id) != SESSION_ID_SIZE:
            raise ConfigurationError(f"session_id must be {SESSION_ID_SIZE} bytes")
        self.stage = S.CREATED
        self.round = -1
        self.registered: tuple[int, ...] = ()
        self.history: list[RoundOutcome] = []
        self._adverts: dict[int, KeyAdvert] = {}
        # per-round state, cleared by _reset_round
        self._group: tuple[int, ...] = ()
        self._contributors: tuple[int, ...] = ()
        self._received: dict[int, Message] = {}
        self._expected: set[int] = set()
        self._dropped: tuple[int, ...] = ()
        self._uploads_from: tuple[int, ...] = ()
        self._partial: np.ndarray | None = None
        self._round_started = perf_counter()

    # -- driver calls ----------------------------------------------------------------------

    def start(self) -> list[Envelope]:
        """Init: publish the session (config, model size, participants)."""
        self._move(Control.START, S.IDLE if self.config.mode is Mode.PLAIN else S.COLLECTING_KEYS)
        if self.config.mode is Mode.PLAIN:
            self.registered = tuple(self.roster)
        announce = SessionAnnounce(
            self.session_id, self.config.canonical_json(), self.model_size, tuple(self.roster)
        )
        return [Envelope(p, announce) for p in self.roster]

    def start_round(self) -> list[Envelope]:
        """SelectGroup: pick the round's group and send it the global weights."""
        relayed = self.config.mode in (Mode.EXPLICIT, Mode.SHAMIR)
        server_check(self.config.mode, self.stage, Control.START_ROUND)
        size = min(self.config.group_size or len(self.registered), len(self.registered))
        if size < self.config.min_group_size:
            raise GroupTooSmall(
                f"only {len(self.registered)} participants are registered; min_group_size="
                f"{self.config.min_group_size}"
            )
        if size == len(self.registered):
            group = self.registered
        else:
            picked = self._rng.choice(len(self.registered), size=size, replace=False)
            group = tuple(sorted(self.registered[int(i)] for i in picked))
        self.round += 1
        self._reset_round()
        self._group = group
        self._expected = set(group)
        self._round_started = perf_counter()
        self.stage = S.COLLECTING_SHARES if relayed else S.COLLECTING_UPLOADS
        start = RoundStart(self.session_id, self.round, group, self.weights)
        return [Envelope(p, start) for p in group]

    def finish(self) -> list[Envelope]:
        self._move(Control.FINISH, S.DONE)
        end = SessionEnd(self.session_id, self.round + 1)
        return [Envelope(p, end) for p in self.registered]

    def awaiting(self) -> frozenset[int]:
        """Participants whose message the current phase still waits for."""
        return frozenset(self._expected - set(self._received))

    @property
    def waiting(self) -> bool:
        return self.stage in (
            S.COLLECTING_KEYS,
            S.COLLECTING_SHARES,
            S.COLLECTING_UPLOADS,
            S.COLLECTING_REVEALS,
        )

    def handle(self, sender: int, message: Message) -> list[Envelope]:
        """Take one message that the transport says came from ``sender``."""
        if message.session_id != self.session_id:
            raise ReplayedMessage(f"{message.describe()} belongs to another session")
        targets = server_check(self.config.mode, self.stage, message.KIND)
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
        if sender not in self._expected:
            raise UnknownSender(f"participant {sender} is not expected in this phase")
        if sender in self._received:
            raise ReplayedMessage(f"{message.describe()} was already received")
        handler = getattr(self, f"_on_{message.KIND.name.lower()}")
        handler(message)  # validates fully before storing
        self._received[sender] = message
        out: list[Envelope] = []
        if not self.awaiting():
            out = self._close_phase()
        assert self.stage in targets
        return out

    def deadline(self) -> list[Envelope]:
        """The wait for the current phase is over: go on with what arrived."""
        server_check(self.config.mode, self.stage, Control.DEADLINE)
        return self._close_phase()

    # -- incoming messages (validate, do not store) ------------------------------------------

    def _on_key_advert(self, msg: KeyAdvert) -> None:
        if len(msg.exchange_public) != 32 or len(msg.signature) != 64:
            raise MalformedMessage("a key advert needs a 32-byte key and a 64-byte signature")

    def _on_share_bundle(self, msg: ShareBundle) -> None:
        expected = tuple(p for p in self._group if p != msg.sender)
        if tuple(sorted(msg.receivers)) != expected:
            raise MalformedMessage(
                f"participant {msg.sender} addressed shares to {sorted(msg.receivers)}; "
                f"the other members are {list(expected)}"
            )

    def _on_upload(self, msg: Upload) -> None:
        codec = self.config.codec()
        field = self.config.mode is Mode.SHAMIR
        dtype = np.dtype(np.uint64) if field else codec.dtype
        if msg.payload.dtype != dtype or msg.payload.shape != (self.model_size + 1,):
            raise MalformedMessage(
                f"upload from participant {msg.sender}: {msg.payload.size} words of "
                f"{msg.payload.dtype}; expected {self.model_size + 1} words of {dtype}"
            )
        if field and (msg.payload >= SHAMIR_PRIME).any():
            raise MalformedMessage(f"upload from participant {msg.sender} is not in the field")

    def _on_plain_upload(self, msg: PlainUpload) -> None:
        if msg.delta.shape != (self.model_size,):
            raise MalformedMessage(
                f"upload from participant {msg.sender} has {msg.delta.size} entries; "
                f"expected {self.model_size}"
            )
        if not np.isfinite(msg.delta).all():
            raise NonFiniteError(f"upload from participant {msg.sender} is not finite")
        if np.abs(msg.delta).max(initial=0.0) > self.config.clip:
            raise MalformedMessage(f"upload from participant {msg.sender} exceeds clip")
        limit = self.config.max_samples if self.config.weighted else None
        if msg.num_samples < 1 or (limit is not None and msg.num_samples > limit):
            raise MalformedMessage(f"upload from participant {msg.sender}: bad num_samples")

    def _on_reveal_response(self, msg: RevealResponse) -> None:
        if tuple(msg.peers) != self._dropped:
            raise MalformedMessage(
                f"participant {msg.sender} revealed keys for {list(msg.peers)}; "
                f"asked for {list(self._dropped)}"
            )

    # -- phase ends ------------------------------------------------------------------------

    def _close_phase(self) -> list[Envelope]:
        if self.stage is S.COLLECTING_KEYS:
            return self._close_keys()
        if self.stage is S.COLLECTING_SHARES:
            return self._close_shares()
        if self.stage is S.COLLECTING_UPLOADS:
            return self._close_uploads()
        return self._close_reveals()

    def _close_keys(self) -> list[Envelope]:
        adverts = {p: m for p, m in sorted(self._received.items()) if isinstance(m, KeyAdvert)}
        self.registered = tuple(adverts)
        if len(self.registered) < self.config.min_group_size:
            self.stage = S.DONE
            end = SessionEnd(self.session_id, 0)
            return [Envelope(p, end) for p in self.registered]
        directory = KeyDirectory(
            self.session_id,
            self.registered,
            tuple(m.exchange_public for m in adverts.values()),
            tuple(m.signature for m in adverts.values()),
        )
        self._adverts = adverts
        self._reset_round()
        self.stage = S.IDLE
        return [Envelope(p, directory) for p in self.registered]

    def _close_shares(self) -> list[Envelope]:
        bundles = {p: m for p, m in sorted(self._received.items()) if isinstance(m, ShareBundle)}
        contributors = tuple(bundles)
        needed = self._needed_contributors()
        if len(contributors) < needed:
            return self._abort(
                f"{len(contributors)} of {len(self._group)} members shared; {needed} are needed"
            )
        deliveries = []
        for member in contributors:
            senders = tuple(p for p in contributors if p != member)
            blobs = tuple(
                bundles[p].ciphertexts[bundles[p].receivers.index(member)] for p in senders
            )
            deliveries.append(
                Envelope(
                    member, ShareDelivery(self.session_id, self.round, contributors, senders, blobs)
                )
            )
        self._contributors = contributors
        self._received = {}
        self._expected = set(contributors)
        self.stage = S.COLLECTING_UPLOADS
        return deliveries

    def _needed_contributors(self) -> int:
        if self.config.mode is Mode.EXPLICIT:
            return len(self._group)  # a vanished member takes others' shares with it
        if self.config.mode is Mode.SHAMIR:
            return max(self.config.threshold or 1, self.config.min_group_size)
        return self.config.min_group_size

    def _close_uploads(self) -> list[Envelope]:
        mode = self.config.mode
        received = sorted(self._received.items())
        if mode is Mode.PLAIN:
            plain = {p: m for p, m in received if isinstance(m, PlainUpload)}
            if len(plain) < self.config.min_group_size:
                return self._abort(
                    f"{len(plain)} uploads; min_group_size={self.config.min_group_size}"
                )
            return self._apply_plain(plain)
        uploads = {p: m.payload for p, m in received if isinstance(m, Upload)}
        if mode is Mode.EXPLICIT and len(uploads) < len(self._contributors):
            return self._abort("a member vanished after sharing; explicit mode needs every upload")
        if mode is Mode.SHAMIR:
            threshold = self.config.threshold or 1
            if len(uploads) < threshold:
                return self._abort(f"{len(uploads)} uploads, threshold is {threshold}")
            points = tuple(uploads)[:threshold]
            field_sum = shamir_reconstruct(
                [uploads[p] for p in points], points, threshold=threshold
            )
            return self._apply_secure(
                field_to_ring(field_sum, self.config.ring_bits), self._contributors
            )
        aggregate = ring_sum(list(uploads.values())) if uploads else None
        if mode is Mode.EXPLICIT:
            return self._apply_secure(aggregate, self._contributors)
        # prg
        survivors = tuple(uploads)
        dropped = tuple(p for p in self._group if p not in uploads)
        if not dropped:
            return self._apply_secure(aggregate, survivors)
        if len(survivors) < self.config.min_group_size:
            return self._abort(
                f"{len(survivors)} uploads; min_group_size={self.config.min_group_size}"
            )
        self._partial = aggregate
        self._uploads_from = survivors
        self._dropped = dropped
        self._received = {}
        self._expected = set(survivors)
        self.stage = S.COLLECTING_REVEALS
        request = RevealRequest(self.session_id, self.round, dropped)
        return [Envelope(p, request) for p in survivors]

    def _close_reveals(self) -> list[Envelope]:
        responses = {
            p: m for p, m in sorted(self._received.items()) if isinstance(m, RevealResponse)
        }
        if set(responses) != set(self._uploads_from):
            missing = sorted(set(self._uploads_from) - set(responses))
            return self._abort(f"members {missing} vanished during dropout recovery")
        aggregate = self._partial
        if aggregate is None:
            return self._abort("no partial aggregate to recover")
        for survivor, response in responses.items():
            for peer, key in zip(response.peers, response.round_keys, strict=True):
                # the survivor added the pair mask if peer > survivor, subtracted it otherwise
                sign = -1 if peer > survivor else 1
                nonce = mask_nonce(self.session_id, self.round, survivor, peer)
                accumulate_keystream(aggregate, key, nonce, sign=sign, cipher=self.config.cipher)
        return self._apply_secure(aggregate, self._uploads_from)

    # -- ParaUpdate ------------------------------------------------------------------------

    def _apply_secure(
        self, aggregate: np.ndarray | None, contributors: tuple[int, ...]
    ) -> list[Envelope]:
        if aggregate is None:
            return self._abort("no uploads arrived")
        codec = self.config.codec()
        total = int(aggregate[-1])
        if total < 1 or total >= codec.modulus // 2:
            return self._abort("the aggregated sample count is out of range")
        summed = decode(aggregate[:-1], codec)
        return self._apply(summed, total, contributors, aggregate)

    def _apply_plain(self, uploads: Mapping[int, PlainUpload]) -> list[Envelope]:
        summed = np.zeros(self.model_size, dtype=np.float64)
        total = 0
        for msg in uploads.values():
            count = msg.num_samples if self.config.weighted else 1
            limit = self.config.max_samples if self.config.weighted else None
            weight = count / limit if limit else 1.0
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
        cfg = self.config
        mean = summed * (cfg.max_samples / total) if cfg.weighted else summed / total  # type: ignore[operator]
        update = mean * len(contributors) if cfg.aggregation is Aggregation.SUM else mean
        new = (self.weights.astype(np.float64) + cfg.server_lr * update).astype(np.float32)
        if not np.isfinite(new).all():
            return self._abort("the update would make the model non-finite")
        self.weights = new
        dropped = tuple(p for p in self._group if p not in contributors)
        self.history.append(
            RoundOutcome(
                self.round,
                RoundStatus.APPLIED,
                self._group,
                contributors,
                dropped,
                total,
                aggregate,
                update,
                seconds=perf_counter() - self._round_started,
            )
        )
        return self._end_round(RoundStatus.APPLIED, contributors)

    def _abort(self, reason: str) -> list[Envelope]:
        self.history.append(
            RoundOutcome(
                self.round,
                RoundStatus.ABORTED,
                self._group,
                (),
                self._group,
                0,
                None,
                None,
                reason=reason,
                seconds=perf_counter() - self._round_started,
            )
        )
        return self._end_round(RoundStatus.ABORTED, ())

    def _end_round(self, status: RoundStatus, contributors: tuple[int, ...]) -> list[Envelope]:
        self._reset_round()
        self.stage = S.IDLE
        end = RoundEnd(self.session_id, self.round, int(status), contributors)
        return [Envelope(p, end) for p in self.registered]

    # -- helpers ---------------------------------------------------------------------------

    def _move(self, event: Control, target: ServerStage) -> None:
        if target not in server_check(self.config.mode, self.stage, event):
            raise UnexpectedMessage(f"the server cannot move to {target.value} on {event.value}")
        self.stage = target
        if target is S.COLLECTING_KEYS:
            self._expected = set(self.roster)

    def _reset_round(self) -> None:
        self._group = ()
        self._contributors = ()
        self._received = {}
        self._expected = set()
        self._dropped = ()
        self._uploads_from = ()
        self._partial = None
        self._round_started = perf_counter()
