"""Compression (``ProtocolConfig.bits``): the secure sum lives in Z_(2**bits), every ring word
travels in ``bits`` bits, the sum equals the plaintext ring sum bit for bit, a configuration
that could overflow ``bits`` is refused, and without ``bits`` nothing changes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ssddl.exceptions import ConfigurationError, MalformedMessage
from ssddl.hazmat.codec import decode
from ssddl.hazmat.dp import unwrap
from ssddl.protocol import ProtocolConfig
from ssddl.protocol.messages import MessageKind, Upload, decode_message
from ssddl.protocol.server import RoundStatus
from tests.protocol.helpers import make_session, ring_sum, synthetic_delta

pytestmark = pytest.mark.filterwarnings("ignore::ssddl.exceptions.SecurityWarning")

SIZE = 300


def run(config, n=4):
    session = make_session(config, n=n, size=SIZE)
    session.driver.init()
    session.outcomes = [session.driver.round() for _ in range(config.rounds)]
    return session


@pytest.mark.parametrize("bits", [8, 20, 32])
@pytest.mark.parametrize("mode", ["prg", "explicit", "shamir"])
def test_the_secure_sum_is_the_plaintext_ring_sum_in_z_2_bits(mode, bits):
    config = ProtocolConfig(mode=mode, rounds=2, bits=bits, weighted=False)
    session = run(config)
    mask = (1 << bits) - 1
    codec = session.server.config.codec()
    for outcome in session.outcomes:
        assert outcome.status is RoundStatus.APPLIED
        xs = session.plaintexts[outcome.round]
        expected = ring_sum([xs[p] for p in outcome.contributors]) & np.uint32(mask)
        assert outcome.aggregate.dtype == np.uint32
        assert np.array_equal(outcome.aggregate, expected)
        assert int(outcome.aggregate[-1]) == len(outcome.contributors)
        # the update is the decoded signed sum: the fixed-point mean of the clipped changes
        signed = unwrap(expected[:-1], bits).view(np.uint64).astype(np.uint32)
        mean = decode(signed, codec) / len(outcome.contributors)
        assert np.array_equal(outcome.update, mean)
        changes = [synthetic_delta(p, outcome.round, SIZE) for p in outcome.contributors]
        clipped = np.clip(np.mean(changes, axis=0), -4.0, 4.0)
        assert np.abs(outcome.update - clipped).max() <= 2.0**-session.server.config.frac_bits


@pytest.mark.parametrize("bits", [8, 20])
@pytest.mark.parametrize("late", [False, True], ids=["no-upload", "vanished-after-upload"])
def test_double_mask_recovery_works_in_z_2_bits(bits, late):
    """prg with double masking: a member that never uploads (its pair masks are rebuilt), or
    one that vanishes after uploading (its self-mask is rebuilt from the seed shares); the
    server's sum is still the contributors' plaintext ring sum modulo 2**bits."""
    from ssddl.runtime import Vanish, VanishPhase

    config = ProtocolConfig(mode="prg", rounds=1, bits=bits, weighted=False)
    gone = Vanish(5, 0, VanishPhase.AFTER_SHARE) if late else Vanish(5, 0)
    session = make_session(config, n=5, size=SIZE, vanish=(gone,))
    session.driver.init()
    outcome = session.driver.round()
    assert outcome.status is RoundStatus.APPLIED
    assert outcome.contributors == ((1, 2, 3, 4, 5) if late else (1, 2, 3, 4))
    xs = session.plaintexts[0]
    expected = ring_sum([xs[p] for p in outcome.contributors]) & np.uint32((1 << bits) - 1)
    assert np.array_equal(outcome.aggregate, expected)


def _frames(session, kinds):
    frames = []
    session.transport.interceptor = lambda f: (
        (frames.append(f.data) if f.data[5] in kinds else None) or f
    )
    return frames


@pytest.mark.parametrize("mode", ["prg", "explicit"])
def test_ring_words_travel_packed(mode):
    config = ProtocolConfig(mode=mode, rounds=1, bits=20, weighted=False)
    session = make_session(config, n=4, size=SIZE)
    frames = _frames(session, {MessageKind.UPLOAD, MessageKind.MASKED_UPLOAD})
    session.driver.init()
    assert session.driver.round().status is RoundStatus.APPLIED
    assert len(frames) == 4
    for data in frames:
        upload = decode_message(data)
        assert upload.wire_bits == 20
        assert (upload.payload < 1 << 20).all()
        assert len(data) == len(upload.encode())
        whole = dataclasses.replace(upload, wire_bits=0)
        # header, round, sender, the array's 12-byte header: then 20 instead of 32 bits a word
        assert len(whole.encode()) - len(data) == 4 * (SIZE + 1) - -(-(SIZE + 1) * 20 // 8) - 2


def test_shamir_words_stay_field_elements_on_the_wire():
    config = ProtocolConfig(mode="shamir", rounds=1, bits=20, weighted=False)
    session = make_session(config, n=4, size=SIZE)
    frames = _frames(session, {MessageKind.UPLOAD})
    session.driver.init()
    assert session.driver.round().status is RoundStatus.APPLIED
    assert frames and all(decode_message(d).wire_bits == 0 for d in frames)


def test_the_server_refuses_an_upload_of_the_wrong_width():
    config = ProtocolConfig(mode="explicit", rounds=1, bits=20, weighted=False)
    session = make_session(config, n=3, size=SIZE)

    def widen(frame):
        if frame.data[5] == MessageKind.UPLOAD and frame.sender == 2:
            msg = decode_message(frame.data)
            whole = dataclasses.replace(msg, wire_bits=0)
            return dataclasses.replace(frame, data=whole.encode())
        return frame

    session.transport.interceptor = widen
    session.driver.init()
    session.driver.round()
    refusals = [r for r in session.driver.rejections if r.at == 0]
    assert any("packs its words in all bits" in r.detail for r in refusals), refusals


def test_without_bits_the_frames_are_unchanged():
    params = ProtocolConfig(mode="prg", weighted=False).resolve(4)
    assert params.bits == 0 and "bits" not in params.to_dict()
    upload = Upload(b"\0" * 16, 0, 1, np.arange(5, dtype=np.uint32))
    assert upload.encode()[-29:-28] == b"\x01"  # the dtype code of whole uint32 words
    packed = Upload(b"\0" * 16, 0, 1, np.arange(5, dtype=np.uint32), wire_bits=12)
    assert decode_message(packed.encode()).wire_bits == 12
    assert decode_message(packed.encode()) == packed
    assert packed != upload


def test_a_packed_frame_is_checked():
    packed = Upload(b"\0" * 16, 0, 1, np.arange(5, dtype=np.uint32), wire_bits=12).encode()
    with pytest.raises(MalformedMessage):
        decode_message(packed[:-1])
    with pytest.raises(MalformedMessage, match="packed-array header"):
        decode_message(packed[:-19] + bytes([4, 1, 40]) + packed[-16:])
    with pytest.raises(MalformedMessage, match="wire_bits"):
        Upload(b"\0" * 16, 0, 1, np.arange(5, dtype=np.uint32), wire_bits=7)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            dict(bits=8, weighted=True, max_samples=64),
            r"bits=8 cannot hold the sum of 10 .*max_samples=64.*raise bits",
        ),
        (dict(bits=12, frac_bits=10, weighted=False), r"bits=12 cannot hold .*frac_bits=10"),
        (dict(bits=7, weighted=False), r"bits=7 is out of range"),
        (dict(bits=33, ring_bits=64, weighted=False), r"bits=33 is out of range"),
        (dict(bits=20, mode="plain", weighted=False), r"mode 'plain' sends float32"),
    ],
)
def test_configurations_that_could_overflow_bits_are_refused(fields, message):
    with pytest.raises(ConfigurationError, match=message):
        ProtocolConfig(**fields).resolve(10)


def test_the_capacity_check_fits_the_sum_in_bits():
    params = ProtocolConfig(bits=20, weighted=False).resolve(10)
    largest = 10 * (int(params.clip * 2**params.frac_bits) + 1)
    assert 2 * largest < 1 << 20 <= 4 * largest  # the largest frac_bits that fits
    assert params.capacity_modulus == 1 << 20
    assert "bits" in params.to_dict() and params.config().bits == 20
