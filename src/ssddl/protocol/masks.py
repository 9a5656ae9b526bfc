"""The pair-mask rule: one home for both sides (DESIGN.md §2, "one stream per pair").

For a pair (i, j) with i < j, the round-r mask m_ij is the keystream of the pair's round key
under a nonce bound to (session, r, i, j, "mask"). Member i *adds* m_ij, member j *subtracts*
it, so the masks cancel in the sum. The server, recovering from a dropout with a revealed round
key, removes the survivor's term by applying the opposite sign.

Off the critical path. A member's masks depend on the round keys (and its self-mask seed)
only, never on its update, so :func:`start_mask` builds the member's *combined* mask — the sum
of all its signed streams — on a persistent background thread while LocalTrain runs; sharing
is then encode + one in-place add (:meth:`PendingMask.add_to`). The combined mask lives only
inside the handling of one RoundStart: it is never part of the participant's saved state.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from ssddl.exceptions import ShareError
from ssddl.hazmat.prg import (
    StreamCipher,
    accumulate_keystream,
    combine_keystreams,
    derive_nonce,
)

if TYPE_CHECKING:
    from ssddl.protocol.participant import Participant

__all__ = [
    "MaskPrecomputer",
    "PendingMask",
    "Stream",
    "apply_pair_masks",
    "combined_mask",
    "mask_nonce",
    "mask_sign",
    "pair_streams",
    "remove_pair_mask",
    "start_mask",
]

MASK_PURPOSE = "mask"

#: one signed keystream of a combined mask: (key, nonce, sign)
Stream = tuple[bytes, bytes, int]


def mask_nonce(session_id: bytes, round_number: int, a: int, b: int) -> bytes:
    """The nonce of the pair (a, b)'s mask stream in a round; the pair is unordered."""
    low, high = (a, b) if a < b else (b, a)
    return derive_nonce(session_id, round_number, low, high, MASK_PURPOSE)


def mask_sign(owner: int, peer: int) -> int:
    """+1 if ``owner`` adds the pair's mask (it has the lower id), −1 if it subtracts it."""
    return 1 if peer > owner else -1


def pair_streams(
    round_keys: Mapping[int, bytes], *, owner: int, session_id: bytes, round_number: int
) -> list[Stream]:
    """``owner``'s signed pair-mask streams of the round, one per peer."""
    return [
        (key, mask_nonce(session_id, round_number, owner, peer), mask_sign(owner, peer))
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
) -> None:
    """Mask ``vector`` in place with ``owner``'s pair masks of the round (one per peer)."""
    streams = pair_streams(
        round_keys, owner=owner, session_id=session_id, round_number=round_number
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
) -> None:
    """Take ``owner``'s term of the pair (owner, peer) out of ``aggregate`` in place."""
    nonce = mask_nonce(session_id, round_number, owner, peer)
    accumulate_keystream(aggregate, key, nonce, sign=-mask_sign(owner, peer), cipher=cipher)


def combined_mask(
    size: int, dtype: np.dtype[np.unsignedinteger], streams: Sequence[Stream], cipher: StreamCipher
) -> np.ndarray:
    """Σ sign · stream over ``streams`` (mod Q) as a new ``size``-word array.

    The first added stream is written straight into the array (no fold); the others are
    folded in, segment by segment on every CPU for large totals
    (:func:`~ssddl.hazmat.prg.combine_keystreams`). Adding the result to a vector equals
    applying every stream to it in turn.
    """
    out = np.empty(size, dtype=dtype)
    combine_keystreams(out, streams, cipher=cipher)
    return out


def _combine_into(out: np.ndarray, streams: Sequence[Stream], cipher: StreamCipher) -> np.ndarray:
    combine_keystreams(out, streams, cipher=cipher)
    return out


class _Worker:
    """One persistent background thread for mask building (remade after ``os.fork``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._pid = 0

    def get(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None or self._pid != os.getpid():
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ssddl-mask")
                self._pid = os.getpid()
            return self._pool


_worker = _Worker()


class PendingMask:
    """A combined mask being built in the background, with the self-mask seed it used.

    A secret: never logged, shown or saved. :meth:`add_to` waits for it, adds it to a vector
    in place and forgets it; :meth:`discard` waits and forgets it unused.
    """

    __slots__ = ("_future", "_size", "seed")

    def __init__(self, future: Future[np.ndarray], size: int, seed: bytes | None) -> None:
        self._future: Future[np.ndarray] | None = future
        self._size = size
        self.seed = seed  #: the self-mask seed folded into the mask (None without one)

    def __repr__(self) -> str:
        return f"PendingMask(size={self._size})"

    def add_to(self, vector: np.ndarray) -> None:
        """``vector += mask`` (mod Q) in place; the mask is then forgotten."""
        if self._future is None:
            raise ShareError("this precomputed mask was already used or discarded")
        mask = self._future.result()
        self._future = None
        if mask.shape != vector.shape or mask.dtype != vector.dtype:
            raise ShareError(
                f"the precomputed mask has {mask.size} {mask.dtype} words, the vector "
                f"{vector.size} {vector.dtype}: it belongs to another round or session"
            )
        np.add(vector, mask, out=vector)
        mask.fill(0)

    def take(self) -> np.ndarray:
        """Wait for the mask and hand its array over (a secret until an encoding is added
        to it: the caller adds its vector in place and sends the sum — one M-word array
        fewer than :meth:`add_to`)."""
        if self._future is None:
            raise ShareError("this precomputed mask was already used or discarded")
        mask = self._future.result()
        self._future = None
        return mask

    def discard(self) -> None:
        """Wait for the build to end and drop its result (the round was refused)."""
        future, self._future = self._future, None
        self.seed = None
        if future is not None and future.exception() is None:
            future.result().fill(0)


def start_mask(
    size: int,
    dtype: np.dtype[np.unsignedinteger],
    streams: Sequence[Stream],
    cipher: StreamCipher,
    *,
    seed: bytes | None = None,
) -> PendingMask:
    """Build :func:`combined_mask` on the persistent background thread (into an array
    allocated here, by the caller's thread, which reuses its own freed memory)."""
    out = np.empty(size, dtype=dtype)
    future = _worker.get().submit(_combine_into, out, list(streams), cipher)
    return PendingMask(future, size, seed)


@runtime_checkable
class MaskPrecomputer(Protocol):
    """A scheme whose masks can be built from the round keys before the update exists."""

    def precompute(
        self, participant: Participant, round_number: int, round_keys: Mapping[int, bytes]
    ) -> PendingMask:
        """Start building ``participant``'s combined mask of ``round_number``."""
        ...
