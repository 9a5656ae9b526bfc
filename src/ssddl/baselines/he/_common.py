"""What every additively homomorphic back end shares: key and ciphertext types, the
versioned wire format, and the fixed-point range checks (private; see ``ssddl.baselines.he``).

Wire format of a ciphertext vector (little-endian, explicit fields only)::

    b"SSHE" | version u8 = 1 | scheme u8 | reserved u16 = 0 | key id (16 bytes)
    | length u32 | summands u32 | parts u32 | parts x (size u32 | part bytes)

and of a public key::

    b"SSHK" | version u8 = 1 | scheme u8 | reserved u16 = 0 | payload

The key id is the first 16 bytes of SHA-256 over the public key's payload: a ciphertext under
another key is refused before any arithmetic. Homomorphic ciphertexts are malleable by design
(that is what lets the server add them), so these checks catch truncation, garbage and mix-ups,
not a deliberate forgery: the threat model is an honest-but-curious server.
"""

from __future__ import annotations

import hashlib
import math
import struct
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from ssddl.exceptions import ConfigurationError, MalformedMessage, ShareError
from ssddl.hazmat._checks import as_int
from ssddl.hazmat.codec import FixedPoint

__all__ = [
    "EncryptedVector",
    "HEBackend",
    "HEKeyPair",
    "HEPublicKey",
    "HESecretKey",
    "InsecureParametersWarning",
    "PackedBackend",
    "sum_encrypted",
]

_CT_MAGIC = b"SSHE"
_PK_MAGIC = b"SSHK"
_VERSION = 1
_KEY_ID_SIZE = 16
_CT_HEADER = struct.Struct("<4sBBH16sIII")
_PK_HEADER = struct.Struct("<4sBBH")
_PART_SIZE = struct.Struct("<I")
_U32_LIMIT = 1 << 32

SCHEME_IDS = {"paillier": 1, "bfv": 2}


class InsecureParametersWarning(UserWarning):
    """A back end was made with parameters below 128-bit security (allowed in tests only)."""


def key_id_of(payload: bytes) -> bytes:
    """The 16-byte id of a public key: SHA-256 over its serialized payload, truncated."""
    return hashlib.sha256(payload).digest()[:_KEY_ID_SIZE]


@dataclass(frozen=True, eq=False, repr=False)
class HEPublicKey:
    """A public key (Paillier) or public context (BFV): enough to encrypt and to add.

    ``payload`` is its serialization (what the server receives); ``native`` the library
    object behind it.
    """

    scheme: str
    key_id: bytes
    payload: bytes
    native: Any

    def __repr__(self) -> str:
        return f"HEPublicKey(scheme={self.scheme!r}, key_id={self.key_id.hex()})"


@dataclass(frozen=True, eq=False, repr=False)
class HESecretKey:
    """The secret key of a key pair; its repr names the scheme and key id only."""

    scheme: str
    key_id: bytes
    native: Any

    def __repr__(self) -> str:
        return f"HESecretKey(scheme={self.scheme!r}, key_id={self.key_id.hex()}, <secret>)"


@dataclass(frozen=True)
class HEKeyPair:
    """A public key and the matching secret key."""

    public: HEPublicKey
    secret: HESecretKey


@dataclass(frozen=True, eq=False)
class EncryptedVector:
    """``length`` fixed-point values packed into ``len(parts)`` ciphertexts.

    ``summands`` counts the fresh encryptions added into this vector (1 when just encrypted):
    it is public, and the decryptor needs it to remove the Paillier slot offsets.
    """

    scheme: str
    key_id: bytes
    length: int
    summands: int
    parts: tuple[Any, ...] = field(repr=False)


