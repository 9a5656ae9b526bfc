"""A member's self-mask seed, split into Shamir shares and sealed for its pairs (double masking).

None of this depends on the member's update: only on the seed, the round's pair share keys
and fresh randomness (the polynomial's coefficients, the AEAD nonces). So, like the mask
(:mod:`ssddl.protocol.masks`), it is done before the update exists, off the critical path: a
member draws the randomness when it draws the seed, in the order the split and the sealing
would draw it after LocalTrain, and the member's mask builder (a worker process of
:mod:`ssddl.runtime.masking`) splits and seals while the member trains
(:func:`start_seed_shares`). The share step is then encode + one in-place add, and the sealed
shares are picked up with the mask. Where the builder does not seal (the default, in the
caller), the same function runs when the shares are first asked for
(:meth:`PendingShares.result`): the same bytes either way.

:class:`SeedShareRequest` holds everything the work needs; :func:`seal_seed_shares` does it
and returns, with the member's own share and the sealed ones, each pair's AEAD key of the
round (derived from the pair's share key, as :func:`~ssddl.protocol.schemes._common.seal_for`
derives it), which opens that pair's shares later in the round too. The request and the
result are secrets (the seed, the share keys, the AEAD keys): never logged, shown or saved;
they cross only the pipe to a mask worker process, as the round keys do.

Both travel to and from the worker process as records of the wire format
(:mod:`ssddl.protocol.state`, kinds 143 and 144): versioned, every length checked.

Every share is sealed with the digest of the round's model in its associated data
(:mod:`ssddl.protocol.binding`): a member shown another model cannot open it. A request
drawn before the round started (the mask built ahead,
:meth:`~ssddl.protocol.ports.MaskBuilder.start_ahead`) has no digest yet: it waits, unsealed,
until the round's start binds it (:meth:`PendingShares.bind`) and is then sealed by the
member at the share step; sealing refuses a request without a digest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np

from ssddl.exceptions import ConfigurationError, MalformedMessage, ShareError
from ssddl.hazmat.aead import NONCE_SIZE, TAG_SIZE, AeadAlgorithm, seal
from ssddl.hazmat.keys import derive_key
from ssddl.hazmat.rand import RandomSource, random_below_rows
from ssddl.hazmat.sharing import SHAMIR_PRIME, field_polynomial_at
from ssddl.protocol.binding import DIGEST_SIZE
from ssddl.protocol.state import Record, record_kind
from ssddl.protocol.wire import ARRAY, BLOBS, BYTES, IDS, STR, U64

__all__ = [
    "SEED_SIZE",
    "SEED_WORDS",
    "SHARE_AEAD_PURPOSE",
    "SHARE_SIZE",
    "PendingShares",
    "SealJob",
    "SealedSeedShares",
    "SeedShareRequest",
    "ShareSealer",
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
#: the most holders a request names (a group is far smaller)
MAX_HOLDERS = 1 << 15


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
    """The shares at ``points`` of the polynomial with c_0 the seed and c_1 … the rows of
    ``coefficients`` (t − 1 rows of five words, or those rows flattened)."""
    rows = coefficients.reshape(-1, SEED_WORDS)
    matrix = np.empty((rows.shape[0] + 1, SEED_WORDS), dtype=np.uint64)  # c_0: the seed
    matrix[0] = seed_to_field(seed)
    matrix[1:] = rows
    return field_polynomial_at(matrix, points)


@record_kind
@dataclass(frozen=True, repr=False)
class SeedShareRequest(Record):
    """What splitting and sealing one member's seed of one round needs (a secret).

    ``holders``: the share points — the owner and its receivers, in the group's order;
    ``coefficients``: the polynomial's t − 1 random rows (c_1 … c_{t−1}), flattened;
    ``share_keys`` and ``nonces``: one per receiver (the holders without the owner, in
    order); ``model_digest``: the round's model digest, bound into every share's associated
    data (empty until the round starts; :meth:`PendingShares.bind`). It travels to the
    worker process as a record of the wire format.
    """

    KIND: ClassVar[int] = 143
    SCHEMA: ClassVar = (
        ("session_id", BYTES),
        ("round_number", U64),
        ("owner", U64),
        ("holders", IDS),
        ("threshold", U64),
        ("seed", BYTES),
        ("coefficients", ARRAY),
        ("share_keys", BLOBS),
        ("nonces", BLOBS),
        ("algorithm", STR),
        ("model_digest", BYTES),
    )
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
    model_digest: bytes = b""

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "algorithm", AeadAlgorithm(self.algorithm))
        except ValueError:
            raise MalformedMessage("a seed share request names no known AEAD") from None
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
        words = (self.threshold - 1) * SEED_WORDS
        coefficients = self.coefficients
        if coefficients.shape != (words,) or coefficients.dtype != np.uint64:
            raise MalformedMessage(f"a seed share request's coefficients are {words} uint64")
        if (coefficients >= np.uint64(SHAMIR_PRIME)).any():
            raise MalformedMessage("a seed share request's coefficients are not in the field")
        receivers = len(holders) - 1
        if len(self.share_keys) != receivers or len(self.nonces) != receivers:
            raise MalformedMessage("a seed share request has one share key and nonce a receiver")
        if any(len(k) != KEY_SIZE for k in self.share_keys) or any(
            len(n) != NONCE_SIZE for n in self.nonces
        ):
            raise MalformedMessage(f"share keys are {KEY_SIZE} bytes and nonces {NONCE_SIZE} bytes")
        if len(self.model_digest) not in (0, DIGEST_SIZE):
            raise MalformedMessage(f"a seed share request's model digest is {DIGEST_SIZE} bytes")

    def __repr__(self) -> str:
        return (
            f"SeedShareRequest(round={self.round_number}, owner={self.owner}, "
            f"holders={len(self.holders)}, threshold={self.threshold}, <secrets hidden>)"
        )

    @property
    def receivers(self) -> tuple[int, ...]:
        return tuple(p for p in self.holders if p != self.owner)


@record_kind
@dataclass(frozen=True, repr=False)
class SealedSeedShares(Record):
    """The owner's own share, each receiver's sealed share and each pair's AEAD key of the
    round, receivers in the request's order (a secret; a record of the wire format)."""

    KIND: ClassVar[int] = 144
    SCHEMA: ClassVar = (("own", BYTES), ("sealed", BLOBS), ("aead_keys", BLOBS))
    own: bytes
    sealed: tuple[bytes, ...]
    aead_keys: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if len(self.own) != SHARE_SIZE or len(self.sealed) != len(self.aead_keys):
            raise MalformedMessage("sealed seed shares need one own share and a key a share")
        if any(len(s) != SEALED_SIZE for s in self.sealed) or any(
            len(k) != KEY_SIZE for k in self.aead_keys
        ):
            raise MalformedMessage(
                f"sealed seed shares are {SEALED_SIZE} bytes and their keys {KEY_SIZE} bytes"
            )

    def __repr__(self) -> str:
        return f"SealedSeedShares(receivers={len(self.sealed)}, <secrets hidden>)"

    @classmethod
    def parse(cls, data: bytes, receivers: int) -> SealedSeedShares:
        """:meth:`from_bytes`, for exactly ``receivers`` receivers (MalformedMessage else)."""
        try:
            result = cls.from_bytes(data)
        except MalformedMessage as exc:
            raise MalformedMessage(f"sealed seed shares: {exc}") from None
        if len(result.sealed) != receivers:
            raise MalformedMessage(
                f"sealed seed shares for {len(result.sealed)} receivers, not {receivers}"
            )
        return result


