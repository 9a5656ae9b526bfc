"""Distributed DP inside the shared vector: each member's x_i is its noised integer encoding,
the secure sum equals the plaintext sum of those encodings bit for bit, and the server reads
the members' clipped mean back (plus the noise)."""

from __future__ import annotations

import numpy as np
import pytest

from ssddl.exceptions import ConfigurationError, PolicyViolation
from ssddl.hazmat.dp import clip_l2, unwrap
from ssddl.protocol import ProtocolConfig
from ssddl.protocol.dp import noise_members, noise_plan
from ssddl.protocol.server import RoundStatus
from tests.protocol.helpers import make_session, ring_sum, synthetic_delta

pytestmark = pytest.mark.filterwarnings("ignore::ssddl.exceptions.SecurityWarning")


def dp_config(**kw):
    fields = dict(mode="prg", rounds=2, weighted=False, dp="ddg", noise_multiplier=0.5)
    return ProtocolConfig(**(fields | kw))


def run(config, n=4, size=300, **kw):
    """Init and every round of ``config``; ``session.outcomes`` holds each round's outcome
    as it came (the server's history keeps the arrays of its latest round only)."""
    session = make_session(config, n=n, size=size, **kw)
    session.driver.init()
    session.outcomes = [session.driver.round() for _ in range(config.rounds)]
    assert len(session.server.history) == config.rounds
    return session


@pytest.mark.parametrize("mechanism", ["ddg", "skellam"])
@pytest.mark.parametrize("mode", ["prg", "explicit", "shamir"])
def test_the_secure_sum_is_the_plaintext_sum_of_the_noised_encodings(mechanism, mode):
    session = run(dp_config(dp=mechanism, mode=mode))
    for outcome in session.outcomes:
        assert outcome.status is RoundStatus.APPLIED
        xs = session.plaintexts[outcome.round]
        ring = ring_sum([xs[p] for p in outcome.contributors])
        assert session.server.config.bits == 20  # DP's ring unless bits says otherwise
        assert np.array_equal(outcome.aggregate, ring & np.uint32((1 << 20) - 1))
        assert int(outcome.aggregate[-1]) == len(outcome.contributors)  # one count each
        # every x_i is noised: no member's words are its rounded change alone
        params = session.server.config
        plan = noise_plan(params, 300)
        for p in outcome.contributors:
            z = unwrap(xs[p][:-1], 32)
            assert float(np.dot(z, z)) > plan.l2_sensitivity**2  # the noise is far larger


def test_a_dp_session_reads_the_clipped_mean_back_when_the_noise_is_small():
    session = run(dp_config(noise_multiplier=1e-3))
    for outcome in session.outcomes:
        clipped = [
            clip_l2(synthetic_delta(p, outcome.round, 300), 1.0) for p in outcome.contributors
        ]
        mean = np.mean(clipped, axis=0)
        error = float(np.linalg.norm(outcome.update - mean))
        assert error < 0.01 * float(np.linalg.norm(mean)) + 1e-3


@pytest.mark.parametrize("aggregation", ["mean", "sum"])
def test_the_reported_decoding_error_describes_the_applied_update(aggregation):
    """dp_decoding_error (the run summary's) against what a round applies: the error of the
    update from the plain mean (or sum) of the clipped changes has the stated noise std, and
    with little noise its RMS stays under the rounding bound."""
    from ssddl.protocol.dp import decoding_error

    def errors(config):
        session = run(config, size=1024)
        out = []
        for outcome in session.outcomes:
            assert len(outcome.contributors) == 4
            clipped = [
                clip_l2(synthetic_delta(p, outcome.round, 1024), 1.0) for p in outcome.contributors
            ]
            plain = np.sum(clipped, axis=0) if aggregation == "sum" else np.mean(clipped, axis=0)
            # the outcome's update is the change before the server's step: the model moves
            # by server_lr times it
            out.append((outcome.update - plain) * config.server_lr)
        return session.server.config, np.concatenate(out)

    params, error = errors(dp_config(aggregation=aggregation, server_lr=0.5))
    stated = decoding_error(params, 1024)
    measured = float(np.std(error))
    total = (stated["noise_std"] ** 2 + stated["rounding_std"] ** 2) ** 0.5
    assert measured == pytest.approx(total, rel=0.08)  # 2048 values: 1.6 % standard error
    # 8 bits and little noise: a coarse scale γ, where the rounding is a third of the noise
    coarse = dp_config(aggregation=aggregation, server_lr=0.5, noise_multiplier=0.01, bits=8)
    params, error = errors(coarse)
    stated = decoding_error(params, 1024)
    assert stated["rounding_std"] > 0.25 * stated["noise_std"]
    rms = float(np.sqrt(np.mean(error**2)))
    assert rms == pytest.approx(
        (stated["noise_std"] ** 2 + stated["rounding_std"] ** 2) ** 0.5, rel=0.08
    )
    assert rms <= stated["rounding_rms_bound"] + 4 * stated["noise_std"]


