"""First-layer input recovery: exact on a plain single-sample update, nothing on SSDDL views."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ssddl.attacks import first_layer_recovery, score, update_as_seen
from ssddl.attacks.baseline_views import dssgd_uploads, sparse_as_seen
from ssddl.attacks.uploads import simulated_p
from ssddl.baselines.dssgd import DSSGDConfig
from ssddl.exceptions import ConfigurationError


def _recover(update, victims, known=None):
    layer = victims.layer
    return first_layer_recovery(
        update, weight=layer.weight, bias=layer.bias, in_features=layer.in_features, known=known
    )


def test_known_answer_on_a_hand_made_gradient():
    x = np.array([0.0, 0.25, 1.0])
    delta = np.array([0.5, -2.0])  # two neurons: dL/dW = delta x^T, dL/db = delta
    update = np.concatenate([np.outer(delta, x).ravel(), delta])
    rec = first_layer_recovery(update, weight=slice(0, 6), bias=slice(6, 8), in_features=3)
    assert rec.neuron == 1 and rec.known == 3
    np.testing.assert_array_equal(rec.x, x)
    assert score(rec.x, x).psnr == math.inf


def test_recovery_is_exact_on_the_plain_view(runs, victims):
    for pid, message in runs["plain"].server.uploads(0).items():
        rec = _recover(update_as_seen(message, runs["plain"].params), victims)
        assert score(rec.x, victims.xs[pid - 1]).max_abs_error < 1e-4


@pytest.mark.parametrize("mode", ["prg", "explicit", "shamir"])
def test_recovery_on_an_ssddl_view_is_no_better_than_on_a_random_view(runs, victims, mode):
    run = runs[mode]
    errors = []
    for pid, message in run.server.uploads(0).items():
        rec = _recover(update_as_seen(message, run.params), victims)
        s = score(rec.x, victims.xs[pid - 1])
        assert s.psnr < 15 and s.max_abs_error > 0.5
        errors.append(s.mse)
    assert simulated_p(run.params, victims, float(np.mean(errors)), 20_000) >= 1e-4


def test_the_random_view_statistic_detects_a_leak(runs, victims):
    """The same statistic on the plain view's error rejects: the test can fail."""
    assert simulated_p(runs["prg"].params, victims, 1e-6, 20_000) < 1e-4


def test_dssgd_uploads_leak_every_input_read_from_a_received_ratio(victims, audit_config):
    sparse = dssgd_uploads(victims.trainers(audit_config.lr), victims.initial, DSSGDConfig(0.3))
    for pid, upload in sparse.items():
        dense, known = sparse_as_seen(upload)
        rec = _recover(dense, victims, known)
        assert rec.known > 0
        truth = victims.xs[pid - 1]
        readable = known[victims.layer.weight].reshape(-1, 64)[rec.neuron] > 0
        np.testing.assert_allclose(rec.x[readable], truth[readable], atol=1e-4)


def test_bad_shapes_are_refused_by_name():
    with pytest.raises(ConfigurationError, match="in_features"):
        first_layer_recovery(np.zeros(10), weight=slice(0, 6), bias=slice(6, 8), in_features=4)
    with pytest.raises(ConfigurationError, match="known"):
        first_layer_recovery(
            np.zeros(8), weight=slice(0, 6), bias=slice(6, 8), in_features=3, known=np.ones(3)
        )
    with pytest.raises(ConfigurationError, match="reconstruction"):
        score(np.zeros(3), np.zeros(4))
