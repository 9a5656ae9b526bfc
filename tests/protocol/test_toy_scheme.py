"""A new sharing mode is a module of its own: this file adds one, without touching
``participant.py`` or ``server.py``, and runs it end to end."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pytest

from ssddl.exceptions import ConfigurationError, UnexpectedMessage
from ssddl.hazmat.codec import ring_sum
from ssddl.protocol import Mode, ProtocolConfig, RoundStatus, Scheme, register_scheme
from ssddl.protocol.messages import MessageKind as K
from ssddl.protocol.messages import Upload
from ssddl.protocol.schemes import get_scheme, scheme_names, unregister_scheme
from ssddl.protocol.stages import (
    Control,
    ParticipantStage,
    ServerStage,
    participant_next,
    participant_transitions,
    server_check,
    server_transitions,
)
from tests.protocol.helpers import make_session

P, S = ParticipantStage, ServerStage


class OffsetScheme(Scheme):
    """Toy (not private!): every member adds the same public offset word-wise and the
    server subtracts n offsets. Enough to show the plumbing: keys, encode, upload, decode."""

    name = "toy-offset"
    min_group_floor = 2
    OFFSET = 0x5A5A5A5A

    def participant_table(self, variant):
        return {(P.READY, K.ROUND_START): P.UPLOADED}

    def server_table(self, variant):
        return {
            (S.COLLECTING_UPLOADS, K.UPLOAD): frozenset({S.COLLECTING_UPLOADS, S.IDLE}),
            (S.COLLECTING_UPLOADS, Control.DEADLINE): frozenset({S.IDLE}),
        }

    def contribute(self, participant, delta, count):
        x = participant.encode_update(delta, count)
        x += x.dtype.type(self.OFFSET)
        return [Upload(participant.session_id, participant.round, participant.id, x)]

    def server_checks(self) -> Mapping:
        return {K.UPLOAD: lambda server, msg: None}

    def server_closers(self) -> Mapping:
        return {S.COLLECTING_UPLOADS: self._close}

    def _close(self, server):
        uploads = server.received(Upload)
        if len(uploads) < server.config.min_group_size:
            return server.abort("too few uploads")
        total = ring_sum([m.payload for m in uploads.values()])
        total -= total.dtype.type((self.OFFSET * len(uploads)) % (1 << server.config.ring_bits))
        return server.apply_secure(total, tuple(uploads))


@pytest.fixture
def toy():
    scheme = register_scheme(OffsetScheme())
    yield scheme
    unregister_scheme(scheme.name)


def test_a_toy_scheme_runs_end_to_end_from_this_file_alone(toy):
    assert "toy-offset" in scheme_names() and get_scheme("toy-offset") is toy
    session = make_session(ProtocolConfig(mode="toy-offset", rounds=2), persisted=True)
    session.driver.init()
    outcomes = [session.driver.round() for _ in range(2)]
    assert session.driver.rejections == []
    reference = make_session(ProtocolConfig(mode=Mode.PRG, rounds=2))
    reference.driver.init()
    for _ in range(2):
        reference.driver.round()
    for outcome in outcomes:
        assert outcome.status is RoundStatus.APPLIED
        xs = session.plaintexts[outcome.round]
        assert np.array_equal(outcome.aggregate, ring_sum([xs[p] for p in sorted(xs)]))
    # the same encoded changes as prg: the same model, bit for bit
    assert np.array_equal(session.server.weights, reference.server.weights)


def test_the_toy_scheme_has_a_full_transition_matrix(toy):
    table = participant_transitions("toy-offset")
    assert table[(P.CREATED, K.SESSION_ANNOUNCE)] is P.KEYED  # it needs keys by default
    for stage in ParticipantStage:
        for kind in K:
            if (stage, kind) in table:
                assert participant_next("toy-offset", stage, kind) is table[(stage, kind)]
            else:
                with pytest.raises(UnexpectedMessage):
                    participant_next("toy-offset", stage, kind)
    server = server_transitions("toy-offset")
    assert server[(S.IDLE, Control.START_ROUND)] == {S.COLLECTING_UPLOADS}
    for stage in ServerStage:
        for event in (*K, *Control):
            if (stage, event) not in server:
                with pytest.raises(UnexpectedMessage):
                    server_check("toy-offset", stage, event)


def test_registry_refuses_clashes_and_unknown_modes(toy):
    with pytest.raises(ConfigurationError, match="already registered"):
        register_scheme(OffsetScheme())
    with pytest.raises(ConfigurationError, match="built-in"):
        unregister_scheme("prg")
    with pytest.raises(ConfigurationError, match="'toy-offset'"):
        ProtocolConfig(mode="nope")  # the error lists every registered mode
    with pytest.raises(ConfigurationError, match="threshold is only used in mode 'shamir'"):
        ProtocolConfig(mode="toy-offset", threshold=2)
    with pytest.raises(ConfigurationError, match="Scheme instance"):
        register_scheme(object())  # type: ignore[arg-type]


def test_an_unregistered_mode_is_refused_once_removed():
    register_scheme(OffsetScheme())
    unregister_scheme("toy-offset")
    with pytest.raises(ConfigurationError, match="is not one of"):
        ProtocolConfig(mode="toy-offset")