@runtime_checkable
class HEBackend(Protocol):
    """An additively homomorphic scheme over fixed-point ring words of ``codec``.

    ``encrypt`` packs a vector of ring words into ciphertexts; ``add`` adds two encrypted
    vectors (up to ``max_summands`` fresh encryptions in one sum); ``decrypt`` returns the ring
    words of the sum, bit for bit the ring sum of what was encrypted. Ciphertexts and public
    keys travel as bytes through ``*_to_bytes`` / ``*_from_bytes``.
    """

    name: ClassVar[str]
    codec: FixedPoint
    max_summands: int

    @property
    def slots(self) -> int: ...

    def keygen(self) -> HEKeyPair: ...

    def encrypt(self, public: HEPublicKey, words: np.ndarray) -> EncryptedVector: ...

    def add(self, a: EncryptedVector, b: EncryptedVector) -> EncryptedVector: ...

    def decrypt(self, secret: HESecretKey, c: EncryptedVector) -> np.ndarray: ...

    def ciphertext_to_bytes(self, c: EncryptedVector) -> bytes: ...

    def ciphertext_from_bytes(self, public: HEPublicKey, data: bytes) -> EncryptedVector: ...

    def ciphertext_bytes(self, c: EncryptedVector) -> int: ...

    def public_to_bytes(self, public: HEPublicKey) -> bytes: ...

    def public_from_bytes(self, data: bytes) -> HEPublicKey: ...


def value_bound(codec: FixedPoint) -> int:
    """The largest ``|k|`` a fixed-point encoding can hold: ``ceil(clip * 2**frac_bits)``.

    (Rounding to nearest, or up stochastically, can reach the ceiling when ``clip * 2**f`` is
    not an integer, so the ceiling is the safe bound for slot sizes.)
    """
    return math.ceil(Fraction(codec.clip) * (1 << codec.frac_bits))


def words_to_signed(words: np.ndarray, codec: FixedPoint) -> np.ndarray:
    """Ring words of ``codec`` read as two's-complement signed integers (int64)."""
    if not isinstance(words, np.ndarray) or words.dtype != codec.dtype or words.ndim != 1:
        raise ShareError(
            f"words must be a 1-D numpy array of the codec's ring words ({codec.dtype}); "
            "make them with ssddl.hazmat.codec.encode"
        )
    signed = np.int64 if codec.ring_bits == 64 else np.int32
    return words.view(signed).astype(np.int64)


def signed_to_words(values: np.ndarray, codec: FixedPoint) -> np.ndarray:
    """Signed integers (int64) reduced mod Q into ring words of ``codec``."""
    as64 = np.asarray(values, dtype=np.int64)
    if codec.ring_bits == 64:
        return as64.view(np.uint64).copy()
    return (as64 & 0xFFFFFFFF).astype(np.uint32)


