"""Absurd resource values are refused before any work, naming the option, the limit and why."""

from __future__ import annotations

import time

import pytest

from ssddl.exceptions import ConfigurationError
from ssddl.experiments import resources
from ssddl.experiments.config import ExperimentConfig
from ssddl.experiments.run import prepare


def test_threads_beyond_the_cpus_are_refused(monkeypatch):
    monkeypatch.setattr(resources, "cpu_count", lambda: 2)
    ExperimentConfig(threads=8)  # 4x the CPUs is allowed
    with pytest.raises(ConfigurationError, match=r"threads=9 is more than 4x the 2 CPU.*at most 8"):
        ExperimentConfig(threads=9)


def test_absurd_participants_are_refused_at_once():
    start = time.perf_counter()
    with pytest.raises(ConfigurationError, match=r"participants=99999999999999999999 needs"):
        ExperimentConfig(participants=99999999999999999999)
    # the key-setup planning this used to reach took 55 s; the check itself is arithmetic
    assert time.perf_counter() - start < 5


def test_participants_are_weighed_with_the_model(monkeypatch):
    """prepare() knows the model's size: 40 participants of an 85,002-parameter model need
    more than 32 MiB, and the refusal says how many fit."""
    monkeypatch.setattr(resources, "memory_bytes", lambda: 32 * 2**20)
    config = ExperimentConfig(participants=40)
    with pytest.raises(
        ConfigurationError,
        match=r"participants=40 needs about .* with a 85,002-parameter model\) but this machine "
        r"has 32 MiB; use at most 20",
    ):
        prepare(config)


def test_unknown_memory_is_not_a_refusal(monkeypatch):
    monkeypatch.setattr(resources, "memory_bytes", lambda: None)
    resources.check_participants(10**20, parameters=10**9)