def seal_seed_shares(request: SeedShareRequest) -> SealedSeedShares:
    """Split the seed at the holders' points and seal each receiver's share with the pair's
    AEAD key of the round, as :func:`~ssddl.protocol.schemes._common.seal_for` seals it,
    the round's model digest in the associated data (ShareError for a request without one)."""
    if not request.model_digest:
        raise ShareError("seed shares are sealed only once bound to the round's model digest")
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
                context=request.model_digest,
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
    model_digest: bytes,
) -> SeedShareRequest:
    """The request for ``seed``, its randomness drawn from ``source`` in the order splitting
    and sealing one by one draws it: the t − 1 coefficient rows, then one nonce a receiver.
    ``model_digest``: the round's (empty before the round starts: bind it later)."""
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
        coefficients.reshape(-1),
        tuple(share_keys),
        tuple(nonces[k : k + NONCE_SIZE] for k in range(0, NONCE_SIZE * count, NONCE_SIZE)),
        AeadAlgorithm(algorithm),
        model_digest,
    )


class SealJob(Protocol):
    """A member's seed shares being split and sealed: :meth:`result` waits for them."""

    def result(self) -> SealedSeedShares: ...

    def exception(self) -> BaseException | None: ...


class ShareSealer(Protocol):
    """Where seed shares may be sealed: the part of a
    :class:`~ssddl.protocol.ports.MaskBuilder` this module asks for."""

    def seal_shares(self, request: SeedShareRequest) -> SealJob | None: ...


class PendingShares:
    """A member's seed shares being split and sealed in the background (a secret), with the
    random bytes drawn for them (``drawn``: given back to the member's source when they go
    unused, so later draws come out as without the early draw)."""

    __slots__ = ("_job", "_request", "drawn")

    def __init__(self, request: SeedShareRequest, job: SealJob | None, drawn: bytes) -> None:
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

    @property
    def model_digest(self) -> bytes:
        """The model digest the shares are sealed under (empty: not bound yet)."""
        return self._request.model_digest if self._request is not None else b""

    def bind(self, digest: bytes) -> None:
        """Bind shares drawn before the round started to the round's model digest; they are
        sealed when first asked for, by the caller (ShareError if they are already bound to
        another digest, or were used). Not in the worker: at the round's start it is still
        building the other members' masks, and a job queued behind them made rounds of
        n = 40 (M = 85,002) 1.7x slower; sealing here costs 0.13 ms a member at n = 10,
        0.41 ms at n = 40."""
        request = self._request
        if request is None:
            raise ShareError("these seed shares were already used or discarded")
        if request.model_digest:
            if request.model_digest != digest:
                raise ShareError("these seed shares are bound to another model digest")
            return
        self._request = dataclasses.replace(request, model_digest=digest)

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


def start_seed_shares(
    request: SeedShareRequest, drawn: bytes, builder: ShareSealer
) -> PendingShares:
    """Have ``builder`` split and seal the shares when it offers to
    (:meth:`~ssddl.protocol.ports.MaskBuilder.seal_shares`: a worker process that keeps up),
    else defer the work to :meth:`PendingShares.result`. A request without a model digest
    (drawn ahead of its round) waits for :meth:`PendingShares.bind` and is sealed by the
    member."""
    job = builder.seal_shares(request) if request.model_digest else None
    return PendingShares(request, job, drawn)
