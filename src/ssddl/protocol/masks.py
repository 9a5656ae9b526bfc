"""The pair-mask rule: one home for both sides (DESIGN.md §2, "one stream per pair").

For a pair (i, j) with i < j, the round-r mask m_ij is the keystream of the pair's round key
under a nonce bound to (session, r, i, j, "mask"). Member i *adds* m_ij, member j *subtracts*
it, so the masks cancel in the sum. The server, recovering from a dropout with a revealed round
key, removes the survivor's term by applying the opposite sign.

Off the critical path. A member's masks depend on the round keys (and its self-mask seed)
only, never on its update, so :func:`start_mask` builds the member's *combined* mask — the sum
of all its signed streams — on a persistent background thread while LocalTrain runs; sharing
is then encode + one in-place add (:meth:`PendingMask.add_to`). When every registered member
is in every group, the next round's group is known when a round ends, so a member starts the
whole mask of the next round then (:func:`start_mask_ahead`; its self-mask seed is drawn then,
in the order it would have been drawn at the round's start): the build overlaps the idle time
between rounds too. With double masking the self-mask seed's Shamir shares, sealed for the
member's pairs, do not depend on the update either: they are started with the mask and ride
on it (:attr:`PendingMask.shares`, :mod:`ssddl.protocol.seedshares`). The background worker
uses one CPU (the others train). A combined mask is never part of the participant's saved
state; masks built ahead of their round hold at most :data:`AHEAD_BUDGET_BYTES`
process-wide.

The worker is a thread by default, or a persistent child process
(:mod:`ssddl.protocol.maskproc`) where the process lives long enough to keep one: a thread
needs the GIL back between its short native calls and crawls while the main thread runs Python
(see that module), a process does not. On Linux the child writes each mask straight into a
shared-memory segment that the caller's array lies on (no copy, and no page faults once a
segment is reused); there, masks of any size go to the process. Where segments are missing
(or the pool is full) a mask comes back through a pipe, one more copy on the critical path,
so only masks of up to :data:`PROCESS_MAX_BYTES` go that way and larger ones are built on the
thread (through the pipe, measured on the wide MLP, M = 994,570: the thread was 1.00-1.10x
plain and the process 1.15-1.32x; on segments the two are within the machine's noise,
1.03-1.12x against 1.04-1.05x). At M = 85,002 the process wins: one step per round 1.82x
against 2.05x, n = 100 3.2x against 4.2-5.1x; waiting for the ten masks of a round took
1.6 ms through the pipe and 0.35 ms on segments. :func:`set_mask_worker` chooses for the
process (a runtime's own choice: the simulator takes ``SimulationConfig.mask_worker``,
``process`` by default). Both build the same words.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

import numpy as np

from ssddl.exceptions import ConfigurationError, ShareError
from ssddl.hazmat.keys import derive_key
from ssddl.hazmat.prg import (
    StreamCipher,
    accumulate_keystream,
    combine_keystreams,
    derive_nonce,
)

if TYPE_CHECKING:
    from ssddl.protocol.maskproc import MaskProcess
    from ssddl.protocol.participant import Participant
    from ssddl.protocol.seedshares import PendingShares

__all__ = [
    "MaskPrecomputer",
    "PendingMask",
    "RoundKeys",
    "Stream",
    "apply_pair_masks",
    "bound_pair_key",
    "combined_mask",
    "mask_nonce",
    "mask_sign",
    "pair_streams",
    "remove_pair_mask",
    "set_mask_worker",
    "start_mask",
    "start_mask_ahead",
    "using_mask_worker",
]

_log = logging.getLogger(__name__)

MASK_PURPOSE = "mask"
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
    :func:`~ssddl.hazmat.prg.combine_keystreams`). Adding the result to a vector equals
    applying every stream to it in turn.
    """
    out = np.empty(size, dtype=dtype)
    combine_keystreams(out, streams, cipher=cipher, workers=workers)
    return out


