"""The combined mask built off the critical path equals the streams applied one by one, on
every :class:`~ssddl.protocol.ports.MaskBuilder` (in the caller, and the engines of
``ssddl.runtime.masking``), and a mask built ahead of its round changes no byte sent."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from ssddl.exceptions import ConfigurationError, ShareError
from ssddl.hazmat.codec import FixedPoint, encode
from ssddl.hazmat.prg import (
    StreamCipher,
    accumulate_keystream,
    derive_nonce,
    keystream_into,
    keystream_words,
)
from ssddl.protocol.masks import combined_mask, pair_streams
from ssddl.protocol.participant import Participant
from ssddl.protocol.ports import InlineMaskBuilder
from ssddl.runtime.masking import MaskEngine

KEY = hashlib.sha256(b"k").digest()
NONCE = derive_nonce(b"s", 0, 1, 2, "mask")


@pytest.fixture(params=["inline", "thread", "process"])
def builder(request):
    """Each mask builder: in the caller, or an engine (closed after the test)."""
    if request.param == "inline":
        yield InlineMaskBuilder()
        return
    with MaskEngine(request.param) as engine:
        yield engine


@pytest.mark.parametrize("cipher", list(StreamCipher))
@pytest.mark.parametrize("bits", [32, 64])
@pytest.mark.parametrize("size", [0, 1, 17, 1000, 70_001])
@pytest.mark.parametrize("workers", [1, 3])
def test_keystream_into_equals_keystream_words(cipher, bits, size, workers):
    dtype = np.uint32 if bits == 32 else np.uint64
    out = np.full(size, 7, dtype=dtype)
    keystream_into(out, KEY, NONCE, cipher=cipher, workers=workers, chunk_words=4096)
    assert np.array_equal(out, keystream_words(KEY, NONCE, size, bits, cipher=cipher))


def test_keystream_into_refuses_bad_output():
    with pytest.raises(ShareError, match="out must have dtype"):
        keystream_into(np.zeros(4, dtype=np.int32), KEY, NONCE)
    with pytest.raises(ShareError, match="contiguous"):
        keystream_into(np.zeros(8, dtype=np.uint32)[::2], KEY, NONCE)


@pytest.mark.parametrize("signs", [(1, -1, 1), (-1, -1), (-1, 1), (1,), ()])
@pytest.mark.parametrize("size", [1, 999, 3 << 19])
def test_combined_mask_equals_streams_applied_in_turn(signs, size):
    streams = [
        (hashlib.sha256(bytes([i])).digest(), derive_nonce(b"s", 3, i, 9, "mask"), sign)
        for i, sign in enumerate(signs)
    ]
    expected = np.zeros(size, dtype=np.uint32)
    for key, nonce, sign in streams:
        accumulate_keystream(expected, key, nonce, sign=sign)
    mask = combined_mask(size, np.dtype(np.uint32), streams, StreamCipher.AES_CTR)
    assert np.array_equal(mask, expected)


@pytest.mark.parametrize("workers", [1, 2, 3, None])
@pytest.mark.parametrize("signs", [(-1, 1, -1), (-1,), ()])
def test_combine_keystreams_is_the_same_for_any_number_of_workers(workers, signs):
    from ssddl.hazmat.prg import combine_keystreams

    streams = [(hashlib.sha256(bytes([i])).digest(), NONCE, sign) for i, sign in enumerate(signs)]
    expected = np.zeros(70_001, dtype=np.uint64)
    for key, nonce, sign in streams:
        accumulate_keystream(expected, key, nonce, sign=sign)
    out = np.full(70_001, 5, dtype=np.uint64)
    combine_keystreams(out, streams, workers=workers, chunk_words=4096)
    assert np.array_equal(out, expected)
    with pytest.raises(ConfigurationError, match="sign"):
        combine_keystreams(out, [(KEY, NONCE, 2)])


def test_pending_mask_is_used_once_and_shows_no_secret(builder):
    keys = {2: KEY, 5: hashlib.sha256(b"other").digest()}
    streams = pair_streams(keys, owner=3, session_id=b"s", round_number=4)
    assert [sign for _, _, sign in streams] == [-1, 1]
    pending = builder.start(100, np.dtype(np.uint32), streams, StreamCipher.AES_CTR, seed=b"x" * 32)
    assert "x" not in repr(pending) and KEY.hex() not in repr(pending)
    assert KEY.hex()[:8] not in repr(builder)
    vector = np.arange(100, dtype=np.uint32)
    expected = vector.copy()
    for key, nonce, sign in streams:
        accumulate_keystream(expected, key, nonce, sign=sign)
    pending.add_to(vector)
    assert np.array_equal(vector, expected)
    with pytest.raises(ShareError, match="already used"):
        pending.add_to(vector)
    with pytest.raises(ShareError, match="another round"):
        builder.start(10, np.dtype(np.uint32), streams, StreamCipher.AES_CTR).add_to(vector)


def test_discarded_mask_forgets_its_seed(builder):
    pending = builder.start(10, np.dtype(np.uint32), [], StreamCipher.AES_CTR, seed=b"y" * 32)
    pending.discard()
    assert pending.seed is None
    with pytest.raises(ShareError):
        pending.add_to(np.zeros(10, dtype=np.uint32))


@pytest.mark.parametrize("stochastic", [False, True])
def test_encode_with_scratch_equals_encode_without(stochastic):
    codec = FixedPoint(32, 16, 2.0)
    values = np.random.default_rng(1).standard_normal(513) * 3
    plain = encode(values, codec, rng=np.random.default_rng(2) if stochastic else None)
    scratch = values.copy()
    into = encode(
        scratch, codec, rng=np.random.default_rng(2) if stochastic else None, scratch=scratch
    )
    assert np.array_equal(plain, into)
    with pytest.raises(ShareError, match="scratch must be"):
        encode(values, codec, scratch=np.zeros(513, dtype=np.float32))


@pytest.mark.parametrize(("n", "t"), [(2, 1), (2, 2), (5, 3), (40, 21)])
def test_split_seed_equals_shamir_split_from_the_same_draws(n, t):
    from ssddl.hazmat.sharing import shamir_reconstruct, shamir_split
    from ssddl.protocol.schemes.prg import seed_to_field, split_seed
    from tests.protocol.helpers import seeded

    seed = hashlib.sha256(b"seed").digest()
    points = list(range(3, 3 + 2 * n, 2))
    fast = split_seed(seed, threshold=t, points=points, source=seeded("a"))
    reference = shamir_split(seed_to_field(seed), threshold=t, points=points, source=seeded("a"))
    assert all(np.array_equal(a, b) for a, b in zip(fast, reference, strict=True))
    back = shamir_reconstruct(fast[-t:], points[-t:], threshold=t)
    assert np.array_equal(back, seed_to_field(seed))


def _applied(vector: np.ndarray, streams) -> np.ndarray:
    out = vector.copy()
    for key, nonce, sign in streams:
        accumulate_keystream(out, key, nonce, sign=sign)
    return out


def test_the_inline_builder_never_builds_ahead_and_draws_nothing():
    def streams():
        raise AssertionError("a builder that does not build ahead must not draw")

    assert (
        InlineMaskBuilder().start_ahead(10, np.dtype(np.uint32), StreamCipher.AES_CTR, streams)
        is None
    )


@pytest.mark.parametrize("worker", ["thread", "process"])
def test_masks_built_ahead_stay_within_their_memory_budget(worker):
    engine = MaskEngine(worker, ahead_budget=4000)
    budget = engine.ahead
    start_mask_ahead = engine.start_ahead
    words, aes = np.dtype(np.uint32), StreamCipher.AES_CTR
    drawn = []

    def streams():
        drawn.append(1)
        return [(KEY, NONCE, 1)], (b"s" * 32, None)

    first = start_mask_ahead(1000, words, aes, streams)  # 4000 bytes: all of it
    assert first is not None and first.seed == b"s" * 32 and budget.used == 4000
    assert start_mask_ahead(1, words, aes, streams) is None  # spent: nothing drawn or built
    assert drawn == [1]
    first.discard()
    assert budget.used == 0
    again = start_mask_ahead(1000, words, aes, streams)
    assert again is not None
    vector = np.zeros(1000, dtype=np.uint32)
    again.add_to(vector)
    assert budget.used == 0
    assert np.array_equal(vector, keystream_words(KEY, NONCE, 1000, 32))
    engine.close()


def _frames(
    config,
    *,
    premask: bool,
    first_round: int = 0,
    rounds: int = 3,
    faults=(),
    early: bool = True,
    worker: str = "thread",
    refuse: tuple[int, int] | None = None,
):
    """The frames of a session of 5 members. ``early``: seed-share randomness drawn with
    the seed (else at the share step); ``worker``: where masks and seed shares are built
    (``inline``: in the caller; else a :class:`MaskEngine`); ``refuse``: (member, round)
    whose update is not finite, so refused."""
    if worker == "inline":
        return _session_frames(config, premask, first_round, rounds, faults, early, refuse, None)
    with MaskEngine(worker) as engine:  # type: ignore[arg-type]
        return _session_frames(config, premask, first_round, rounds, faults, early, refuse, engine)


def _session_frames(config, premask, first_round, rounds, faults, early, refuse, masks):
    from ssddl.runtime import InMemoryExchange
    from tests.protocol.helpers import make_session

    sent: list[bytes] = []
    transport = InMemoryExchange(interceptor=lambda f: sent.append(f.data) or f, faults=faults)
    session = make_session(config, n=5, size=70_001, transport=transport, masks=masks)
    for participant in session.participants.values():
        participant._premask = premask
        if not early:  # as if encoding drew from the member's source: nothing drawn early
            participant.__class__ = _DrawsLate
    if refuse is not None:
        member = session.participants[refuse[0]]
        member._trainer = _refusing(member._trainer, refuse[1])
    return _run_frames(session, sent, rounds, first_round)


def _refusing(trainer, bad_round):
    def train(weights, round_number):
        update = trainer(weights, round_number)
        if round_number == bad_round:
            update.delta[0] = np.nan
        return update

    return train


class _DrawsLate(Participant):
    encoding_draws = True  # type: ignore[assignment]


def _run_frames(session, sent, rounds, first_round):
    from tests.protocol.helpers import ring_sum

    session.driver.init()
    session.server.round = first_round - 1
    ahead = []
    for _ in range(rounds):
        ahead.append(
            {p: q.in_flight.ahead and q.in_flight.ahead[0] for p, q in session.participants.items()}
        )
        outcome = session.driver.round()
        xs = session.plaintexts[outcome.round]
        assert np.array_equal(outcome.aggregate, ring_sum([xs[p] for p in outcome.contributors]))
        assert len(outcome.contributors) >= 3
    session.driver.finish()
    assert all(q.in_flight.ahead is None for q in session.participants.values())
    return sent, ahead


@pytest.mark.parametrize("worker", ["thread", "process"])
@pytest.mark.parametrize("recovery", ["double-mask", "none"])
def test_pair_masks_built_ahead_give_the_same_bytes_on_the_wire(recovery, worker):
    from ssddl.protocol import ProtocolConfig

    config = ProtocolConfig(rounds=3, recovery=recovery)
    built_ahead, ahead = _frames(config, premask=True, worker=worker)
    if recovery == "none":  # pair masks bound to the round's model: built at its start
        assert ahead == [{p: None for p in range(1, 6)}] * 3
    else:
        assert ahead == [{p: r for p in range(1, 6)} for r in range(3)]  # built, for that round
    in_round, none = _frames(config, premask=False, worker=worker)
    assert none == [{p: None for p in range(1, 6)}] * 3
    assert built_ahead == in_round
    # the default builder, in the caller, never builds ahead and sends the same bytes
    inline, none = _frames(config, premask=True, worker="inline")
    assert none == [{p: None for p in range(1, 6)}] * 3
    assert inline == in_round
    # seed shares split and sealed at the share step, their randomness drawn there
    at_share_step, _ = _frames(config, premask=False, early=False)
    assert at_share_step == in_round


@pytest.mark.parametrize("worker", ["thread", "process"])
@pytest.mark.parametrize("premask", [True, False])
def test_a_refused_update_gives_back_the_randomness_drawn_for_its_seed_shares(premask, worker):
    """Member 2's update of round 1 is not finite and is refused: its seed was drawn (as
    without early draws), the randomness drawn early for the seed's shares goes back, so
    every later byte is what a member that draws at the share step sends."""
    from ssddl.protocol import ProtocolConfig

    config = ProtocolConfig(rounds=4)
    refused = (2, 1)
    early, _ = _frames(config, premask=premask, rounds=4, worker=worker, refuse=refused)
    late, _ = _frames(config, premask=False, rounds=4, early=False, refuse=refused)
    assert early == late
    # and member 2 did not upload in round 1 (its frames are the refusal's only trace)
    normal, _ = _frames(config, premask=False, rounds=4)
    assert len(normal) > len(early)


def test_pair_masks_built_for_another_round_or_group_are_dropped():
    from ssddl.protocol import ProtocolConfig

    # the session resumes at round 2: the masks built ahead for round 0 are not used
    _, ahead = _frames(ProtocolConfig(rounds=5), premask=True, first_round=2)
    assert ahead == [{p: r for p in range(1, 6)} for r in (0, 3, 4)]
    # groups smaller than the registered set are not known ahead: nothing is built
    _, ahead = _frames(ProtocolConfig(rounds=3, group_size=4), premask=True)
    assert ahead == [{p: None for p in range(1, 6)}] * 3


def test_a_seed_drawn_ahead_for_a_lost_round_start_goes_to_the_next_round():
    """Seeds are drawn in the same order with or without building ahead: a member whose
    round start was lost sends the same bytes afterwards as one that never built ahead."""
    from ssddl.protocol import ProtocolConfig
    from ssddl.protocol.messages import MessageKind
    from ssddl.runtime.inmemory import Drop

    lost = (Drop(2, 1, MessageKind.ROUND_START, upward=False),)
    config = ProtocolConfig(rounds=4)
    built_ahead, _ = _frames(config, premask=True, rounds=4, faults=lost)
    in_round, _ = _frames(config, premask=False, rounds=4, faults=lost)
    assert built_ahead == in_round
    in_process, _ = _frames(config, premask=True, rounds=4, faults=lost, worker="process")
    assert in_process == in_round


@pytest.mark.parametrize("clip", [2.0, 0.1, 3.3])
@pytest.mark.parametrize("weight", [1.0, 0.75, 3 / 64, 1 / 3, 2.0**-30])
@pytest.mark.parametrize("stochastic", [False, True])
def test_encode_with_a_weight_equals_encoding_the_weighted_values(clip, weight, stochastic):
    codec = FixedPoint(32, 16, clip)
    rng = np.random.default_rng(3)
    values = np.concatenate(
        [rng.standard_normal(1000) * 5, [clip, -clip, clip / weight, 1e300, -1e300, 0.0, 5e-324]]
    )

    def rounding():
        return np.random.default_rng(4) if stochastic else None

    expected = encode(values * weight, codec, rng=rounding())
    scratch = values.copy()
    got = encode(scratch, codec, rng=rounding(), scratch=scratch, weight=weight)
    assert np.array_equal(got, expected)
    for bad in (0.0, 1.5, -0.5, True, "1"):
        with pytest.raises(ConfigurationError, match="weight"):
            encode(values, codec, weight=bad)


def test_seed_shares_are_parsed_and_checked_together():
    from ssddl.exceptions import MalformedMessage
    from ssddl.hazmat.sharing import SHAMIR_PRIME
    from ssddl.protocol.schemes.prg import _shares_from_bytes

    good = [np.arange(5, dtype="<u8").tobytes(), np.full(5, SHAMIR_PRIME - 1, "<u8").tobytes()]
    rows = _shares_from_bytes(good, [4, 7])
    assert rows.dtype == np.uint64 and rows.tolist() == [[0, 1, 2, 3, 4], [SHAMIR_PRIME - 1] * 5]
    assert _shares_from_bytes([], []).shape == (0, 5)
    outside = np.array([0, 0, SHAMIR_PRIME, 0, 0], dtype="<u8").tobytes()
    with pytest.raises(MalformedMessage, match="participant 9 is not in the field"):
        _shares_from_bytes([*good, outside, outside], [4, 7, 9, 2])
    with pytest.raises(MalformedMessage, match="participant 7 is not 40 bytes"):
        _shares_from_bytes([good[0], good[1][:-1]], [4, 7])


def test_the_next_rounds_mask_starts_once_the_upload_is_out():
    """The worker builds round r + 1's mask while round r's uploads, unmasking and end go
    by: when the server asks a member to unmask round r, that member's mask of r + 1 (and
    its seed shares) are already started."""
    from ssddl.protocol import ProtocolConfig
    from ssddl.runtime import InMemoryExchange
    from ssddl.runtime.exchange import frame_kind
    from tests.protocol.helpers import make_session

    seen: list[tuple[int, int | None, bool]] = []
    holder: dict = {}

    def look(frame):
        if frame_kind(frame.data) == "unmask_request":
            member = holder["session"].participants[frame.recipient]
            ahead = member.in_flight.ahead
            shares = ahead is not None and ahead[1].shares is not None
            seen.append((member.round, ahead and ahead[0], shares))
        return frame

    with MaskEngine("thread") as engine:
        session = make_session(
            ProtocolConfig(rounds=3),
            n=4,
            transport=InMemoryExchange(interceptor=look),
            masks=engine,
        )
        holder["session"] = session
        session.driver.init()
        for _ in range(3):
            session.driver.round()
        session.driver.finish()
    # rounds 0 and 1: the next round's mask and shares started; the last round: none after
    assert seen == [(0, 1, True)] * 4 + [(1, 2, True)] * 4 + [(2, None, False)] * 4


def test_a_next_round_mask_that_cannot_start_early_costs_no_upload(caplog):
    """The random source fails once, when member 2 starts round 1's mask after its round-0
    upload: the upload still goes out (a warning names the member, no secret), and round 1's
    mask starts when round 0 ends."""
    import logging

    from ssddl.exceptions import ConfigurationError
    from ssddl.protocol import ProtocolConfig
    from ssddl.protocol.messages import RoundStatus
    from tests.protocol.helpers import make_session

    engine = MaskEngine("thread")
    session = make_session(ProtocolConfig(rounds=2), n=4, masks=engine)
    member = session.participants[2]
    source = member.random.source
    armed = {"draws": 0}

    class Failing:
        def random_bytes(self, n):
            if armed["draws"]:
                armed["draws"] -= 1
                raise ConfigurationError("the operating system's randomness is unavailable")
            return source.random_bytes(n)

    member.random.source = Failing()
    trainer = member._trainer

    def train(weights, round_number):
        armed["draws"] = 1 if round_number == 0 else 0  # the next draw: round 1's seed
        return trainer(weights, round_number)

    member._trainer = train
    session.driver.init()
    with caplog.at_level(logging.WARNING, logger="ssddl.protocol.participant"):
        first = session.driver.round()
    assert 2 in first.contributors and first.status is RoundStatus.APPLIED
    assert "participant 2 could not start round 1's mask early (ConfigurationError)" in caplog.text
    assert (
        member.in_flight.ahead is not None and member.in_flight.ahead[0] == 1
    )  # started at the round's end
    second = session.driver.round()
    assert 2 in second.contributors and second.status is RoundStatus.APPLIED
    session.driver.finish()
    engine.close()
