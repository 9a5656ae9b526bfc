"""Protocol messages: frozen dataclasses with a versioned, explicit byte format.

Every message names its session; every message of a round names the round. The sender of a
participant message is also checked against the transport's own idea of who sent it, so a
participant cannot speak for another. ``decode_message(msg.encode()) == msg`` for every message.

**A registry of kinds.** A frame's header names its kind by one byte; :func:`decode_message`
decodes only the kinds registered here and refuses every other code. The session's and the
built-in schemes' kinds are the members of :class:`MessageKind` (their codes are fixed: they
are on the wire and in the recorded transcript). A scheme with messages of its own declares
them in an enum of its own that subclasses :class:`Kind`, and registers each message class
with :func:`register_message` (``register_scheme`` does it for the classes a scheme lists in
``Scheme.messages``). A code or a name that another kind has is refused with an error that
says which kind holds it; codes 128 and up are state records (:mod:`ssddl.protocol.state`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from types import MappingProxyType
from typing import Any, ClassVar, TypeVar

import numpy as np

from ssddl.exceptions import ConfigurationError, MalformedMessage
from ssddl.protocol.wire import (
    ARRAY,
    BLOBS,
    BYTES,
    IDS,
    STR,
    U64,
    FieldType,
    decode_frame,
    encode_fields,
    read_header,
)

__all__ = [
    "SERVER",
    "SESSION_ID_SIZE",
    "ConsistencyRequest",
    "ConsistencySignature",
    "KeyAdvert",
    "KeyDirectory",
    "Kind",
    "MaskedUpload",
    "Message",
    "MessageKind",
    "PlainUpload",
    "RevealRequest",
    "RevealResponse",
    "RoundEnd",
    "RoundStart",
    "RoundStatus",
    "SessionAnnounce",
    "SessionEnd",
    "ShareBundle",
    "ShareDelivery",
    "SparseUpload",
    "UnmaskRequest",
    "UnmaskResponse",
    "Upload",
    "decode_message",
    "kind_of",
    "message_kinds",
    "register_message",
    "unregister_message",
]

#: The server's address; participants are numbered from 1 (their Shamir evaluation points).
SERVER = 0
SESSION_ID_SIZE = 16
MAX_ID = (1 << 31) - 1


#: Message kinds are codes 1..127; 128 and up are state records (ssddl.protocol.state).
MAX_MESSAGE_KIND = 127


class Kind(IntEnum):
    """A message kind: its wire code (one byte, 1..127) and its name. An enum without
    members: :class:`MessageKind` holds the session's and built-in schemes' kinds, and a
    scheme with messages of its own declares its kinds in an enum of its own that subclasses
    this one (``class MyKind(Kind): MY_UPLOAD = 64``)."""


class MessageKind(Kind):
    """The kinds of the session's messages and of the built-in schemes' (codes fixed)."""

    SESSION_ANNOUNCE = 1
    KEY_ADVERT = 2
    KEY_DIRECTORY = 3
    ROUND_START = 4
    SHARE_BUNDLE = 5
    SHARE_DELIVERY = 6
    UPLOAD = 7
    PLAIN_UPLOAD = 8
    REVEAL_REQUEST = 9
    REVEAL_RESPONSE = 10
    ROUND_END = 11
    SESSION_END = 12
    MASKED_UPLOAD = 13
    CONSISTENCY_REQUEST = 14
    CONSISTENCY_SIGNATURE = 15
    UNMASK_REQUEST = 16
    UNMASK_RESPONSE = 17
    SPARSE_UPLOAD = 18


def _check_id(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ID:
        raise MalformedMessage(f"{name} must be a participant id in [1, {MAX_ID}]")


def _check_ids(values: Any, name: str, *, unique: bool = True) -> None:
    if not isinstance(values, tuple):
        raise MalformedMessage(f"{name} must be a tuple of participant ids")
    # one pass over the types (exactly int: no bool, no subclass), then the range at once —
    # a round's messages list group-sized id tuples, validated on every encode and decode
    if values and not (
        all(type(v) is int for v in values) and min(values) >= 1 and max(values) <= MAX_ID
    ):
        for v in values:
            _check_id(v, name)  # the first bad entry names the problem
    if unique and len(set(values)) != len(values):
        raise MalformedMessage(f"{name} lists a participant twice")


def _check_u64(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 64:
        raise MalformedMessage(f"{name} must be an integer in [0, 2^64)")


def _check_array(value: Any, name: str, dtypes: tuple[str, ...]) -> np.ndarray:
    if not isinstance(value, np.ndarray) or value.ndim != 1:
        raise MalformedMessage(f"{name} must be a 1-D numpy array")
    if value.dtype.newbyteorder("=") not in {np.dtype(d) for d in dtypes}:
        raise MalformedMessage(f"{name} has dtype {value.dtype}; expected one of {dtypes}")
    view = value.view()
    view.flags.writeable = False
    return view


def _check_blobs(values: Any, name: str) -> None:
    if not isinstance(values, tuple) or not all(isinstance(b, bytes) for b in values):
        raise MalformedMessage(f"{name} must be a tuple of bytes")


@dataclass(frozen=True, eq=False)
class Message:
    """Base of all messages. Subclasses declare ``KIND`` and ``SCHEMA``."""

    KIND: ClassVar[Kind]
    SCHEMA: ClassVar[tuple[tuple[str, FieldType], ...]]

    session_id: bytes
    #: compression (``ProtocolConfig.bits``): the frame carries its unsigned arrays packed
    #: in this many bits a word (0: whole words); a property of the frame, not a field
    wire_bits: int = field(default=0, kw_only=True)

    def __post_init__(self) -> None:
        if not isinstance(self.session_id, bytes) or len(self.session_id) != SESSION_ID_SIZE:
            raise MalformedMessage(f"session_id must be {SESSION_ID_SIZE} bytes")
        if self.wire_bits and (type(self.wire_bits) is not int or not 8 <= self.wire_bits <= 32):
            raise MalformedMessage("wire_bits must be 0 or an int in [8, 32]")
        for name, kind in self.SCHEMA:
            value = getattr(self, name)
            if kind is U64:
                _check_u64(value, name)
            elif kind is IDS:
                _check_ids(value, name)
            elif kind is BLOBS:
                _check_blobs(value, name)
            elif kind is BYTES and not isinstance(value, bytes):
                raise MalformedMessage(f"{name} must be bytes")
            elif kind is STR and not isinstance(value, str):
                raise MalformedMessage(f"{name} must be a string")
        if hasattr(self, "sender"):  # a message from a participant
            _check_id(self.sender, "sender")
        self.validate()

    def validate(self) -> None:
        """Checks beyond the field types (overridden where needed)."""

    def encode(self) -> bytes:
        return encode_fields(int(self.KIND), self.SCHEMA, self, bits=self.wire_bits)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Message)
            and type(other) is type(self)
            and (self.encode() == other.encode())
        )

    __hash__ = None  # type: ignore[assignment]

    def describe(self) -> str:
        """A log-safe one-liner: kind, round and sender, never payloads."""
        parts = [self.KIND.name.lower()]
        for name in ("round", "sender"):
            if hasattr(self, name):
                parts.append(f"{name}={getattr(self, name)}")
        return " ".join(parts)

    def __repr__(self) -> str:
        # Messages carry masked vectors, shares, keys: a repr never prints a field's value.
        return f"<{self.describe()} ({len(self.encode())} bytes)>"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.__repr__ = Message.__repr__  # type: ignore[method-assign]  # before @dataclass


@dataclass(frozen=True, eq=False)
class SessionAnnounce(Message):
    """Init, server → all: the session id, the published config and the model size."""

    KIND = MessageKind.SESSION_ANNOUNCE
    SCHEMA = (("session_id", BYTES), ("config", STR), ("model_size", U64), ("participants", IDS))
    config: str
    model_size: int
    participants: tuple[int, ...]


@dataclass(frozen=True, eq=False)
class KeyAdvert(Message):
    """Init, participant → server: an X25519 public key signed by the identity key."""

    KIND = MessageKind.KEY_ADVERT
    SCHEMA = (
        ("session_id", BYTES),
        ("sender", U64),
        ("exchange_public", BYTES),
        ("signature", BYTES),
    )
    sender: int
    exchange_public: bytes
    signature: bytes


@dataclass(frozen=True, eq=False)
class KeyDirectory(Message):
    """Init, server → all: every registered participant's signed X25519 key."""

    KIND = MessageKind.KEY_DIRECTORY
    SCHEMA = (
        ("session_id", BYTES),
        ("participants", IDS),
        ("exchange_publics", BLOBS),
        ("signatures", BLOBS),
    )
    participants: tuple[int, ...]
    exchange_publics: tuple[bytes, ...]
    signatures: tuple[bytes, ...]

    def validate(self) -> None:
        if not len(self.participants) == len(self.exchange_publics) == len(self.signatures):
            raise MalformedMessage("participants, exchange_publics and signatures differ in length")


