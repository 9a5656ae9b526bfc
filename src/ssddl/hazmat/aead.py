"""Authenticated encryption of shares sent from one member to another (``explicit`` mode).

ChaCha20-Poly1305 (default) or AES-256-GCM from ``cryptography``, 32-byte key, 12-byte nonce
supplied by the caller (draw it from a RandomSource, or derive it uniquely per message).
The associated data binds every ciphertext to its session, round, sender and receiver
(:func:`share_associated_data`), so a ciphertext replayed into another round, or relayed to
someone it was not addressed to, fails to open. The sealed blob is
``nonce (12 bytes) || ciphertext || tag (16 bytes)``.

Associated data, version 1 (all integers big-endian)::

    b"SSDDL-AD" || 0x01 || u32 len(session_id) || session_id
                || u64 round_number || u64 sender || u64 receiver

With a non-empty ``context`` (the protocol passes the digest of the round's model, so that
members shown different models cannot open each other's shares), version 2::

    b"SSDDL-AD" || 0x02 || u32 len(session_id) || session_id || u32 len(context) || context
                || u64 round_number || u64 sender || u64 receiver
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from ssddl.exceptions import ConfigurationError, InvalidCiphertext
from ssddl.hazmat._checks import as_bytes, as_key, lp, u64_address

__all__ = [
    "AD_CONTEXT_VERSION",
    "AD_VERSION",
    "NONCE_SIZE",
    "TAG_SIZE",
    "AeadAlgorithm",
    "open_sealed",
    "open_sealed_each",
    "seal",
    "share_associated_data",
]

KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16
AD_VERSION = 1
#: the version of the associated data that carries a context (:func:`share_associated_data`)
AD_CONTEXT_VERSION = 2
_AD_MAGIC = b"SSDDL-AD"
_AD_HEAD = _AD_MAGIC + bytes((AD_VERSION,))
_AD_CONTEXT_HEAD = _AD_MAGIC + bytes((AD_CONTEXT_VERSION,))


class AeadAlgorithm(str, Enum):
    """The AEAD used for shares in transit."""

    CHACHA20_POLY1305 = "chacha20-poly1305"
    AES_256_GCM = "aes-256-gcm"


def _as_algorithm(algorithm: Any) -> AeadAlgorithm:
    try:
        return AeadAlgorithm(algorithm)
    except ValueError:
        raise ConfigurationError(
            "algorithm must be an AeadAlgorithm ('chacha20-poly1305' or 'aes-256-gcm')"
        ) from None


def _aead(key: bytes, algorithm: AeadAlgorithm) -> ChaCha20Poly1305 | AESGCM:
    key = as_key(key, "key", KEY_SIZE)
    if algorithm is AeadAlgorithm.CHACHA20_POLY1305:
        return ChaCha20Poly1305(key)
    return AESGCM(key)


def share_associated_data(
    session_id: bytes, round_number: int, sender: int, receiver: int, *, context: bytes = b""
) -> bytes:
    """The versioned, length-prefixed associated data of a share in transit (version 2,
    with ``context``, when one is given)."""
    return _ad_head(session_id, context) + u64_address(round_number, sender, receiver)


def _ad_head(session_id: bytes, context: bytes = b"") -> bytes:
    """The associated data up to the address: the same for every share of a session (and
    context)."""
    session = lp(as_bytes(session_id, "session_id"))
    bound = as_bytes(context, "context")
    if not bound:
        return b"".join((_AD_HEAD, session))
    return b"".join((_AD_CONTEXT_HEAD, session, lp(bound)))


def seal(
    key: bytes,
    plaintext: bytes,
    *,
    session_id: bytes,
    round_number: int,
    sender: int,
    receiver: int,
    nonce: bytes,
    algorithm: AeadAlgorithm = AeadAlgorithm.CHACHA20_POLY1305,
    context: bytes = b"",
) -> bytes:
    """Encrypt and authenticate ``plaintext``; returns ``nonce || ciphertext || tag``.

    Never reuse a nonce under one key: draw it from a RandomSource (96 random bits) or make
    it unique per (round, sender, receiver). ``context`` (e.g. the digest of the round's
    model) goes into the associated data: the blob opens only with the same context.
    """
    aead = _aead(key, _as_algorithm(algorithm))
    nonce_bytes = as_bytes(nonce, "nonce")
    if len(nonce_bytes) != NONCE_SIZE:
        raise ConfigurationError(
            f"nonce must be exactly {NONCE_SIZE} bytes, got {len(nonce_bytes)}"
        )
    ad = share_associated_data(session_id, round_number, sender, receiver, context=context)
    return nonce_bytes + aead.encrypt(nonce_bytes, as_bytes(plaintext, "plaintext"), ad)


def open_sealed(
    key: bytes,
    blob: bytes,
    *,
    session_id: bytes,
    round_number: int,
    sender: int,
    receiver: int,
    algorithm: AeadAlgorithm = AeadAlgorithm.CHACHA20_POLY1305,
    context: bytes = b"",
) -> bytes:
    """Check and decrypt a blob made by :func:`seal` for exactly this address.

    Raises InvalidCiphertext if it was tampered with, truncated, or sealed for another
    session, round, sender, receiver, context, key or algorithm.
    """
    return open_sealed_each(
        (key,),
        (blob,),
        (sender,),
        session_id=session_id,
        round_number=round_number,
        receiver=receiver,
        algorithm=algorithm,
        context=context,
    )[0]


def open_sealed_each(
    keys: Sequence[bytes],
    blobs: Sequence[bytes],
    senders: Sequence[int],
    *,
    session_id: bytes,
    round_number: int,
    receiver: int,
    algorithm: AeadAlgorithm = AeadAlgorithm.CHACHA20_POLY1305,
    context: bytes = b"",
) -> list[bytes]:
    """:func:`open_sealed` of every (key, blob, sender) sent to ``receiver`` in one round, in
    order, with the same checks and errors: what they share (the algorithm, the head of the
    associated data) is prepared once — a member opens one share per pair and round."""
    if not len(keys) == len(blobs) == len(senders):
        raise ConfigurationError("keys, blobs and senders must be of the same length")
    checked = _as_algorithm(algorithm)
    head = _ad_head(session_id, context)
    opened = []
    for key, blob, sender in zip(keys, blobs, senders, strict=True):
        aead = _aead(key, checked)
        data = as_bytes(blob, "blob", error=InvalidCiphertext)
        ad = head + u64_address(round_number, sender, receiver)
        if len(data) < NONCE_SIZE + TAG_SIZE:
            raise InvalidCiphertext(
                f"sealed blob is {len(data)} bytes, shorter than nonce + tag "
                f"({NONCE_SIZE + TAG_SIZE}); it was truncated — ask the sender again"
            )
        try:
            opened.append(aead.decrypt(data[:NONCE_SIZE], data[NONCE_SIZE:], ad))
        except InvalidTag:
            raise InvalidCiphertext(
                "ciphertext failed to authenticate: tampered, truncated, or addressed to "
                "another session, round, sender, receiver or context (model); discard it"
            ) from None
    return opened
