"""The example SSDDL app in Flower's simulation engine (Ray on 127.0.0.1): 4 virtual nodes,
``prg`` with double masking and an even group of 4 with threshold 3, Flower's FedAvg
sampling and evaluating; the global model after every round is bit-identical to
``ssddl.simulate``; Ray listens on the loopback interface only and is gone afterwards."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ssddl.runtime.keyfiles import write_identities
from tests.flower.harness import flower_env, pids_with_marker, watch_until_exit
from tests.flower.test_flower_workflow import run_config, simulated

pytestmark = pytest.mark.flower

RUNNER = Path(__file__).parent / "apps" / "run_ssddl_sim.py"
NODES = 4


@dataclass
class SimOutcome:
    rc: int
    run: dict[str, Any]
    weights: list[np.ndarray]
    result: dict[str, Any]
    addresses: set[str]
    left: set[int]
    log: str


@pytest.fixture(scope="session")  # once per worker, however xdist orders the group
def sim() -> Iterator[SimOutcome]:
    root = Path(tempfile.mkdtemp(prefix="ssddl-sim2-", dir="/tmp"))  # short: Ray's sockets
    (root / "home").mkdir()
    (root / "keys").mkdir()
    (root / "record").mkdir()
    write_identities(root / "keys", NODES)
    overrides = {
        "mode": "prg", "threshold": 3, "group-size": 4, "min-group-size": 3,
        "num-server-rounds": 2, "num-partitions": NODES, "fraction-evaluate": 1.0,
        "roster": str(root / "keys" / "roster.json"), "ssddl-keys-dir": str(root / "keys"),
        "record-dir": str(root / "record"), "stage-timeout": 60.0,
    }  # fmt: skip
    run = run_config(**overrides)
    env = flower_env(root / "home", {"SSDDL_TEST_MARKER": str(root), "RAY_TMPDIR": str(root)})
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[2]), *sys.path])
    log = root / "sim.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(RUNNER), str(NODES), json.dumps(run)],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        rc, addresses, left = watch_until_exit(proc, str(root))
    finally:
        for pid in {proc.pid, *pids_with_marker(str(root))}:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=600)
    record = root / "record"
    weights = [np.load(p) for p in sorted(record.glob("round-*.npy"))]
    result = (
        json.loads((record / "result.json").read_text())
        if (record / "result.json").exists()
        else {}
    )
    outcome = SimOutcome(rc, run, weights, result, addresses, left, log.read_text(errors="replace"))
    shutil.rmtree(root, ignore_errors=True)
    yield outcome


def test_even_group_with_fedavg_is_bit_identical_to_the_simulator(sim: SimOutcome) -> None:
    assert sim.rc == 0, sim.log[-3000:]
    expected = simulated(sim.run, NODES)
    assert len(sim.weights) == len(expected) == 2
    for got, want in zip(sim.weights, expected, strict=True):
        assert np.array_equal(got, want)


def test_strategy_evaluation_and_metrics_still_work(sim: SimOutcome) -> None:
    assert sorted(sim.result["evaluate"]) == ["1", "2"]
    assert 0.0 < sim.result["evaluate"]["2"]["accuracy"] <= 1.0
    assert sim.result["train"]["2"]["contributors"] == NODES
    assert sorted(sim.result["central"]) == ["0", "1", "2"]


def test_ray_listens_on_loopback_only_and_is_gone(sim: SimOutcome) -> None:
    assert len(sim.addresses) >= 2, "the check saw no Ray listener at all"
    hosts = {a.rsplit(":", 1)[0].strip("[]") for a in sim.addresses}
    assert hosts <= {"127.0.0.1", "::ffff:127.0.0.1", "::1"}, sim.addresses
    assert sim.left == set()
