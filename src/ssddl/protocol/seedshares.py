"""A member's self-mask seed, split into Shamir shares and sealed for its pairs (double masking).

None of this depends on the member's update: only on the seed, the round's pair share keys
and fresh randomness (the polynomial's coefficients, the AEAD nonces). So, like the mask
(:mod:`ssddl.protocol.masks`), it is done before the update exists, off the critical path: a
member draws the randomness when it draws the seed, in the order the split and the sealing
would draw it after LocalTrain, and the mask worker process splits and seals while the member
trains (:func:`start_seed_shares`). The share step is then encode + one in-place add, and the
sealed shares are picked up with the mask. Where there is no worker process, the same
function runs when the shares are first asked for (:meth:`PendingShares.result`): the same
bytes either way.

:class:`SeedShareRequest` holds everything the work needs; :func:`seal_seed_shares` does it
and returns, with the member's own share and the sealed ones, each pair's AEAD key of the
round (derived from the pair's share key, as :func:`~ssddl.protocol.schemes._common.seal_for`
derives it), which opens that pair's shares later in the round too. The request and the
result are secrets (the seed, the share keys, the AEAD keys): never logged, shown or saved;
they cross only the pipe to the mask worker process, as the round keys do.

Worker framing of a request (little-endian)::

    u16 len(session_id) | session_id | u64 round | u64 owner | u16 h | h × u64 holders
    | u16 threshold | u8 AEAD (0: ChaCha20-Poly1305, 1: AES-256-GCM) | seed (32 bytes)
    | (threshold − 1) × 5 × u64 coefficients | (h − 1) × (share key (32) | nonce (12))

and of a result: ``own share (40) | (h − 1) × (AEAD key (32) | sealed share (68))``.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ssddl.exceptions import ConfigurationError, MalformedMessage
from ssddl.hazmat.aead import NONCE_SIZE, TAG_SIZE, AeadAlgorithm, seal
from ssddl.hazmat.keys import derive_key
from ssddl.hazmat.rand import RandomSource, random_below_rows
from ssddl.hazmat.sharing import SHAMIR_PRIME, field_polynomial_at

__all__ = [
    "SEED_SIZE",
    "SEED_WORDS",
    "SHARE_AEAD_PURPOSE",
    "SHARE_SIZE",
    "PendingShares",
    "SealedSeedShares",
    "SeedShareRequest",
    "draw_seed_share_request",
    "seal_seed_shares",
    "seed_to_field",
    "share_bytes",
    "split_seed",
    "start_seed_shares",
]

SEED_SIZE = 32
SEED_WORDS = 5  #: a 32-byte seed as five field elements of at most 7 bytes (< 2^56 < p)
SHARE_SIZE = 8 * SEED_WORDS
SHARE_AEAD_PURPOSE = b"ssddl/share-aead/v1"
KEY_SIZE = 32
SEALED_SIZE = NONCE_SIZE + SHARE_SIZE + TAG_SIZE
ALGORITHMS = tuple(AeadAlgorithm)
#: the most holders a request names (a group is far smaller)
MAX_HOLDERS = 1 << 15

_HEAD = struct.Struct("<QQH")  #: round, owner, holders
_TAIL = struct.Struct("<HB")  #: threshold, AEAD


def seed_to_field(seed: bytes) -> np.ndarray:
    """32 bytes as five GF(p) elements (7, 7, 7, 7 and 4 bytes, little-endian)."""
    chunks = [seed[k : k + 7] for k in range(0, SEED_SIZE, 7)]
    return np.array([int.from_bytes(c, "little") for c in chunks], dtype=np.uint64)


def share_bytes(share: np.ndarray) -> bytes:
    return share.astype("<u8").tobytes()


def split_seed(
    seed: bytes, *, threshold: int, points: Sequence[int], source: RandomSource
) -> list[np.ndarray]:
    """Shamir shares of the 32-byte seed (five field elements), one per point.

    The same shares as :func:`~ssddl.hazmat.sharing.shamir_split` from the same draws (the
    t − 1 random coefficient vectors, in the same order), evaluated on all points at once
    (:func:`~ssddl.hazmat.sharing.field_polynomial_at`): ``shamir_split`` makes O(n·t) numpy
    calls on five-word vectors, about 70 ms a member in groups of 100.
    """
    _check_threshold(threshold, len(points))
    coefficients = random_below_rows(source, threshold - 1, SEED_WORDS, SHAMIR_PRIME)
    return list(_shares_at(seed, coefficients, points))


def _check_threshold(threshold: int, holders: int) -> None:
    if not 1 <= threshold <= holders:
        raise ConfigurationError(
            f"threshold must satisfy 1 <= threshold <= group size ({holders}); got {threshold}"
        )


def _shares_at(seed: bytes, coefficients: np.ndarray, points: Sequence[int]) -> np.ndarray:
    matrix = np.empty((coefficients.shape[0] + 1, SEED_WORDS), dtype=np.uint64)  # c_0: the seed
    matrix[0] = seed_to_field(seed)
    matrix[1:] = coefficients
    return field_polynomial_at(matrix, points)


@dataclass(frozen=True, repr=False)
class SeedShareRequest:
    """What splitting and sealing one member's seed of one round needs (a secret).

    ``holders``: the share points — the owner and its receivers, in the group's order;
    ``coefficients``: the polynomial's t − 1 random rows (c_1 … c_{t−1}); ``share_keys``
    and ``nonces``: one per receiver (the holders without the owner, in order).
    """

    session_id: bytes
    round_number: int
    owner: int
    holders: tuple[int, ...]
    threshold: int
    seed: bytes
    coefficients: np.ndarray
    share_keys: tuple[bytes, ...]
    nonces: tuple[bytes, ...]
    algorithm: AeadAlgorithm

    def __post_init__(self) -> None:
        holders = self.holders
        if len(set(holders)) != len(holders) or holders.count(self.owner) != 1:
            raise MalformedMessage("a seed share request names its owner once among holders")
        if not 0 < len(holders) <= MAX_HOLDERS:
            raise MalformedMessage(f"a seed share request names 1 to {MAX_HOLDERS} holders")
        if not 1 <= self.threshold <= len(holders):
            raise MalformedMessage(
                f"a seed share request's threshold {self.threshold} is not in [1, {len(holders)}]"
            )
        if len(self.seed) != SEED_SIZE:
            raise MalformedMessage(f"a self-mask seed is {SEED_SIZE} bytes")
        shape = (self.threshold - 1, SEED_WORDS)
        coefficients = self.coefficients
        if coefficients.shape != shape or coefficients.dtype != np.uint64:
            raise MalformedMessage(f"a seed share request's coefficients are {shape} uint64")
        if (coefficients >= np.uint64(SHAMIR_PRIME)).any():
            raise MalformedMessage("a seed share request's coefficients are not in the field")
        receivers = len(holders) - 1
        if len(self.share_keys) != receivers or len(self.nonces) != receivers:
            raise MalformedMessage("a seed share request has one share key and nonce a receiver")
        if any(len(k) != KEY_SIZE for k in self.share_keys) or any(
            len(n) != NONCE_SIZE for n in self.nonces
        ):
            raise MalformedMessage(f"share keys are {KEY_SIZE} bytes and nonces {NONCE_SIZE} bytes")

    def __repr__(self) -> str:
        return (
            f"SeedShareRequest(round={self.round_number}, owner={self.owner}, "
            f"holders={len(self.holders)}, threshold={self.threshold}, <secrets hidden>)"
        )

    @property
    def receivers(self) -> tuple[int, ...]:
        return tuple(p for p in self.holders if p != self.owner)

    def to_bytes(self) -> bytes:
        session = self.session_id
        return b"".join(
            (
                struct.pack("<H", len(session)),
                session,
                _HEAD.pack(self.round_number, self.owner, len(self.holders)),
                np.array(self.holders, dtype="<u8").tobytes(),
                _TAIL.pack(self.threshold, ALGORITHMS.index(self.algorithm)),
                self.seed,
                self.coefficients.astype("<u8").tobytes(),
                b"".join(k + n for k, n in zip(self.share_keys, self.nonces, strict=True)),
            )
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> SeedShareRequest:
        """Parse :meth:`to_bytes` (MalformedMessage for anything else)."""
        view = memoryview(data)
        try:
            (size,) = struct.unpack_from("<H", view, 0)
            at = 2 + size
            session = bytes(view[2:at])
            if len(session) != size:
                raise MalformedMessage("a seed share request is cut in its session id")
            round_number, owner, count = _HEAD.unpack_from(view, at)
            at += _HEAD.size
            holders = np.frombuffer(view, dtype="<u8", count=count, offset=at).tolist()
            at += 8 * count
            threshold, algorithm = _TAIL.unpack_from(view, at)
            at += _TAIL.size
        except (struct.error, ValueError):
            raise MalformedMessage("a seed share request is cut short") from None
        if algorithm >= len(ALGORITHMS) or threshold < 1:
            raise MalformedMessage("a seed share request names no AEAD or a zero threshold")
        rows, receivers = threshold - 1, max(count - 1, 0)
        end = at + SEED_SIZE + 8 * SEED_WORDS * rows + (KEY_SIZE + NONCE_SIZE) * receivers
        if len(view) != end:
            raise MalformedMessage(f"a seed share request is {len(view)} bytes, not {end}")
        seed = bytes(view[at : at + SEED_SIZE])
        at += SEED_SIZE
        coefficients = np.frombuffer(view, dtype="<u8", count=rows * SEED_WORDS, offset=at)
        at += 8 * SEED_WORDS * rows
        pairs = [
            bytes(view[k : k + KEY_SIZE + NONCE_SIZE])
            for k in range(at, end, KEY_SIZE + NONCE_SIZE)
        ]
        return cls(
            session,
            round_number,
            owner,
            tuple(holders),
            threshold,
            seed,
            coefficients.astype(np.uint64).reshape(rows, SEED_WORDS),
            tuple(p[:KEY_SIZE] for p in pairs),
            tuple(p[KEY_SIZE:] for p in pairs),
            ALGORITHMS[algorithm],
        )


@dataclass(frozen=True, repr=False)
class SealedSeedShares:
    """The owner's own share, each receiver's sealed share and each pair's AEAD key of the
    round, receivers in the request's order (a secret)."""

    own: bytes
    sealed: tuple[bytes, ...]
    aead_keys: tuple[bytes, ...]

    def __repr__(self) -> str:
        return f"SealedSeedShares(receivers={len(self.sealed)}, <secrets hidden>)"

    def to_bytes(self) -> bytes:
        return self.own + b"".join(k + s for k, s in zip(self.aead_keys, self.sealed, strict=True))

    @classmethod
    def from_bytes(cls, data: bytes, receivers: int) -> SealedSeedShares:
        step = KEY_SIZE + SEALED_SIZE
        if len(data) != SHARE_SIZE + step * receivers:
            raise MalformedMessage(
                f"sealed seed shares for {receivers} receivers are "
                f"{SHARE_SIZE + step * receivers} bytes, not {len(data)}"
            )
        starts = range(SHARE_SIZE, len(data), step)
        return cls(
            data[:SHARE_SIZE],
            tuple(data[k + KEY_SIZE : k + step] for k in starts),
            tuple(data[k : k + KEY_SIZE] for k in starts),
        )


