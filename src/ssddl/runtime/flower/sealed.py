"""A node's participant state, sealed while Flower keeps it in ``context.state``.

In the deployment engine the SuperNode holds ``context.state`` between messages and ships it
to a fresh ClientApp process for each one, so the participant's secrets (its X25519 private
key, its pair generators' states, round keys, share keys and seed shares) would sit in the
SuperNode's memory and cross its local link in the clear. :func:`seal_state` encrypts them
with ChaCha20-Poly1305 under a key that only the node's own configuration supplies:

    key   = IdentityKey.derive_key(b"flower-state")   (HKDF-SHA256 of the node's Ed25519 seed)
    nonce = 12 fresh bytes from the OS CSPRNG, one per sealing
    AD    = b"SSDDL-ST" || 0x01 || u64(Flower run id) || u64(Flower node id) || u64(participant)
    blob  = b"SSDDL-ST" || 0x01 || nonce || ciphertext || tag

so a state opens only for the same key, run, node and participant, and any change to it is
detected (:func:`open_state` raises :class:`~ssddl.exceptions.InvalidCiphertext` with the
reason). The key never leaves the node: it is derived from the identity key file the node
loads anyway, and nothing derived from it is stored.
"""

from __future__ import annotations

import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from ssddl.exceptions import ConfigurationError, InvalidCiphertext
from ssddl.hazmat.keys import IdentityKey
from ssddl.hazmat.rand import OsRandom, RandomSource

__all__ = ["SEAL_HEADER", "open_state", "seal_state"]

SEAL_HEADER = b"SSDDL-ST\x01"
_PURPOSE = b"flower-state"
_NONCE = 12
_TAG = 16
_ADDRESS = struct.Struct(">QQQ")


def _address(run_id: int, node_id: int, participant: int) -> bytes:
    values = (run_id, node_id, participant)
    if any(isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 1 << 64 for v in values):
        raise ConfigurationError(
            f"run id, node id and participant must be integers in [0, 2^64), got {values!r}"
        )
    return SEAL_HEADER + _ADDRESS.pack(*values)


def seal_state(
    identity: IdentityKey,
    state: bytes,
    *,
    run_id: int,
    node_id: int,
    participant: int,
    random: RandomSource | None = None,
) -> bytes:
    """``state`` encrypted and authenticated for this node, run and participant."""
    source = random if random is not None else OsRandom()
    nonce = source.random_bytes(_NONCE)
    if len(nonce) != _NONCE:
        raise ConfigurationError("random.random_bytes returned the wrong number of bytes")
    aead = ChaCha20Poly1305(identity.derive_key(_PURPOSE))
    ad = _address(run_id, node_id, participant)
    return SEAL_HEADER + nonce + aead.encrypt(nonce, state, ad)


def open_state(
    identity: IdentityKey, sealed: bytes, *, run_id: int, node_id: int, participant: int
) -> bytes:
    """The state :func:`seal_state` sealed for exactly this node, run and participant."""
    ad = _address(run_id, node_id, participant)
    if not sealed.startswith(SEAL_HEADER):
        raise InvalidCiphertext(
            "the persisted ssddl state is not sealed (no SSDDL-ST header): refused; it was "
            "written by something else or by an older ssddl — start a new run"
        )
    body = sealed[len(SEAL_HEADER) :]
    if len(body) < _NONCE + _TAG:
        raise InvalidCiphertext("the persisted ssddl state is truncated: refused")
    aead = ChaCha20Poly1305(identity.derive_key(_PURPOSE))
    try:
        return aead.decrypt(body[:_NONCE], body[_NONCE:], ad)
    except InvalidTag:
        raise InvalidCiphertext(
            f"the persisted ssddl state does not open for participant {participant} in run "
            f"{run_id} on node {node_id}: it was sealed under another identity key, for "
            "another run or node, or altered; refused"
        ) from None