@dataclass(frozen=True, eq=False)
class RoundStart(Message):
    """SelectGroup, server → each member: the round's group and the global weights."""

    KIND = MessageKind.ROUND_START
    SCHEMA = (("session_id", BYTES), ("round", U64), ("group", IDS), ("weights", ARRAY))
    round: int
    group: tuple[int, ...]
    weights: np.ndarray

    def validate(self) -> None:
        object.__setattr__(self, "weights", _check_array(self.weights, "weights", ("float32",)))
        if tuple(sorted(self.group)) != self.group:
            raise MalformedMessage("group must be sorted by participant id")


@dataclass(frozen=True, eq=False)
class ShareBundle(Message):
    """ParaShare (explicit, shamir), member → server: one AEAD ciphertext per other member."""

    KIND = MessageKind.SHARE_BUNDLE
    SCHEMA = (
        ("session_id", BYTES),
        ("round", U64),
        ("sender", U64),
        ("receivers", IDS),
        ("ciphertexts", BLOBS),
    )
    round: int
    sender: int
    receivers: tuple[int, ...]
    ciphertexts: tuple[bytes, ...]

    def validate(self) -> None:
        if len(self.receivers) != len(self.ciphertexts):
            raise MalformedMessage("receivers and ciphertexts differ in length")
        if self.sender in self.receivers:
            raise MalformedMessage("a member does not send a share to itself")


