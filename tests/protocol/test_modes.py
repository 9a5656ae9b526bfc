"""One behavioural suite over every sharing mode (STYLE.md §12)."""

from __future__ import annotations

import numpy as np
import pytest

from ssddl.hazmat.codec import decode
from ssddl.protocol import Mode, ProtocolConfig, RoundStatus
from ssddl.protocol.messages import MessageKind
from ssddl.protocol.stages import ParticipantStage
from ssddl.runtime import Vanish, VanishPhase
from tests.protocol.helpers import make_session, ring_sum, synthetic_delta

SECURE = [Mode.PRG, Mode.EXPLICIT, Mode.SHAMIR]
ALL = [*SECURE, Mode.PLAIN]


def run(config: ProtocolConfig, rounds: int = 2, **kw):
    session = make_session(config, **kw)
    session.driver.init()
    outcomes = [session.driver.round() for _ in range(rounds)]
    if not kw.get("vanish") and not kw.get("bad"):
        assert session.driver.rejections == []
    return session, outcomes


@pytest.mark.parametrize("mode", SECURE)
@pytest.mark.parametrize("ring_bits", [32, 64])
def test_aggregate_equals_plaintext_sum_bit_for_bit(mode, ring_bits):
    session, outcomes = run(ProtocolConfig(mode=mode, ring_bits=ring_bits, rounds=2))
    for outcome in outcomes:
        assert outcome.status is RoundStatus.APPLIED
        xs = session.plaintexts[outcome.round]
        assert sorted(xs) == list(outcome.contributors) == [1, 2, 3, 4, 5]
        expected = ring_sum([xs[p] for p in outcome.contributors])
        assert outcome.aggregate.dtype == expected.dtype
        assert np.array_equal(outcome.aggregate, expected)
        assert outcome.total_samples == sum(session.samples.values())


@pytest.mark.parametrize("mode", SECURE)
@pytest.mark.parametrize("weighted", [True, False])
def test_secure_model_matches_plain_within_decoding_bound(mode, weighted):
    cfg = ProtocolConfig(mode=mode, rounds=3, weighted=weighted, max_samples=64)
    secure, _ = run(cfg, rounds=3)
    plain, _ = run(
        ProtocolConfig(mode=Mode.PLAIN, rounds=3, weighted=weighted, max_samples=64), rounds=3
    )
    resolved = secure.server.config
    n = resolved.group_size
    scale = (resolved.max_samples / sum(secure.samples.values())) if weighted else 1.0 / n
    bound_per_round = resolved.codec().decode_error_bound(n, stochastic=False) * scale
    diff = np.abs(secure.server.weights.astype(np.float64) - plain.server.weights)
    # three rounds of decoding error, plus float32 rounding of the weights
    assert diff.max() <= 3 * bound_per_round + 3 * np.finfo(np.float32).eps * 4
    assert diff.max() > 0 or resolved.frac_bits >= 24


@pytest.mark.parametrize("mode", ALL)
def test_update_is_the_weighted_mean(mode):
    session, outcomes = run(ProtocolConfig(mode=mode, rounds=1), rounds=1)
    deltas = {p: np.clip(synthetic_delta(p, 0, 37), -4, 4).astype(np.float64) for p in range(1, 6)}
    total = sum(session.samples.values())
    expected = sum(session.samples[p] * deltas[p] for p in deltas) / total
    assert np.allclose(session.server.weights, expected, atol=1e-5)
    assert outcomes[0].total_samples == total


def test_prg_upload_is_one_ring_vector_no_larger_than_plain():
    size = 20_000
    prg, _ = run(ProtocolConfig(mode=Mode.PRG, rounds=1), rounds=1, size=size)
    plain, _ = run(ProtocolConfig(mode=Mode.PLAIN, rounds=1), rounds=1, size=size)
    up = prg.transport.bytes_by_participant(0)
    up_plain = plain.transport.bytes_by_participant(0)
    uploads = [r for r in prg.transport.records if r.kind is MessageKind.MASKED_UPLOAD]
    assert len(uploads) == 5  # exactly one upload per participant per round
    for p in range(1, 6):
        assert up[p]["up"] <= 1.01 * up_plain[p]["up"]
        assert up[p]["up"] >= 4 * (size + 1)  # one uint32 word per parameter, plus the count


@pytest.mark.parametrize("mode", [Mode.EXPLICIT, Mode.SHAMIR])
def test_relayed_modes_report_their_share_traffic(mode):
    size = 1000
    session, _ = run(ProtocolConfig(mode=mode, rounds=1), rounds=1, size=size)
    kinds = session.transport.bytes_by_kind(0)
    word = 8 if mode is Mode.SHAMIR else 4
    # each of 5 members sends 4 encrypted share vectors and receives 4
    assert kinds["share_bundle"] >= 5 * 4 * word * (size + 1)
    assert kinds["share_delivery"] >= 5 * 4 * word * (size + 1)
    up = session.transport.bytes_by_participant(0)
    assert all(v["up"] > 4 * word * (size + 1) for v in up.values())


