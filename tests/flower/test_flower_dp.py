"""Distributed DP through the Flower workflow, in process: each node checks the announced
noise against its own node config's ``ssddl-max-epsilon`` and refuses a session whose noise
gives it a larger ε (or that has no DP), and follows one that does not."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ssddl.exceptions import ConfigurationError, GroupTooSmall, PolicyViolation
from ssddl.protocol.dp import check_noise
from ssddl.runtime.flower import WorkflowConfig, start
from ssddl.runtime.flower.mod import arrays_to_vector, policy_from_config
from ssddl.runtime.keyfiles import load_roster, write_identities
from tests.flower.test_flower_workflow import NodeGrid, initial_arrays, run_config, task

pytestmark = [
    pytest.mark.usefixtures("task_identity"),
    pytest.mark.filterwarnings("ignore::ssddl.exceptions.SecurityWarning"),
]

N = 3
MAX_EPSILON = 50.0


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("keys")
    write_identities(directory, N)
    return directory


def dp_protocol(run: dict[str, Any], **dp: Any) -> Any:
    return dataclasses.replace(task.protocol_config(run), weighted=False, **dp)


def run_dp(keys: Path, run: dict[str, Any], protocol: Any, max_epsilon: Any) -> Any:
    grid = NodeGrid(keys, run, N)
    for context in grid.contexts.values():
        context.node_config["ssddl-max-epsilon"] = max_epsilon
    roster = {p: k for p, k in load_roster(keys / "roster.json").items() if p <= N}
    config = WorkflowConfig(protocol, roster, stage_timeout=1.0, discovery_timeout=1.0)
    weights: list[np.ndarray] = []
    result = start(
        grid,
        config,
        initial_arrays(run),
        on_round=lambda outcome, arrays: weights.append(arrays_to_vector(arrays)),
    )
    return weights, result


def test_the_node_config_key_sets_the_policy() -> None:
    assert policy_from_config({}).max_epsilon is None
    assert policy_from_config({"ssddl-max-epsilon": 8}).max_epsilon == 8.0
    for bad in ("8", -1.0, True):
        with pytest.raises(ConfigurationError, match="ssddl-max-epsilon must be a positive"):
            policy_from_config({"ssddl-max-epsilon": bad})


def test_nodes_follow_enough_noise_and_refuse_too_little(keys: Path) -> None:
    run = run_config(**{"num-server-rounds": 2})
    size = arrays_to_vector(initial_arrays(run)).size
    policy = policy_from_config({"ssddl-max-epsilon": MAX_EPSILON})
    enough = dp_protocol(run, dp="ddg", noise_multiplier=2.0)
    little = dp_protocol(run, dp="ddg", noise_multiplier=0.05)
    # what each node computes for itself from the announcement, at its own floor
    check_noise(policy, enough.resolve(N), size)
    with pytest.raises(PolicyViolation):
        check_noise(policy, little.resolve(N), size)

    weights, result = run_dp(keys, run, enough, MAX_EPSILON)
    assert len(weights) == 2 and not np.array_equal(weights[0], weights[1])
    assert result.train_metrics_clientapp[2]["contributors"] == N

    for protocol, words in (
        (little, "announced noise gives epsilon"),
        (task.protocol_config(run), "no distributed DP"),
    ):
        with pytest.raises(GroupTooSmall, match=rf"PolicyViolation: .*{words}"):
            run_dp(keys, run, protocol, MAX_EPSILON)
