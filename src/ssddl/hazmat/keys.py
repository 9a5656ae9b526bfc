"""Identity keys (Ed25519), exchange keys (X25519) and pair secrets (X25519 + HKDF-SHA256).

Each participant has a long-term Ed25519 :class:`IdentityKey` and, per session, an X25519
:class:`ExchangeKey` whose public half it signs (:func:`sign_exchange_key`); the statement
signed binds the session id and the participant id (:func:`exchange_key_statement`).

The pair secret of participants i and j is

    HKDF-SHA256(ikm  = X25519(own, peer),
                salt = SHA-256(b"ssddl/session/v1" || session_id),
                info = b"ssddl/pair/v1" || u64(min id) || u64(max id)
                       || lp(public key of min id) || lp(public key of max id))

with u64 = 8 bytes big-endian and lp = 4-byte big-endian length prefix. Both sides compute
the same 32 bytes, whichever of them calls. Peer keys of the wrong length, any of the
small-order points of Curve25519 (in any of their encodings), and an all-zero shared secret
are rejected with :class:`InvalidKey`.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ssddl.exceptions import ConfigurationError, InvalidKey, InvalidSignature
from ssddl.hazmat._checks import as_bytes, as_int, as_key, lp, u64
from ssddl.hazmat.rand import OsRandom, RandomSource

__all__ = [
    "KEY_SIZE",
    "LOW_ORDER_POINTS",
    "ExchangeKey",
    "IdentityKey",
    "check_exchange_public",
    "derive_key",
    "exchange_key_statement",
    "pair_secret",
    "sign_exchange_key",
    "verify_exchange_key",
    "verify_signature",
]

KEY_SIZE = 32
SIGNATURE_SIZE = 64
_P25519 = (1 << 255) - 19

#: Canonical u-coordinates of the points of small order on Curve25519 (the list libsodium
#: rejects, reduced mod p): 0, 1, p - 1 and the two points of order 8. Their non-canonical
#: encodings (u + p where that fits, and all of these with bit 255 set) are caught too,
#: because :func:`check_exchange_public` clears bit 255 and reduces mod p before comparing.
LOW_ORDER_POINTS: tuple[bytes, ...] = (
    bytes(32),
    (1).to_bytes(32, "little"),
    (_P25519 - 1).to_bytes(32, "little"),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
)
_LOW_ORDER_U = frozenset(int.from_bytes(point, "little") for point in LOW_ORDER_POINTS)

_SESSION_SALT_LABEL = b"ssddl/session/v1"
_PAIR_LABEL = b"ssddl/pair/v1"
_STATEMENT_LABEL = b"ssddl/exchange-key/v1"
_DERIVE_LABEL = b"ssddl/derive/v1"


def _private_bytes(source: RandomSource | None) -> bytes:
    source = OsRandom() if source is None else source
    data = source.random_bytes(KEY_SIZE)
    if len(data) != KEY_SIZE:
        raise ConfigurationError(
            "source.random_bytes returned the wrong number of bytes; pass a RandomSource"
        )
    return data


class IdentityKey:
    """A participant's long-term Ed25519 signing key."""

    __slots__ = ("_key",)

    def __init__(self, key: Ed25519PrivateKey) -> None:
        if not isinstance(key, Ed25519PrivateKey):
            raise InvalidKey("IdentityKey wraps an Ed25519PrivateKey; use from_private_bytes()")
        self._key = key

    @classmethod
    def generate(cls, source: RandomSource | None = None) -> IdentityKey:
        """A new key from 32 bytes of ``source`` (default :class:`OsRandom`)."""
        return cls.from_private_bytes(_private_bytes(source))

    @classmethod
    def from_private_bytes(cls, b: bytes) -> IdentityKey:
        """The key whose 32-byte Ed25519 seed is ``b``."""
        return cls(Ed25519PrivateKey.from_private_bytes(as_key(b, "private key", KEY_SIZE)))

    @property
    def public_bytes(self) -> bytes:
        """The 32-byte raw public key."""
        return self._key.public_key().public_bytes_raw()

    def sign(self, message: bytes) -> bytes:
        """A 64-byte Ed25519 signature of ``message``."""
        return self._key.sign(as_bytes(message, "message"))

    def derive_key(self, purpose: bytes, context: bytes = b"") -> bytes:
        """A 32-byte key for ``purpose`` derived from this private key (:func:`derive_key`
        of its Ed25519 seed): a key only the holder of this identity key can make, for
        sealing the holder's own data at rest. Different purposes give independent keys."""
        return derive_key(self._key.private_bytes_raw(), purpose, context)

    def __repr__(self) -> str:
        return f"IdentityKey(public={self.public_bytes.hex()})"