def _combine_into(out: np.ndarray, streams: Sequence[Stream], cipher: StreamCipher) -> np.ndarray:
    combine_keystreams(out, streams, cipher=cipher, workers=1)
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

MaskWorker = Literal["thread", "process"]
_worker_kind: MaskWorker = "thread"
#: with the ``process`` worker and no shared segment, larger masks are still built on the
#: thread (see above)
PROCESS_MAX_BYTES = 1 << 20
_no_process = False  #: set when a worker process could not start


def _check_kind(kind: str, where: str) -> MaskWorker:
    if kind not in ("thread", "process"):
        raise ConfigurationError(f"{where} must be 'thread' or 'process', got {kind!r}")
    return kind  # type: ignore[return-value]


def set_mask_worker(kind: MaskWorker) -> MaskWorker:
    """Build this process's masks on a background ``thread`` or in a child ``process``;
    returns the previous choice."""
    global _worker_kind
    previous, _worker_kind = _worker_kind, _check_kind(kind, "the mask worker")
    return previous


@contextlib.contextmanager
def using_mask_worker(kind: MaskWorker) -> Iterator[None]:
    """:func:`set_mask_worker` for a block, then back to the previous choice."""
    previous = set_mask_worker(kind)
    try:
        yield
    finally:
        set_mask_worker(previous)


def mask_worker() -> MaskWorker:
    """The worker that builds this process's next mask."""
    return _worker_kind


class _Job(Protocol):
    def result(self) -> np.ndarray: ...

    def exception(self) -> BaseException | None: ...


#: the most memory that masks built ahead of their round (:func:`start_mask` with
#: ``ahead=True``) hold at once in this process; beyond it no mask is built ahead
AHEAD_BUDGET_BYTES = 256 << 20


class _Budget:
    """Bytes held by masks built ahead of their round, process-wide. Re-entrant: a mask's
    finaliser may give its bytes back from whatever the thread was doing."""

    def __init__(self, limit: int) -> None:
        self._lock = threading.RLock()
        self.limit = limit
        self.used = 0

    def take(self, nbytes: int) -> bool:
        with self._lock:
            if self.used + nbytes > self.limit:
                return False
            self.used += nbytes
            return True

    def give(self, nbytes: int) -> None:
        with self._lock:
            self.used -= nbytes


_ahead = _Budget(AHEAD_BUDGET_BYTES)


class PendingMask:
    """A combined mask being built in the background, with the self-mask seed it used and
    that seed's shares being sealed (:mod:`ssddl.protocol.seedshares`), if started with it.

    A secret: never logged, shown or saved. :meth:`add_to` waits for it, adds it to a vector
    in place and forgets it; :meth:`discard` waits and forgets it (and its shares) unused.
    """

    __slots__ = ("_budget", "_cipher", "_future", "_held", "_size", "seed", "shares")

    def __init__(
        self,
        future: _Job,
        size: int,
        seed: bytes | None,
        cipher: StreamCipher,
        held: int = 0,
        budget: _Budget | None = None,
        shares: PendingShares | None = None,
    ) -> None:
        self._future: _Job | None = future
        self._size = size
        self._cipher = cipher
        self._held = held  #: bytes of ``budget`` (masks built ahead of their round) it holds
        self._budget = budget
        self.seed = seed  #: the self-mask seed folded into the mask (None without one)
        self.shares = shares  #: the seed's shares, split and sealed in the background

    def __repr__(self) -> str:
        return f"PendingMask(size={self._size})"

    def __del__(self) -> None:
        self._release()

    def _release(self) -> None:
        held, self._held = self._held, 0
        if held and self._budget is not None:
            self._budget.give(held)

    def _take(self) -> _Job:
        future, self._future = self._future, None
        if future is None:
            raise ShareError("this precomputed mask was already used or discarded")
        return future

    def add_to(self, vector: np.ndarray) -> None:
        """``vector += mask`` (mod Q) in place; the mask is then forgotten."""
        future = self._take()
        try:
            mask = future.result()
        finally:
            self._release()
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
            self._release()

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
            self._release()


