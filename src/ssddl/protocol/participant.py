"""The participant's side of SSDDL (DESIGN.md §2): a state machine ``handle(msg) -> replies``.

A participant never touches a socket: a runtime hands it decoded messages from the server and
sends the replies back. What it does is the paper's modules in order — Init (``init``),
SelectGroup (it learns its round's group from ``RoundStart``), LocalTrain (the ``trainer``
callback, ``localtrain``), ParaShare (its session's scheme, ``schemes``) and the end of
ParaUpdate (every pair PRNG advances).

All of its protocol state is a :class:`~ssddl.protocol.state.ParticipantState`:
``to_bytes()`` saves it, :meth:`Participant.restore` rebuilds the participant from it with the
identity key, roster and callbacks that the runtime supplies. A refused message raises a named
error and leaves the state as it was.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from time import perf_counter
from typing import Any, cast

import numpy as np

from ssddl.exceptions import (
    ConfigurationError,
    GroupTooSmall,
    MalformedMessage,
    NonFiniteError,
    ReplayedMessage,
    ShareError,
    UnexpectedMessage,
    UnknownSender,
)
from ssddl.hazmat.codec import FixedPoint, all_finite, encode, encode_clipped
from ssddl.hazmat.fsprng import ForwardSecurePRNG
from ssddl.hazmat.keys import ExchangeKey, IdentityKey
from ssddl.hazmat.rand import OsRandom, RandomSource, RewindableSource
from ssddl.protocol.binding import model_digest
from ssddl.protocol.config import PairKeys, Rounding, SessionParams
from ssddl.protocol.dp import check_noise, encode_noised
from ssddl.protocol.init import (
    DirectoryIndex,
    check_announced_members,
    derive_pair_prng,
    graph_seed,
    make_key_advert,
    pair_prngs,
)
from ssddl.protocol.localtrain import Inspector, LocalUpdate, Trainer, check_update
from ssddl.protocol.masks import RoundKeys
from ssddl.protocol.messages import (
    KeyDirectory,
    Kind,
    Message,
    MessageKind,
    RoundEnd,
    RoundStart,
    SessionAnnounce,
    SessionEnd,
)
from ssddl.protocol.pairing import pairing_graph, round_graph
from ssddl.protocol.policy import ParticipantPolicy
from ssddl.protocol.ports import InlineMaskBuilder, MaskBuilder, PendingMask
from ssddl.protocol.premask import MasksInFlight
from ssddl.protocol.roles import MaskPrecomputer
from ssddl.protocol.schemes import Scheme
from ssddl.protocol.stages import ParticipantStage, participant_next
from ssddl.protocol.state import ParticipantState

__all__ = ["LocalUpdate", "Participant", "Trainer"]

_log = logging.getLogger(__name__)

K = MessageKind

#: encode_update works through the update in slices of this many entries (512 KiB of
#: float64: in cache, and no model-sized temporary per message)
ENCODE_SLICE = 1 << 16
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))

Handler = Callable[[Any], list[Message]]


class Participant:
    """One participant: its identity key, its pair PRNGs and its LocalTrain callback.

    ``masks``: where its combined masks are built (:class:`~ssddl.protocol.ports.MaskBuilder`;
    default: in the caller, :class:`~ssddl.protocol.ports.InlineMaskBuilder`). A runtime that
    wants them built off the critical path passes an engine of :mod:`ssddl.runtime.masking`,
    which it owns and closes. ``premask``: when every registered member is in every group, ask
    the builder for the next round's mask as soon as the member's upload is out (or, if it
    did not upload, when the round ends); the bytes sent are the same.
    """

    def __init__(
        self,
        participant_id: int,
        identity: IdentityKey,
        roster: Mapping[int, bytes],
        trainer: Trainer,
        *,
        random: RandomSource | None = None,
        rounding_rng: np.random.Generator | None = None,
        inspector: Inspector | None = None,
        policy: ParticipantPolicy | None = None,
        masks: MaskBuilder | None = None,
        premask: bool = True,
    ) -> None:
        if participant_id not in roster:
            raise ConfigurationError(f"participant {participant_id} is not in the roster")
        if roster[participant_id] != identity.public_bytes:
            raise ConfigurationError(
                f"participant {participant_id}'s identity key does not match the roster entry"
            )
        self.id = participant_id
        self._identity = identity
        self._roster = dict(roster)
        self._trainer = trainer
        #: every draw goes through it: bytes drawn ahead for a round that never came are
        #: given back and drawn again, in order (the bytes sent do not depend on premask)
        self.random = RewindableSource(random if random is not None else OsRandom())
        self._rounding_rng = rounding_rng
        self._inspector = inspector
        self.policy = policy if policy is not None else ParticipantPolicy()
        #: where masks are built (a port: the participant never closes it)
        self.masks: MaskBuilder = masks if masks is not None else InlineMaskBuilder()
        self._premask = premask  #: build the next round's pair masks when a round ends
        # -- protocol state (everything below is in to_bytes) --
        self.stage = ParticipantStage.CREATED
        self.config: SessionParams | None = None
        self.session_id = b""
        self.model_size = 0
        self.participants: tuple[int, ...] = ()
        self._exchange: ExchangeKey | None = None
        self._prngs: dict[int, ForwardSecurePRNG] = {}
        self.registered: tuple[int, ...] = ()  #: the members in the key directory
        self._graph_seed = b""  #: the session's pairing-graph seed (sparse pairing)
        self._directory: DirectoryIndex | None = None  #: signed keys (lazy pair keys)
        self.round = -1
        self.group: tuple[int, ...] = ()
        self.round_keys: dict[int, bytes] = {}  #: pair mask keys of the open round
        self.share_keys: dict[int, bytes] = {}  #: pair share-sealing keys of the open round
        self.signed_set: tuple[int, ...] = ()  #: the set signed this round (consistency check)
        #: the digest of the model the open round started with (ssddl.protocol.binding): bound
        #: into the member's sealed shares, its signature and (no seed shares) its pair masks
        self.model_digest = b""
        self.scheme_state: Any = None
        # -- per-message scratch, not state --
        self._scratch: np.ndarray | None = None  #: encode_update's float64 work slice
        #: the round's update while it is shared, checked finite by check_update (not again)
        self._finite_delta: np.ndarray | None = None
        #: the masks started and not used yet, and the pair keys read to start them
        self.in_flight = MasksInFlight(self.random)
        #: per peer, (share key, the AEAD key derived from it): derived once a round
        self.aead_keys: dict[int, tuple[bytes, bytes]] = {}
        self.timings: dict[str, float] = {}
        self.last_train_metrics: Mapping[str, float] = {}
        self._handlers: dict[Kind, Handler] = {
            K.SESSION_ANNOUNCE: self._on_session_announce,
            K.KEY_DIRECTORY: self._on_key_directory,
            K.ROUND_START: self._on_round_start,
            K.ROUND_END: self._on_round_end,
            K.SESSION_END: self._on_session_end,
        }

    def __repr__(self) -> str:
        return f"Participant(id={self.id}, stage={self.stage.value})"

    # -- dispatch --------------------------------------------------------------------------

    @property
    def params(self) -> SessionParams:
        """The session's resolved parameters (UnexpectedMessage before the announcement)."""
        if self.config is None:
            raise UnexpectedMessage("no session has been announced yet")
        return self.config

    @property
    def scheme(self) -> Scheme:
        """The session's scheme (resolved once, with the announced parameters)."""
        scheme: Scheme = self.params.scheme
        return scheme

    @property
    def min_contributors(self) -> int:
        """The fewest contributors for which this member releases anything that completes
        a round (its policy's floor or the session's, whichever is larger)."""
        return self.policy.contributor_floor(self.params)

    def handle(self, message: Message) -> list[Message]:
        """Process one message from the server; return the replies to send to it."""
        mode: Any = self.config if self.config is not None else "prg"
        if not isinstance(message, SessionAnnounce) and message.session_id != self.session_id:
            raise ReplayedMessage(f"{message.describe()} belongs to another session")
        participant_next(mode, self.stage, message.KIND)  # refuses out-of-order messages
        replies = self._handler(message.KIND)(message)
        # the announcement fixes the scheme, and with it the stage that follows
        self.stage = participant_next(self.params, self.stage, message.KIND)
        return replies

    def _handler(self, kind: Kind) -> Handler:
        own = self._handlers.get(kind)
        if own is not None:
            return own
        scheme_handler = self.scheme.participant_handlers().get(kind)
        if scheme_handler is None:
            raise UnexpectedMessage(f"no handler for {kind.name.lower()} in {self.scheme!r}")
        return lambda message: scheme_handler(self, message)

    # -- Init ------------------------------------------------------------------------------

    def _on_session_announce(self, msg: SessionAnnounce) -> list[Message]:
        check_announced_members(msg, self.id, self._roster)
        params = SessionParams.from_announcement(msg.config, len(msg.participants))
        self.policy.check_session(params)  # before any key is made
        check_noise(self.policy, params, msg.model_size)
        self.config = params
        self.session_id = msg.session_id
        self.model_size = msg.model_size
        self.participants = msg.participants
        if not self.scheme.needs_keys:
            return []
        self._exchange, advert = make_key_advert(
            self._identity, self.session_id, self.id, self.random
        )
        return [advert]

    def _on_key_directory(self, msg: KeyDirectory) -> list[Message]:
        if self._exchange is None or self.registered:
            raise UnexpectedMessage("no exchange key: the key directory came twice")
        seed = graph_seed(msg) if self.params.degree else b""
        if self.params.pair_keys is PairKeys.LAZY:
            # keys are agreed on a pair's first round: the exchange key lives until SessionEnd
            self._directory = DirectoryIndex.from_directory(
                msg, self._exchange, participant_id=self.id, participants=self.participants
            )
            self.registered, self._graph_seed = tuple(sorted(msg.participants)), seed
            return []
        self._prngs = pair_prngs(
            self._exchange,
            msg,
            participant_id=self.id,
            participants=self.participants,
            roster=self._roster,
            peers=self._graph_peers(msg, seed),
        )
        self.registered, self._graph_seed = tuple(sorted(msg.participants)), seed
        self._exchange = None  # the pair secrets now live only inside the PRNG states
        self._start_ahead(self.round + 1)
        return []

    def _graph_peers(self, msg: KeyDirectory, seed: bytes) -> frozenset[int] | None:
        """With sparse pairing and every registered member in every group, this member's
        neighbours on the session's graph (keys are agreed only with them); None: every
        member (the complete graph, or per-round graphs over smaller groups)."""
        degree = self.params.degree
        if not degree or self.params.group_size < len(msg.participants):
            return None
        graph = pairing_graph(seed, tuple(sorted(msg.participants)), degree)
        return graph.get(self.id, frozenset())

    def _round_peers(self, round_number: int, group: tuple[int, ...]) -> list[int]:
        """The members this member pairs with in the round: its neighbours on the round's
        graph under sparse pairing, else every other member of the group."""
        others = [p for p in group if p != self.id]
        degree = self.params.degree
        if not degree:
            return others
        graph = round_graph(self._graph_seed, round_number, group, self.registered, degree)
        return [p for p in others if p in graph[self.id]]

    def _round_prngs(self, msg: RoundStart) -> dict[int, ForwardSecurePRNG]:
        """The PRNG of each of the round's pairs: the one agreed before, or (lazy pair keys)
        one agreed now and jumped to the round. New ones are kept only once the round's
        update is accepted; nothing here changes the saved state."""
        if not self.scheme.needs_keys:
            return {}
        prngs = {}
        for peer in self._round_peers(msg.round, msg.group):
            prng = self._prngs.get(peer)
            if prng is None:
                prng = self._agree(peer, msg.round)
            prngs[peer] = prng
        return prngs

    def _agree(self, peer: int, round_number: int) -> ForwardSecurePRNG:
        """Lazy pair keys: the pair's PRNG from the directory, standing at ``round_number``
        (the rounds before it never used this pair)."""
        if self._directory is None or self._exchange is None:
            raise UnknownSender(f"participant {self.id} agreed no pair key with {peer}")
        public, signature = self._directory.entry(peer)
        prng = derive_pair_prng(
            self._exchange,
            public,
            signature,
            session_id=self.session_id,
            participant_id=self.id,
            peer=peer,
            roster=self._roster,
        )
        prng.jump_to(round_number)
        return prng

    # -- SelectGroup + LocalTrain + ParaShare ----------------------------------------------

    def _on_round_start(self, msg: RoundStart) -> list[Message]:
        self._check_round_start(msg)
        digest = model_digest(self.session_id, msg.round, msg.group, msg.weights)
        prngs = self._round_prngs(msg)
        # masks build while LocalTrain runs
        self.in_flight.current = self._precompute(msg, prngs, digest)
        started = perf_counter()
        try:
            update = self._trainer(msg.weights, msg.round)
            trained = perf_counter()
            delta, count = check_update(update, self.params, self.model_size, self.id)
            self._finite_delta = delta
        except BaseException:
            self.in_flight.drop_current()
            self.in_flight.forget_peeked()
            raise
        self.last_train_metrics = dict(update.metrics)
        # Nothing above touched a key: a refused update leaves every PRNG as it was.
        self.round = msg.round
        self.group = msg.group
        self.model_digest = digest
        self.scheme_state = None
        peeked = self.in_flight.take_peeked(msg.round)
        for peer, prng in prngs.items():  # sparse: the round's neighbours only
            self._prngs[peer] = prng
            keys = peeked.get(peer) if prng.round <= msg.round else None
            if keys is None:
                keys = prng.take_round_keys(msg.round)
            else:  # read when the mask was started: the state only moves past the round
                prng.jump_to(msg.round + 1)
            self.round_keys[peer], self.share_keys[peer] = keys
        try:
            replies = self.scheme.contribute(self, delta, count)
        finally:
            self._finite_delta = None
            self.in_flight.drop_current()
        self.timings = {"train": trained - started, "share": perf_counter() - trained}
        # the next round's mask can start now: the worker builds it while this round's
        # uploads, unmasking and end go by (nothing is drawn between here and the round end)
        try:
            self._start_ahead(msg.round + 1)
        except Exception as exc:  # only work done early: the upload must still go out
            _log.warning(
                "participant %s could not start round %s's mask early (%s); it starts when "
                "the round ends",
                self.id,
                msg.round + 1,
                type(exc).__name__,
            )
        return replies

    def _precompute(
        self, msg: RoundStart, prngs: Mapping[int, ForwardSecurePRNG], digest: bytes
    ) -> PendingMask | None:
        """The scheme's mask for this round: the one built ahead if it is this round's (its
        seed shares, drawn before the model was known, bound to the round's model digest
        now), else one started now from the round's pair PRNGs and the digest, without
        advancing them (they advance only once the update is accepted). Nothing here is
        saved."""
        scheme = self._mask_builder()
        if scheme is None:
            return None
        ahead = self.in_flight.use_ahead(msg.round, msg.group == self.registered, digest)
        if ahead is not None:
            return ahead
        return scheme.precompute(self, self._peek(prngs, msg.round, msg.group, digest))

    def _mask_builder(self) -> MaskPrecomputer | None:
        """The session's scheme if it builds masks before the update exists (with pair
        keys), else None. (A runtime-checkable protocol's isinstance costs ~10 µs, and this
        is asked twice a member and round: the answer is kept per scheme class.)"""
        scheme = self.scheme
        if scheme.needs_keys and _builds_masks(type(scheme)):
            return cast(MaskPrecomputer, scheme)
        return None

    def _start_ahead(self, round_number: int) -> None:
        """When every registered member is in every group, the next round's group is known:
        start its whole mask now, while the member waits for the round (not saved; used only
        by that round with that group). Not with lazy pair keys (a pair not yet agreed).
        A mask already started for ``round_number`` is kept."""
        in_flight = self.in_flight
        if in_flight.ahead is not None and in_flight.ahead[0] == round_number:
            return
        in_flight.drop_ahead()
        scheme, group = self._mask_builder(), self.registered
        if scheme is None or not self._premask:
            return
        params = self.params
        if len(group) > params.group_size or self.id not in group or round_number >= params.rounds:
            return
        peers = self._round_peers(round_number, group)
        if any(peer not in self._prngs for peer in peers):
            return
        prngs = {peer: self._prngs[peer] for peer in peers}
        pending = scheme.precompute_ahead(self, self._peek(prngs, round_number, group))
        if pending is not None:
            in_flight.ahead = (round_number, pending)

    def _peek(
        self,
        prngs: Mapping[int, ForwardSecurePRNG],
        round_number: int,
        group: tuple[int, ...],
        digest: bytes = b"",
    ) -> RoundKeys:
        """The round's pair keys, read without moving a PRNG; their share keys too unless
        encoding draws from the random source (then the seed shares wait for the share
        step)."""
        share_keys = not self.encoding_draws
        return self.in_flight.peek(prngs, round_number, group, digest, share_keys=share_keys)

    def take_seed(self, size: int) -> bytes:
        """A fresh secret seed of ``size`` bytes (the self-mask). Never saved."""
        return self.random.random_bytes(size)

    @property
    def encoding_draws(self) -> bool:
        """Whether encoding the update draws from :attr:`random` (stochastic rounding with
        no generator of its own): then nothing after the seed is drawn before the encoding."""
        return self.params.rounding is Rounding.STOCHASTIC and self._rounding_rng is None

    def give_back_draws(self, pending: PendingMask) -> None:
        """The update was refused: the randomness drawn early for its seed shares goes back
        to the random source (the seed does not: without the early draw it was drawn too)."""
        self.in_flight.give_back(pending)

    def take_precomputed(self) -> PendingMask | None:
        """The mask :meth:`_precompute` started for the open round, once (None if none)."""
        return self.in_flight.take_current()

    def _check_round_start(self, msg: RoundStart) -> None:
        params = self.params
        if msg.round <= self.round:
            raise ReplayedMessage(f"round {msg.round} is not after round {self.round}")
        self.policy.check_round(msg.round, len(msg.group))
        if self.id not in msg.group:
            raise UnknownSender(f"participant {self.id} is not in the group of round {msg.round}")
        if len(msg.group) < self.min_contributors:
            raise GroupTooSmall(
                f"round {msg.round} has {len(msg.group)} members, below the "
                f"{self.min_contributors} contributors a round needs; the participant will not "
                f"share in it"
            )
        if len(msg.group) > params.group_size:
            raise MalformedMessage(
                f"round {msg.round} has {len(msg.group)} members, more than the announced "
                f"group_size={params.group_size}"
            )
        known = self.registered if self.scheme.needs_keys else self.participants
        if not set(known).issuperset(msg.group):  # one pass each (not n² tuple lookups)
            stray = [p for p in msg.group if p not in known]
            raise UnknownSender(
                f"the group of round {msg.round} holds unregistered members {stray}"
            )
        if msg.weights.shape != (self.model_size,):
            raise MalformedMessage(
                f"weights have {msg.weights.size} entries; "
                f"the session's model has {self.model_size}"
            )
        if not all_finite(msg.weights):
            raise NonFiniteError("the global weights sent by the server are not finite")

    # -- ParaUpdate ------------------------------------------------------------------------

    def _on_round_end(self, msg: RoundEnd) -> list[Message]:
        if msg.round < self.round:
            raise ReplayedMessage(f"round {msg.round} ended before round {self.round}")
        self.policy.check_round(msg.round)  # bounds the PRNG jump below
        self.round = msg.round
        self._forget_round()
        for prng in self._prngs.values():  # all states advance, also when not selected
            if prng.round <= msg.round:
                prng.jump_to(msg.round + 1)
        self._start_ahead(msg.round + 1)
        return []

    def _on_session_end(self, msg: SessionEnd) -> list[Message]:
        self.in_flight.clear()
        self.random.clear()
        self._forget_round()
        for prng in self._prngs.values():
            prng.erase()
        self._prngs = {}
        self._exchange = None
        self._directory = None
        return []

    # -- what schemes use ------------------------------------------------------------------

    def check_round(self, round_number: int) -> None:
        """Refuse a message of another round than the open one."""
        if round_number != self.round:
            raise ReplayedMessage(
                f"message for round {round_number} while round {self.round} is open"
            )

    def encode_update(
        self, delta: np.ndarray, count: int, *, onto: np.ndarray | None = None
    ) -> np.ndarray:
        """x_i: the clipped (weighted) change in fixed point, plus its count word.

        With ``onto`` (M + 1 ring words, e.g. the member's combined mask) x_i is added to it
        in place (mod Q) and ``onto`` is returned: the masked upload without a separate
        M-word array for x_i.
        """
        codec = self.codec
        if onto is not None:
            if onto.shape != (delta.size + 1,) or onto.dtype != codec.dtype:
                raise ShareError(
                    f"the array to add x_i onto has {onto.size} {onto.dtype} words; x_i has "
                    f"{delta.size + 1} {codec.dtype} words"
                )
            if self._inspector is not None:  # the inspector sees x_i itself
                np.add(onto, self.encode_update(delta, count), out=onto)
                return onto
        x = np.empty(delta.size + 1, dtype=codec.dtype) if onto is None else onto
        self._encode_slices(delta, count, codec, x, add=onto is not None)
        if self._inspector is not None:
            self._inspector(self.round, x.copy())
        return x

    @property
    def codec(self) -> FixedPoint:
        """The session's fixed-point code (built once per session, not per round)."""
        return self.params.codec()

    def _encode_slices(
        self, delta: np.ndarray, count: int, codec: FixedPoint, x: np.ndarray, *, add: bool
    ) -> None:
        """Write (with ``add``: add, mod Q) x_i into ``x``. Every step is per entry, so the
        vector goes through one small float64 buffer slice by slice: no model-sized
        temporary to allocate (and fault in) per message. Stochastic rounding draws the
        whole vector's uniforms at once, in one slice."""
        params = self.params
        if params.dp:
            self._encode_noised(delta, codec, x, add=add)
            return
        rng = self._rounding_rng if params.rounding is Rounding.STOCHASTIC else None
        if params.rounding is Rounding.STOCHASTIC and rng is None:
            rng = np.random.default_rng(int.from_bytes(self.random.random_bytes(16), "little"))
        weight = count / params.max_samples if params.weighted else 1.0
        size = delta.size
        step = max(1, size if rng is not None else min(size, ENCODE_SLICE))
        if self._scratch is None or self._scratch.size != step:
            self._scratch = np.empty(step, dtype=np.float64)  # reused every round
        words = np.empty(step, dtype=codec.dtype) if add else None
        if rng is None and delta.dtype in _FLOATS:
            # the round's update was checked finite when LocalTrain returned it
            finite = delta is self._finite_delta
            encode_clipped(
                delta, codec, params.clip, weight, x, words, self._scratch, finite=finite
            )
        else:
            for start in range(0, size, step):
                stop = min(start + step, size)
                values = np.clip(
                    delta[start:stop], -params.clip, params.clip, out=self._scratch[: stop - start]
                )
                part = x[start:stop] if words is None else words[: stop - start]
                encode(values, codec, rng=rng, out=part, scratch=values, weight=weight)
                if words is not None:
                    np.add(x[start:stop], part, out=x[start:stop])
        last = np.array([count if params.weighted else 1], dtype=codec.dtype)
        if words is None:
            x[-1:] = last
        else:
            np.add(x[-1:], last, out=x[-1:])
            words.fill(0)

    def _encode_noised(
        self, delta: np.ndarray, codec: FixedPoint, x: np.ndarray, *, add: bool
    ) -> None:
        """Distributed DP: x_i is the member's clipped, rotated, rounded and noised change
        (:mod:`ssddl.protocol.dp`) in two's complement, and a count word of 1."""
        z = encode_noised(self.params, self.session_id, self.round, delta, self.random)
        words = z.view(np.uint64).astype(codec.dtype)  # mod 2**ring_bits
        if add:
            np.add(x[:-1], words, out=x[:-1])
            np.add(x[-1:], np.ones(1, dtype=codec.dtype), out=x[-1:])
        else:
            x[:-1] = words
            x[-1] = 1

    def sign(self, message: bytes) -> bytes:
        """An Ed25519 signature with the identity key (the consistency check)."""
        return self._identity.sign(message)

    @property
    def roster(self) -> Mapping[int, bytes]:
        return self._roster

    def _forget_round(self) -> None:
        self.in_flight.forget_peeked(through=self.round)
        self.round_keys.clear()
        self.share_keys.clear()
        self.aead_keys.clear()
        self.signed_set = ()
        self.scheme_state = None
        self.group = ()
        self.model_digest = b""

    # -- introspection without secrets -----------------------------------------------------

    @property
    def pair_rounds(self) -> dict[int, int]:
        """The round each pair PRNG stands at (no state): for tests and monitoring."""
        return {peer: prng.round for peer, prng in self._prngs.items()}

    # -- persistence -----------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The whole protocol state (a secret; see :mod:`ssddl.protocol.state`)."""
        scheme_state = (
            self.scheme.encode_participant_state(self.scheme_state)
            if self.config is not None
            else b""
        )
        peers = tuple(sorted(self._prngs))
        return ParticipantState(
            participant_id=self.id,
            stage=self.stage.value,
            config=self.config.canonical_json() if self.config is not None else "",
            session_id=self.session_id,
            model_size=self.model_size,
            participants=self.participants,
            registered=self.registered,
            graph_seed=self._graph_seed,
            directory_keys=self._directory.entries if self._directory else b"",
            exchange_private=self._exchange.private_bytes() if self._exchange else b"",
            prng_peers=peers,
            prng_rounds=tuple(self._prngs[p].round for p in peers),
            prng_states=tuple(self._prngs[p].export_state() for p in peers),
            round_plus_one=self.round + 1,
            group=self.group,
            round_key_peers=tuple(self.round_keys),
            round_keys=tuple(self.round_keys.values()),
            share_keys=tuple(self.share_keys[p] for p in self.round_keys),
            signed=self.signed_set,
            scheme_state=scheme_state,
            model_digest=self.model_digest,
        ).to_bytes()

    @classmethod
    def restore(
        cls,
        data: bytes,
        identity: IdentityKey,
        roster: Mapping[int, bytes],
        trainer: Trainer,
        *,
        random: RandomSource | None = None,
        rounding_rng: np.random.Generator | None = None,
        inspector: Inspector | None = None,
        policy: ParticipantPolicy | None = None,
        masks: MaskBuilder | None = None,
        premask: bool = False,
    ) -> Participant:
        """Rebuild a participant from :meth:`to_bytes` (MalformedMessage if the bytes are
        not a valid state of this participant). ``masks`` and ``premask`` as in the
        constructor; ``premask`` off by default: a participant rebuilt for each message
        would throw the work away."""
        state = ParticipantState.from_bytes(data)
        participant = cls(
            state.participant_id,
            identity,
            roster,
            trainer,
            random=random,
            rounding_rng=rounding_rng,
            inspector=inspector,
            policy=policy,
            masks=masks,
            premask=premask,
        )
        participant._load(state)
        return participant

    def _load(self, state: ParticipantState) -> None:
        try:
            self.stage = ParticipantStage(state.stage)
        except ValueError:
            raise MalformedMessage(f"unknown participant stage {state.stage!r}") from None
        if state.config:
            self.config = SessionParams.from_announcement(state.config, len(state.participants))
        self.session_id = state.session_id
        self.model_size = state.model_size
        self.participants = state.participants
        if state.exchange_private:
            self._exchange = ExchangeKey.from_private_bytes(state.exchange_private)
        self.registered, self._graph_seed = state.registered, state.graph_seed
        if state.directory_keys:
            self._directory = DirectoryIndex(state.registered, state.directory_keys)
        self._prngs = {
            peer: ForwardSecurePRNG(secret, start_round=r)
            for peer, r, secret in zip(
                state.prng_peers, state.prng_rounds, state.prng_states, strict=True
            )
        }
        self.round = state.round_plus_one - 1
        self.group = state.group
        self.round_keys = dict(zip(state.round_key_peers, state.round_keys, strict=True))
        self.share_keys = dict(zip(state.round_key_peers, state.share_keys, strict=True))
        self.signed_set = state.signed
        self.model_digest = state.model_digest
        if self.config is not None:
            self.scheme_state = self.scheme.decode_participant_state(state.scheme_state)


@functools.cache
def _builds_masks(scheme: type) -> bool:
    return issubclass(scheme, MaskPrecomputer)
