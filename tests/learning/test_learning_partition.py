"""Partitions: disjoint, covering, sorted, reproducible; min_size honoured or a clear error."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssddl.exceptions import ConfigurationError
from ssddl.learning.partition import (
    PARTITIONS,
    partition,
    partition_dirichlet,
    partition_iid,
    partition_shards,
)

FAST = settings(max_examples=60, deadline=None)


def check_exact_cover(parts: list[np.ndarray], n: int, num_parts: int) -> None:
    assert len(parts) == num_parts
    for p in parts:
        assert p.dtype == np.int64 and p.ndim == 1
        assert np.all(np.diff(p) > 0)  # sorted, no repeats inside a part
    everything = np.concatenate(parts)
    assert everything.size == n  # disjoint ...
    np.testing.assert_array_equal(np.sort(everything), np.arange(n))  # ... and covering


@st.composite
def labels_and_parts(draw: st.DrawFn, min_per_part: int = 1) -> tuple[np.ndarray, int, int]:
    num_parts = draw(st.integers(1, 12))
    n = draw(st.integers(num_parts * min_per_part, 300))
    num_classes = draw(st.integers(1, 10))
    seed = draw(st.integers(0, 2**32 - 1))
    labels = np.random.default_rng(seed).integers(0, num_classes, size=n)
    return labels, num_parts, seed


@FAST
@given(labels_and_parts())
def test_iid_exact_cover_and_balanced(case: tuple[np.ndarray, int, int]) -> None:
    labels, num_parts, seed = case
    parts = partition_iid(labels, num_parts, rng=np.random.default_rng(seed))
    check_exact_cover(parts, labels.size, num_parts)
    sizes = [p.size for p in parts]
    assert max(sizes) - min(sizes) <= 1


@FAST
@given(
    labels_and_parts(),
    st.sampled_from([1e-4, 0.01, 0.1, 0.5, 1.0, 100.0]),
    st.integers(1, 3),
)
def test_dirichlet_exact_cover_or_clear_error(
    case: tuple[np.ndarray, int, int], alpha: float, min_size: int
) -> None:
    labels, num_parts, seed = case
    try:
        parts = partition_dirichlet(
            labels, num_parts, alpha=alpha, rng=np.random.default_rng(seed), min_size=min_size
        )
    except ConfigurationError as exc:
        message = str(exc)
        assert "min_size" in message or "cannot give" in message
        return
    check_exact_cover(parts, labels.size, num_parts)
    assert min(p.size for p in parts) >= min_size


@FAST
@given(labels_and_parts(min_per_part=3), st.integers(1, 3))
def test_shards_exact_cover(case: tuple[np.ndarray, int, int], shards_per_part: int) -> None:
    labels, num_parts, seed = case
    parts = partition_shards(
        labels, num_parts, shards_per_part=shards_per_part, rng=np.random.default_rng(seed)
    )
    check_exact_cover(parts, labels.size, num_parts)


@FAST
@given(labels_and_parts(), st.sampled_from(PARTITIONS))
def test_same_generator_state_same_partition(
    case: tuple[np.ndarray, int, int], scheme: str
) -> None:
    labels, num_parts, seed = case
    try:
        a = partition(labels, num_parts, scheme, rng=np.random.default_rng(seed), alpha=1.0)
    except ConfigurationError:
        return
    b = partition(labels, num_parts, scheme, rng=np.random.default_rng(seed), alpha=1.0)
    assert len(a) == len(b)
    for pa, pb in zip(a, b, strict=True):
        np.testing.assert_array_equal(pa, pb)


def test_different_seeds_give_different_partitions() -> None:
    labels = np.arange(500) % 10
    for scheme in PARTITIONS:
        a = partition(labels, 5, scheme, rng=np.random.default_rng(0))
        b = partition(labels, 5, scheme, rng=np.random.default_rng(1))
        assert any(not np.array_equal(pa, pb) for pa, pb in zip(a, b, strict=True)), scheme


def test_partition_does_not_touch_global_numpy_rng() -> None:
    np.random.seed(9)
    before = np.random.get_state()[1].copy()
    for scheme in PARTITIONS:
        partition(np.arange(100) % 10, 4, scheme, rng=np.random.default_rng(3))
    assert np.array_equal(np.random.get_state()[1], before)


def test_dirichlet_small_alpha_is_label_skewed_and_large_alpha_is_balanced() -> None:
    labels = np.repeat(np.arange(10), 100)
    rng = np.random.default_rng(0)
    skewed = partition_dirichlet(labels, 10, alpha=0.05, rng=rng, min_size=1)
    flat = partition_dirichlet(labels, 10, alpha=1000.0, rng=rng, min_size=1)

    def dominant_share(parts: list[np.ndarray]) -> float:
        return float(np.mean([np.bincount(labels[p]).max() / p.size for p in parts]))

    assert dominant_share(skewed) > 0.6
    assert dominant_share(flat) < 0.2


def test_dirichlet_tiny_alpha_meets_min_size_or_fails_clearly() -> None:
    labels = np.repeat(np.arange(10), 50)
    # 3 parts, 10 classes: with α tiny every class goes to one part; some draw covers all parts.
    parts = partition_dirichlet(labels, 3, alpha=1e-6, rng=np.random.default_rng(0))
    check_exact_cover(parts, labels.size, 3)
    assert min(p.size for p in parts) >= 1
    # 20 parts cannot each get a class of their own when there are only 10 classes
    with pytest.raises(ConfigurationError, match=r"min_size=1 samples; use a larger alpha"):
        partition_dirichlet(labels, 20, alpha=1e-6, rng=np.random.default_rng(0))


def test_shards_give_few_labels_per_part() -> None:
    labels = np.repeat(np.arange(10), 60)
    parts = partition_shards(labels, 10, shards_per_part=2, rng=np.random.default_rng(0))
    assert all(np.unique(labels[p]).size <= 2 for p in parts)
    assert all(p.size == 60 for p in parts)


def test_partition_dispatch_and_min_size() -> None:
    labels = np.arange(20) % 2
    rng = np.random.default_rng(0)
    assert len(partition(labels, 4, rng=rng)) == 4  # iid by default
    with pytest.raises(ConfigurationError, match="min_size=6"):
        partition(labels, 4, "iid", rng=rng, min_size=6)
    with pytest.raises(ConfigurationError, match="min_size=6"):
        partition(labels, 4, "shards", rng=rng, min_size=6)
    with pytest.raises(ConfigurationError, match="cannot give 4 parts of at least 6"):
        partition(labels, 4, "dirichlet", rng=rng, min_size=6)
    with pytest.raises(ConfigurationError, match="unknown partition scheme 'pathological'"):
        partition(labels, 4, "pathological", rng=rng)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda rng: partition_iid(np.arange(3), 4, rng=rng), "cannot give 4 parts"),
        (lambda rng: partition_iid(np.arange(3), 0, rng=rng), "num_parts"),
        (lambda rng: partition_iid(np.arange(3), 2.0, rng=rng), "num_parts"),
        (lambda rng: partition_iid(np.zeros((3, 1), int), 1, rng=rng), "1-D integer"),
        (lambda rng: partition_iid(np.array([0.5, 1.0]), 1, rng=rng), "1-D integer"),
        (lambda rng: partition_iid(np.arange(3), 1, rng=0), "numpy.random.Generator"),
        (lambda rng: partition_dirichlet(np.arange(9), 3, alpha=0, rng=rng), "alpha"),
        (lambda rng: partition_dirichlet(np.arange(9), 3, alpha=float("nan"), rng=rng), "alpha"),
        (
            lambda rng: partition_dirichlet(np.arange(9), 3, alpha=1, rng=rng, min_size=0),
            "min_size",
        ),
        (lambda rng: partition_shards(np.arange(5), 3, shards_per_part=2, rng=rng), "shards"),
        (
            lambda rng: partition_shards(np.arange(5), 1, shards_per_part=0, rng=rng),
            "shards_per_part",
        ),
    ],
)
def test_invalid_arguments(call: object, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        call(np.random.default_rng(0))  # type: ignore[operator]
