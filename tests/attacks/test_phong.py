"""Phong et al.'s shared key: the server plus one participant decrypts every other one."""

from __future__ import annotations

import pytest

from ssddl.attacks import first_layer_recovery, score
from ssddl.attacks.baseline_views import shared_key_attack

pytest.importorskip("phe")


def test_one_colluders_key_decrypts_every_other_participant(victims, audit_config):
    from ssddl.baselines.he import (
        PAILLIER_TEST_KEY_BITS,
        InsecureParametersWarning,
        PaillierBackend,
    )
    from ssddl.hazmat.codec import FixedPoint

    with pytest.warns(InsecureParametersWarning):
        backend = PaillierBackend(
            FixedPoint(64, 32, 4.0),
            max_summands=5,
            key_bits=PAILLIER_TEST_KEY_BITS[0],
            insecure_test_key=True,
        )
    trainers = victims.trainers(audit_config.lr)
    victims_decrypted = shared_key_attack(trainers, victims.initial, backend, colluder=2)
    assert sorted(victims_decrypted) == [1, 3, 4]
    layer = victims.layer
    for pid, victim in victims_decrypted.items():
        assert victim.max_abs_error == 0.0  # exactly what the victim encrypted
        rec = first_layer_recovery(
            victim.decrypted, weight=layer.weight, bias=layer.bias, in_features=64
        )
        assert score(rec.x, victims.xs[pid - 1]).max_abs_error < 1e-4
