"""Recorded sessions shared by the attack tests: one real session per mode, n = 4
participants, one digits sample each, seeded keys so the statistics are reproducible — the
same victims and sessions the audit's attacks get from their context."""

from __future__ import annotations

import hashlib

import pytest

from ssddl.attacks.attack import AttackContext, AuditConfig

MODES = ("plain", "prg", "explicit", "shamir")


@pytest.fixture(scope="session")
def audit_config() -> AuditConfig:
    return AuditConfig.quick(crypto_seed=hashlib.sha256(b"tests/attacks").digest())


@pytest.fixture(scope="session")
def attack_context(audit_config) -> AttackContext:
    return AttackContext(audit_config)


@pytest.fixture(scope="session")
def victims(attack_context):
    return attack_context.victims


@pytest.fixture(scope="session")
def runs(attack_context):
    return {mode: attack_context.recorded(mode) for mode in MODES}