def start_mask(
    size: int,
    dtype: np.dtype[np.unsignedinteger],
    streams: Sequence[Stream],
    cipher: StreamCipher,
    *,
    seed: bytes | None = None,
    shares: PendingShares | None = None,
) -> PendingMask:
    """Build :func:`combined_mask` on the persistent background thread (one CPU), into an
    array allocated here, by the caller's thread, which reuses its own freed memory."""
    return _submit(size, dtype, streams, cipher, (seed, shares))


#: what a mask carries besides its words: the self-mask seed and its shares being sealed
Companions = tuple["bytes | None", "PendingShares | None"]


def start_mask_ahead(
    size: int,
    dtype: np.dtype[np.unsignedinteger],
    cipher: StreamCipher,
    streams: Callable[[], tuple[Sequence[Stream], Companions]],
) -> PendingMask | None:
    """:func:`start_mask` for a mask built before its round starts: it counts against
    :data:`AHEAD_BUDGET_BYTES`. ``streams()`` gives the streams, the self-mask seed and its
    shares; it is called only when the budget allows the build (else None: nothing drawn,
    nothing started)."""
    held = size * np.dtype(dtype).itemsize
    budget = _ahead
    if not budget.take(held):
        return None
    try:
        chosen, companions = streams()
    except BaseException:
        budget.give(held)
        raise
    return _submit(size, dtype, chosen, cipher, companions, held, budget)


def _submit(
    size: int,
    dtype: np.dtype[np.unsignedinteger],
    streams: Sequence[Stream],
    cipher: StreamCipher,
    companions: Companions,
    held: int = 0,
    budget: _Budget | None = None,
) -> PendingMask:
    job = _process_job(size, dtype, streams, cipher)
    if job is None:
        out = np.empty(size, dtype=dtype)
        job = _worker.get().submit(_combine_into, out, list(streams), cipher)
    seed, shares = companions
    return PendingMask(job, size, seed, cipher, held, budget, shares)


def worker_process() -> MaskProcess | None:
    """The mask worker process when masks are built in one and it runs (started if need
    be); None with the thread worker, or when no process can start (then not tried again in
    this process)."""
    global _no_process
    if _no_process or mask_worker() != "process":
        return None
    from ssddl.protocol.maskproc import mask_process

    try:
        return mask_process()
    except ShareError as exc:  # not tried again in this process
        _no_process = True
        _log.warning("%s; masks are built on a thread from now on", exc)
        return None


def _process_job(
    size: int, dtype: np.dtype[np.unsignedinteger], streams: Sequence[Stream], cipher: StreamCipher
) -> _Job | None:
    """The mask on the worker process: on a shared segment, else through the pipe up to
    :data:`PROCESS_MAX_BYTES`; None (use the thread) when neither, or no process runs."""
    process = worker_process()
    if process is None:
        return None
    job = process.submit_shared(size, dtype, streams, cipher)
    if job is None and size * np.dtype(dtype).itemsize <= PROCESS_MAX_BYTES:
        job = process.submit(np.empty(size, dtype=dtype), streams, cipher)
    return job


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


@runtime_checkable
class MaskPrecomputer(Protocol):
    """A scheme whose masks can be built from the round keys before the update exists."""

    def precompute(self, participant: Participant, keys: RoundKeys) -> PendingMask:
        """Start building ``participant``'s combined mask of ``keys.round_number`` (and what
        else the share step can do before the update exists)."""
        ...

    def precompute_ahead(self, participant: Participant, keys: RoundKeys) -> PendingMask | None:
        """:meth:`precompute` before the round starts (None: not now, nothing was drawn)."""
        ...
