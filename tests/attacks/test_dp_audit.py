"""The audit of distributed DP: the canary test's ε lower bound sits at or below the
accountant's ε in every honest setting and exceeds a fake claim (the control that shows the
test has power); the real protocol's trials agree with the aggregate-level ones; the aggregate
attacks run on the noised sum of a real session."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest

from ssddl.attacks.canary import (
    CanarySetting,
    EmpiricalEpsilon,
    canary_config,
    clopper_pearson_upper,
    epsilon_lower_bound,
    estimate,
)
from ssddl.attacks.dp_aggregate import DpAggregateRecovery, dp_session, imprint_model
from ssddl.attacks.target import batch_trainer
from ssddl.exceptions import ConfigurationError

SEED = hashlib.sha256(b"tests/attacks/dp-audit").digest()
EPSILONS = (1.0, 4.0, 16.0)


def test_clopper_pearson_matches_its_closed_form_and_refuses_nonsense():
    # no failure in n trials: the bound solves (1 - p)^n = alpha
    assert clopper_pearson_upper(0, 10, 0.05) == pytest.approx(1 - 0.05 ** (1 / 10), rel=1e-9)
    assert clopper_pearson_upper(10, 10, 0.05) == 1.0
    # more failures, a higher bound; more trials at the same rate, a tighter one
    assert clopper_pearson_upper(3, 10, 0.05) > clopper_pearson_upper(2, 10, 0.05) > 0.2
    assert clopper_pearson_upper(30, 100, 0.05) < clopper_pearson_upper(3, 10, 0.05)
    for args in ((11, 10, 0.05), (0, 0, 0.05), (1, 10, 1.5)):
        with pytest.raises(ConfigurationError):
            clopper_pearson_upper(*args)


def test_the_lower_bound_of_a_perfect_test_grows_with_the_trials_and_of_a_coin_is_zero():
    delta = 1e-5
    perfect, fpr, fnr = epsilon_lower_bound(0, 500, 0, 500, delta=delta, confidence=0.95)
    upper = 1 - 0.025 ** (1 / 500)  # each rate one-sided at (1 - 0.95) / 2
    assert fpr == pytest.approx(upper) and fnr == pytest.approx(upper)
    assert perfect == pytest.approx(math.log((1 - delta - upper) / upper))
    assert epsilon_lower_bound(0, 5000, 0, 5000, delta=delta)[0] > perfect
    assert epsilon_lower_bound(250, 500, 250, 500, delta=delta)[0] == 0.0


@pytest.mark.parametrize(
    "setting",
    [CanarySetting("ddg", e) for e in EPSILONS] + [CanarySetting("skellam", 4.0)],
    ids=lambda s: s.label,
)
def test_the_empirical_epsilon_sits_at_or_below_the_accountants(setting):
    found, scores, included = estimate(setting, 1000, seed=3, crypto_seed=SEED)
    assert found.accountant_epsilon <= setting.claimed_epsilon * (1 + 1e-9)
    assert found.empirical_epsilon <= found.accountant_epsilon
    assert found.trials == 1000 and int(included.sum()) == 500
    # the noise is there: the canary's score spreads over both sides of the threshold
    assert found.false_positives > 0 and found.false_negatives > 0
    # and the canary is in the sum: the scores with it are higher on average by about l2_clip
    shift = float(scores[included].mean() - scores[~included].mean())
    z = found.noise_multiplier
    assert shift == pytest.approx(1.0, abs=6 * z * math.sqrt(2 / 500) + 0.05)


@pytest.mark.parametrize(
    "setting",
    [CanarySetting("ddg", 1.0, noise_fraction=0.02), CanarySetting(None, 1.0)],
    ids=lambda s: s.label,
)
def test_the_control_proves_more_than_a_fake_claim(setting):
    """Far less noise than the claim was calibrated for, or none: the test must catch it."""
    found, _, _ = estimate(setting, 600, seed=4, crypto_seed=SEED)
    assert found.empirical_epsilon > setting.claimed_epsilon
    assert found.accountant_epsilon > setting.claimed_epsilon  # the claim is indeed false


def test_without_dp_the_real_protocol_hands_the_adversary_the_canary_exactly():
    """The colluders' subtraction is right: with no noise the score is the canary or zero."""
    found, scores, included = estimate(
        CanarySetting(None, 1.0), 6, via="protocol", crypto_seed=SEED
    )
    config, _ = canary_config(CanarySetting(None, 1.0))
    assert np.allclose(scores, np.where(included, config.l2_clip, 0.0), atol=1e-6)
    assert found.false_positives == found.false_negatives == 0