class ExchangeKey:
    """A per-session X25519 key pair."""

    __slots__ = ("_key", "_public")

    def __init__(self, key: X25519PrivateKey) -> None:
        if not isinstance(key, X25519PrivateKey):
            raise InvalidKey("ExchangeKey wraps an X25519PrivateKey; use from_private_bytes()")
        self._key = key
        self._public = key.public_key().public_bytes_raw()  # public; asked once per pair

    @classmethod
    def generate(cls, source: RandomSource | None = None) -> ExchangeKey:
        """A new key from 32 bytes of ``source`` (default :class:`OsRandom`)."""
        return cls.from_private_bytes(_private_bytes(source))

    @classmethod
    def from_private_bytes(cls, b: bytes) -> ExchangeKey:
        """The key whose 32-byte X25519 scalar is ``b`` (clamped as RFC 7748 says)."""
        return cls(X25519PrivateKey.from_private_bytes(as_key(b, "private key", KEY_SIZE)))

    @property
    def public_bytes(self) -> bytes:
        """The 32-byte raw public key (u-coordinate, little-endian)."""
        return self._public

    def private_bytes(self) -> bytes:
        """The 32-byte X25519 scalar, for persisting a participant between two messages of
        Init (a secret: keep it only as long as the key directory has not arrived)."""
        return self._key.private_bytes_raw()

    def _shared(self, peer_public: bytes) -> bytes:
        check_exchange_public(peer_public)
        try:
            shared = self._key.exchange(X25519PublicKey.from_public_bytes(peer_public))
        except ValueError:
            # cryptography reports an all-zero shared secret (small-order peer) this way.
            raise InvalidKey(
                "peer X25519 public key gives an all-zero shared secret (small order); "
                "reject this participant's key"
            ) from None
        if shared == bytes(KEY_SIZE):
            raise InvalidKey("peer X25519 public key gives an all-zero shared secret")
        return shared

    def __repr__(self) -> str:
        return f"ExchangeKey(public={self.public_bytes.hex()})"


def check_exchange_public(b: bytes) -> None:
    """Raise InvalidKey unless ``b`` is 32 bytes and not a small-order Curve25519 point."""
    key = as_bytes(b, "exchange public key", error=InvalidKey)
    if len(key) != KEY_SIZE:
        raise InvalidKey(f"exchange public key must be exactly {KEY_SIZE} bytes, got {len(key)}")
    u = (int.from_bytes(key, "little") & ((1 << 255) - 1)) % _P25519
    if u in _LOW_ORDER_U:
        raise InvalidKey(
            "exchange public key is a small-order Curve25519 point; it would make the pair "
            "secret predictable — reject this participant's key"
        )


def exchange_key_statement(session_id: bytes, participant_id: int, exchange_public: bytes) -> bytes:
    """The bytes an identity key signs to vouch for an exchange key in a session."""
    return b"".join(
        (
            _STATEMENT_LABEL,
            lp(as_bytes(session_id, "session_id")),
            u64(participant_id, "participant_id"),
            lp(as_bytes(exchange_public, "exchange_public", error=InvalidKey)),
        )
    )


def sign_exchange_key(
    identity: IdentityKey, session_id: bytes, participant_id: int, exchange_public: bytes
) -> bytes:
    """Sign :func:`exchange_key_statement` with ``identity`` (checks the exchange key first)."""
    if not isinstance(identity, IdentityKey):
        raise InvalidKey("identity must be an IdentityKey")
    check_exchange_public(exchange_public)
    return identity.sign(exchange_key_statement(session_id, participant_id, exchange_public))


def _identity_public(identity_public: Any) -> Ed25519PublicKey:
    key = as_bytes(identity_public, "identity public key", error=InvalidKey)
    if len(key) != KEY_SIZE:
        raise InvalidKey(f"identity public key must be exactly {KEY_SIZE} bytes, got {len(key)}")
    try:
        return Ed25519PublicKey.from_public_bytes(key)
    except ValueError:
        raise InvalidKey("identity public key is not a valid Ed25519 public key") from None


