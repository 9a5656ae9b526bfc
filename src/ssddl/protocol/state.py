"""Persistable protocol state: records in the versioned, explicit wire format.

A participant is its :class:`ParticipantState` plus pure handlers, so a runtime that keeps no
Python objects between messages (a Flower ClientApp runs every message in a fresh process) can
save the bytes after each message and rebuild the participant from them. The server's session
and round state serialise the same way (:class:`ServerState`).

A state record is a frame of the wire format with a *record* kind (128 and up), so a state blob
can never be taken for a message nor a message for a state. Decoding checks everything a
message decoder checks: lengths, versions, kinds, trailing bytes.

**The participant state is a secret.** It holds the current forward-secure PRNG states of every
pair and, while a round is open, that round's pair keys and the participant's own share —
never a PRNG state or round key of a round that has ended. Protecting it at rest (encryption,
file permissions, the SuperNode's storage) is the runtime's job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, TypeVar

import numpy as np

from ssddl.exceptions import MalformedMessage
from ssddl.protocol.wire import (
    ARRAY,
    BLOBS,
    BYTES,
    IDS,
    STR,
    U64,
    FieldType,
    decode_fields,
    encode_fields,
    read_header,
)

__all__ = ["ParticipantState", "Record", "ServerState", "decode_record", "record_kind"]

#: Record kinds start here; message kinds stay below.
FIRST_RECORD_KIND = 128

R = TypeVar("R", bound="Record")
_RECORDS: dict[int, type[Record]] = {}


def record_kind(cls: type[R]) -> type[R]:
    """Class decorator: register a record type under its unique ``KIND``."""
    if cls.KIND < FIRST_RECORD_KIND or cls.KIND > 255:
        raise ValueError(f"record kinds are in [{FIRST_RECORD_KIND}, 255]")
    if _RECORDS.get(cls.KIND, cls) is not cls:
        raise ValueError(f"record kind {cls.KIND} is taken by {_RECORDS[cls.KIND].__name__}")
    _RECORDS[cls.KIND] = cls
    return cls


@dataclass(frozen=True, repr=False)
class Record:
    """A frozen dataclass whose ``SCHEMA`` fields travel in the wire format."""

    KIND: ClassVar[int]
    SCHEMA: ClassVar[tuple[tuple[str, FieldType], ...]]

    def to_bytes(self) -> bytes:
        return encode_fields(self.KIND, self.SCHEMA, self)

    @classmethod
    def from_bytes(cls: type[R], data: bytes) -> R:
        kind = read_header(data)
        if kind != cls.KIND:
            raise MalformedMessage(
                f"expected a {cls.__name__} record (kind {cls.KIND}), got kind {kind}"
            )
        try:
            return cls(**decode_fields(data, cls.SCHEMA))
        except (TypeError, ValueError) as exc:
            raise MalformedMessage(f"a {cls.__name__} record is invalid: {exc}") from None

    def __repr__(self) -> str:  # state may hold secrets: never print field values
        return f"{type(self).__name__}(<{len(self.to_bytes())} bytes>)"


def decode_record(data: bytes) -> Record:
    """Decode any registered record (MalformedMessage for anything else)."""
    kind = read_header(data)
    cls = _RECORDS.get(kind)
    if cls is None:
        raise MalformedMessage(f"kind {kind} is not a state record")
    return cls.from_bytes(data)


@record_kind
@dataclass(frozen=True, repr=False)
class ParticipantState(Record):
    """Everything a participant needs between two messages, besides its identity key, the
    roster and its LocalTrain callback (which the runtime supplies on every rebuild).

    ``round_plus_one`` is the last round the participant took part in, plus one (0 = none).
    Pair PRNGs are ``(peer, round, state)`` triples: the generator of the pair with ``peer``
    stands at ``round`` with state σ_round. ``round_keys`` exist only while a round is open.
    ``registered`` are the members of the key directory, ``graph_seed`` the sparse pairing
    graph's seed; with lazy pair keys, ``directory_keys`` holds their signed exchange keys
    and ``exchange_private`` stays until the session ends.
    ``scheme_state`` is the sharing scheme's own round state (its own record), or empty.
    ``model_digest`` is the digest of the model the open round started with
    (:mod:`ssddl.protocol.binding`): 32 bytes while a round is open (``group`` set), else
    empty; a state of an open round without it is refused.
    """

    KIND: ClassVar[int] = 128
    SCHEMA: ClassVar[tuple[tuple[str, FieldType], ...]] = (
        ("participant_id", U64),
        ("stage", STR),
        ("config", STR),
        ("session_id", BYTES),
        ("model_size", U64),
        ("participants", IDS),
        ("registered", IDS),
        ("graph_seed", BYTES),
        ("directory_keys", BYTES),
        ("exchange_private", BYTES),
        ("prng_peers", IDS),
        ("prng_rounds", IDS),
        ("prng_states", BLOBS),
        ("round_plus_one", U64),
        ("group", IDS),
        ("round_key_peers", IDS),
        ("round_keys", BLOBS),
        ("share_keys", BLOBS),
        ("signed", IDS),
        ("scheme_state", BYTES),
        ("model_digest", BYTES),
    )
    participant_id: int
    stage: str
    config: str
    session_id: bytes
    model_size: int
    participants: tuple[int, ...]
    registered: tuple[int, ...]
    graph_seed: bytes
    directory_keys: bytes
    exchange_private: bytes
    prng_peers: tuple[int, ...]
    prng_rounds: tuple[int, ...]
    prng_states: tuple[bytes, ...]
    round_plus_one: int
    group: tuple[int, ...]
    round_key_peers: tuple[int, ...]
    round_keys: tuple[bytes, ...]
    share_keys: tuple[bytes, ...]
    signed: tuple[int, ...]
    scheme_state: bytes
    model_digest: bytes

    def __post_init__(self) -> None:
        if not len(self.prng_peers) == len(self.prng_rounds) == len(self.prng_states):
            raise MalformedMessage("the PRNG peers, rounds and states differ in length")
        if not len(self.round_key_peers) == len(self.round_keys) == len(self.share_keys):
            raise MalformedMessage("round_key_peers, round_keys and share_keys differ in length")
        if any(len(s) != 32 for s in (*self.prng_states, *self.round_keys, *self.share_keys)):
            raise MalformedMessage("every PRNG state and round key must be 32 bytes")
        if len(self.model_digest) != (32 if self.group else 0):
            raise MalformedMessage(
                "a state with an open round holds its 32-byte model digest, and only then"
            )


@record_kind
@dataclass(frozen=True, repr=False)
class ServerState(Record):
    """The server's session and open round. Messages received in the open round are kept as
    their frames (summed uploads without their payload); ``scheme_data`` is the scheme's own
    round record, or empty; ``total`` the running sum of the summed uploads."""

    KIND: ClassVar[int] = 129
    SCHEMA: ClassVar[tuple[tuple[str, FieldType], ...]] = (
        ("config", STR),
        ("session_id", BYTES),
        ("stage", STR),
        ("round_plus_one", U64),
        ("weights", ARRAY),
        ("registered", IDS),
        ("advert_frames", BLOBS),
        ("selection", STR),
        ("group", IDS),
        ("expected", IDS),
        ("received_from", IDS),
        ("received_frames", BLOBS),
        ("scheme_data", BYTES),
        ("total", ARRAY),
    )
    config: str
    session_id: bytes
    stage: str
    round_plus_one: int
    weights: np.ndarray
    registered: tuple[int, ...]
    advert_frames: tuple[bytes, ...]
    selection: str
    group: tuple[int, ...]
    expected: tuple[int, ...]
    received_from: tuple[int, ...]
    received_frames: tuple[bytes, ...]
    scheme_data: bytes = field(default=b"")
    #: the running sum of the open phase's summed uploads (empty: none)
    total: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint32))

    def __post_init__(self) -> None:
        if len(self.received_from) != len(self.received_frames):
            raise MalformedMessage("received_from and received_frames differ in length")
        if not isinstance(self.weights, np.ndarray) or self.weights.dtype != np.float32:
            raise MalformedMessage("the server weights must be a float32 vector")
