"""DSSGD: exact top-θu selection, sparse wire format (sizes, strict decoder, fuzzing),
clipping and Laplace noise, server summation, partial download, and training on digits."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ssddl.baselines.dssgd import (
    HEADER_SIZE,
    DSSGDConfig,
    SparseKind,
    SparseVector,
    apply_sparse,
    decode_sparse,
    encode_sparse,
    merge_download,
    select_download,
    select_upload,
    selection_count,
    sparse_message_bytes,
    top_indices,
    train_dssgd,
)
from ssddl.exceptions import ConfigurationError, MalformedMessage, NonFiniteError
from ssddl.learning import ArrayDataset, DatasetSplit, model_to_vector
from tests.baselines.conftest import TRAIN, small_mlp

finite = st.floats(-1e6, 1e6, allow_nan=False, width=32)
deltas = hnp.arrays(np.float64, st.integers(0, 200), elements=finite)
fractions = st.floats(0.001, 1.0)


# --- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"theta_u": 0.0}, "theta_u"),
        ({"theta_u": 1.5}, "theta_u"),
        ({"theta_u": math.nan}, "theta_u"),
        ({"theta_u": True}, "theta_u"),
        ({"theta_d": -0.1}, "theta_d"),
        ({"theta_d": "1"}, "theta_d"),
        ({"gamma": 0.0}, "gamma"),
        ({"gamma": math.inf}, "gamma"),
        ({"laplace_scale": -1.0}, "laplace_scale"),
    ],
)
def test_bad_configuration_names_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigurationError, match=field):
        DSSGDConfig(**kwargs)  # type: ignore[arg-type]


def test_paper_settings_are_accepted() -> None:
    for theta_u in (0.01, 0.1):
        config = DSSGDConfig(theta_u=theta_u, theta_d=1.0, gamma=0.001, laplace_scale=0.5)
        assert config.theta_u == theta_u


def test_selection_count() -> None:
    assert selection_count(0.01, 1000) == 10
    assert selection_count(0.1, 1000) == 100
    assert selection_count(0.07, 100) == 7  # 0.07 * 100 = 7.000000000000001 in floats
    assert selection_count(0.01, 10) == 1  # at least one entry
    assert selection_count(1.0, 5) == 5
    assert selection_count(0.5, 0) == 0


# --- selection -----------------------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(delta=deltas, theta=fractions)
def test_upload_is_exactly_the_top_theta_u_entries(delta: np.ndarray, theta: float) -> None:
    up = select_upload(delta, DSSGDConfig(theta_u=theta))
    k = selection_count(theta, delta.size)
    assert len(up) == k and up.model_size == delta.size
    assert np.all(np.diff(up.indices.astype(np.int64)) > 0)
    np.testing.assert_array_equal(up.values, delta[up.indices].astype(np.float32))
    rest = np.setdiff1d(np.arange(delta.size), up.indices)
    if k and rest.size:
        assert np.min(np.abs(delta[up.indices])) >= np.max(np.abs(delta[rest]))
    assert len(encode_sparse(up, SparseKind.UPLOAD)) == HEADER_SIZE + 8 * k


@pytest.mark.parametrize(("theta_u", "entries"), [(0.01, 10), (0.1, 100)])
def test_upload_bytes_match_theta_u(theta_u: float, entries: int) -> None:
    delta = np.random.default_rng(3).normal(size=1000)
    blob = encode_sparse(select_upload(delta, DSSGDConfig(theta_u=theta_u)), SparseKind.UPLOAD)
    assert len(blob) == theta_u * 1000 * (4 + 4) + HEADER_SIZE == sparse_message_bytes(entries)
    assert HEADER_SIZE == 16


def test_ties_go_to_the_lower_index() -> None:
    np.testing.assert_array_equal(top_indices(np.array([1.0, -2.0, 2.0, 2.0]), 2), [1, 2])


def test_clipping_and_laplace_noise() -> None:
    delta = np.array([0.5, -3.0, 0.01, 2.0])
    clipped = select_upload(delta, DSSGDConfig(theta_u=0.5, gamma=1.0))
    np.testing.assert_array_equal(clipped.indices, [1, 3])
    np.testing.assert_array_equal(clipped.values, np.array([-1.0, 1.0], dtype=np.float32))
    config = DSSGDConfig(theta_u=0.5, gamma=1.0, laplace_scale=0.25)
    noisy = select_upload(delta, config, rng=np.random.default_rng(7))
    expected = np.array([-1.0, 1.0]) + np.random.default_rng(7).laplace(0.0, 0.25, size=2)
    np.testing.assert_array_equal(noisy.values, expected.astype(np.float32))
    with pytest.raises(ConfigurationError, match="rng"):
        select_upload(delta, config)
    with pytest.raises(NonFiniteError):
        select_upload(np.array([1.0, np.nan]), DSSGDConfig())


def test_server_sums_sparse_updates() -> None:
    weights = np.zeros(5, dtype=np.float32)
    a = SparseVector(5, np.array([0, 3], dtype=np.uint32), np.array([1.0, 2.0], dtype=np.float32))
    b = SparseVector(5, np.array([3, 4], dtype=np.uint32), np.array([0.5, -1.0], dtype=np.float32))
    out = apply_sparse(apply_sparse(weights, a), b)
    np.testing.assert_array_equal(out, np.array([1.0, 0, 0, 2.5, -1.0], dtype=np.float32))
    np.testing.assert_array_equal(weights, 0)  # not in place
    with pytest.raises(ConfigurationError, match="model_size"):
        apply_sparse(np.zeros(4, dtype=np.float32), a)


def test_download_sends_the_largest_changes_and_merge_overwrites() -> None:
    last = np.zeros(6, dtype=np.float32)
    global_weights = np.array([0.1, -0.9, 0.0, 0.5, 0.2, -0.3], dtype=np.float32)
    down = select_download(global_weights, last, 0.5)
    np.testing.assert_array_equal(down.indices, [1, 3, 5])
    np.testing.assert_array_equal(down.values, global_weights[[1, 3, 5]])
    local = np.full(6, 7.0, dtype=np.float32)
    np.testing.assert_array_equal(
        merge_download(local, down), np.array([7, -0.9, 7, 0.5, 7, -0.3], dtype=np.float32)
    )
    full = select_download(global_weights, last, 1.0)
    np.testing.assert_array_equal(merge_download(local, full), global_weights)


# --- wire format ---------------------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(delta=deltas, theta=fractions, kind=st.sampled_from(list(SparseKind)))
def test_round_trip(delta: np.ndarray, theta: float, kind: SparseKind) -> None:
    vector = select_upload(delta, DSSGDConfig(theta_u=theta))
    again = decode_sparse(encode_sparse(vector, kind), kind, model_size=delta.size)
    np.testing.assert_array_equal(again.indices, vector.indices)
    np.testing.assert_array_equal(again.values, vector.values)
    assert again.model_size == vector.model_size


def _valid() -> bytes:
    vector = SparseVector(
        10, np.array([1, 4, 9], dtype=np.uint32), np.array([0.5, -1, 2], dtype=np.float32)
    )
    return encode_sparse(vector, SparseKind.UPLOAD)


def _with(blob: bytes, offset: int, value: bytes) -> bytes:
    return blob[:offset] + value + blob[offset + len(value) :]


VALID = _valid()
BAD = {
    "magic": _with(VALID, 0, b"XGSD"),
    "version": _with(VALID, 4, b"\x02"),
    "kind": _with(VALID, 5, b"\x02"),
    "reserved": _with(VALID, 6, b"\x01\x00"),
    "model size": _with(VALID, 8, struct.pack("<I", 11)),
    "count": _with(VALID, 12, struct.pack("<I", 4)),
    "truncated": VALID[:-1],
    "trailing": VALID + b"\x00",
    "header": VALID[:15],
    "order": _with(VALID, 16, struct.pack("<II", 4, 1)),
    "duplicate": _with(VALID, 16, struct.pack("<II", 4, 4)),
    "range": _with(VALID, 24, struct.pack("<I", 10)),
    "nan": _with(VALID, 28, struct.pack("<f", math.nan)),
    "inf": _with(VALID, 32, struct.pack("<f", math.inf)),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_decoder_refuses(case: str) -> None:
    assert decode_sparse(VALID, SparseKind.UPLOAD, model_size=10).model_size == 10
    with pytest.raises(MalformedMessage):
        decode_sparse(BAD[case], SparseKind.UPLOAD, model_size=10)


def test_decoder_refuses_too_many_entries_for_the_model() -> None:
    blob = struct.pack("<4sBBHII", b"DSGD", 1, 1, 0, 1, 2) + struct.pack("<IIff", 0, 1, 1, 1)
    with pytest.raises(MalformedMessage, match="entries"):
        decode_sparse(blob, SparseKind.UPLOAD)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=64))
def test_decoder_fuzz_random_bytes(data: bytes) -> None:
    try:
        vector = decode_sparse(data, SparseKind.UPLOAD)
    except MalformedMessage:
        return
    assert encode_sparse(vector, SparseKind.UPLOAD) == data


@settings(max_examples=300, deadline=None)
@given(
    edits=st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), max_size=4),
    cut=st.integers(0, len(VALID) + 2),
)
def test_decoder_fuzz_mutations(edits: list[tuple[int, int]], cut: int) -> None:
    blob = bytearray(VALID + b"\x00\x00")
    for position, value in edits:
        blob[position] = value
    data = bytes(blob[:cut])
    try:
        vector = decode_sparse(data, SparseKind.UPLOAD)
    except MalformedMessage:
        return
    # Whatever parses re-encodes to the same bytes: the format has one encoding per vector.
    assert encode_sparse(vector, SparseKind.UPLOAD) == data


def test_sparse_vector_is_validated_and_read_only() -> None:
    with pytest.raises(ConfigurationError, match="strictly increasing"):
        SparseVector(5, np.array([2, 1]), np.array([1.0, 1.0]))
    with pytest.raises(ConfigurationError, match="pair up"):
        SparseVector(5, np.array([1]), np.array([1.0, 1.0]))
    vector = SparseVector(5, np.array([1]), np.array([1.0]))
    with pytest.raises(ValueError, match="read-only"):
        vector.values[0] = 2.0


# --- training ------------------------------------------------------------------------------


@pytest.mark.parametrize("theta_u", [0.1, 1.0])
def test_dssgd_trains_better_than_chance(
    theta_u: float, participants: list[ArrayDataset], digits: DatasetSplit
) -> None:
    model = small_mlp()
    before = model_to_vector(model)
    config = DSSGDConfig(theta_u=theta_u)
    result, again = (
        train_dssgd(m, participants, TRAIN, config, rounds=3, seed=0, test=digits.test)
        for m in (model, small_mlp())
    )
    assert result.history[-1].accuracy is not None and result.history[-1].accuracy > 0.5
    assert result.local_accuracy[-1] is not None and result.local_accuracy[-1] > 0.5
    size = before.size
    k = selection_count(theta_u, size)
    assert result.history[0].upload_bytes == sparse_message_bytes(k)
    assert result.history[0].download_bytes == sparse_message_bytes(size)
    np.testing.assert_array_equal(model_to_vector(model), before)  # the caller's model
    assert [h.accuracy for h in again.history] == [h.accuracy for h in result.history]


def test_dssgd_with_noise_is_reproducible(participants: list[ArrayDataset]) -> None:
    config = DSSGDConfig(theta_u=0.1, gamma=0.05, laplace_scale=0.01)
    runs = [
        train_dssgd(small_mlp(), participants, TRAIN, config, rounds=1, seed=5) for _ in range(2)
    ]
    np.testing.assert_array_equal(model_to_vector(runs[0].model), model_to_vector(runs[1].model))