def verify_signature(identity_public: bytes, message: bytes, signature: bytes) -> None:
    """Raise InvalidSignature unless ``signature`` is a valid Ed25519 signature of ``message``."""
    public = _identity_public(identity_public)
    sig = as_bytes(signature, "signature", error=InvalidSignature)
    if len(sig) != SIGNATURE_SIZE:
        raise InvalidSignature(
            f"signature must be {SIGNATURE_SIZE} bytes, got {len(sig)}; it was truncated or "
            "is not an Ed25519 signature"
        )
    try:
        public.verify(sig, as_bytes(message, "message"))
    except _CryptoInvalidSignature:
        raise InvalidSignature(
            "signature does not verify under the signer's identity key; drop the message"
        ) from None


def verify_exchange_key(
    identity_public: bytes,
    session_id: bytes,
    participant_id: int,
    exchange_public: bytes,
    signature: bytes,
) -> None:
    """Raise unless ``signature`` vouches for ``exchange_public`` of ``participant_id``.

    InvalidKey for a malformed identity or exchange key, InvalidSignature for a bad signature.
    """
    _identity_public(identity_public)
    check_exchange_public(exchange_public)
    statement = exchange_key_statement(session_id, participant_id, exchange_public)
    sig = as_bytes(signature, "signature", error=InvalidSignature)
    triple = (bytes(as_bytes(identity_public, "identity public key")), statement, bytes(sig))
    if triple in _verified_adverts:
        return
    verify_signature(identity_public, statement, signature)
    with _verified_lock:
        _verified_adverts[triple] = None
        if len(_verified_adverts) > VERIFIED_ADVERTS_MAX:
            del _verified_adverts[next(iter(_verified_adverts))]  # the oldest


#: signed exchange keys that verified in this process, as (identity key, statement, signature):
#: every member checks every advert of the key directory, so in one process that simulates N
#: members the same N signatures were checked N times (more than half of Init at N = 250).
#: Only a signature that verified is kept, byte for byte, so a forged one is always checked.
VERIFIED_ADVERTS_MAX = 1 << 14
_verified_adverts: dict[tuple[bytes, bytes, bytes], None] = {}
_verified_lock = threading.Lock()


def pair_secret(
    own: ExchangeKey, peer_public: bytes, session_id: bytes, own_id: int, peer_id: int
) -> bytes:
    """The 32-byte secret of the pair {own_id, peer_id} in ``session_id`` (symmetric)."""
    if not isinstance(own, ExchangeKey):
        raise InvalidKey("own must be an ExchangeKey")
    own_id = as_int(own_id, "own_id", high=1 << 64)
    peer_id = as_int(peer_id, "peer_id", high=1 << 64)
    if own_id == peer_id:
        raise InvalidKey("own_id and peer_id are equal; a pair needs two distinct participants")
    session = as_bytes(session_id, "session_id")
    peer = as_bytes(peer_public, "peer_public", error=InvalidKey)
    own_public = own.public_bytes
    if peer == own_public:
        raise InvalidKey("peer_public is this participant's own exchange key; check the roster")
    shared = own._shared(peer)
    if own_id < peer_id:
        low, high, low_pub, high_pub = own_id, peer_id, own_public, peer
    else:
        low, high, low_pub, high_pub = peer_id, own_id, peer, own_public
    info = b"".join((_PAIR_LABEL, u64(low, "id"), u64(high, "id"), lp(low_pub), lp(high_pub)))
    salt = hashlib.sha256(_SESSION_SALT_LABEL + session).digest()
    return HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=salt, info=info).derive(shared)


def derive_key(secret: bytes, purpose: bytes, context: bytes = b"") -> bytes:
    """A 32-byte key for ``purpose`` (and ``context``) from a secret of at least 32 bytes.

    HKDF-SHA256 without salt, info = ``b"ssddl/derive/v1" || lp(purpose) || lp(context)``:
    different purposes or contexts give independent keys.
    """
    key = as_bytes(secret, "secret", error=InvalidKey)
    if len(key) < KEY_SIZE:
        raise InvalidKey(f"secret must be at least {KEY_SIZE} bytes, got {len(key)}")
    label = as_bytes(purpose, "purpose")
    if not label:
        raise ConfigurationError("purpose must be non-empty bytes, e.g. b'aead'")
    info = _DERIVE_LABEL + lp(label) + lp(as_bytes(context, "context"))
    return HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=None, info=info).derive(key)
