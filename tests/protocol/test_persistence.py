"""A participant (and the server) is its state bytes plus pure handlers.

Rebuilt from its bytes after every single message, a participant produces the identical
transcript in every mode; the saved state never holds a round key of a round that has ended;
state bytes decode only as what they are, with named errors for anything else.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ssddl.exceptions import MalformedMessage, SSDDLError
from ssddl.protocol import Mode, ProtocolConfig, Server, UniformSubset
from ssddl.protocol.messages import decode_message
from ssddl.protocol.state import ParticipantState, ServerState, decode_record
from ssddl.runtime import Driver, Frame, Vanish, VanishPhase
from tests.protocol.helpers import make_session
from tests.vectors import transcript


@pytest.fixture(scope="module")
def recorded():
    return json.loads(transcript.PATH.read_text())


@pytest.mark.parametrize("name", sorted(transcript.CASES))
def test_participants_rebuilt_after_every_message_give_the_recorded_transcript(name, recorded):
    assert transcript.record(name, persisted=True) == recorded[name]


@pytest.mark.parametrize(
    "mode,vanish",
    [
        (Mode.PRG, (Vanish(2, 0, VanishPhase.ROUND_START),)),
        (Mode.SHAMIR, (Vanish(5, 1, VanishPhase.AFTER_SHARE),)),
        (Mode.EXPLICIT, ()),
        (Mode.PLAIN, ()),
    ],
)
def test_persisted_and_live_sessions_agree_with_dropouts(mode, vanish):
    results = []
    for persisted in (False, True):
        session = make_session(
            ProtocolConfig(mode=mode, rounds=3), vanish=vanish, persisted=persisted, seed="p"
        )
        session.driver.init()
        outcomes = [session.driver.round() for _ in range(3)]
        session.driver.finish()
        results.append(
            (session.server.weights.tobytes(), [o.status for o in outcomes], session.plaintexts)
        )
    assert results[0][0] == results[1][0] and results[0][1] == results[1][1]


def _open_round_state(mode):
    """A persisted session stopped in the middle of round 0; the state of participant 1."""
    session = make_session(ProtocolConfig(mode=mode, rounds=2), persisted=True)
    session.driver.init()
    held = []
    session.transport.interceptor = lambda f: (held.append(f), None)[1] if f.recipient == 0 else f
    session.driver.start_round()
    session.transport.interceptor = None
    return session, held


@pytest.mark.parametrize("mode", [Mode.PRG, Mode.EXPLICIT, Mode.SHAMIR])
def test_saved_state_holds_no_round_key_once_the_round_ended(mode):
    session, held = _open_round_state(mode)
    host = session.transport.hosts[1]
    during = ParticipantState.from_bytes(host.state)
    assert during.round_keys and len(during.round_keys) == 4  # the open round needs them
    keys = set(during.round_keys)
    assert all(r == 1 for r in during.prng_rounds)  # σ_0 is already gone
    for frame in held:
        session.transport.inject(frame)
    session.driver.run()
    after = ParticipantState.from_bytes(host.state)
    assert after.round_keys == () and after.scheme_state == b""
    assert all(r == 1 for r in after.prng_rounds)
    assert not any(key in host.state for key in keys)  # no ended round's key, anywhere
    session.driver.finish()
    final = ParticipantState.from_bytes(host.state)
    assert final.prng_states == () and final.round_keys == ()


def test_state_repr_shows_no_secret():
    session, _ = _open_round_state(Mode.EXPLICIT)
    state = ParticipantState.from_bytes(session.transport.hosts[1].state)
    text = repr(state) + repr(session.participant(1))
    for secret in (*state.round_keys, *state.prng_states):
        assert secret.hex() not in text and repr(secret) not in text
    assert "bytes>" in repr(state)


class RebuildingDriver(Driver):
    """Rebuilds the server from its state bytes before every reply it feeds."""

    def __init__(self, server, exchange, roster):
        super().__init__(server, exchange)
        self.roster = roster

    def feed(self, replies):
        out = []
        for frame in replies:
            history = self.server.history
            selection = UniformSubset(np.random.default_rng(0))
            self.server = Server.restore(self.server.to_bytes(), self.roster, selection=selection)
            self.server.history = history
            out += super().feed([frame])
        return out


@pytest.mark.parametrize("name", sorted(transcript.CASES))
def test_a_server_rebuilt_before_every_message_gives_the_recorded_transcript(name, recorded):
    original = transcript.make_session

    def patched(*args, **kw):
        session = original(*args, **kw)
        session.driver = RebuildingDriver(session.server, session.transport, session.server.roster)
        return session

    transcript.make_session = patched
    try:
        assert transcript.record(name) == recorded[name]
    finally:
        transcript.make_session = original


def test_records_and_messages_are_not_interchangeable():
    session, held = _open_round_state(Mode.PRG)
    state = session.transport.hosts[1].state
    with pytest.raises(MalformedMessage, match="unknown message kind"):
        decode_message(state)
    with pytest.raises(MalformedMessage, match="not a state record"):
        decode_record(held[0].data)
    with pytest.raises(MalformedMessage, match="expected a ServerState"):
        ServerState.from_bytes(state)
    assert isinstance(decode_record(state), ParticipantState)
    assert isinstance(decode_record(session.server.to_bytes()), ServerState)


def _states():
    session, _ = _open_round_state(Mode.SHAMIR)
    return [session.transport.hosts[1].state, session.server.to_bytes()]


STATES = _states()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    which=st.sampled_from([0, 1]),
    cut=st.integers(0, 4000),
    flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), max_size=4),
)
def test_state_decoders_raise_named_errors_only(which, cut, flips):
    data = bytearray(STATES[which])
    for pos, mask in flips:
        data[pos % len(data)] ^= mask
    data = bytes(data[: len(data) - cut % len(data)] if cut else data)
    try:
        record = decode_record(data)
    except SSDDLError:
        return
    # whatever decoded is well-formed enough to be re-encoded identically
    assert record.to_bytes() == data


def test_a_participant_restored_from_bytes_refuses_a_state_of_another_kind():
    session, _ = _open_round_state(Mode.PRG)
    with pytest.raises(MalformedMessage):
        session.transport.hosts[1]._rebuild(session.server.to_bytes())
    with pytest.raises(MalformedMessage):
        session.transport.hosts[1]._rebuild(b"SSDL\x01\x80")
    frame = Frame(0, 1, b"junk")
    assert frame.data == b"junk" and "junk" not in repr(frame)


@pytest.mark.parametrize("mode", [Mode.PRG, Mode.EXPLICIT, Mode.SHAMIR])
def test_the_rounds_model_digest_lives_in_the_state_and_an_open_round_needs_it(mode):
    """A participant rebuilt from its bytes mid-round binds its shares and signature to the
    digest of the model its round started with; a state of an open round without a digest
    (an older layout, or cut) is refused, and one outside a round holds none."""
    import dataclasses

    session, _ = _open_round_state(mode)
    data = session.transport.hosts[1].state
    state = ParticipantState.from_bytes(data)
    assert state.group and state.model_digest == session.server.model_digest()
    with pytest.raises(MalformedMessage, match="model digest"):
        dataclasses.replace(state, model_digest=b"")
    with pytest.raises(MalformedMessage):  # the state as saved before the digest existed
        ParticipantState.from_bytes(data[: -(4 + 32)])
    idle = dataclasses.replace(state, group=(), model_digest=b"")
    with pytest.raises(MalformedMessage, match="model digest"):
        dataclasses.replace(idle, model_digest=state.model_digest)
