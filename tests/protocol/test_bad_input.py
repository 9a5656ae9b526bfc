"""Bad input gets a named error and loses nothing."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from ssddl.exceptions import (
    ConfigurationError,
    GroupTooSmall,
    InvalidCiphertext,
    InvalidSignature,
    MalformedMessage,
    ReplayedMessage,
    UnexpectedMessage,
    UnknownSender,
)
from ssddl.protocol import Mode, ProtocolConfig, RoundStatus
from ssddl.protocol import messages as m
from ssddl.protocol.stages import ServerStage
from ssddl.runtime import Frame, InMemoryExchange
from tests.protocol.helpers import make_session, ring_sum


def started(mode=Mode.PRG, **kw):
    session = make_session(ProtocolConfig(mode=mode, rounds=3, **kw.pop("cfg", {})), **kw)
    session.driver.init()
    return session


def finish_round_exactly(session):
    """Let the open round finish and check it lost nothing."""
    session.driver.run()
    outcome = session.server.history[-1]
    assert outcome.status is RoundStatus.APPLIED
    xs = session.plaintexts[outcome.round]
    assert np.array_equal(outcome.aggregate, ring_sum([xs[p] for p in outcome.contributors]))
    return outcome


def open_round(session):
    """Start a round and let every participant answer, but keep the uploads back."""
    held = []
    session.transport.interceptor = lambda d: (held.append(d), None)[1] if d.recipient == 0 else d
    assert session.driver.start_round() == []
    session.transport.interceptor = None
    return held


def test_wrong_length_upload_is_refused_and_the_round_still_completes():
    session = started()
    held = open_round(session)
    honest = m.decode_message(held[0].data)
    short = dataclasses.replace(honest, payload=honest.payload[:-1].copy())
    with pytest.raises(MalformedMessage, match="expected 38 words"):
        session.server.handle(honest.sender, short)
    wrong_dtype = dataclasses.replace(honest, payload=honest.payload.astype(np.uint64))
    with pytest.raises(MalformedMessage, match="uint32"):
        session.server.handle(honest.sender, wrong_dtype)
    assert session.server.awaiting() == {1, 2, 3, 4, 5}
    for d in held:
        session.transport.inject(d)
    outcome = finish_round_exactly(session)
    assert outcome.contributors == (1, 2, 3, 4, 5)


def test_malformed_frames_are_rejected_by_the_driver():
    session = started()
    held = open_round(session)
    session.transport.inject(Frame(1, 0, b"garbage"))
    session.transport.inject(Frame(1, 0, held[0].data[:-3]))
    for d in held:
        session.transport.inject(d)
    finish_round_exactly(session)
    errors = [r.error for r in session.driver.rejections]
    assert errors == ["MalformedMessage", "MalformedMessage"]


def test_unknown_and_spoofed_senders():
    session = started()
    held = open_round(session)
    msg = m.decode_message(held[0].data)
    with pytest.raises(UnknownSender, match="arrived from participant 2"):
        session.server.handle(2, msg)  # claims to be msg.sender, comes from 2
    stranger = dataclasses.replace(msg, sender=77)
    with pytest.raises(UnknownSender, match="not in the roster"):
        session.server.handle(77, stranger)
    for d in held:
        session.transport.inject(d)
    finish_round_exactly(session)


def test_replayed_and_stale_messages():
    session = started()
    held = open_round(session)
    first = m.decode_message(held[0].data)
    session.server.handle(first.sender, first)
    with pytest.raises(ReplayedMessage, match="already received"):
        session.server.handle(first.sender, first)
    for d in held[1:]:
        session.transport.inject(d)
    finish_round_exactly(session)
    # the same upload again, in the next round
    replies = session.driver.start_round()
    with pytest.raises(ReplayedMessage, match="is for round 0, round 1 is open"):
        session.server.handle(first.sender, first)
    other = dataclasses.replace(first, session_id=b"\x99" * 16)
    with pytest.raises(ReplayedMessage, match="another session"):
        session.server.handle(first.sender, other)
    for frame in replies:
        session.transport.inject(frame)
    finish_round_exactly(session)


def test_out_of_order_messages_at_the_server():
    session = started()
    advert = m.KeyAdvert(session.server.session_id, 1, b"\x01" * 32, b"\x02" * 64)
    with pytest.raises(UnexpectedMessage, match="idle"):
        session.server.handle(1, advert)  # Init is over
    reveal = m.RevealResponse(session.server.session_id, 0, 1, (2,), (b"\x00" * 32,))
    with pytest.raises(UnexpectedMessage):
        session.server.handle(1, reveal)
    with pytest.raises(UnexpectedMessage):
        session.server.deadline()  # nothing to wait for
    assert session.server.stage is ServerStage.IDLE


def test_out_of_order_messages_at_a_participant():
    session = started()
    p = session.participants[1]
    sid = session.server.session_id
    with pytest.raises(UnexpectedMessage, match="ready"):
        p.handle(m.ShareDelivery(sid, 0, (1, 2), (2,), (b"x",)))
    with pytest.raises(UnexpectedMessage):
        p.handle(m.RevealRequest(sid, 0, (2,)))
    with pytest.raises(UnexpectedMessage):
        p.handle(m.SessionAnnounce(sid, "{}", 5, (1, 2)))
    with pytest.raises(ReplayedMessage, match="another session"):
        p.handle(m.RoundEnd(b"\x42" * 16, 0, 0, ()))


def test_participant_rejects_a_replayed_round_start():
    session = started()
    session.driver.round()
    p = session.participants[1]
    stale = m.RoundStart(session.server.session_id, 0, (1, 2, 3, 4, 5), session.server.weights)
    with pytest.raises(ReplayedMessage, match="round 0"):
        p.handle(stale)


def test_group_below_minimum():
    session = started(cfg={"min_group_size": 3})
    p = session.participants[1]
    sid = session.server.session_id
    small = m.RoundStart(sid, 0, (1, 2), np.zeros(37, dtype=np.float32))
    with pytest.raises(GroupTooSmall, match="min_group_size=3"):
        p.handle(small)
    assert all(r == 0 for r in p.pair_rounds.values())  # no key was used
    with pytest.raises(ConfigurationError, match="min_group_size"):
        ProtocolConfig(min_group_size=6).resolve(5)
    with pytest.raises(ConfigurationError, match="min_group_size"):
        ProtocolConfig(mode=Mode.PRG, min_group_size=1)


def test_prg_survivors_refuse_reveals_that_leave_too_few():
    session = started(cfg={"min_group_size": 3, "recovery": "unsafe-reveal-keys"})
    open_round(session)
    p = session.participants[1]
    sid = session.server.session_id
    with pytest.raises(GroupTooSmall, match="survivors"):
        p.handle(m.RevealRequest(sid, 0, (2, 3, 4)))
    with pytest.raises(UnknownSender):
        p.handle(m.RevealRequest(sid, 0, (1,)))  # its own key
    p.handle(m.RevealRequest(sid, 0, (2,)))
    with pytest.raises(UnexpectedMessage, match="unmasked"):  # one request a round, ever
        p.handle(m.RevealRequest(sid, 0, (3,)))


def test_overflowing_configuration_is_refused_at_start():
    with pytest.raises(ConfigurationError, match=r"frac_bits|clip|ring_bits"):
        make_session(ProtocolConfig(frac_bits=28, clip=4.0))
    with pytest.raises(ConfigurationError, match="max_samples"):
        ProtocolConfig(max_samples=2**30).resolve(5)
    with pytest.raises(ConfigurationError, match="clip"):
        ProtocolConfig(ring_bits=32, clip=2.0**31).resolve(5)


def test_participant_refuses_an_overflowing_announced_config():
    session = make_session(ProtocolConfig(mode=Mode.PRG))
    p = session.participants[1]
    bad = session.server.config.to_dict() | {"frac_bits": 29}
    announce = m.SessionAnnounce(b"\x01" * 16, json.dumps(bad), 37, (1, 2, 3, 4, 5))
    with pytest.raises(ConfigurationError, match=r"frac_bits|clip|ring_bits"):
        p.handle(announce)
    assert p.config is None
    unresolved = m.SessionAnnounce(b"\x01" * 16, json.dumps({"mode": "prg"}), 37, (1, 2))
    with pytest.raises(MalformedMessage, match="not resolved"):
        p.handle(unresolved)
    not_json = m.SessionAnnounce(b"\x01" * 16, "{", 37, (1, 2))
    with pytest.raises(MalformedMessage, match="invalid"):
        p.handle(not_json)


@pytest.mark.parametrize("mode", [Mode.EXPLICIT, Mode.SHAMIR])
def test_tampered_share_is_refused_by_its_receiver(mode):
    def flip(frame: Frame):
        if frame.recipient == 2:
            msg = m.decode_message(frame.data)
            if isinstance(msg, m.ShareDelivery):
                blob = bytearray(msg.ciphertexts[0])
                blob[20] ^= 1
                tampered = dataclasses.replace(msg, ciphertexts=(bytes(blob), *msg.ciphertexts[1:]))
                return Frame(frame.sender, 2, tampered.encode())
        return frame

    session = make_session(
        ProtocolConfig(mode=mode, rounds=1, threshold=3)
        if mode is Mode.SHAMIR
        else ProtocolConfig(mode=mode, rounds=1),
        transport=InMemoryExchange(interceptor=flip),
    )
    session.driver.init()
    outcome = session.driver.round()
    errors = [(r.at, r.error) for r in session.driver.rejections]
    assert errors == [(2, "InvalidCiphertext")]
    if mode is Mode.SHAMIR:  # 4 of 5 uploads are still above the threshold
        assert outcome.status is RoundStatus.APPLIED
        xs = session.plaintexts[0]
        assert np.array_equal(outcome.aggregate, ring_sum([xs[p] for p in range(1, 6)]))
    else:
        assert outcome.status is RoundStatus.ABORTED
    assert InvalidCiphertext.__name__ == "InvalidCiphertext"


def test_misaddressed_share_is_refused():
    """A ciphertext for member 3 handed to member 2 does not open."""

    def swap(frame: Frame):
        msg = m.decode_message(frame.data)
        if isinstance(msg, m.ShareDelivery) and frame.recipient == 2:
            return Frame(
                0,
                2,
                dataclasses.replace(msg, ciphertexts=tuple(reversed(msg.ciphertexts))).encode(),
            )
        return frame

    session = make_session(
        ProtocolConfig(mode=Mode.EXPLICIT, rounds=1), transport=InMemoryExchange(interceptor=swap)
    )
    session.driver.init()
    session.driver.round()
    assert [(r.at, r.error) for r in session.driver.rejections] == [(2, "InvalidCiphertext")]


def test_forged_key_directory_is_refused():
    def forge(frame: Frame):
        msg = m.decode_message(frame.data)
        if isinstance(msg, m.KeyDirectory) and frame.recipient == 1:
            sigs = list(msg.signatures)
            sigs[1] = bytes(64)
            return Frame(0, 1, dataclasses.replace(msg, signatures=tuple(sigs)).encode())
        return frame

    session = make_session(
        ProtocolConfig(mode=Mode.PRG, rounds=1), transport=InMemoryExchange(interceptor=forge)
    )
    session.driver.init()
    assert [(r.at, r.error) for r in session.driver.rejections] == [(1, InvalidSignature.__name__)]
    assert session.participants[1].pair_rounds == {}


def test_server_refuses_bad_construction():
    from ssddl.protocol import UniformSubset

    cfg = ProtocolConfig(max_samples=64)
    roster = {1: b"a" * 32, 2: b"b" * 32}
    rng = UniformSubset(np.random.default_rng(0))
    with pytest.raises(ConfigurationError, match="float32"):
        from ssddl.protocol import Server

        Server(cfg, roster, np.zeros(3), selection=rng)
    with pytest.raises(Exception, match="NaN"):
        Server(cfg, roster, np.array([np.nan], dtype=np.float32), selection=rng)
    with pytest.raises(ConfigurationError, match="roster"):
        Server(cfg, {0: b"x" * 32}, np.zeros(3, dtype=np.float32), selection=rng)
