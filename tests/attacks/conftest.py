"""Recorded sessions shared by the attack tests: one real session per mode, n = 4
participants, one digits sample each, seeded keys so the statistics are reproducible."""

from __future__ import annotations

import hashlib

import pytest

from ssddl.attacks.audit import AuditConfig, _session, _victims

MODES = ("plain", "prg", "explicit", "shamir")


@pytest.fixture(scope="session")
def audit_config() -> AuditConfig:
    return AuditConfig.quick(crypto_seed=hashlib.sha256(b"tests/attacks").digest())


@pytest.fixture(scope="session")
def victims(audit_config):
    return _victims(audit_config)


@pytest.fixture(scope="session")
def runs(victims, audit_config):
    return {mode: _session(mode, victims, audit_config) for mode in MODES}