def test_the_noise_is_calibrated_to_the_honest_contributor_floor():
    session = run(dp_config(max_colluders=1, min_group_size=3), n=5)
    params = session.server.config
    assert noise_members(params) == params.min_contributors - 1
    plan = noise_plan(params, 300)
    # the honest floor's noise, in update units, has standard deviation z · l2_clip
    total = plan.local_variance * noise_members(params) / plan.scale**2
    assert total == pytest.approx((0.5 * 1.0) ** 2, rel=1e-12)


def test_dp_off_publishes_nothing_new():
    params = ProtocolConfig(mode="prg", weighted=False).resolve(4)
    published = params.to_dict()
    assert not {"dp", "noise_multiplier", "l2_clip", "bits", "dp_delta"} & set(published)
    on = dp_config().resolve(4).to_dict()
    assert on["dp"] == "ddg" and on["noise_multiplier"] == 0.5 and on["bits"] == 20
    assert dp_config(bits=16).resolve(4).to_dict()["bits"] == 16


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        (dict(dp="gauss"), "dp='gauss' must be one of ddg, skellam"),
        (dict(mode="plain"), "use a secure mode"),
        (dict(weighted=True), "weighted=false"),
        (dict(noise_multiplier=0.0), "noise_multiplier"),
        (dict(l2_clip=-1.0), "l2_clip"),
        (dict(bits=33, ring_bits=64), "bits"),
        (dict(bits=7), "bits"),
        (dict(dp_delta=1.5), "dp_delta"),
    ],
)
def test_bad_dp_options_are_refused_naming_the_field(kw, message):
    with pytest.raises(ConfigurationError, match=message):
        dp_config(**kw)


def test_participants_refuse_a_server_that_announces_less_noise_than_their_policy():
    from ssddl.protocol.dp import calibrated_noise
    from ssddl.protocol.policy import ParticipantPolicy

    wanted = dp_config(target_epsilon=8.0, rounds=3)
    params = wanted.resolve(4)
    z = calibrated_noise(params, 300, 8.0)
    policy = ParticipantPolicy.for_config(wanted, 4)
    assert policy.max_epsilon == 8.0
    # a server that announces the calibrated noise is followed
    honest = run(dp_config(noise_multiplier=z, rounds=3), policy=policy)
    assert [o.status for o in honest.server.history] == [RoundStatus.APPLIED] * 3
    # half that noise, or no DP at all: every member refuses before making a key
    for config, words in (
        (dp_config(noise_multiplier=z / 2, rounds=3), "announced noise gives epsilon"),
        (ProtocolConfig(mode="prg", rounds=3, weighted=False), "no distributed DP"),
    ):
        session = make_session(config, n=4, size=300, policy=policy)
        session.driver.init()
        refusals = [r for r in session.driver.rejections if r.kind == "session_announce"]
        assert {r.at for r in refusals} == {1, 2, 3, 4}
        assert all(r.error == "PolicyViolation" and words in r.detail for r in refusals)


def test_a_participant_counts_only_its_own_floor_of_honest_members():
    from ssddl.protocol.dp import check_noise
    from ssddl.protocol.policy import ParticipantPolicy

    params = dp_config(rounds=3, noise_multiplier=2.0).resolve(6)
    trusting = ParticipantPolicy(max_epsilon=1e9)
    check_noise(trusting, params, 300)
    plan = noise_plan(params, 300)
    # fearing 3 colluders leaves one honest member's noise: epsilon grows
    wary_floor = ParticipantPolicy(max_colluders=3).contributor_floor(params) - 3
    alone = plan.epsilon(session_dp_mechanism(params), params.dp_delta, 3, wary_floor)
    assert alone > plan.epsilon(session_dp_mechanism(params), params.dp_delta, 3)
    with pytest.raises(PolicyViolation, match="announced noise"):
        check_noise(ParticipantPolicy(max_colluders=3, max_epsilon=alone * 0.99), params, 300)
    check_noise(ParticipantPolicy(max_colluders=3, max_epsilon=alone * 1.01), params, 300)


def session_dp_mechanism(params):
    from ssddl.protocol.dp import session_dp

    return session_dp(params).mechanism
