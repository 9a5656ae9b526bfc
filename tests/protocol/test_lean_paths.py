"""The allocation-lean paths of a round (sliced encoding, the upload built on the mask's own
array, array fields framed without a copy, a shared message encoded once) change no byte."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

import ssddl.protocol.participant as participant_module
from ssddl.exceptions import ShareError
from ssddl.hazmat.codec import all_finite
from ssddl.hazmat.prg import StreamCipher, derive_nonce
from ssddl.protocol import Participant, ProtocolConfig
from ssddl.protocol.masks import combined_mask, start_mask
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
    pending = start_mask(1000, np.dtype(np.uint32), streams, StreamCipher.AES_CTR)
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
    driver = Driver(server, exchange, timeout=0.0)
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
