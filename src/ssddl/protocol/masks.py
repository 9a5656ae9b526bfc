"""The pair-mask rule: one home for both sides (DESIGN.md §2, "one stream per pair").

For a pair (i, j) with i < j, the round-r mask m_ij is the keystream of the pair's round key
under a nonce bound to (session, r, i, j, "mask"). Member i *adds* m_ij, member j *subtracts*
it, so the masks cancel in the sum. The server, recovering from a dropout with a revealed round
key, removes the survivor's term by applying the opposite sign.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ssddl.hazmat.prg import StreamCipher, accumulate_keystream, derive_nonce

__all__ = ["apply_pair_masks", "mask_nonce", "mask_sign", "remove_pair_mask"]

MASK_PURPOSE = "mask"


def mask_nonce(session_id: bytes, round_number: int, a: int, b: int) -> bytes:
    """The nonce of the pair (a, b)'s mask stream in a round; the pair is unordered."""
    low, high = (a, b) if a < b else (b, a)
    return derive_nonce(session_id, round_number, low, high, MASK_PURPOSE)


def mask_sign(owner: int, peer: int) -> int:
    """+1 if ``owner`` adds the pair's mask (it has the lower id), −1 if it subtracts it."""
    return 1 if peer > owner else -1


def apply_pair_masks(
    vector: np.ndarray,
    round_keys: Mapping[int, bytes],
    *,
    owner: int,
    session_id: bytes,
    round_number: int,
    cipher: StreamCipher,
) -> None:
    """Mask ``vector`` in place with ``owner``'s pair masks of the round (one per peer)."""
    for peer, key in round_keys.items():
        nonce = mask_nonce(session_id, round_number, owner, peer)
        accumulate_keystream(vector, key, nonce, sign=mask_sign(owner, peer), cipher=cipher)


def remove_pair_mask(
    aggregate: np.ndarray,
    key: bytes,
    *,
    owner: int,
    peer: int,
    session_id: bytes,
    round_number: int,
    cipher: StreamCipher,
) -> None:
    """Take ``owner``'s term of the pair (owner, peer) out of ``aggregate`` in place."""
    nonce = mask_nonce(session_id, round_number, owner, peer)
    accumulate_keystream(aggregate, key, nonce, sign=-mask_sign(owner, peer), cipher=cipher)