@dataclass(frozen=True, eq=False)
class ShareDelivery(Message):
    """ParaShare (explicit, shamir), server → member: the contributors of the round and the
    ciphertexts they addressed to this member."""

    KIND = MessageKind.SHARE_DELIVERY
    SCHEMA = (
        ("session_id", BYTES),
        ("round", U64),
        ("contributors", IDS),
        ("senders", IDS),
        ("ciphertexts", BLOBS),
        ("signers", IDS),
        ("signatures", BLOBS),
    )
    round: int
    contributors: tuple[int, ...]
    senders: tuple[int, ...]
    ciphertexts: tuple[bytes, ...]
    signers: tuple[int, ...] = ()  #: with the consistency check: who signed the contributors
    signatures: tuple[bytes, ...] = ()

    def validate(self) -> None:
        if len(self.senders) != len(self.ciphertexts):
            raise MalformedMessage("senders and ciphertexts differ in length")
        if not set(self.senders) <= set(self.contributors):
            raise MalformedMessage("a share comes from a member that is not a contributor")
        _check_signatures(self.signers, self.signatures)


@dataclass(frozen=True, eq=False)
class Upload(Message):
    """ParaShare → ParaUpdate, member → server: the aggregate of shares (ring or field words)."""

    KIND = MessageKind.UPLOAD
    SCHEMA = (("session_id", BYTES), ("round", U64), ("sender", U64), ("payload", ARRAY))
    round: int
    sender: int
    payload: np.ndarray

    def validate(self) -> None:
        object.__setattr__(
            self, "payload", _check_array(self.payload, "payload", ("uint32", "uint64"))
        )


@dataclass(frozen=True, eq=False)
class PlainUpload(Message):
    """Mode ``plain``, member → server: the clipped change in the clear and its sample count."""

    KIND = MessageKind.PLAIN_UPLOAD
    SCHEMA = (
        ("session_id", BYTES),
        ("round", U64),
        ("sender", U64),
        ("num_samples", U64),
        ("delta", ARRAY),
    )
    round: int
    sender: int
    num_samples: int
    delta: np.ndarray

    def validate(self) -> None:
        object.__setattr__(self, "delta", _check_array(self.delta, "delta", ("float32",)))


