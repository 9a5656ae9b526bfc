"""The allocation-lean paths of a round (sliced encoding, the upload built on the mask's own
array, array fields framed without a copy, a shared message encoded once) change no byte."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import ssddl.protocol.participant as participant_module
from ssddl.exceptions import ConfigurationError, NonFiniteError, ShareError
from ssddl.hazmat.codec import FixedPoint, all_finite, encode, encode_clipped
from ssddl.hazmat.prg import StreamCipher, derive_nonce
from ssddl.protocol import Participant, ProtocolConfig
from ssddl.protocol.masks import combined_mask
from ssddl.protocol.ports import InlineMaskBuilder
from ssddl.runtime.exchange import Driver, Frame
from tests.protocol.helpers import make_session, synthetic_delta
from tests.vectors import transcript


@pytest.fixture(scope="module")
def recorded():
    return json.loads(transcript.PATH.read_text())


@pytest.mark.parametrize("name", sorted(transcript.CASES))
def test_transcript_without_inspector_and_in_small_slices(name, recorded, monkeypatch):
    """The recorded transcript runs with an inspector (which sees x_i before masking);
    without one the upload is built on the mask's array, slice by slice."""
    init = Participant.__init__

    def no_inspector(self, *args, **kwargs):
        kwargs["inspector"] = None
        init(self, *args, **kwargs)

    monkeypatch.setattr(Participant, "__init__", no_inspector)
    monkeypatch.setattr(participant_module, "ENCODE_SLICE", 4)  # 9 entries: 3 slices
    now = transcript.record(name, persisted=name.startswith("prg"))
    assert now == recorded[name]


def _open_participant(weighted: bool) -> tuple[Participant, int]:
    config = ProtocolConfig(mode="prg", rounds=2, group_size=3, weighted=weighted)
    session = make_session(config, n=3, size=11)
    session.driver.init()
    session.driver.round()
    return session.participant(1), session.samples[1]


@pytest.mark.parametrize("weighted", [True, False])
@pytest.mark.parametrize("slice_size", [1, 4, 11, 1 << 16])
def test_encode_update_onto_is_the_sum_mod_q(weighted, slice_size, monkeypatch):
    monkeypatch.setattr(participant_module, "ENCODE_SLICE", slice_size)
    participant, count = _open_participant(weighted)
    delta = synthetic_delta(1, 9, 11, scale=40.0)  # beyond the clip bound: clipping matters
    plain = participant.encode_update(delta, count)
    monkeypatch.setattr(participant_module, "ENCODE_SLICE", 1 << 16)
    assert np.array_equal(plain, participant.encode_update(delta, count))
    mask = np.random.default_rng(3).integers(0, 1 << 32, size=12, dtype=np.uint64)
    mask = mask.astype(plain.dtype)
    expected = np.add(mask, plain)  # wraps mod 2**32
    onto = mask.copy()
    assert participant.encode_update(delta, count, onto=onto) is onto
    assert np.array_equal(onto, expected)
    participant._inspector = None  # the path without an inspector adds slice by slice
    onto = mask.copy()
    assert np.array_equal(participant.encode_update(delta, count, onto=onto), expected)


def test_encode_update_onto_refuses_another_shape():
    participant, count = _open_participant(True)
    delta = synthetic_delta(1, 9, 11)
    with pytest.raises(ShareError, match="12 uint32 words"):
        participant.encode_update(delta, count, onto=np.zeros(11, dtype=np.uint32))
    with pytest.raises(ShareError, match="x_i has"):
        participant.encode_update(delta, count, onto=np.zeros(12, dtype=np.uint64))


def test_pending_mask_hands_its_array_over_once():
    streams = [(hashlib.sha256(b"k").digest(), derive_nonce(b"s", 0, 1, 2, "mask"), -1)]
    pending = InlineMaskBuilder().start(1000, np.dtype(np.uint32), streams, StreamCipher.AES_CTR)
    mask = pending.take()
    assert np.array_equal(
        mask, combined_mask(1000, np.dtype(np.uint32), streams, StreamCipher.AES_CTR)
    )
    with pytest.raises(ShareError, match="already used"):
        pending.take()
    with pytest.raises(ShareError, match="already used"):
        pending.add_to(mask)