def seal_seed_shares(request: SeedShareRequest) -> SealedSeedShares:
    """Split the seed at the holders' points and seal each receiver's share with the pair's
    AEAD key of the round, as :func:`~ssddl.protocol.schemes._common.seal_for` seals it."""
    shares = _shares_at(request.seed, request.coefficients, request.holders)
    session, round_number, owner = request.session_id, request.round_number, request.owner
    own, sealed, keys = b"", [], []
    receivers = iter(zip(request.share_keys, request.nonces, strict=True))
    for holder, share in zip(request.holders, shares, strict=True):
        if holder == owner:
            own = share_bytes(share)
            continue
        share_key, nonce = next(receivers)
        key = derive_key(share_key, SHARE_AEAD_PURPOSE, session)
        keys.append(key)
        sealed.append(
            seal(
                key,
                share_bytes(share),
                session_id=session,
                round_number=round_number,
                sender=owner,
                receiver=holder,
                nonce=nonce,
                algorithm=request.algorithm,
            )
        )
    return SealedSeedShares(own, tuple(sealed), tuple(keys))


def draw_seed_share_request(
    source: RandomSource,
    *,
    session_id: bytes,
    round_number: int,
    owner: int,
    holders: tuple[int, ...],
    threshold: int,
    seed: bytes,
    share_keys: Sequence[bytes],
    algorithm: AeadAlgorithm,
) -> SeedShareRequest:
    """The request for ``seed``, its randomness drawn from ``source`` in the order splitting
    and sealing one by one draws it: the t − 1 coefficient rows, then one nonce a receiver."""
    _check_threshold(threshold, len(holders))
    coefficients = random_below_rows(source, threshold - 1, SEED_WORDS, SHAMIR_PRIME)
    count = len(holders) - 1
    nonces = source.random_bytes(NONCE_SIZE * count)
    return SeedShareRequest(
        session_id,
        round_number,
        owner,
        holders,
        threshold,
        seed,
        coefficients,
        tuple(share_keys),
        tuple(nonces[k : k + NONCE_SIZE] for k in range(0, NONCE_SIZE * count, NONCE_SIZE)),
        AeadAlgorithm(algorithm),
    )