@dataclass(frozen=True, eq=False)
class RevealRequest(Message):
    """Dropout recovery (prg), server → survivor: reveal this round's pair keys with these
    vanished members (round keys only, never a PRNG state)."""

    KIND = MessageKind.REVEAL_REQUEST
    SCHEMA = (("session_id", BYTES), ("round", U64), ("dropped", IDS))
    round: int
    dropped: tuple[int, ...]


@dataclass(frozen=True, eq=False)
class RevealResponse(Message):
    """Dropout recovery (prg), survivor → server: one round key per vanished peer."""

    KIND = MessageKind.REVEAL_RESPONSE
    SCHEMA = (
        ("session_id", BYTES),
        ("round", U64),
        ("sender", U64),
        ("peers", IDS),
        ("round_keys", BLOBS),
    )
    round: int
    sender: int
    peers: tuple[int, ...]
    round_keys: tuple[bytes, ...]

    def validate(self) -> None:
        if len(self.peers) != len(self.round_keys):
            raise MalformedMessage("peers and round_keys differ in length")
        if any(len(k) != 32 for k in self.round_keys):
            raise MalformedMessage("every round key must be 32 bytes")


def _check_signatures(signers: tuple[int, ...], signatures: tuple[bytes, ...]) -> None:
    if len(signers) != len(signatures):
        raise MalformedMessage("signers and signatures differ in length")
    if any(len(sig) != 64 for sig in signatures):
        raise MalformedMessage("every signature must be 64 bytes (Ed25519)")


@dataclass(frozen=True, eq=False)
class MaskedUpload(Message):
    """ParaShare with double masking (prg), member → server: the doubly masked vector
    ``x_i + PRG(s_i) ± pair masks`` and one sealed Shamir share of the self-mask seed s_i per
    other member of the group (the server relays a share only when it asks for it)."""

    KIND = MessageKind.MASKED_UPLOAD
    SCHEMA = (
        ("session_id", BYTES),
        ("round", U64),
        ("sender", U64),
        ("payload", ARRAY),
        ("receivers", IDS),
        ("seed_shares", BLOBS),
    )
    round: int
    sender: int
    payload: np.ndarray
    receivers: tuple[int, ...]
    seed_shares: tuple[bytes, ...]

    def validate(self) -> None:
        object.__setattr__(
            self, "payload", _check_array(self.payload, "payload", ("uint32", "uint64"))
        )
        if len(self.receivers) != len(self.seed_shares):
            raise MalformedMessage("receivers and seed_shares differ in length")
        if self.sender in self.receivers:
            raise MalformedMessage("a member does not send a seed share to itself")


@dataclass(frozen=True, eq=False)
class ConsistencyRequest(Message):
    """Consistency check, server → member: sign this set (survivors, or contributors) and
    the members it leaves out, before anything is revealed for the round."""

    KIND = MessageKind.CONSISTENCY_REQUEST
    SCHEMA = (("session_id", BYTES), ("round", U64), ("included", IDS), ("excluded", IDS))
    round: int
    included: tuple[int, ...]
    excluded: tuple[int, ...]

    def validate(self) -> None:
        if set(self.included) & set(self.excluded):
            raise MalformedMessage("a member cannot be both included and excluded")


@dataclass(frozen=True, eq=False)
class ConsistencySignature(Message):
    """Consistency check, member → server: an Ed25519 signature (identity key) over the
    session, round and the included/excluded sets."""

    KIND = MessageKind.CONSISTENCY_SIGNATURE
    SCHEMA = (("session_id", BYTES), ("round", U64), ("sender", U64), ("signature", BYTES))
    round: int
    sender: int
    signature: bytes

    def validate(self) -> None:
        if len(self.signature) != 64:
            raise MalformedMessage("a consistency signature is 64 bytes (Ed25519)")


