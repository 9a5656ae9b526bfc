"""A scheme with message kinds, a server stage and typed round state of its own, added from
this file alone: nothing under ``src/`` names it. ``docs/writing-a-scheme.md`` walks through
this file; every code block of that page is a piece of it (the last test checks)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from ssddl.exceptions import (
    ConfigurationError,
    MalformedMessage,
    PolicyViolation,
    UnexpectedMessage,
)
from ssddl.hazmat.codec import ring_sum
from ssddl.protocol import Mode, ProtocolConfig, RoundStatus, Server, UniformSubset
from ssddl.protocol.messages import (
    Kind,
    Message,
    Upload,
    decode_message,
    kind_of,
    message_kinds,
    register_message,
    unregister_message,
)
from ssddl.protocol.messages import MessageKind as K
from ssddl.protocol.policy import ParticipantPolicy, secure_modes
from ssddl.protocol.roles import Envelope, MemberRole, ServerRole
from ssddl.protocol.schemes import Scheme, register_scheme, scheme_names, unregister_scheme
from ssddl.protocol.schemes.base import ParticipantHandler, ServerCheck, ServerCloser
from ssddl.protocol.stages import (
    BaseServerStage,
    Control,
    ParticipantStage,
    ParticipantTable,
    ServerStage,
    ServerTable,
    Variant,
    participant_next,
    server_check,
    server_stage,
)
from ssddl.protocol.state import Record, record_kind
from ssddl.protocol.wire import ARRAY, BYTES, IDS, U64
from ssddl.runtime.inmemory import Vanish, VanishPhase
from tests.protocol.helpers import make_session

P, S = ParticipantStage, ServerStage

# -- 1. the scheme's message kinds and messages ----------------------------------------------


class RevealKind(Kind):
    """The wire codes of the scheme's own messages (free codes in 1..127)."""

    MASK_REQUEST = 120
    MASK_REVEAL = 121


def _ring_words(value: object, name: str) -> None:
    if not isinstance(value, np.ndarray) or value.ndim != 1 or value.dtype.kind != "u":
        raise MalformedMessage(f"{name} must be a 1-D vector of ring words")


@dataclass(frozen=True, eq=False)
class MaskRequest(Message):
    """Server -> contributor: the uploads are in; send the mask you added."""

    KIND = RevealKind.MASK_REQUEST
    SCHEMA = (("session_id", BYTES), ("round", U64), ("contributors", IDS))
    round: int
    contributors: tuple[int, ...]


@dataclass(frozen=True, eq=False)
class MaskReveal(Message):
    """Contributor -> server: the mask it added to its upload."""

    KIND = RevealKind.MASK_REVEAL
    SCHEMA = (("session_id", BYTES), ("round", U64), ("sender", U64), ("mask", ARRAY))
    round: int
    sender: int
    mask: np.ndarray

    def validate(self) -> None:
        _ring_words(self.mask, "mask")


# -- 2. its server stage and its typed round state -------------------------------------------


class RevealStage(BaseServerStage):
    COLLECTING_MASKS = "toy_collecting_masks"


@record_kind
@dataclass(frozen=True, repr=False)
class OwnMask(Record):
    """The member's round state between its upload and the request: its mask (a secret)."""

    KIND: ClassVar[int] = 200
    SCHEMA: ClassVar = (("mask", ARRAY),)
    mask: np.ndarray


@record_kind
@dataclass(frozen=True, repr=False)
class MaskedTotal(Record):
    """The server's round data between the two phases: the masked sum and who is in it."""

    KIND: ClassVar[int] = 201
    SCHEMA: ClassVar = (("total", ARRAY), ("contributors", IDS))
    total: np.ndarray
    contributors: tuple[int, ...]


# -- 3. the scheme ---------------------------------------------------------------------------