@pytest.mark.parametrize(
    ("values", "finite"),
    [
        (np.zeros(0, np.float32), True),
        (np.arange(5, dtype=np.int64), True),
        (np.array([1.0, -3e38, 3e38], np.float32), True),
        (np.array([1.0, np.nan], np.float32), False),
        (np.array([np.nan, 1.0]), False),
        (np.array([1.0, np.inf]), False),
        (np.array([-np.inf, 0.0], np.float32), False),
    ],
)
def test_all_finite(values, finite):
    assert all_finite(values) is finite
    assert finite == bool(np.isfinite(values).all())


class CountingExchange:
    def __init__(self) -> None:
        self.batches: list[list[Frame]] = []

    def send_and_receive(self, frames, *, timeout, round_number=-1):
        self.batches.append(list(frames))
        return []


def test_a_message_to_many_recipients_is_encoded_once(monkeypatch):
    session = make_session(ProtocolConfig(mode="prg", rounds=1, group_size=4), n=4, size=9)
    session.driver.init()
    server = session.driver.server
    exchange = CountingExchange()
    driver = Driver(server, exchange, timeout=600.0)
    encoded = []
    from ssddl.protocol.messages import RoundStart

    original = RoundStart.encode

    def counting(self):
        encoded.append(self.round)
        return original(self)

    monkeypatch.setattr(RoundStart, "encode", counting)
    driver.start_round()
    [batch] = exchange.batches
    assert len(batch) == 4 and encoded == [0]
    assert all(frame.data is batch[0].data for frame in batch)
    assert sorted(frame.recipient for frame in batch) == [1, 2, 3, 4]


# -- encoding in five passes a slice ------------------------------------------------------------


def _reference_words(delta, codec, clip, weight):
    """The words as encode_update wrote them before: clip δ at ±clip (np.clip, in δ's float
    type, into float64), then ``encode`` with the weight."""
    values = np.empty(delta.size, dtype=np.float64)
    np.clip(delta, -clip, clip, out=values)
    return encode(values, codec, weight=weight)


_edges = st.sampled_from([0.0, -0.0, 0.5, -0.5, 1.5, 2.5, 1e-9, 1e30, -1e30, 3.4e38])


@settings(max_examples=400, deadline=None)
@given(
    ring_bits=st.sampled_from([32, 64]),
    frac_bits=st.integers(0, 62),
    # 0.7 and 0.9 round down to float32, the others up: the clip bound is δ's type's
    clip=st.sampled_from([0.1, 0.7, 0.9, 1.0, 3.7, 4.0, 1e-3, 1 / 3]),
    weight=st.one_of(st.just(1.0), st.floats(1e-6, 1.0), st.sampled_from([1 / 3, 0.1, 0.999])),
    dtype=st.sampled_from([np.float32, np.float64]),
    data=st.data(),
    slice_size=st.sampled_from([1, 3, 64]),
)
def test_encode_clipped_is_the_clip_then_encode_words(
    ring_bits, frac_bits, clip, weight, dtype, data, slice_size
):
    frac_bits = min(frac_bits, ring_bits - 2)
    try:
        codec = FixedPoint(ring_bits=ring_bits, frac_bits=frac_bits, clip=clip)
    except ConfigurationError:
        assume(False)  # the codec's own range check refuses such a config
    width = 32 if dtype is np.float32 else 64
    reach = float(np.asarray(2 * clip, dtype=dtype))
    inside = st.floats(-reach, reach, width=width)  # most values: rounding matters
    anything = st.floats(allow_nan=False, allow_infinity=False, width=width)
    near = st.sampled_from([clip, -clip, np.nextafter(clip, 0), np.nextafter(clip, 9)])
    values = st.one_of(inside, inside, inside, anything, near, _edges)
    delta = np.array(data.draw(st.lists(values, min_size=1, max_size=150)), dtype=dtype)
    if not np.isfinite(delta).all():  # 3.4e38 and the like may overflow float32
        return
    expected = _reference_words(delta, codec, clip, weight)
    x = np.empty(delta.size, dtype=codec.dtype)
    encode_clipped(delta, codec, clip, weight, x, None, np.empty(slice_size))
    assert np.array_equal(x, expected)
    mask = np.arange(delta.size, dtype=codec.dtype) * codec.dtype.type(2654435761)
    onto = mask.copy()
    words = np.empty(slice_size, dtype=codec.dtype)
    encode_clipped(delta, codec, clip, weight, onto, words, np.empty(slice_size))
    assert np.array_equal(onto, mask + expected)  # mod Q


