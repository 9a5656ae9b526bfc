"""Distributed DP inside the shared vector: each member's x_i is its noised integer encoding,
the secure sum equals the plaintext sum of those encodings bit for bit, and the server reads
the members' clipped mean back (plus the noise)."""

from __future__ import annotations

import numpy as np
import pytest

from ssddl.exceptions import ConfigurationError
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
    session = make_session(config, n=n, size=size, **kw)
    session.driver.init()
    session.driver.run()
    return session


@pytest.mark.parametrize("mechanism", ["ddg", "skellam"])
@pytest.mark.parametrize("mode", ["prg", "explicit", "shamir"])
def test_the_secure_sum_is_the_plaintext_sum_of_the_noised_encodings(mechanism, mode):
    session = run(dp_config(dp=mechanism, mode=mode))
    for outcome in session.server.history:
        assert outcome.status is RoundStatus.APPLIED
        xs = session.plaintexts[outcome.round]
        assert np.array_equal(outcome.aggregate, ring_sum([xs[p] for p in outcome.contributors]))
        assert int(outcome.aggregate[-1]) == len(outcome.contributors)  # one count each
        # every x_i is noised: no member's words are its rounded change alone
        params = session.server.config
        plan = noise_plan(params, 300)
        for p in outcome.contributors:
            z = unwrap(xs[p][:-1], 32)
            assert float(np.dot(z, z)) > plan.l2_sensitivity**2  # the noise is far larger


def test_a_dp_session_reads_the_clipped_mean_back_when_the_noise_is_small():
    session = run(dp_config(noise_multiplier=1e-3))
    for outcome in session.server.history:
        clipped = [
            clip_l2(synthetic_delta(p, outcome.round, 300), 1.0) for p in outcome.contributors
        ]
        mean = np.mean(clipped, axis=0)
        error = float(np.linalg.norm(outcome.update - mean))
        assert error < 0.01 * float(np.linalg.norm(mean)) + 1e-3


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
    assert not {"dp", "noise_multiplier", "l2_clip", "dp_bits", "dp_delta"} & set(published)
    on = dp_config().resolve(4).to_dict()
    assert on["dp"] == "ddg" and on["noise_multiplier"] == 0.5


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        (dict(dp="gauss"), "dp='gauss' must be one of ddg, skellam"),
        (dict(mode="plain"), "use a secure mode"),
        (dict(weighted=True), "weighted=false"),
        (dict(noise_multiplier=0.0), "noise_multiplier"),
        (dict(l2_clip=-1.0), "l2_clip"),
        (dict(dp_bits=33, ring_bits=64), "dp_bits"),
        (dict(dp_bits=7), "dp_bits"),
        (dict(dp_delta=1.5), "dp_delta"),
    ],
)
def test_bad_dp_options_are_refused_naming_the_field(kw, message):
    with pytest.raises(ConfigurationError, match=message):
        dp_config(**kw)
