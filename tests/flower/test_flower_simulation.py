"""The same counter app in Flower's simulation engine (Ray), kept on 127.0.0.1.

The run is a subprocess with a unique marker in its environment, so every Ray process it
starts (GCS, raylet, workers) is found through /proc while it runs — to check where it
listens — and after it ends, to check that none is left.
"""

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

import pytest

from tests.flower.harness import flower_env, pids_with_marker, watch_until_exit

pytestmark = pytest.mark.flower

RUNNER = Path(__file__).parent / "apps" / "run_sim.py"


@dataclass
class SimOutcome:
    rc: int
    events: list[dict[str, Any]]
    addresses: set[str]
    left: set[int]
    log: str


@pytest.fixture(scope="session")  # once per worker, however xdist orders the group
def sim() -> Iterator[SimOutcome]:
    # a short path: Ray puts Unix sockets under its temp dir
    root = Path(tempfile.mkdtemp(prefix="ssddl-sim-", dir="/tmp"))
    (root / "home").mkdir()
    env = flower_env(root / "home", {"SSDDL_TEST_MARKER": str(root), "RAY_TMPDIR": str(root)})
    result, log = root / "result.jsonl", root / "sim.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(RUNNER), str(result), "3", "4"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        rc, addresses, left = watch_until_exit(proc, str(root))
    finally:
        for pid in {proc.pid, *pids_with_marker(str(root))}:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=600)
    events = [json.loads(x) for x in result.read_text().splitlines()] if result.exists() else []
    outcome = SimOutcome(rc, events, addresses, left, log.read_text(errors="replace"))
    shutil.rmtree(root, ignore_errors=True)
    yield outcome


def test_simulation_runs_the_same_app(sim: SimOutcome) -> None:
    assert sim.rc == 0, sim.log[-3000:]
    batches = [e for e in sim.events if e["event"] == "batch"]
    mapping = {int(p): n for p, n in sim.events[0]["mapping"].items()}
    assert len(batches) == 4
    last = {r[0]: r for r in batches[-1]["replies"]}
    # participant 2 rejected batch 1 (reject-batch=1); the others counted every batch
    assert last[1][1:3] == [4, sum(100 * b + 1 for b in range(4))]
    assert last[2][1:3] == [3, sum(100 * b + 2 for b in (0, 2, 3))]
    assert last[3][1:3] == [4, sum(100 * b + 3 for b in range(4))]
    assert all(r[3] == mapping[r[0]] for b in batches for r in b["replies"])
    assert batches[1]["rejected"] == [2]


def test_ray_listens_on_loopback_only(sim: SimOutcome) -> None:
    assert len(sim.addresses) >= 2, "the check saw no Ray listener at all"
    hosts = {a.rsplit(":", 1)[0].strip("[]") for a in sim.addresses}
    assert hosts <= {"127.0.0.1", "::ffff:127.0.0.1", "::1"}, sim.addresses


def test_ray_processes_are_gone_afterwards(sim: SimOutcome) -> None:
    assert sim.left == set()
