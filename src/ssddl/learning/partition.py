"""Split a dataset's indices among participants: IID, label-skewed Dirichlet(α), or shards.

Every scheme returns ``num_parts`` sorted int64 index arrays that are pairwise disjoint and
together cover ``range(len(labels))`` exactly once. All randomness comes from the
``np.random.Generator`` passed in, so the same generator state gives the same partition.
"""

from __future__ import annotations

import math

import numpy as np

from ssddl.exceptions import ConfigurationError
from ssddl.validators import check_int

__all__ = [
    "PARTITIONS",
    "partition",
    "partition_dirichlet",
    "partition_iid",
    "partition_shards",
]

PARTITIONS = ("iid", "dirichlet", "shards")

# How many times the Dirichlet scheme redraws before giving up on ``min_size``.
_DIRICHLET_MAX_TRIES = 200


def _check_labels(labels: object) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise ConfigurationError(
            f"labels must be a 1-D integer array, got dtype {arr.dtype}, shape {arr.shape}"
        )
    return arr.astype(np.int64, copy=False)


def _check_positive_int(value: object, field: str) -> int:
    if isinstance(value, np.integer):
        value = int(value)
    return check_int(value, field, low=1)


def _check_rng(rng: object) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise ConfigurationError(
            f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), "
            f"got {type(rng).__name__}"
        )
    return rng


def _check_enough(n: int, num_parts: int, min_size: int, scheme: str) -> None:
    if n < num_parts * min_size:
        raise ConfigurationError(
            f"{scheme} partition: {n} samples cannot give {num_parts} parts of at least "
            f"{min_size} sample(s) each; use fewer parts or a smaller min_size"
        )


def _sorted_parts(parts: list[np.ndarray]) -> list[np.ndarray]:
    return [np.sort(p).astype(np.int64, copy=False) for p in parts]


def partition_iid(
    labels: np.ndarray, num_parts: int, *, rng: np.random.Generator
) -> list[np.ndarray]:
    """A uniformly random split into parts whose sizes differ by at most one.

    Needs at least one sample per part.
    """
    y = _check_labels(labels)
    num_parts = _check_positive_int(num_parts, "num_parts")
    rng = _check_rng(rng)
    _check_enough(y.size, num_parts, 1, "iid")
    return _sorted_parts(np.array_split(rng.permutation(y.size), num_parts))


def partition_dirichlet(
    labels: np.ndarray,
    num_parts: int,
    *,
    alpha: float,
    rng: np.random.Generator,
    min_size: int = 1,
) -> list[np.ndarray]:
    """Label skew: for every class, its (shuffled) samples are divided among the parts in
    proportions drawn from Dirichlet(α, …, α). Small α gives each part few classes; large α
    approaches IID.

    The draw is repeated until every part has at least ``min_size`` samples; after
    200 unsuccessful draws a :class:`~ssddl.exceptions.ConfigurationError` says to raise
    ``alpha`` or lower ``min_size`` / ``num_parts``.
    """
    y = _check_labels(labels)
    num_parts = _check_positive_int(num_parts, "num_parts")
    min_size = _check_positive_int(min_size, "min_size")
    rng = _check_rng(rng)
    if (
        isinstance(alpha, bool)
        or not isinstance(alpha, float | int)
        or not math.isfinite(alpha)
        or alpha <= 0
    ):
        raise ConfigurationError(f"alpha must be a finite number > 0, got {alpha!r}")
    _check_enough(y.size, num_parts, min_size, "dirichlet")
    classes = np.unique(y)
    members = [np.flatnonzero(y == c) for c in classes]
    concentration = np.full(num_parts, float(alpha))
    for _ in range(_DIRICHLET_MAX_TRIES):
        pieces: list[list[np.ndarray]] = [[] for _ in range(num_parts)]
        for idx in members:
            shuffled = rng.permutation(idx)
            proportions = rng.dirichlet(concentration)
            if not np.isfinite(proportions).all() or proportions.sum() <= 0:
                # Degenerate draw at extreme α: the whole class goes to one random part.
                proportions = np.zeros(num_parts)
                proportions[rng.integers(num_parts)] = 1.0
            cuts = (np.cumsum(proportions)[:-1] * shuffled.size).astype(np.int64)
            for part, piece in zip(pieces, np.split(shuffled, cuts), strict=True):
                part.append(piece)
        parts = [np.concatenate(p) if p else np.empty(0, dtype=np.int64) for p in pieces]
        if min(p.size for p in parts) >= min_size:
            return _sorted_parts(parts)
    raise ConfigurationError(
        f"dirichlet partition: after {_DIRICHLET_MAX_TRIES} draws with alpha={alpha} some of the "
        f"{num_parts} parts still had fewer than min_size={min_size} samples; use a larger "
        "alpha, fewer parts or a smaller min_size"
    )


def partition_shards(
    labels: np.ndarray, num_parts: int, *, shards_per_part: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Pathological non-IID split (McMahan et al. 2017): sort the samples by label (ties in a
    random order), cut them into ``num_parts * shards_per_part`` contiguous shards of sizes
    differing by at most one, and give each part ``shards_per_part`` random shards.

    Every index is used; needs at least one sample per shard.
    """
    y = _check_labels(labels)
    num_parts = _check_positive_int(num_parts, "num_parts")
    shards_per_part = _check_positive_int(shards_per_part, "shards_per_part")
    rng = _check_rng(rng)
    num_shards = num_parts * shards_per_part
    if y.size < num_shards:
        raise ConfigurationError(
            f"shards partition: {y.size} samples cannot fill {num_parts} parts x "
            f"{shards_per_part} shards; use fewer parts or fewer shards_per_part"
        )
    shuffled = rng.permutation(y.size)
    order = shuffled[np.argsort(y[shuffled], kind="stable")]
    shards = np.array_split(order, num_shards)
    assignment = rng.permutation(num_shards).reshape(num_parts, shards_per_part)
    return _sorted_parts([np.concatenate([shards[s] for s in row]) for row in assignment])


def partition(
    labels: np.ndarray,
    num_parts: int,
    scheme: str = "iid",
    *,
    rng: np.random.Generator,
    alpha: float = 0.5,
    shards_per_part: int = 2,
    min_size: int = 1,
) -> list[np.ndarray]:
    """Partition by ``scheme`` (one of :data:`PARTITIONS`); every part gets at least
    ``min_size`` samples or a :class:`~ssddl.exceptions.ConfigurationError` is raised.

    ``alpha`` is used by ``dirichlet`` only, ``shards_per_part`` by ``shards`` only.
    """
    min_size = _check_positive_int(min_size, "min_size")
    if scheme == "iid":
        parts = partition_iid(labels, num_parts, rng=rng)
    elif scheme == "dirichlet":
        return partition_dirichlet(labels, num_parts, alpha=alpha, rng=rng, min_size=min_size)
    elif scheme == "shards":
        parts = partition_shards(labels, num_parts, shards_per_part=shards_per_part, rng=rng)
    else:
        raise ConfigurationError(
            f"unknown partition scheme {scheme!r}; choose one of {', '.join(PARTITIONS)}"
        )
    smallest = min(p.size for p in parts)
    if smallest < min_size:
        raise ConfigurationError(
            f"{scheme} partition: the smallest of the {len(parts)} parts has {smallest} "
            f"sample(s), fewer than min_size={min_size}; use fewer parts or a smaller min_size"
        )
    return parts
