"""SSDDL on Flower's deployment engine: a TLS SuperLink with SuperNode authentication and
three SuperNodes on 127.0.0.1, each with its own identity key, roster and partition in its
``--node-config``; the example app (``examples/flower-app``) run with ``flwr run``: ``prg``
(double masking; no colluder, t = 2 and the signed survivor set, so that three nodes survive a
dropout), 3 rounds, Flower's FedAvg sampling; the ServerApp pauses before round 1's unmask
request, the test kills SuperNode 3 (SIGKILL to its process group) and lets it go on: round 1
keeps node 3's upload (its self-mask is rebuilt from the others' shares), round 2 runs without
node 3. After every round the global model must equal, bit for bit, ``ssddl.simulate`` with the
same seed and configuration (with ``Vanish(3, 1, after_share)``).

Every mode's bit-identity with the simulator over Flower's message path, ``shamir`` included,
is checked in process by ``test_flower_workflow.py``; this file keeps the one deployment run
that only real processes can show (TLS, authentication, a SIGKILLed node, loopback only).
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ssddl.runtime.inmemory import Vanish, VanishPhase
from ssddl.runtime.keyfiles import write_identities
from tests.flower.harness import (
    Deployment,
    listening_sockets,
    non_loopback,
    pids_with_marker,
    wait_until,
)

pytestmark = pytest.mark.flower

APP = Path(__file__).resolve().parents[2] / "examples" / "flower-app"
sys.path.insert(0, str(APP))

from ssddl_flower_app import task  # noqa: E402

from tests.flower.test_flower_workflow import DROPOUT_SAFE, run_config, simulated  # noqa: E402

ROUNDS = 3
TIMEOUT = 45.0
#: the prg run's stage timeout: the killed node costs it twice (round 1's unmask and round
#: 2's start, before the SuperLink's heartbeat check marks the node offline); a healthy
#: stage takes ~6-12 s here (ClientApp process start + polls)
KILL_TIMEOUT = 25.0


@dataclass
class Run:
    rc: int
    weights: list[np.ndarray]
    rounds: list[dict[str, Any]]
    run: dict[str, Any]


@dataclass
class Outcome:
    prg: Run
    listening_bad: list[str]
    left_after_stop: set[int]


def _flwr_run(deployment: Deployment, root: Path, name: str, settings: dict[str, Any]) -> Any:
    record = root / name
    record.mkdir()
    settings = {**settings, "record-dir": str(record)}
    text = " ".join(
        f"{k}='{v}'"
        if isinstance(v, str)
        else f"{k}={str(v).lower() if isinstance(v, bool) else v}"
        for k, v in settings.items()
    )
    return deployment.flwr_run(APP, text), record


def _collect(record: Path, rc: int, settings: dict[str, Any]) -> Run:
    rounds_file = record / "rounds.jsonl"
    rounds = (
        [json.loads(x) for x in rounds_file.read_text().splitlines()]
        if rounds_file.exists()
        else []
    )
    weights = [np.load(record / f"round-{r}.npy") for r in range(len(rounds))]
    return Run(rc, weights, rounds, run_config(**settings))


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outcome]:
    root = tmp_path_factory.mktemp("flwr-ssddl")
    deployment = Deployment.create(root)
    procs = deployment.procs
    keys = root / "identities"
    keys.mkdir()
    write_identities(keys, 3)
    common = {
        "num-server-rounds": ROUNDS,
        "roster": str(keys / "roster.json"),
        "stage-timeout": TIMEOUT,
        "discovery-timeout": 90.0,
        "poll-interval": 0.25,
    }
    try:
        deployment.start_superlink()
        for k in range(3):
            name = f"sn{k + 1}"
            config = (
                f"ssddl-identity-key='{keys / f'participant-{k + 1}.key'}' "
                f"ssddl-roster='{keys / 'roster.json'}' partition-id={k} num-partitions=3"
            )
            deployment.start_supernode(name, deployment.node_key(name, register=True), config)
        go = root / "go"
        prg = {**common, **DROPOUT_SAFE, "mode": "prg", "use-strategy": True,
               "pause-kind": "unmask_request", "pause-round": 1, "pause-file": str(go),
               "stage-timeout": KILL_TIMEOUT}  # fmt: skip
        proc, record = _flwr_run(deployment, root, "prg", prg)
        wait_until(lambda: Path(str(go) + ".paused").exists(), 600, "round 1's unmask")
        pids = pids_with_marker(str(root))
        bad = non_loopback(listening_sockets(), pids)
        procs.stop(deployment.supernodes["sn3"], sig=signal.SIGKILL)
        go.touch()
        rc = proc.popen.wait(timeout=900)
        second = _collect(record, rc, prg)
        procs.stop_all()
        yield Outcome(second, bad, pids_with_marker(str(root)))
    finally:
        procs.stop_all()


def test_prg_with_a_supernode_killed_mid_round_is_bit_identical(outcome: Outcome) -> None:
    run = outcome.prg
    assert run.rc == 0
    # round 1: node 3 uploaded, then died; round 2: only the survivors
    assert [r["members"] for r in run.rounds] == [[1, 2, 3], [1, 2, 3], [1, 2]]
    assert [r["applied"] for r in run.rounds] == [1, 1, 1]
    expected = simulated(run.run, 3, (Vanish(3, 1, VanishPhase.AFTER_SHARE),))
    assert len(run.weights) == len(expected) == ROUNDS
    for got, want in zip(run.weights, expected, strict=True):
        assert np.array_equal(got, want)
    assert not np.array_equal(run.weights[0], run.weights[-1])
    assert task.protocol_config(run.run).mode == "prg"


def test_listens_on_loopback_only_and_stops_everything(outcome: Outcome) -> None:
    assert outcome.listening_bad == []
    assert outcome.left_after_stop == set()
