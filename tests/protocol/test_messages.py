"""The wire format: every message round-trips; every malformed frame is refused (STYLE.md §8)."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssddl.exceptions import MalformedMessage
from ssddl.protocol import messages as m
from ssddl.protocol.wire import MAGIC, VERSION

SID = bytes(range(16))


def examples() -> list[m.Message]:
    return [
        m.SessionAnnounce(SID, '{"mode":"prg"}', 1234, (1, 2, 3)),
        m.KeyAdvert(SID, 2, b"\x01" * 32, b"\x02" * 64),
        m.KeyDirectory(SID, (1, 2), (b"\x03" * 32, b"\x04" * 32), (b"\x05" * 64, b"\x06" * 64)),
        m.RoundStart(SID, 7, (1, 3, 4), np.arange(5, dtype=np.float32)),
        m.ShareBundle(SID, 7, 1, (3, 4), (b"ct-a", b"ct-b")),
        m.ShareDelivery(SID, 7, (1, 3, 4), (3, 4), (b"x", b"y")),
        m.ShareDelivery(SID, 7, (1, 3, 4), (3, 4), (b"x", b"y"), (1, 3), (b"\x08" * 64,) * 2),
        m.MaskedUpload(SID, 7, 3, np.array([5, 6], dtype=np.uint32), (1, 4), (b"s1", b"s4")),
        m.ConsistencyRequest(SID, 7, (1, 3, 4), (2,)),
        m.ConsistencySignature(SID, 7, 3, b"\x09" * 64),
        m.UnmaskRequest(SID, 7, (1, 3), (4,), (3,), (b"sealed",), (1, 3), (b"\x0a" * 64,) * 2),
        m.UnmaskResponse(SID, 7, 1, (1, 3), (b"a" * 40, b"b" * 40), (4,), (b"\x0b" * 32,)),
        m.Upload(SID, 7, 3, np.array([0, 1, 2**32 - 1], dtype=np.uint32)),
        m.Upload(SID, 7, 3, np.array([0, 2**64 - 1], dtype=np.uint64)),
        m.PlainUpload(SID, 7, 3, 99, np.array([0.5, -1.25], dtype=np.float32)),
        m.SparseUpload(
            SID,
            7,
            3,
            12,
            np.array([1, 5], dtype=np.uint32),
            np.array([0.5, -1.0], dtype=np.float32),
        ),
        m.RevealRequest(SID, 7, (4,)),
        m.RevealResponse(SID, 7, 1, (4,), (b"\x07" * 32,)),
        m.RoundEnd(SID, 7, 0, (1, 3)),
        m.SessionEnd(SID, 20),
        m.Upload(SID, 0, 1, np.zeros(0, dtype=np.uint32)),  # empty vector
    ]


@pytest.mark.parametrize("message", examples(), ids=lambda x: type(x).__name__)
def test_round_trip(message):
    data = message.encode()
    assert data[:4] == MAGIC and data[4] == VERSION and data[5] == int(message.KIND)
    back = m.decode_message(data)
    assert type(back) is type(message)
    assert back == message
    assert back.encode() == data


def test_every_kind_has_an_example():
    assert {type(x) for x in examples()} == set(m.MESSAGE_TYPES.values())


@settings(max_examples=60, deadline=None)
@given(
    words=st.lists(st.integers(0, 2**64 - 1), max_size=50),
    round_number=st.integers(0, 2**64 - 1),
    sender=st.integers(1, m.MAX_ID),
)
def test_upload_round_trip_property(words, round_number, sender):
    msg = m.Upload(SID, round_number, sender, np.array(words, dtype=np.uint64))
    back = m.decode_message(msg.encode())
    assert np.array_equal(back.payload, msg.payload) and back.round == round_number


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(st.floats(width=32, allow_nan=False), max_size=30),
    group=st.lists(st.integers(1, 1000), unique=True, max_size=10),
)
def test_round_start_round_trip_property(values, group):
    msg = m.RoundStart(SID, 1, tuple(sorted(group)), np.array(values, dtype=np.float32))
    back = m.decode_message(msg.encode())
    assert back == msg and back.group == tuple(sorted(group))


@pytest.mark.parametrize("message", examples(), ids=lambda x: type(x).__name__)
def test_every_truncation_is_refused(message):
    data = message.encode()
    for cut in range(len(data)):
        with pytest.raises(MalformedMessage):
            m.decode_message(data[:cut])


@settings(max_examples=60, deadline=None)
@given(
    blobs=st.lists(st.binary(max_size=70), min_size=1, max_size=12),
    data=st.data(),
)
def test_blob_lists_round_trip_and_a_cut_names_the_blob_field(blobs, data):
    receivers = tuple(range(2, 2 + len(blobs)))
    msg = m.MaskedUpload(SID, 7, 1, np.zeros(3, dtype=np.uint32), receivers, tuple(blobs))
    frame = msg.encode()
    back = m.decode_message(frame)
    assert back.seed_shares == tuple(blobs) and back.receivers == receivers
    assert all(type(v) is int for v in back.receivers)
    start = len(frame) - sum(4 + len(b) for b in blobs)  # the blobs close the frame
    cut = data.draw(st.integers(start, len(frame) - 1))
    with pytest.raises(MalformedMessage, match=r"field 'seed_shares'"):
        m.decode_message(frame[:cut])


@pytest.mark.parametrize("message", examples(), ids=lambda x: type(x).__name__)
def test_trailing_bytes_are_refused(message):
    with pytest.raises(MalformedMessage, match="trailing"):
        m.decode_message(message.encode() + b"\0")


def test_bad_header_fields():
    data = m.SessionEnd(SID, 3).encode()
    with pytest.raises(MalformedMessage, match="magic"):
        m.decode_message(b"XXXX" + data[4:])
    with pytest.raises(MalformedMessage, match="version"):
        m.decode_message(data[:4] + bytes([VERSION + 1]) + data[5:])
    with pytest.raises(MalformedMessage, match="unknown message kind"):
        m.decode_message(data[:5] + bytes([200]) + data[6:])
    with pytest.raises(MalformedMessage, match="bytes"):
        m.decode_message("not bytes")  # type: ignore[arg-type]


def test_unknown_array_dtype_and_lying_lengths():
    data = bytearray(m.Upload(SID, 1, 1, np.zeros(2, dtype=np.uint32)).encode())
    dtype_at = 6 + 4 + 16 + 8 + 8
    assert data[dtype_at] == 1
    bad = bytearray(data)
    bad[dtype_at] = 9
    with pytest.raises(MalformedMessage, match="dtype code"):
        m.decode_message(bytes(bad))
    huge = bytearray(data)
    huge[dtype_at + 1 : dtype_at + 9] = struct.pack("<Q", 2**62)
    with pytest.raises(MalformedMessage, match="too few bytes"):
        m.decode_message(bytes(huge))
    blobs = bytearray(m.RevealResponse(SID, 1, 1, (4,), (b"\x07" * 32,)).encode())
    count_at = 6 + 4 + 16 + 8 + 8 + 4 + 8
    blobs[count_at : count_at + 4] = struct.pack("<I", 2**31)
    with pytest.raises(MalformedMessage):
        m.decode_message(bytes(blobs))


def test_field_validation():
    with pytest.raises(MalformedMessage, match="session_id"):
        m.SessionEnd(b"short", 1)
    with pytest.raises(MalformedMessage, match="sender"):
        m.KeyAdvert(SID, 0, b"k" * 32, b"s" * 64)  # 0 is the server
    with pytest.raises(MalformedMessage, match="twice"):
        m.RoundStart(SID, 1, (1, 1), np.zeros(1, dtype=np.float32))
    with pytest.raises(MalformedMessage, match="sorted"):
        m.RoundStart(SID, 1, (2, 1), np.zeros(1, dtype=np.float32))
    with pytest.raises(MalformedMessage, match="dtype"):
        m.RoundStart(SID, 1, (1,), np.zeros(1, dtype=np.float64))
    with pytest.raises(MalformedMessage, match="1-D"):
        m.Upload(SID, 1, 1, np.zeros((2, 2), dtype=np.uint32))
    with pytest.raises(MalformedMessage, match="length"):
        m.ShareBundle(SID, 1, 1, (2, 3), (b"a",))
    with pytest.raises(MalformedMessage, match="itself"):
        m.ShareBundle(SID, 1, 1, (1,), (b"a",))
    with pytest.raises(MalformedMessage, match="contributor"):
        m.ShareDelivery(SID, 1, (1, 2), (3,), (b"a",))
    with pytest.raises(MalformedMessage, match="32 bytes"):
        m.RevealResponse(SID, 1, 1, (2,), (b"short",))
    with pytest.raises(MalformedMessage, match="status"):
        m.RoundEnd(SID, 1, 7, ())
    with pytest.raises(MalformedMessage, match="2\\^64"):
        m.SessionEnd(SID, -1)


def test_decoded_arrays_are_read_only_copies():
    data = m.Upload(SID, 1, 1, np.arange(4, dtype=np.uint32)).encode()
    back = m.decode_message(data)
    with pytest.raises(ValueError):
        back.payload[0] = 5


def test_describe_never_shows_payloads():
    msg = m.Upload(SID, 3, 2, np.array([123456789], dtype=np.uint32))
    assert msg.describe() == "upload round=3 sender=2"


def test_id_tuples_are_checked_entry_by_entry_whatever_the_fast_path_sees():
    import enum

    from ssddl.protocol.messages import MAX_ID, _check_ids

    class Id(enum.IntEnum):
        FIVE = 5

    _check_ids((1, 2, MAX_ID), "group")
    _check_ids((Id.FIVE, 3), "group")  # an int subclass is still an id
    _check_ids((), "group")
    for bad in ((1, True), (0, 2), (1, MAX_ID + 1), (1, 2.0), (1, "2")):
        with pytest.raises(MalformedMessage, match=r"group must be a participant id in \[1, "):
            _check_ids(bad, "group")
    with pytest.raises(MalformedMessage, match="lists a participant twice"):
        _check_ids((4, 4), "group")
