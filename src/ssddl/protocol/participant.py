"""The participant's side of SSDDL: Init, LocalTrain and ParaShare (DESIGN.md §2).

A :class:`Participant` is a state machine driven by ``handle(message) -> replies``. It never
touches a socket: a runtime hands it decoded messages from the server and sends the replies
back. LocalTrain is a callback (``trainer``) so that this layer needs no torch.

Before anything is sent, an update is checked (shape, finiteness, sample count); a refused
update raises and leaves the participant in the stage it was in, its keys untouched.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

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
from ssddl.hazmat.aead import open_sealed, seal
from ssddl.hazmat.codec import encode
from ssddl.hazmat.fsprng import ForwardSecurePRNG
from ssddl.hazmat.keys import (
    ExchangeKey,
    IdentityKey,
    derive_key,
    pair_secret,
    sign_exchange_key,
    verify_exchange_key,
)
from ssddl.hazmat.prg import accumulate_keystream, derive_nonce
from ssddl.hazmat.rand import OsRandom, RandomSource
from ssddl.hazmat.sharing import (
    SHAMIR_PRIME,
    additive_split,
    field_add,
    ring_to_field,
    shamir_split,
)
from ssddl.protocol.config import Mode, ProtocolConfig, Rounding
from ssddl.protocol.messages import (
    KeyAdvert,
    KeyDirectory,
    Message,
    PlainUpload,
    RevealRequest,
    RevealResponse,
    RoundEnd,
    RoundStart,
    SessionAnnounce,
    SessionEnd,
    ShareBundle,
    ShareDelivery,
    Upload,
)
from ssddl.protocol.stages import ParticipantStage, participant_next

__all__ = ["LocalUpdate", "Participant", "Trainer", "mask_nonce"]

FSPRNG_PURPOSE = b"ssddl/fsprng/v1"
SHARE_AEAD_PURPOSE = b"ssddl/share-aead/v1"
MASK_PURPOSE = "mask"


def mask_nonce(session_id: bytes, round_number: int, a: int, b: int) -> bytes:
    """The nonce of the pair (a, b)'s mask stream in a round; the pair is ordered."""
    low, high = (a, b) if a < b else (b, a)
    return derive_nonce(session_id, round_number, low, high, MASK_PURPOSE)


@dataclass(frozen=True)
class LocalUpdate:
    """What LocalTrain hands to ParaShare: Δw = w_i − w^r and the number of samples."""

    delta: np.ndarray
    num_samples: int
    metrics: Mapping[str, float] = field(default_factory=dict)


#: LocalTrain: (global weights w^r, round number) -> the local parameter change.
Trainer = Callable[[np.ndarray, int], LocalUpdate]
#: Test and validation hook: (round, the encoded vector x_i) — never sent anywhere.
Inspector = Callable[[int, np.ndarray], None]