class PackedBackend(ABC):
    """Base of the back ends: checks, framing and summand accounting; the subclasses do the
    cryptography on one chunk of at most :attr:`slots` values at a time.

    ``max_summands`` is the largest number of fresh encryptions that may be added into one
    vector; it sizes the slots (Paillier) or is checked against the plaintext modulus (BFV),
    and :meth:`add` refuses to go past it.
    """

    name: ClassVar[str]
    codec: FixedPoint
    max_summands: int

    def _init_common(self, codec: FixedPoint, max_summands: int) -> None:
        if not isinstance(codec, FixedPoint):
            raise ConfigurationError(f"{type(self).__name__}.codec must be a FixedPoint")
        self.codec = codec
        self.max_summands = as_int(
            max_summands, f"{type(self).__name__}.max_summands", low=1, high=_U32_LIMIT
        )
        # The SSDDL rule first: the decoded sum must fit the ring.
        codec.check_capacity(self.max_summands)
        self.bound = value_bound(codec)
        if 2 * self.max_summands * self.bound >= codec.modulus:
            raise ConfigurationError(
                f"{type(self).__name__}.max_summands={self.max_summands} times the largest "
                f"encoded value ceil(clip * 2**frac_bits) = {self.bound} does not fit the ring "
                f"2**{codec.ring_bits} signed; lower max_summands, clip or frac_bits"
            )

    # --- what a back end implements ---------------------------------------------------------

    @property
    @abstractmethod
    def slots(self) -> int:
        """Values packed into one ciphertext."""

    @abstractmethod
    def keygen(self) -> HEKeyPair:
        """A fresh key pair from the library's own CSPRNG."""

    @abstractmethod
    def _public_from_payload(self, payload: bytes) -> HEPublicKey: ...

    @abstractmethod
    def _encrypt_chunk(self, public: HEPublicKey, values: np.ndarray) -> Any: ...

    @abstractmethod
    def _add_parts(self, a: Any, b: Any) -> Any: ...

    @abstractmethod
    def _decrypt_chunk(
        self, secret: HESecretKey, part: Any, count: int, summands: int
    ) -> np.ndarray: ...

    @abstractmethod
    def _part_to_bytes(self, part: Any) -> bytes: ...

    @abstractmethod
    def _part_from_bytes(self, public: HEPublicKey, data: bytes, count: int) -> Any: ...

    # --- the common API ---------------------------------------------------------------------

    def _check_key(self, key: HEPublicKey | HESecretKey, kind: type) -> None:
        if not isinstance(key, kind) or key.scheme != self.name:
            raise ConfigurationError(
                f"expected a {self.name} {kind.__name__}, got {type(key).__name__}"
                + (f" of scheme {key.scheme!r}" if isinstance(key, kind) else "")
            )

    def _check_vector(self, c: Any, name: str) -> EncryptedVector:
        if not isinstance(c, EncryptedVector) or c.scheme != self.name:
            raise ConfigurationError(f"{name} must be a {self.name} EncryptedVector")
        return c

    def chunk_count(self, length: int) -> int:
        """Ciphertexts needed for ``length`` values."""
        return -(-length // self.slots)

    def encrypt(self, public: HEPublicKey, words: np.ndarray) -> EncryptedVector:
        """Encrypt ring words of :attr:`codec` (``ssddl.hazmat.codec.encode`` output).

        Every word, read as a signed integer, must lie within ``±ceil(clip * 2**frac_bits)``
        (ShareError otherwise): that bound is what the capacity checks rest on.
        """
        self._check_key(public, HEPublicKey)
        values = words_to_signed(words, self.codec)
        if values.size:
            worst = int(np.max(np.abs(values)))
            if worst > self.bound:
                first = int(np.argmax(np.abs(values) > self.bound))
                raise ShareError(
                    f"words[{first}] is outside the codec's range ±ceil(clip * 2**frac_bits) = "
                    f"±{self.bound}; encode the values with this backend's codec"
                )
        if values.size >= _U32_LIMIT:
            raise ShareError("cannot encrypt 2**32 or more values in one vector")
        parts = tuple(
            self._encrypt_chunk(public, values[start : start + self.slots])
            for start in range(0, values.size, self.slots)
        )
        return EncryptedVector(self.name, public.key_id, int(values.size), 1, parts)

    def add(self, a: EncryptedVector, b: EncryptedVector) -> EncryptedVector:
        """The homomorphic sum; refuses other keys, other lengths and too many summands."""
        a = self._check_vector(a, "a")
        b = self._check_vector(b, "b")
        if a.key_id != b.key_id:
            raise ConfigurationError("cannot add ciphertexts under different keys")
        if a.length != b.length:
            raise ConfigurationError(
                f"cannot add encrypted vectors of lengths {a.length} and {b.length}"
            )
        summands = a.summands + b.summands
        if summands > self.max_summands:
            raise ConfigurationError(
                f"this sum would hold {summands} summands but {type(self).__name__}."
                f"max_summands={self.max_summands}: the slots could overflow; "
                "make the backend with a larger max_summands"
            )
        parts = tuple(self._add_parts(x, y) for x, y in zip(a.parts, b.parts, strict=True))
        return EncryptedVector(self.name, a.key_id, a.length, summands, parts)

    def decrypt(self, secret: HESecretKey, c: EncryptedVector) -> np.ndarray:
        """The ring words of the (summed) plaintext: equal, bit for bit, to the ring sum of
        the words that were encrypted."""
        self._check_key(secret, HESecretKey)
        c = self._check_vector(c, "c")
        if c.key_id != secret.key_id:
            raise ConfigurationError("the ciphertext is under another key than this secret key")
        if not c.parts:
            return signed_to_words(np.empty(0, dtype=np.int64), self.codec)
        chunks = []
        for index, part in enumerate(c.parts):
            count = min(self.slots, c.length - index * self.slots)
            chunks.append(self._decrypt_chunk(secret, part, count, c.summands))
        return signed_to_words(np.concatenate(chunks), self.codec)

    def ciphertext_to_bytes(self, c: EncryptedVector) -> bytes:
        """The wire form of ``c`` (see the module docstring)."""
        c = self._check_vector(c, "c")
        out = [
            _CT_HEADER.pack(
                _CT_MAGIC,
                _VERSION,
                SCHEME_IDS[self.name],
                0,
                c.key_id,
                c.length,
                c.summands,
                len(c.parts),
            )
        ]
        for part in c.parts:
            data = self._part_to_bytes(part)
            out.append(_PART_SIZE.pack(len(data)))
            out.append(data)
        return b"".join(out)

    def ciphertext_from_bytes(self, public: HEPublicKey, data: bytes) -> EncryptedVector:
        """Parse and check a ciphertext vector under ``public``; anything off raises
        :class:`MalformedMessage`."""
        self._check_key(public, HEPublicKey)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise MalformedMessage("ciphertext data must be bytes")
        view = memoryview(data).cast("B")
        if len(view) < _CT_HEADER.size:
            raise MalformedMessage(
                f"ciphertext blob is {len(view)} bytes, shorter than its "
                f"{_CT_HEADER.size}-byte header"
            )
        magic, version, scheme, reserved, key_id, length, summands, count = _CT_HEADER.unpack(
            view[: _CT_HEADER.size]
        )
        if magic != _CT_MAGIC or version != _VERSION or reserved:
            raise MalformedMessage("not an ssddl ciphertext vector (magic, version or reserved)")
        if scheme != SCHEME_IDS[self.name]:
            raise MalformedMessage(f"ciphertext vector is not of scheme {self.name!r}")
        if key_id != public.key_id:
            raise MalformedMessage("ciphertext vector is under another key than this public key")
        if not 1 <= summands <= self.max_summands:
            raise MalformedMessage(
                f"ciphertext vector claims {summands} summands; expected 1..{self.max_summands}"
            )
        if count != self.chunk_count(length):
            raise MalformedMessage(
                f"ciphertext vector of length {length} must have {self.chunk_count(length)} "
                f"parts, not {count}"
            )
        offset = _CT_HEADER.size
        parts = []
        for index in range(count):
            if len(view) - offset < _PART_SIZE.size:
                raise MalformedMessage(f"ciphertext vector truncated before part {index}")
            (size,) = _PART_SIZE.unpack(view[offset : offset + _PART_SIZE.size])
            offset += _PART_SIZE.size
            if len(view) - offset < size:
                raise MalformedMessage(f"ciphertext vector truncated inside part {index}")
            chunk = min(self.slots, length - index * self.slots)
            parts.append(self._part_from_bytes(public, bytes(view[offset : offset + size]), chunk))
            offset += size
        if offset != len(view):
            raise MalformedMessage(
                f"ciphertext vector has {len(view) - offset} trailing bytes after its parts"
            )
        return EncryptedVector(self.name, public.key_id, length, summands, tuple(parts))

    def ciphertext_bytes(self, c: EncryptedVector) -> int:
        """The size of ``c`` on the wire, header included."""
        return len(self.ciphertext_to_bytes(c))

    def public_to_bytes(self, public: HEPublicKey) -> bytes:
        """The wire form of a public key (what the server receives)."""
        self._check_key(public, HEPublicKey)
        header = _PK_HEADER.pack(_PK_MAGIC, _VERSION, SCHEME_IDS[self.name], 0)
        return header + public.payload

    def public_from_bytes(self, data: bytes) -> HEPublicKey:
        """Parse and check a public key; anything off raises :class:`MalformedMessage`."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise MalformedMessage("public key data must be bytes")
        raw = bytes(data)
        if len(raw) < _PK_HEADER.size:
            raise MalformedMessage("public key blob is shorter than its header")
        magic, version, scheme, reserved = _PK_HEADER.unpack(raw[: _PK_HEADER.size])
        if magic != _PK_MAGIC or version != _VERSION or reserved:
            raise MalformedMessage("not an ssddl public key (magic, version or reserved)")
        if scheme != SCHEME_IDS[self.name]:
            raise MalformedMessage(f"public key is not of scheme {self.name!r}")
        return self._public_from_payload(raw[_PK_HEADER.size :])


def sum_encrypted(backend: HEBackend, items: Sequence[EncryptedVector]) -> EncryptedVector:
    """The homomorphic sum of one or more encrypted vectors (left to right)."""
    if isinstance(items, EncryptedVector) or not items:
        raise ConfigurationError("sum_encrypted needs a non-empty sequence of EncryptedVector")
    total = items[0]
    for item in items[1:]:
        total = backend.add(total, item)
    return total
