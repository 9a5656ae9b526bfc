"""Where a member's masks are built: the :class:`MaskBuilder` port (DESIGN.md §3, STYLE §19).

A member's combined mask (:func:`~ssddl.protocol.masks.combined_mask`) and, with double
masking, its self-mask seed's sealed shares (:mod:`ssddl.protocol.seedshares`) depend on the
round keys and fresh randomness only, never on the update: they can be built while LocalTrain
runs, or before the round starts. The protocol says *what* is built; a :class:`MaskBuilder`,
injected into the participant like its trainer, says *where* and *when*:

* :class:`InlineMaskBuilder` (the default, and what a Flower ClientApp uses): in the caller,
  at once; never ahead of the round.
* the engines of :mod:`ssddl.runtime.masking`: on a background thread or in a child process,
  and ahead of the round within a memory budget. A runtime creates one, passes it to its
  participants and closes it when the session ends.

Every builder builds the same words, and a member sends the same bytes whichever it uses.

A built mask is a :class:`PendingMask`: a secret, never logged, shown or saved.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from ssddl.exceptions import ShareError
from ssddl.hazmat.prg import StreamCipher
from ssddl.protocol.masks import Stream, combined_mask
from ssddl.protocol.seedshares import PendingShares, SealJob, SeedShareRequest

__all__ = [
    "Companions",
    "InlineMaskBuilder",
    "MaskBuilder",
    "MaskJob",
    "PendingMask",
    "SealJob",
]

#: what a mask carries besides its words: the self-mask seed and its shares being sealed
Companions = tuple["bytes | None", "PendingShares | None"]


class MaskJob(Protocol):
    """A mask being built: :meth:`result` waits for its words (a secret array)."""

    def result(self) -> np.ndarray: ...

    def exception(self) -> BaseException | None: ...


class MaskBuilder(Protocol):
    """Builds a member's combined masks (and may seal its seed shares) somewhere.

    The order of random draws is the port's contract, the same for every builder: a builder
    never draws. The member draws a mask's self-mask seed, and then its seed shares'
    randomness, when the mask is *started*; :meth:`start_ahead` calls its ``streams``
    callback — which makes those draws — only once it has decided to build, and returns
    None without calling it otherwise (nothing drawn, nothing started). A mask built ahead
    that its round does not use is discarded and the member gives what was drawn for it
    back to its random source (:meth:`ssddl.hazmat.rand.RewindableSource.push_back`), so the
    next draws come out as if it had never been built: the bytes a member sends do not
    depend on the builder.
    """

    def start(
        self,
        size: int,
        dtype: np.dtype[np.unsignedinteger],
        streams: Sequence[Stream],
        cipher: StreamCipher,
        *,
        seed: bytes | None = None,
        shares: PendingShares | None = None,
    ) -> PendingMask:
        """Build Σ sign · stream over ``streams`` into a new ``size``-word array; ``seed``
        and ``shares`` (the self-mask seed folded in, its shares) ride on the mask."""
        ...

    def start_ahead(
        self,
        size: int,
        dtype: np.dtype[np.unsignedinteger],
        cipher: StreamCipher,
        streams: Callable[[], tuple[Sequence[Stream], Companions]],
    ) -> PendingMask | None:
        """:meth:`start` for a mask of a round that has not started yet, or None: not built
        ahead (and ``streams()`` not called). ``streams()`` gives the streams, the seed and
        its shares."""
        ...

    def seal_shares(self, request: SeedShareRequest) -> SealJob | None:
        """Start splitting and sealing a member's seed shares elsewhere, or None: the
        member seals them itself when they are first asked for."""
        ...


class PendingMask:
    """A combined mask being built, with the self-mask seed it used and that seed's shares
    being sealed (:mod:`ssddl.protocol.seedshares`), if started with them.

    A secret: never logged, shown or saved. :meth:`add_to` waits for it, adds it to a vector
    in place and forgets it; :meth:`discard` waits and forgets it (and its shares) unused.
    ``release`` (a builder's) runs once the words are handed over or dropped.
    """

    __slots__ = ("_future", "_release", "_size", "seed", "shares")

    def __init__(
        self,
        future: MaskJob,
        size: int,
        seed: bytes | None = None,
        shares: PendingShares | None = None,
        release: Callable[[], None] | None = None,
    ) -> None:
        self._future: MaskJob | None = future
        self._size = size
        self._release = release
        self.seed = seed  #: the self-mask seed folded into the mask (None without one)
        self.shares = shares  #: the seed's shares, split and sealed in the background

    def __repr__(self) -> str:
        return f"PendingMask(size={self._size})"

    def __del__(self) -> None:
        self._released()

    def _released(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()

    def _take(self) -> MaskJob:
        future, self._future = self._future, None
        if future is None:
            raise ShareError("this precomputed mask was already used or discarded")
        return future

    def add_to(self, vector: np.ndarray) -> None:
        """``vector += mask`` (mod Q) in place; the mask is then forgotten."""
        mask = self.take()
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
        future = self._take()
        try:
            return future.result()
        finally:
            self._released()

    def discard(self) -> None:
        """Wait for the build to end and drop its result (the round was refused)."""
        future, self._future = self._future, None
        shares, self.shares = self.shares, None
        self.seed = None
        try:
            if shares is not None:
                shares.discard()
            if future is not None and future.exception() is None:
                future.result().fill(0)
        finally:
            self._released()


class _Built:
    """A mask already built (by the caller)."""

    __slots__ = ("_words",)

    def __init__(self, words: np.ndarray) -> None:
        self._words = words

    def result(self) -> np.ndarray:
        return self._words

    def exception(self) -> BaseException | None:
        return None


class InlineMaskBuilder:
    """The synchronous builder: each mask is built in the caller when it is started (on
    every CPU for large masks, :func:`~ssddl.protocol.masks.combined_mask`), never ahead of
    its round, and the seed shares are sealed by the member when first asked for. No
    thread, process or memory outlives a call; nothing to close."""

    def __repr__(self) -> str:
        return "InlineMaskBuilder()"

    def start(
        self,
        size: int,
        dtype: np.dtype[np.unsignedinteger],
        streams: Sequence[Stream],
        cipher: StreamCipher,
        *,
        seed: bytes | None = None,
        shares: PendingShares | None = None,
    ) -> PendingMask:
        return PendingMask(_Built(combined_mask(size, dtype, streams, cipher)), size, seed, shares)

    def start_ahead(
        self,
        size: int,
        dtype: np.dtype[np.unsignedinteger],
        cipher: StreamCipher,
        streams: Callable[[], tuple[Sequence[Stream], Companions]],
    ) -> PendingMask | None:
        return None  # building in the caller before the round gains nothing

    def seal_shares(self, request: SeedShareRequest) -> SealJob | None:
        return None