class RevealScheme(Scheme):
    """Toy, NOT private: each member uploads x_i + r_i, then reveals r_i, so the server can
    read every x_i. It shows the plumbing of a scheme with its own messages, stage and
    state; a real scheme's masks must cancel in the sum instead (see schemes/prg.py)."""

    name = "toy-reveal"
    needs_keys = False  # no pair keys: the announcement leads straight to READY
    min_group_floor = 2
    messages = (MaskRequest, MaskReveal)
    stages = RevealStage
    member_record = OwnMask
    server_record = MaskedTotal

    # -- the round part of both stage tables

    def participant_table(self, variant: Variant) -> ParticipantTable:
        return {
            (P.READY, K.ROUND_START): P.SHARED,
            (P.SHARED, RevealKind.MASK_REQUEST): P.UPLOADED,
            (P.SHARED, K.ROUND_END): P.READY,  # the round ended before the request
        }

    def server_table(self, variant: Variant) -> ServerTable:
        masks = RevealStage.COLLECTING_MASKS
        return {
            (S.COLLECTING_UPLOADS, K.UPLOAD): frozenset({S.COLLECTING_UPLOADS, masks, S.IDLE}),
            (S.COLLECTING_UPLOADS, Control.DEADLINE): frozenset({masks, S.IDLE}),
            (masks, RevealKind.MASK_REVEAL): frozenset({masks, S.IDLE}),
            (masks, Control.DEADLINE): frozenset({S.IDLE}),
        }

    # -- participant side

    def contribute(self, participant: MemberRole, delta: np.ndarray, count: int) -> list[Message]:
        x = participant.encode_update(delta, count)
        words = participant.random.random_bytes(x.nbytes)  # the member's cryptographic source
        mask = np.frombuffer(words, dtype=x.dtype).copy()
        participant.scheme_state = OwnMask(mask)
        masked = x + mask  # wraps mod 2^ring_bits
        return [Upload(participant.session_id, participant.round, participant.id, masked)]

    def participant_handlers(self) -> Mapping[Kind, ParticipantHandler]:
        return {RevealKind.MASK_REQUEST: self._reveal}

    def _reveal(self, participant: MemberRole, msg: MaskRequest) -> list[Message]:
        participant.check_round(msg.round)
        if participant.id not in msg.contributors:
            raise UnexpectedMessage(f"participant {participant.id} did not contribute")
        own = self.member_state(participant, OwnMask)  # typed; refuses a request out of turn
        participant.scheme_state = None
        return [MaskReveal(participant.session_id, msg.round, participant.id, own.mask)]

    # -- server side

    def server_checks(self) -> Mapping[Kind, ServerCheck]:
        return {
            K.UPLOAD: lambda server, msg: _check_words(server, msg.payload),
            RevealKind.MASK_REVEAL: lambda server, msg: _check_words(server, msg.mask),
        }

    def server_closers(self) -> Mapping[BaseServerStage, ServerCloser]:
        return {
            S.COLLECTING_UPLOADS: self._close_uploads,
            RevealStage.COLLECTING_MASKS: self._close_masks,
        }

    def _close_uploads(self, server: ServerRole) -> list[Envelope]:
        uploads = server.received(Upload)
        if len(uploads) < server.config.min_contributors:
            return server.abort(f"{len(uploads)} uploads arrived")
        contributors = tuple(uploads)
        total = ring_sum([m.payload for m in uploads.values()])
        request = MaskRequest(server.session_id, server.round, contributors)
        return server.next_phase(
            RevealStage.COLLECTING_MASKS,
            frozenset(contributors),
            [Envelope(p, request) for p in contributors],
            MaskedTotal(total, contributors),
        )

    def _close_masks(self, server: ServerRole) -> list[Envelope]:
        data = self.round_data(server, MaskedTotal)  # typed
        reveals = server.received(MaskReveal)
        if set(reveals) != set(data.contributors):
            return server.abort("a contributor's mask is missing")
        aggregate = data.total - ring_sum([m.mask for m in reveals.values()])
        return server.apply_secure(aggregate, data.contributors)


def _check_words(server: ServerRole, words: np.ndarray) -> None:
    codec = server.config.codec()
    if words.shape != (server.model_size + 1,) or words.dtype != codec.dtype:
        raise MalformedMessage(f"expected {server.model_size + 1} {codec.dtype} ring words")


# -- 4. registration and a full session ------------------------------------------------------


@pytest.fixture
def scheme():
    registered = register_scheme(RevealScheme())  # its kinds and stage come with it
    yield registered
    unregister_scheme(registered.name)  # and go with it


@pytest.mark.parametrize("persisted", [False, True], ids=["live", "persisted"])
def test_full_rounds_give_the_exact_plaintext_sum(scheme, persisted):
    session = make_session(ProtocolConfig(mode="toy-reveal", rounds=3), persisted=persisted)
    session.driver.init()
    outcomes = [session.driver.round() for _ in range(3)]
    assert session.driver.rejections == []
    for outcome in outcomes:
        assert outcome.status is RoundStatus.APPLIED
        xs = session.plaintexts[outcome.round]
        assert np.array_equal(outcome.aggregate, ring_sum([xs[p] for p in sorted(xs)]))
    # the in-memory exchange counts the scheme's own kinds by name
    kinds = {record.kind for record in session.transport.records}
    assert {RevealKind.MASK_REQUEST, RevealKind.MASK_REVEAL} <= kinds
    assert session.transport.bytes_by_kind()["mask_reveal"] > 0


