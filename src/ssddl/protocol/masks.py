"""The pair-mask rule: one home for both sides (DESIGN.md §2, "one stream per pair").

For a pair (i, j) with i < j, the round-r mask m_ij is the keystream of the pair's round key
under a nonce bound to (session, r, i, j, "mask"). Member i *adds* m_ij, member j *subtracts*
it, so the masks cancel in the sum. The server, recovering from a dropout with a revealed round
key, removes the survivor's term by applying the opposite sign. With double masking a member
also adds its self-mask, the keystream of a key derived from a fresh seed
(:func:`self_stream`).

Everything here is a pure function of keys and numbers. A member's *combined* mask — the sum
of all its signed streams, :func:`combined_mask` — depends on the round keys (and its
self-mask seed) only, never on its update, so it can be built off the critical path: *where*
and *when* it is built is the :class:`~ssddl.protocol.ports.MaskBuilder` port injected into
the participant (in the caller by default; on a background thread or in a child process, and
ahead of the round, by the engines of :mod:`ssddl.runtime.masking`). Every builder builds the
same words.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ssddl.hazmat.keys import derive_key
from ssddl.hazmat.prg import (
    StreamCipher,
    accumulate_keystream,
    combine_keystreams,
    derive_nonce,
)

__all__ = [
    "RoundKeys",
    "Stream",
    "apply_pair_masks",
    "bound_pair_key",
    "combined_mask",
    "mask_nonce",
    "mask_sign",
    "pair_streams",
    "remove_pair_mask",
    "self_stream",
]

MASK_PURPOSE = "mask"
#: HKDF purpose of a member's self-mask key, derived from its seed of the round
SELF_MASK_PURPOSE = b"ssddl/self-mask/v1"
#: HKDF purpose of a pair's mask key bound to the round's model digest
BOUND_MASK_PURPOSE = b"ssddl/bound-pair-mask/v1"

#: one signed keystream of a combined mask: (key, nonce, sign)
Stream = tuple[bytes, bytes, int]


def mask_nonce(session_id: bytes, round_number: int, a: int, b: int) -> bytes:
    """The nonce of the pair (a, b)'s mask stream in a round; the pair is unordered."""
    low, high = (a, b) if a < b else (b, a)
    return derive_nonce(session_id, round_number, low, high, MASK_PURPOSE)


def bound_pair_key(round_key: bytes, binding: bytes) -> bytes:
    """The pair's mask key bound to ``binding`` (the round's model digest): HKDF of the
    pair's round key with the digest as context; ``round_key`` itself when ``binding`` is
    empty (the schemes that bind elsewhere). Two members shown different models derive
    different keys, so their pair mask does not cancel."""
    return derive_key(round_key, BOUND_MASK_PURPOSE, binding) if binding else round_key


def mask_sign(owner: int, peer: int) -> int:
    """+1 if ``owner`` adds the pair's mask (it has the lower id), −1 if it subtracts it."""
    return 1 if peer > owner else -1


def self_stream(seed: bytes, *, session_id: bytes, round_number: int, owner: int) -> Stream:
    """The member's self-mask PRG(s_i) of the round as a (key, nonce, +1) stream."""
    key = derive_key(seed, SELF_MASK_PURPOSE, session_id)
    return key, derive_nonce(session_id, round_number, owner, owner, "self-mask"), 1


def pair_streams(
    round_keys: Mapping[int, bytes],
    *,
    owner: int,
    session_id: bytes,
    round_number: int,
    binding: bytes = b"",
) -> list[Stream]:
    """``owner``'s signed pair-mask streams of the round, one per peer (keys bound to
    ``binding`` when it is given: :func:`bound_pair_key`)."""
    return [
        (
            bound_pair_key(key, binding),
            mask_nonce(session_id, round_number, owner, peer),
            mask_sign(owner, peer),
        )
        for peer, key in round_keys.items()
    ]


def apply_pair_masks(
    vector: np.ndarray,
    round_keys: Mapping[int, bytes],
    *,
    owner: int,
    session_id: bytes,
    round_number: int,
    cipher: StreamCipher,
    binding: bytes = b"",
) -> None:
    """Mask ``vector`` in place with ``owner``'s pair masks of the round (one per peer)."""
    streams = pair_streams(
        round_keys, owner=owner, session_id=session_id, round_number=round_number, binding=binding
    )
    for key, nonce, sign in streams:
        accumulate_keystream(vector, key, nonce, sign=sign, cipher=cipher)


def remove_pair_mask(
    aggregate: np.ndarray,
    key: bytes,
    *,
    owner: int,
    peer: int,
    session_id: bytes,
    round_number: int,
    cipher: StreamCipher,
    binding: bytes = b"",
) -> None:
    """Take ``owner``'s term of the pair (owner, peer) out of ``aggregate`` in place
    (``binding``: the model digest the pair's masks were bound to, as the member bound it)."""
    nonce = mask_nonce(session_id, round_number, owner, peer)
    sign = -mask_sign(owner, peer)
    accumulate_keystream(aggregate, bound_pair_key(key, binding), nonce, sign=sign, cipher=cipher)


def combined_mask(
    size: int,
    dtype: np.dtype[np.unsignedinteger],
    streams: Sequence[Stream],
    cipher: StreamCipher,
    *,
    workers: int | None = None,
) -> np.ndarray:
    """Σ sign · stream over ``streams`` (mod Q) as a new ``size``-word array.

    The first added stream is written straight into the array (no fold); the others are
    folded in, segment by segment on ``workers`` threads (default: every CPU for large totals;
    :func:`~ssddl.hazmat.prg.combine_keystreams`; ``workers=1`` builds it in the calling
    thread alone). Adding the result to a vector equals applying every stream to it in turn.
    """
    out = np.empty(size, dtype=dtype)
    combine_keystreams(out, streams, cipher=cipher, workers=workers)
    return out


@dataclass(frozen=True, repr=False)
class RoundKeys:
    """What a member's mask of a round is built from (a secret: the repr shows no key): the
    round, its group, the pairs' mask keys and their share keys (None: whatever needs them
    waits for the share step), and the digest of the round's model (empty before the round
    starts: a mask built ahead cannot depend on it)."""

    round_number: int
    group: tuple[int, ...]
    mask_keys: Mapping[int, bytes]
    share_keys: Mapping[int, bytes] | None = None
    model_digest: bytes = b""

    def __repr__(self) -> str:
        return f"RoundKeys(round={self.round_number}, pairs={len(self.mask_keys)})"