@dataclass(frozen=True, eq=False)
class UnmaskRequest(Message):
    """Double masking (prg), server → survivor: the members that uploaded (``survivors``:
    send your share of their self-mask seed, sealed ones relayed here) and those that did not
    (``dropped``: reveal this round's pair keys with them). With the consistency check, the
    signatures of at least t members over exactly these sets."""

    KIND = MessageKind.UNMASK_REQUEST
    SCHEMA = (
        ("session_id", BYTES),
        ("round", U64),
        ("survivors", IDS),
        ("dropped", IDS),
        ("senders", IDS),
        ("seed_shares", BLOBS),
        ("signers", IDS),
        ("signatures", BLOBS),
    )
    round: int
    survivors: tuple[int, ...]
    dropped: tuple[int, ...]
    senders: tuple[int, ...]
    seed_shares: tuple[bytes, ...]
    signers: tuple[int, ...] = ()
    signatures: tuple[bytes, ...] = ()

    def validate(self) -> None:
        if set(self.survivors) & set(self.dropped):
            raise MalformedMessage("a member cannot be both a survivor and dropped")
        if len(self.senders) != len(self.seed_shares):
            raise MalformedMessage("senders and seed_shares differ in length")
        if not set(self.senders) <= set(self.survivors):
            raise MalformedMessage("a seed share is relayed from a member that is not a survivor")
        _check_signatures(self.signers, self.signatures)


@dataclass(frozen=True, eq=False)
class UnmaskResponse(Message):
    """Double masking (prg), survivor → server: its shares of the survivors' seeds and its
    round keys with the dropped members — never both for one member."""

    KIND = MessageKind.UNMASK_RESPONSE
    SCHEMA = (
        ("session_id", BYTES),
        ("round", U64),
        ("sender", U64),
        ("share_owners", IDS),
        ("seed_shares", BLOBS),
        ("key_peers", IDS),
        ("round_keys", BLOBS),
    )
    round: int
    sender: int
    share_owners: tuple[int, ...]
    seed_shares: tuple[bytes, ...]
    key_peers: tuple[int, ...]
    round_keys: tuple[bytes, ...]

    def validate(self) -> None:
        if len(self.share_owners) != len(self.seed_shares):
            raise MalformedMessage("share_owners and seed_shares differ in length")
        if len(self.key_peers) != len(self.round_keys):
            raise MalformedMessage("key_peers and round_keys differ in length")
        if set(self.share_owners) & set(self.key_peers):
            raise MalformedMessage("a member's seed share and its pair key are never both sent")
        if any(len(k) != 32 for k in self.round_keys):
            raise MalformedMessage("every round key must be 32 bytes")


class RoundStatus(IntEnum):
    """How a round ended: sent in RoundEnd and kept in the server's history."""

    APPLIED = 0
    ABORTED = 1


@dataclass(frozen=True, eq=False)
class RoundEnd(Message):
    """ParaUpdate, server → every participant: the round is over (all PRNGs advance)."""

    KIND = MessageKind.ROUND_END
    SCHEMA = (("session_id", BYTES), ("round", U64), ("status", U64), ("contributors", IDS))
    round: int
    status: int
    contributors: tuple[int, ...]

    def validate(self) -> None:
        if self.status not in {s.value for s in RoundStatus}:
            raise MalformedMessage(f"unknown round status {self.status}")


@dataclass(frozen=True, eq=False)
class SessionEnd(Message):
    """Server → every participant: no more rounds; erase all key material."""

    KIND = MessageKind.SESSION_END
    SCHEMA = (("session_id", BYTES), ("rounds", U64))
    rounds: int


@dataclass(frozen=True, eq=False)
class SparseUpload(Message):
    """Baseline DSSGD (``ssddl.baselines``), member → server: the selected entries of the
    change in the clear — strictly increasing parameter indices (uint32) and their float32
    values — and the sample count. 8 bytes per selected entry on the wire."""

    KIND = MessageKind.SPARSE_UPLOAD
    SCHEMA = (
        ("session_id", BYTES),
        ("round", U64),
        ("sender", U64),
        ("num_samples", U64),
        ("indices", ARRAY),
        ("values", ARRAY),
    )
    round: int
    sender: int
    num_samples: int
    indices: np.ndarray
    values: np.ndarray

    def validate(self) -> None:
        object.__setattr__(self, "indices", _check_array(self.indices, "indices", ("uint32",)))
        object.__setattr__(self, "values", _check_array(self.values, "values", ("float32",)))
        if self.indices.shape != self.values.shape:
            raise MalformedMessage("indices and values differ in length")
        if self.indices.size > 1 and not (np.diff(self.indices.astype(np.int64)) > 0).all():
            raise MalformedMessage("indices must be strictly increasing")