@pytest.mark.parametrize("phase", list(VanishPhase))
def test_a_member_lost_in_either_phase_aborts_the_round(scheme, phase):
    # every member must contribute (the default guarantee): the uploads' deadline or the
    # masks' deadline ends the round without touching the model
    vanish = (Vanish(5, 1, phase),)
    session = make_session(ProtocolConfig(mode="toy-reveal", rounds=2), vanish=vanish)
    session.driver.init()
    assert session.driver.round().status is RoundStatus.APPLIED
    weights = session.server.weights.copy()
    outcome = session.driver.round()
    assert outcome.status is RoundStatus.ABORTED
    expected = "4 uploads arrived" if phase is VanishPhase.ROUND_START else "mask is missing"
    assert expected in outcome.reason
    assert np.array_equal(session.server.weights, weights)


def test_the_model_is_the_one_prg_makes_from_the_same_changes(scheme):
    toy = make_session(ProtocolConfig(mode="toy-reveal", rounds=2))
    reference = make_session(ProtocolConfig(mode=Mode.PRG, rounds=2))
    for session in (toy, reference):
        session.driver.init()
        for _ in range(2):
            session.driver.round()
    assert np.array_equal(toy.server.weights, reference.server.weights)


def test_a_saved_server_resumes_in_the_schemes_own_stage(scheme):
    session = make_session(ProtocolConfig(mode="toy-reveal", rounds=1))
    session.driver.init()
    server = session.server
    replies = [
        (env.recipient, reply)
        for env in server.start_round()
        for reply in session.participant(env.recipient).handle(env.message)
    ]
    requests = [out for sender, upload in replies for out in server.handle(sender, upload)]
    assert server.stage is RevealStage.COLLECTING_MASKS and len(requests) == 5

    restored = Server.restore(
        server.to_bytes(), server.roster, selection=UniformSubset(np.random.default_rng(0))
    )
    assert restored.stage is RevealStage.COLLECTING_MASKS
    assert isinstance(restored.open.data, MaskedTotal)
    for env in requests:
        for reveal in session.participant(env.recipient).handle(env.message):
            restored.handle(env.recipient, reveal)
    outcome = restored.history[-1]
    xs = session.plaintexts[0]
    assert outcome.status is RoundStatus.APPLIED
    assert np.array_equal(outcome.aggregate, ring_sum([xs[p] for p in sorted(xs)]))


def test_out_of_turn_messages_of_the_new_kinds_are_refused(scheme):
    with pytest.raises(UnexpectedMessage):
        participant_next("toy-reveal", P.READY, RevealKind.MASK_REQUEST)
    with pytest.raises(UnexpectedMessage):
        server_check("toy-reveal", S.COLLECTING_UPLOADS, RevealKind.MASK_REVEAL)
    with pytest.raises(UnexpectedMessage):
        server_check("prg", S.COLLECTING_UPLOADS, RevealKind.MASK_REVEAL)


def test_a_member_takes_part_only_where_its_policy_names_the_scheme(scheme):
    params = ProtocolConfig(mode="toy-reveal", max_samples=64).resolve(5)
    assert params.scheme is scheme  # resolved once, with the parameters
    assert ParticipantPolicy().modes == secure_modes() == ("prg", "explicit", "shamir")
    with pytest.raises(PolicyViolation, match="accepts only 'prg', 'explicit', 'shamir'"):
        ParticipantPolicy().check_session(params)
    ParticipantPolicy(modes=("toy-reveal",)).check_session(params)


# -- 5. the registry: round trips, clashes, unknown kinds ------------------------------------

SESSION = bytes(range(16))


def test_the_new_kinds_round_trip_through_the_wire_format(scheme):
    messages = [
        MaskRequest(SESSION, 3, (1, 2, 4)),
        MaskReveal(SESSION, 3, 2, np.arange(7, dtype=np.uint64)),
    ]
    for message in messages:
        frame = message.encode()
        assert frame[5] == message.KIND == kind_of(frame[5])
        decoded = decode_message(frame)
        assert type(decoded) is type(message) and decoded == message
        assert decoded.encode() == frame
    assert repr(messages[1]).startswith("<mask_reveal round=3 sender=2")
    assert "arange" not in repr(messages[1]) and "0, 1, 2" not in repr(messages[1])
    assert server_stage("toy_collecting_masks") is RevealStage.COLLECTING_MASKS
    assert {RevealKind.MASK_REQUEST, RevealKind.MASK_REVEAL, K.UPLOAD} <= set(message_kinds())
    with pytest.raises(MalformedMessage, match="ring words"):
        MaskReveal(SESSION, 3, 2, np.zeros(3, dtype=np.float32))