class _Job(Protocol):
    def result(self) -> SealedSeedShares: ...

    def exception(self) -> BaseException | None: ...


class PendingShares:
    """A member's seed shares being split and sealed in the background (a secret), with the
    random bytes drawn for them (``drawn``: given back to the member's source when they go
    unused, so later draws come out as without the early draw)."""

    __slots__ = ("_job", "_request", "drawn")

    def __init__(self, request: SeedShareRequest, job: _Job | None, drawn: bytes) -> None:
        self._request: SeedShareRequest | None = request
        self._job = job
        self.drawn = drawn

    def __repr__(self) -> str:
        return f"PendingShares(receivers={len(self.receivers)})"

    @property
    def receivers(self) -> tuple[int, ...]:
        return self._request.receivers if self._request is not None else ()

    @property
    def share_keys(self) -> tuple[bytes, ...]:
        """The share keys the request sealed with (to check them against the round's)."""
        return self._request.share_keys if self._request is not None else ()

    def result(self) -> SealedSeedShares:
        """The sealed shares (waits for the worker, or does the work now without one)."""
        request, self._request = self._request, None
        job, self._job = self._job, None
        if request is None:
            raise MalformedMessage("these seed shares were already used or discarded")
        return job.result() if job is not None else seal_seed_shares(request)

    def discard(self) -> None:
        """Wait for the worker's reply, if any, and drop it unused."""
        job, self._job, self._request = self._job, None, None
        if job is not None:
            job.exception()


#: the most jobs the worker process may have waiting for the seed shares to go to it too
WORKER_BACKLOG = 4


def start_seed_shares(request: SeedShareRequest, drawn: bytes) -> PendingShares:
    """Have the mask worker process split and seal when masks are built in a process that
    runs and keeps up (at most :data:`WORKER_BACKLOG` jobs waiting), else defer the work to
    :meth:`PendingShares.result`. A worker that falls behind is building masks of many
    streams: the complete graph at n = 100 (100 streams, 99 seals a member) ran its round in
    0.86 s with the shares in the worker and 0.62 s without, sparse pairing at n = 100
    (35 streams, 34 seals) in 0.30 s with them and 0.36 s without."""
    from ssddl.protocol.masks import worker_process

    process = worker_process()
    job = None
    if process is not None and process.backlog() <= WORKER_BACKLOG:
        job = process.submit_shares(request)
    return PendingShares(request, job, drawn)