class Participant:
    """One participant: its identity key, its pair PRNGs and its LocalTrain callback."""

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
        self._random: RandomSource = random if random is not None else OsRandom()
        self._rounding_rng = rounding_rng
        self._inspector = inspector
        self.stage = ParticipantStage.CREATED
        self.config: ProtocolConfig | None = None
        self.session_id = b""
        self.model_size = 0
        self.participants: tuple[int, ...] = ()
        self._exchange: ExchangeKey | None = None
        self._prngs: dict[int, ForwardSecurePRNG] = {}
        self._round = -1
        self._group: tuple[int, ...] = ()
        self._round_keys: dict[int, bytes] = {}
        self._own_share: np.ndarray | None = None
        self._revealed = False
        self._scratch: np.ndarray | None = None
        self.timings: dict[str, float] = {}
        self.last_train_metrics: Mapping[str, float] = {}

    # -- dispatch --------------------------------------------------------------------------

    def handle(self, message: Message) -> list[Message]:
        """Process one message from the server; return the replies to send to it."""
        mode = self.config.mode if self.config is not None else Mode.PRG
        if not isinstance(message, SessionAnnounce) and message.session_id != self.session_id:
            raise ReplayedMessage(f"{message.describe()} belongs to another session")
        participant_next(mode, self.stage, message.KIND)  # refuses out-of-order messages
        handler = getattr(self, f"_on_{message.KIND.name.lower()}")
        replies: list[Message] = handler(message)
        # the announcement fixes the mode, and with it the stage that follows
        self.stage = participant_next(self._config().mode, self.stage, message.KIND)
        return replies

    # -- Init ------------------------------------------------------------------------------

    def _on_session_announce(self, msg: SessionAnnounce) -> list[Message]:
        try:
            config = ProtocolConfig.from_dict(json.loads(msg.config))
        except (ValueError, TypeError) as exc:
            raise MalformedMessage(f"the announced configuration is invalid: {exc}") from None
        if self.id not in msg.participants:
            raise UnknownSender(f"participant {self.id} is not in the announced session")
        unknown = [p for p in msg.participants if p not in self._roster]
        if unknown:
            raise UnknownSender(f"the session lists participants {unknown} missing from the roster")
        if config.group_size is None or config.frac_bits is None:
            raise MalformedMessage("the announced configuration is not resolved")
        config.resolve(len(msg.participants))  # refuses an overflowing configuration
        if config.mode is Mode.SHAMIR and config.threshold is None:
            raise MalformedMessage("the announced shamir configuration has no threshold")
        self.config = config
        self.session_id = msg.session_id
        self.model_size = msg.model_size
        self.participants = msg.participants
        if config.mode is Mode.PLAIN:
            return []
        self._exchange = ExchangeKey.generate(self._random)
        public = self._exchange.public_bytes
        signature = sign_exchange_key(self._identity, self.session_id, self.id, public)
        return [KeyAdvert(self.session_id, self.id, public, signature)]

    def _on_key_directory(self, msg: KeyDirectory) -> list[Message]:
        if self._exchange is None:
            raise UnexpectedMessage("no exchange key: the key directory came twice")
        keys = zip(msg.exchange_publics, msg.signatures, strict=True)
        entries = dict(zip(msg.participants, keys, strict=True))
        if entries.get(self.id, (None,))[0] != self._exchange.public_bytes:
            raise MalformedMessage(
                f"the key directory does not carry participant {self.id}'s own key"
            )
        stray = [p for p in entries if p not in self.participants]
        if stray:
            raise UnknownSender(f"the key directory lists unknown participants {stray}")
        prngs = {}
        for peer, (public, signature) in entries.items():
            if peer == self.id:
                continue
            verify_exchange_key(self._roster[peer], self.session_id, peer, public, signature)
            secret = pair_secret(self._exchange, public, self.session_id, self.id, peer)
            prngs[peer] = ForwardSecurePRNG(derive_key(secret, FSPRNG_PURPOSE, self.session_id))
        self._prngs = prngs
        self._exchange = None  # the pair secrets now live only inside the PRNG states
        return []

    # -- SelectGroup + LocalTrain + ParaShare ----------------------------------------------

    def _on_round_start(self, msg: RoundStart) -> list[Message]:
        config = self._config()
        if msg.round <= self._round:
            raise ReplayedMessage(f"round {msg.round} is not after round {self._round}")
        if self.id not in msg.group:
            raise UnknownSender(f"participant {self.id} is not in the group of round {msg.round}")
        if len(msg.group) < config.min_group_size:
            raise GroupTooSmall(
                f"round {msg.round} has {len(msg.group)} members, below min_group_size="
                f"{config.min_group_size}; the participant will not share in it"
            )
        if len(msg.group) > config.group_size:  # type: ignore[operator]
            raise MalformedMessage(
                f"round {msg.round} has {len(msg.group)} members, more than the announced "
                f"group_size={config.group_size}"
            )
        stray = [
            p
            for p in msg.group
            if p not in self.participants
            or (config.mode is not Mode.PLAIN and p != self.id and p not in self._prngs)
        ]
        if stray:
            raise UnknownSender(
                f"the group of round {msg.round} holds unregistered members {stray}"
            )
        if msg.weights.shape != (self.model_size,):
            raise MalformedMessage(
                f"weights have {msg.weights.size} entries; "
                f"the session's model has {self.model_size}"
            )
        if not np.isfinite(msg.weights).all():
            raise NonFiniteError("the global weights sent by the server are not finite")

        started = perf_counter()
        update = self._trainer(msg.weights, msg.round)
        trained = perf_counter()
        delta, count = self._check_update(update)
        self.last_train_metrics = dict(update.metrics)
        # Nothing above touched a key: a refused update leaves every PRNG as it was.
        self._round = msg.round
        self._group = msg.group
        self._revealed = False
        if config.mode is Mode.PLAIN:
            clipped = np.clip(delta, -config.clip, config.clip).astype(np.float32)
            self.timings = {"train": trained - started, "share": perf_counter() - trained}
            return [PlainUpload(self.session_id, msg.round, self.id, count, clipped)]

        for peer in msg.group:
            if peer != self.id:
                self._round_keys[peer] = self._prngs[peer].take_round_key(msg.round)
        x = self._encode(delta, count)
        if self._inspector is not None:
            self._inspector(msg.round, x.copy())
        if config.mode is Mode.PRG:
            for peer, key in self._round_keys.items():
                sign = 1 if peer > self.id else -1
                nonce = mask_nonce(self.session_id, msg.round, self.id, peer)
                accumulate_keystream(x, key, nonce, sign=sign, cipher=config.cipher)
            self.timings = {"train": trained - started, "share": perf_counter() - trained}
            return [Upload(self.session_id, msg.round, self.id, x)]

        others = [p for p in msg.group if p != self.id]
        if config.mode is Mode.EXPLICIT:
            shares = additive_split(x, len(msg.group), self._random)
        else:
            shares = shamir_split(
                ring_to_field(x),
                threshold=config.threshold,  # type: ignore[arg-type]
                points=msg.group,
                source=self._random,
            )
        by_member = dict(zip(msg.group, shares, strict=True))
        self._own_share = by_member[self.id]
        ciphertexts = tuple(
            seal(
                self._aead_key(peer),
                by_member[peer].tobytes(),
                session_id=self.session_id,
                round_number=msg.round,
                sender=self.id,
                receiver=peer,
                nonce=self._random.random_bytes(12),
                algorithm=config.aead,
            )
            for peer in others
        )
        self.timings = {"train": trained - started, "share": perf_counter() - trained}
        return [ShareBundle(self.session_id, msg.round, self.id, tuple(others), ciphertexts)]

    def _on_share_delivery(self, msg: ShareDelivery) -> list[Message]:
        config = self._config()
        self._check_round(msg.round)
        if self.id not in msg.contributors or not set(msg.contributors) <= set(self._group):
            raise UnknownSender(
                f"the contributors of round {msg.round} do not fit its group {self._group}"
            )
        expected = sorted(p for p in msg.contributors if p != self.id)
        if sorted(msg.senders) != expected:
            raise MalformedMessage(
                f"round {msg.round}: shares from {sorted(msg.senders)} but the contributors "
                f"are {expected}; every contributor's share is needed"
            )
        started = perf_counter()
        if self._own_share is None:
            raise UnexpectedMessage(f"round {msg.round}: no own share to add the delivery to")
        dtype = self._own_share.dtype
        total = self._own_share.copy()
        for sender, blob in zip(msg.senders, msg.ciphertexts, strict=True):
            plain = open_sealed(
                self._aead_key(sender),
                blob,
                session_id=self.session_id,
                round_number=msg.round,
                sender=sender,
                receiver=self.id,
                algorithm=config.aead,
            )
            if len(plain) != total.nbytes:
                raise MalformedMessage(
                    f"the share from participant {sender} has {len(plain)} bytes; "
                    f"expected {total.nbytes}"
                )
            share = np.frombuffer(plain, dtype=dtype.newbyteorder("<")).astype(dtype)
            if config.mode is Mode.EXPLICIT:
                total += share  # wraps mod 2^ring_bits
            else:
                if (share >= SHAMIR_PRIME).any():
                    raise MalformedMessage(
                        f"the share from participant {sender} is not in the field"
                    )
                total = field_add(total, share)
        self._own_share = None
        self.timings["share"] = self.timings.get("share", 0.0) + perf_counter() - started
        return [Upload(self.session_id, msg.round, self.id, total)]

    # -- dropout recovery ------------------------------------------------------------------

    def _on_reveal_request(self, msg: RevealRequest) -> list[Message]:
        config = self._config()
        self._check_round(msg.round)
        if self._revealed:
            raise ReplayedMessage(f"round {msg.round}'s keys were already revealed once")
        if self.id in msg.dropped or not set(msg.dropped) <= set(self._group):
            raise UnknownSender(
                f"round {msg.round}: the vanished members {list(msg.dropped)} must be other "
                f"members of the group"
            )
        survivors = len(self._group) - len(msg.dropped)
        if survivors < config.min_group_size:
            raise GroupTooSmall(
                f"round {msg.round}: revealing keys would leave {survivors} survivors, below "
                f"min_group_size={config.min_group_size}; refused"
            )
        self._revealed = True
        keys = tuple(self._round_keys[p] for p in msg.dropped)
        return [RevealResponse(self.session_id, msg.round, self.id, msg.dropped, keys)]

    # -- ParaUpdate ------------------------------------------------------------------------

    def _on_round_end(self, msg: RoundEnd) -> list[Message]:
        if msg.round < self._round:
            raise ReplayedMessage(f"round {msg.round} ended before round {self._round}")
        self._round = msg.round
        self._forget_round()
        for prng in self._prngs.values():  # all states advance, also when not selected
            if prng.round <= msg.round:
                prng.jump_to(msg.round + 1)
        return []

    def _on_session_end(self, msg: SessionEnd) -> list[Message]:
        self._forget_round()
        self._prngs = {}
        self._exchange = None
        return []

    # -- helpers ---------------------------------------------------------------------------

    def _config(self) -> ProtocolConfig:
        if self.config is None:
            raise UnexpectedMessage("no session has been announced yet")
        return self.config

    def _check_round(self, round_number: int) -> None:
        if round_number != self._round:
            raise ReplayedMessage(
                f"message for round {round_number} while round {self._round} is open"
            )

    def _forget_round(self) -> None:
        self._round_keys.clear()
        self._own_share = None
        self._group = ()

    def _aead_key(self, peer: int) -> bytes:
        return derive_key(self._round_keys[peer], SHARE_AEAD_PURPOSE, self.session_id)

    def _check_update(self, update: Any) -> tuple[np.ndarray, int]:
        config = self._config()
        if not isinstance(update, LocalUpdate):
            raise ConfigurationError("the trainer must return a LocalUpdate")
        delta = np.asarray(update.delta)
        if delta.shape != (self.model_size,) or delta.dtype.kind != "f":
            raise ConfigurationError(
                f"participant {self.id}: the update has shape {delta.shape} and dtype "
                f"{delta.dtype}; expected a float vector of {self.model_size} entries"
            )
        bad = ~np.isfinite(delta)
        if bad.any():
            raise NonFiniteError(
                f"participant {self.id}: the local update has {int(bad.sum())} non-finite "
                f"entries (first at index {int(np.argmax(bad))}); nothing was sent — lower the "
                f"learning rate or check the local data"
            )
        count = update.num_samples
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
            raise ConfigurationError(f"participant {self.id}: num_samples must be a positive int")
        if config.weighted and count > config.max_samples:  # type: ignore[operator]
            raise ConfigurationError(
                f"participant {self.id}: {count} samples exceed max_samples="
                f"{config.max_samples}; raise max_samples in the session config"
            )
        return delta, int(count)

    def _encode(self, delta: np.ndarray, count: int) -> np.ndarray:
        config = self._config()
        codec = config.codec()
        if self._scratch is None or self._scratch.shape != delta.shape:
            self._scratch = np.empty(delta.shape, dtype=np.float64)  # reused every round
        values = np.clip(delta, -config.clip, config.clip, out=self._scratch)
        if config.weighted:
            values *= count / config.max_samples  # type: ignore[operator]
        rng = self._rounding_rng if config.rounding is Rounding.STOCHASTIC else None
        if config.rounding is Rounding.STOCHASTIC and rng is None:
            rng = np.random.default_rng(int.from_bytes(self._random.random_bytes(16), "little"))
        x = np.empty(self.model_size + 1, dtype=codec.dtype)
        encode(values, codec, rng=rng, out=x[:-1])
        x[-1] = count if config.weighted else 1
        return x