M = TypeVar("M", bound=type[Message])

_MESSAGES: dict[int, type[Message]] = {}
_BUILT_IN: frozenset[int] = frozenset()

#: Every registered kind's code and message class (a read-only, live view of the registry).
MESSAGE_TYPES: Mapping[int, type[Message]] = MappingProxyType(_MESSAGES)


def _check_new_kind(cls: Any) -> int:
    """The code of ``cls``'s kind if ``cls`` can be registered (ConfigurationError if not)."""
    if not (isinstance(cls, type) and issubclass(cls, Message)) or cls is Message:
        raise ConfigurationError("register_message takes a subclass of Message")
    kind = getattr(cls, "KIND", None)
    if not isinstance(kind, Kind):
        raise ConfigurationError(
            f"{cls.__name__}.KIND must be a member of an enum that subclasses "
            f"ssddl.protocol.messages.Kind"
        )
    code = int(kind)
    if not 1 <= code <= MAX_MESSAGE_KIND:
        raise ConfigurationError(
            f"{cls.__name__}.KIND = {code}: message kind codes are in [1, {MAX_MESSAGE_KIND}] "
            f"(codes from {MAX_MESSAGE_KIND + 1} are state records)"
        )
    taken = _MESSAGES.get(code, cls)
    if taken is not cls:
        raise ConfigurationError(
            f"message kind code {code} ({kind.name.lower()}) is taken by {taken.__name__} "
            f"({taken.KIND.name.lower()}); pick a free code, e.g. {_free_code()}"
        )
    for other in _MESSAGES.values():
        if other is not cls and other.KIND.name.lower() == kind.name.lower():
            raise ConfigurationError(
                f"message kind name {kind.name.lower()!r} is taken by {other.__name__} "
                f"(code {int(other.KIND)}); give {cls.__name__}'s kind another name"
            )
    return code


def _free_code() -> int:
    return next(c for c in range(MAX_MESSAGE_KIND, 0, -1) if c not in _MESSAGES)


def register_message(cls: M) -> M:
    """Make ``decode_message`` accept the kind of ``cls`` (a Message subclass whose ``KIND``
    is a member of a :class:`Kind` enum). Also a class decorator. Registering the same class
    again does nothing; a code or a name another class holds is refused
    (ConfigurationError)."""
    _MESSAGES[_check_new_kind(cls)] = cls
    return cls


def unregister_message(cls: type[Message]) -> None:
    """Forget a kind added with :func:`register_message` (tests); built-in kinds stay."""
    code = int(cls.KIND)
    if code in _BUILT_IN:
        raise ConfigurationError(f"the built-in message kind {cls.KIND.name.lower()!r} stays")
    if _MESSAGES.get(code) is cls:
        del _MESSAGES[code]


def message_kinds() -> tuple[Kind, ...]:
    """Every registered kind, by code."""
    return tuple(_MESSAGES[code].KIND for code in sorted(_MESSAGES))


def kind_of(code: int) -> Kind:
    """The registered kind with wire code ``code`` (MalformedMessage for any other code)."""
    cls = _MESSAGES.get(code)
    if cls is None:
        raise MalformedMessage(f"unknown message kind {code}")
    return cls.KIND


for _cls in (
    SessionAnnounce,
    KeyAdvert,
    KeyDirectory,
    RoundStart,
    ShareBundle,
    ShareDelivery,
    Upload,
    PlainUpload,
    RevealRequest,
    RevealResponse,
    RoundEnd,
    SessionEnd,
    MaskedUpload,
    ConsistencyRequest,
    ConsistencySignature,
    UnmaskRequest,
    UnmaskResponse,
    SparseUpload,
):
    register_message(_cls)
_BUILT_IN = frozenset(_MESSAGES)


def decode_message(data: bytes) -> Message:
    """Decode and validate one frame of a registered kind. Raises MalformedMessage for
    anything off, an unknown kind included."""
    kind = read_header(data)
    cls = _MESSAGES.get(kind)
    if cls is None:
        raise MalformedMessage(f"unknown message kind {kind}")
    values, bits = decode_frame(data, cls.SCHEMA)
    return cls(**values, wire_bits=bits) if bits else cls(**values)