@pytest.mark.parametrize("mode", ALL)
def test_non_finite_update_is_refused_before_sending(mode):
    session, outcomes = run(ProtocolConfig(mode=mode, rounds=2), rounds=2, bad={2: "nan"})
    refused = [r for r in session.driver.rejections if r.at == 2]
    assert refused and all(r.error == "NonFiniteError" for r in refused)
    assert not any(r.sender == 2 and r.at == 0 for r in session.driver.rejections)
    sent_by_2 = [r for r in session.transport.records if r.sender == 2 and r.round >= 0]
    assert all(
        r.kind is not MessageKind.UPLOAD and r.kind is not MessageKind.PLAIN_UPLOAD
        for r in sent_by_2
    )
    assert np.isfinite(session.server.weights).all()
    if mode is Mode.EXPLICIT:
        # explicit needs every member: the round ends without touching the model
        assert [o.status for o in outcomes] == [RoundStatus.ABORTED] * 2
    else:
        assert all(o.status is RoundStatus.APPLIED for o in outcomes)
        assert all(2 not in o.contributors for o in outcomes)
        for o in outcomes:
            assert o.contributors == (1, 3, 4, 5)
            if mode is not Mode.PLAIN:
                xs = session.plaintexts[o.round]
                assert 2 not in xs
                assert np.array_equal(o.aggregate, ring_sum([xs[p] for p in o.contributors]))


def test_prg_unsafe_recovery_reveals_round_keys_only():
    session, outcomes = run(
        ProtocolConfig(mode=Mode.PRG, rounds=2, recovery="unsafe-reveal-keys"),
        rounds=2,
        vanish=(Vanish(4, 0, VanishPhase.ROUND_START),),
    )
    first = outcomes[0]
    assert first.status is RoundStatus.APPLIED
    assert first.contributors == (1, 2, 3, 5) and first.dropped == (4,)
    xs = session.plaintexts[0]
    assert np.array_equal(first.aggregate, ring_sum([xs[p] for p in first.contributors]))
    reveals = [
        r
        for r in session.transport.records
        if r.kind is MessageKind.REVEAL_RESPONSE and r.round == 0
    ]
    assert len(reveals) == 4
    # the survivors' PRNG states moved past the round whose keys were revealed
    for p in (1, 2, 3, 5):
        assert all(r >= 1 for r in session.participants[p].pair_rounds.values())


@pytest.mark.parametrize("vanished", [1, 2])
def test_shamir_survives_members_vanishing_after_sharing(vanished):
    # n = 5, t = 3: up to n - t = 2 members may vanish after sharing
    cfg = ProtocolConfig(mode=Mode.SHAMIR, rounds=1, threshold=3)
    gone = tuple(Vanish(p, 0, VanishPhase.AFTER_SHARE) for p in range(5, 5 - vanished, -1))
    session, (outcome,) = run(cfg, rounds=1, vanish=gone)
    assert outcome.status is RoundStatus.APPLIED
    assert outcome.contributors == (1, 2, 3, 4, 5)  # all shared: all changes count
    xs = session.plaintexts[0]
    assert np.array_equal(outcome.aggregate, ring_sum([xs[p] for p in range(1, 6)]))


def test_shamir_aborts_below_threshold_and_keeps_the_model():
    cfg = ProtocolConfig(mode=Mode.SHAMIR, rounds=1, threshold=3)
    gone = tuple(Vanish(p, 0, VanishPhase.AFTER_SHARE) for p in (3, 4, 5))
    session, (outcome,) = run(cfg, rounds=1, vanish=gone)
    assert outcome.status is RoundStatus.ABORTED
    assert not session.server.weights.any()


def test_shamir_member_vanishing_before_sharing_is_left_out():
    cfg = ProtocolConfig(mode=Mode.SHAMIR, rounds=1, threshold=3)
    session, (outcome,) = run(cfg, rounds=1, vanish=(Vanish(2, 0),))
    assert outcome.status is RoundStatus.APPLIED
    assert outcome.contributors == (1, 3, 4, 5)
    xs = session.plaintexts[0]
    assert np.array_equal(outcome.aggregate, ring_sum([xs[p] for p in outcome.contributors]))


def test_explicit_member_vanishing_aborts_the_round_and_the_next_round_runs():
    cfg = ProtocolConfig(mode=Mode.EXPLICIT, rounds=2, min_group_size=2)
    session, outcomes = run(cfg, rounds=2, vanish=(Vanish(3, 0, VanishPhase.AFTER_SHARE),))
    assert outcomes[0].status is RoundStatus.ABORTED
    # round 1 selects all registered; 3 is gone, so explicit aborts again
    assert outcomes[1].status is RoundStatus.ABORTED
    assert not session.server.weights.any()


@pytest.mark.parametrize("mode", SECURE)
def test_group_selection_and_prngs_advance_for_everyone(mode):
    cfg = ProtocolConfig(mode=mode, rounds=3, group_size=3)
    session, outcomes = run(cfg, rounds=3, n=6)
    for o in outcomes:
        assert len(o.group) == 3 and o.status is RoundStatus.APPLIED
        xs = session.plaintexts[o.round]
        assert np.array_equal(o.aggregate, ring_sum([xs[p] for p in o.contributors]))
    for p in session.participants.values():
        assert p.stage is ParticipantStage.READY
        assert all(r == 3 for r in p.pair_rounds.values())
    assert len({o.group for o in outcomes}) > 1


def test_decoded_aggregate_is_the_clipped_sum():
    session, (outcome,) = run(ProtocolConfig(mode=Mode.PRG, rounds=1, weighted=False), rounds=1)
    codec = session.server.config.codec()
    expected = sum(
        np.clip(synthetic_delta(p, 0, 37), -4, 4).astype(np.float64) for p in range(1, 6)
    )
    got = decode(outcome.aggregate[:-1], codec)
    assert np.abs(got - expected).max() <= codec.decode_error_bound(5, stochastic=False)
    assert int(outcome.aggregate[-1]) == 5


def test_session_end_erases_key_material():
    session, _ = run(ProtocolConfig(mode=Mode.PRG, rounds=1), rounds=1)
    session.driver.finish()
    for p in session.participants.values():
        assert p.stage is ParticipantStage.DONE
        assert p.pair_rounds == {} and p.round_keys == {}