def test_encode_clipped_refuses_what_encode_refuses():
    codec = FixedPoint(ring_bits=32, frac_bits=16, clip=4.0)
    x = np.zeros(3, dtype=np.uint32)
    with pytest.raises(NonFiniteError, match="1 non-finite"):
        encode_clipped(np.array([1.0, np.nan, 2.0]), codec, 4.0, 1.0, x, None, np.empty(2))
    assert not x.any()  # nothing written before the check
    with pytest.raises(ConfigurationError, match=r"weight must be a float in \(0, 1\]"):
        encode_clipped(np.ones(3), codec, 4.0, 1.5, x, None, np.empty(2))


def test_a_members_update_is_checked_finite_once_a_round(monkeypatch):
    """check_update refuses a non-finite update when LocalTrain returns it; the encoder does
    not scan that same vector again, but still scans any other it is given."""
    import ssddl.hazmat.codec as codec_module

    scans: list[int] = []
    check = codec_module.check_finite

    def counting(arr, name):
        scans.append(arr.size)
        check(arr, name)

    monkeypatch.setattr(codec_module, "check_finite", counting)
    config = ProtocolConfig(mode="prg", rounds=2, group_size=3)
    session = make_session(config, n=3, size=11)
    session.driver.init()
    session.driver.round()
    assert 11 not in scans  # three members' updates of 11 entries: none scanned twice
    participant, count = session.participant(1), session.samples[1]
    with pytest.raises(NonFiniteError):
        participant.encode_update(np.array([np.nan] + [0.0] * 10), count)
    assert scans == [11]


@settings(max_examples=150, deadline=None)
@given(
    ring_bits=st.sampled_from([32, 64]),
    frac_bits=st.integers(0, 62),
    clip=st.sampled_from([0.1, 0.7, 1.0, 4.0, 1 / 3, 2.5e-3]),
    data=st.data(),
)
def test_float32_updates_are_encoded_in_float32_with_the_float64_words(
    ring_bits, frac_bits, clip, data
):
    """An unweighted float32 δ is worked in float32 (in the scratch's memory) when the
    bound is a float32: the words equal the float64 path's for the same values, including
    values that overflow float32 when scaled, halves and the bound's neighbours."""
    frac_bits = min(frac_bits, ring_bits - 2)
    try:
        codec = FixedPoint(ring_bits=ring_bits, frac_bits=frac_bits, clip=clip)
    except ConfigurationError:
        assume(False)
    bound = float(np.float32(clip))
    step = 2.0**-frac_bits
    halves = st.integers(-64, 64).map(lambda k: (k + 0.5) * step)
    values = st.one_of(
        st.floats(-2 * bound, 2 * bound, width=32),
        st.floats(allow_nan=False, allow_infinity=False, width=32),
        halves,
        st.sampled_from([bound, -bound, 3e38, -3e38, 1e-45, -0.0]),
    )
    delta = np.array(data.draw(st.lists(values, min_size=1, max_size=100)), dtype=np.float32)
    assume(np.isfinite(delta).all())
    wide = np.empty(delta.size, dtype=codec.dtype)
    encode_clipped(delta.astype(np.float64), codec, bound, 1.0, wide, None, np.empty(7))
    narrow = np.empty(delta.size, dtype=codec.dtype)
    scratch = np.full(7, np.nan)
    encode_clipped(delta, codec, clip, 1.0, narrow, None, scratch)
    assert np.array_equal(narrow, wide)
    high = min(bound * codec.scale, codec.clip * codec.scale)
    last = delta[(delta.size - 1) // 7 * 7 :]  # the last slice worked in the scratch
    if float(np.float32(high)) == high:  # the float32 path ran: its words are in the scratch
        with np.errstate(over="ignore"):
            expected = np.rint(np.clip(last * np.float32(codec.scale), -high, high))
        assert np.array_equal(scratch.view(np.float32)[: last.size], expected.astype(np.float32))
    else:
        assert not np.isnan(scratch[: last.size]).any()  # worked in float64