def test_a_kind_code_or_name_that_is_taken_is_refused(scheme):
    class Clash(Kind):
        ON_UPLOAD = int(K.UPLOAD)
        ON_REVEAL = int(RevealKind.MASK_REVEAL)

    def message(kind: Kind) -> type[Message]:
        return dataclass(frozen=True, eq=False)(
            type("Other", (Message,), {"KIND": kind, "SCHEMA": (("session_id", BYTES),)})
        )

    with pytest.raises(ConfigurationError, match=r"code 7 .* is taken by Upload"):
        register_message(message(Clash.ON_UPLOAD))
    with pytest.raises(ConfigurationError, match=r"code 121 .* is taken by MaskReveal"):
        register_message(message(Clash.ON_REVEAL))

    class Renamed(Kind):
        MASK_REVEAL = 122

    with pytest.raises(ConfigurationError, match="name 'mask_reveal' is taken"):
        register_message(message(Renamed.MASK_REVEAL))
    with pytest.raises(ConfigurationError, match="built-in message kind 'upload'"):
        unregister_message(Upload)


def test_a_scheme_whose_kind_clashes_is_refused_whole(scheme):
    class Copycat(RevealScheme):
        name = "toy-copycat"

    with pytest.raises(ConfigurationError, match="MaskRequest is registered already"):
        register_scheme(Copycat())

    class Late(Kind):
        LATE = int(RevealKind.MASK_REQUEST)

    @dataclass(frozen=True, eq=False)
    class LateMessage(Message):
        KIND = Late.LATE
        SCHEMA = (("session_id", BYTES),)

    class Stranger(RevealScheme):
        name = "toy-stranger"
        messages = (LateMessage,)

    with pytest.raises(ConfigurationError, match=r"code 120 .* is taken by MaskRequest"):
        register_scheme(Stranger())
    assert "toy-copycat" not in scheme_names() and "toy-stranger" not in scheme_names()
    with pytest.raises(ConfigurationError, match="'toy-reveal' is already registered"):
        register_scheme(RevealScheme())


def test_a_stage_value_that_is_taken_is_refused(scheme):
    class Twin(BaseServerStage):
        IDLE = "idle"

    class Other(RevealScheme):
        name = "toy-twin"
        messages = ()
        stages = Twin

    with pytest.raises(ConfigurationError, match=r"'idle' .* is taken by ServerStage\.IDLE"):
        register_scheme(Other())
    assert "toy-twin" not in scheme_names()

    class Borrower(RevealScheme):
        name = "toy-borrower"
        messages = ()

    with pytest.raises(ConfigurationError, match=r"'toy_collecting_masks' .* by RevealStage"):
        register_scheme(Borrower())  # another scheme's stages are that scheme's
    assert server_stage("toy_collecting_masks") is RevealStage.COLLECTING_MASKS  # still there
    assert register_scheme(scheme) is scheme  # the same object again: nothing changes
    assert kind_of(int(RevealKind.MASK_REVEAL)) is RevealKind.MASK_REVEAL


def test_an_unregistered_kind_is_refused_by_the_decoder():
    class Unknown(Kind):
        NEVER_REGISTERED = 123

    @dataclass(frozen=True, eq=False)
    class Stray(Message):
        KIND = Unknown.NEVER_REGISTERED
        SCHEMA = (("session_id", BYTES),)

    with pytest.raises(MalformedMessage, match="unknown message kind 123"):
        decode_message(Stray(SESSION).encode())
    # a scheme's kinds are refused again once it is gone
    frame = MaskRequest(SESSION, 0, (1,)).encode()
    scheme = register_scheme(RevealScheme())
    try:
        assert decode_message(frame) == MaskRequest(SESSION, 0, (1,))
    finally:
        unregister_scheme(scheme.name)
    with pytest.raises(MalformedMessage, match="unknown message kind 120"):
        decode_message(frame)
    assert RevealKind.MASK_REQUEST not in message_kinds()
    with pytest.raises(MalformedMessage, match="unknown server stage"):
        server_stage("toy_collecting_masks")


# -- 6. the page that walks through this file ------------------------------------------------


def test_every_code_block_of_the_guide_is_in_this_file():
    root = Path(__file__).resolve().parents[2]
    page = (root / "docs" / "writing-a-scheme.md").read_text()
    source = Path(__file__).read_text()
    blocks = re.findall(r"```python\n(.*?)```", page, flags=re.S)
    assert len(blocks) >= 5
    for block in blocks:
        assert block.strip() in source, f"docs/writing-a-scheme.md block not in the test:\n{block}"