def test_the_real_protocol_agrees_with_the_aggregate_level_trials():
    from scipy.stats import ks_2samp

    setting = CanarySetting("ddg", 4.0)
    live, scores, included = estimate(setting, 60, via="protocol", seed=5, crypto_seed=SEED)
    ref, ref_scores, ref_in = estimate(setting, 1000, seed=6, crypto_seed=SEED)
    assert live.accountant_epsilon == ref.accountant_epsilon
    assert live.empirical_epsilon <= live.accountant_epsilon
    for side in (True, False):
        assert ks_2samp(scores[included == side], ref_scores[ref_in == side]).pvalue > 1e-3


@pytest.mark.slow
def test_the_attack_judges_honest_settings_and_controls(attack_context):
    outcomes = EmpiricalEpsilon().run(attack_context)
    assert all(o.holds for o in outcomes)
    honest = [o for o in outcomes if o.expected is False]
    controls = [o for o in outcomes if o.expected is True]
    assert len(honest) == 5 and len(controls) == 2  # 3 ddg, skellam, live; fake claim, off
    assert all(o.measured["empirical_epsilon"] > 1.0 for o in controls)
    live = [o for o in outcomes if o.measured["via"] == "protocol"]
    assert len(live) == 1 and live[0].measured["agrees_with_aggregate_p"] > 1e-3


def test_dp_sessions_are_calibrated_to_each_epsilon():
    noise = []
    for eps in EPSILONS:
        protocol, spent = dp_session(eps, members=4, dim=2410, l2_clip=1.0)
        assert protocol.dp == "ddg" and spent == pytest.approx(eps, rel=1e-2) and spent <= eps
        noise.append(protocol.noise_multiplier)
    assert noise == sorted(noise, reverse=True)  # less noise for a larger ε
    assert dp_session(None, members=4, dim=2410, l2_clip=1.0) == (
        dp_session(None, members=4, dim=10, l2_clip=2.0)
    )


@pytest.mark.slow
def test_the_aggregate_attacks_read_the_plain_sum_and_nothing_from_the_noised_one(
    attack_context,
):
    outcomes = DpAggregateRecovery().run(attack_context)
    rows = [o.measured for o in outcomes]
    plain = [r for r in rows if r["epsilon"] is None]
    noised = [r for r in rows if r["epsilon"] is not None]
    assert len(plain) == 4 and len(noised) == 4 * len(EPSILONS)  # 3 attacks and the imprint
    assert any(r["exact_recovered"] == r["inputs"] for r in plain)  # iDLG / DLG today
    assert all(r["recovered"] == 0 for r in noised)
    assert all(r["relative_error"] > 1.0 for r in noised)  # the noise dwarfs the mean
    assert all(o.holds for o in outcomes)


def test_the_same_model_imprint_reads_the_plain_aggregate_and_not_the_noised_one(victims):
    """A server that sends every member the same malicious model breaks no protocol rule; the
    first-layer ratio of the aggregate reads the inputs back, until the noise is on."""
    from ssddl.attacks.aggregate import aggregate_view, attack_aggregate, record_aggregate
    from ssddl.learning import load_digits, model_to_vector

    model = imprint_model(victims.model, load_digits(seed=0).test.x)
    xs, ys = victims.pool_x[:4], victims.pool_y[:4]
    recovered = {}
    for eps in (None, 16.0):
        changes = [
            np.asarray(t(model_to_vector(model), 0).delta)
            for t in (
                batch_trainer(model, xs[p : p + 1], ys[p : p + 1], 10, lr=0.1) for p in range(4)
            )
        ]
        clip = max(float(np.linalg.norm(c)) for c in changes) * 1.001
        protocol, _ = dp_session(eps, members=4, dim=changes[0].size, l2_clip=clip)
        run = record_aggregate(model, xs, ys, 10, members=4, lr=0.1, protocol=protocol)
        row, _ = attack_aggregate(
            aggregate_view(run),
            "first-layer",
            model=model,
            layer=victims.layer,
            lr=0.1,
            batch=1,
            num_classes=10,
            truths=xs,
            labels=[int(y) for y in ys],
            iterations=1,
        )
        recovered[eps] = row.recovered
    assert recovered[None] >= 3 and recovered[16.0] == 0
    # the honest model's first-layer ratio reads at most one of the four
    honest = record_aggregate(victims.model, xs, ys, 10, members=4, lr=0.1)
    plain, _ = attack_aggregate(
        aggregate_view(honest),
        "first-layer",
        model=victims.model,
        layer=victims.layer,
        lr=0.1,
        batch=1,
        num_classes=10,
        truths=xs,
        labels=[int(y) for y in ys],
        iterations=1,
    )
    assert plain.recovered < recovered[None]
