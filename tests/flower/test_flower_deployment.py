"""The counter app on Flower's deployment engine: a TLS SuperLink with SuperNode
authentication, three registered SuperNodes and one intruder on 127.0.0.1, ``flwr run``.

One run (module fixture, ~70 s) serves every test here:

batch 0  every node gets a value;                         all reply
batch 1  node 2 gets b"reject";                           1 and 3 reply, 2 is a rejection
         -- the ServerApp pauses; the test kills SuperNode 3's process group --
batch 2  all three are sent a value;                      3 is missing, within the timeout
batch 3  the next batch proceeds;                         1 and 2 reply, 3 missing again
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.flower.harness import (
    Deployment,
    group_alive,
    left_after,
    listening_sockets,
    non_loopback,
    pids_with_marker,
    wait_until,
)

pytestmark = pytest.mark.flower

APP = Path(__file__).parent / "apps" / "counter-app"
TIMEOUT = 20.0


@dataclass
class Outcome:
    events: list[dict[str, Any]]
    node_of: dict[str, int]  # SuperNode process name -> Flower node id
    killed: str
    run_rc: int
    intruder_rc: int | None
    intruder_log: str
    listening_bad: list[str]
    listening_seen: int
    nodes_listed: str
    killed_group_alive: bool
    left_after_stop: set[int]

    def batch(self, b: int) -> dict[str, Any]:
        return next(e for e in self.events if e["event"] == "batch" and e["batch"] == b)

    @property
    def mapping(self) -> dict[int, int]:
        start = next(e for e in self.events if e["event"] == "start")
        return {int(p): n for p, n in start["mapping"].items()}

    def pid_of(self, name: str) -> int:
        return {n: p for p, n in self.mapping.items()}[self.node_of[name]]


def _events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _node_id(log: str) -> int | None:
    found = re.search(r"SuperNode ID: (\d+)", log)
    return int(found.group(1)) if found else None


@pytest.fixture(scope="session")  # once per worker, however xdist orders the group
def outcome(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outcome]:
    root = tmp_path_factory.mktemp("flwr-deploy")
    deployment = Deployment.create(root)
    procs = deployment.procs
    result, go = root / "result.jsonl", root / "go"
    try:
        deployment.start_superlink()
        names = ["sn1", "sn2", "sn3"]
        for name in names:
            deployment.start_supernode(name, deployment.node_key(name, register=True))
        intruder = deployment.start_supernode(
            "intruder", deployment.node_key("intruder", register=False)
        )
        run = deployment.flwr_run(
            APP,
            f"result-file='{result}' go-file='{go}' batches=4 pause-after=1 reject-batch=1 "
            f"timeout={TIMEOUT} num-nodes=3",
        )
        wait_until(lambda: any(e["event"] == "paused" for e in _events(result)), 600,
                   "the ServerApp to finish batch 1")  # fmt: skip
        node_of = {n: _node_id(deployment.supernodes[n].output()) for n in names}
        pids = pids_with_marker(str(root))
        sockets = listening_sockets()
        bad = non_loopback(sockets, pids)
        seen = sum(1 for _, owners in sockets if owners & pids)
        listed = deployment.flwr("supernode", "list", deployment.connection)
        # kill a SuperNode (and its SuperExec) the hard way, then let the ServerApp go on
        killed = "sn3"
        procs.stop(deployment.supernodes[killed], sig=signal.SIGKILL)
        killed_pid = deployment.supernodes[killed].pid
        try:
            wait_until(lambda: not group_alive(killed_pid), 120, "the killed group to vanish")
            killed_group_alive = False
        except TimeoutError:
            killed_group_alive = True
        go.touch()
        run_rc = run.popen.wait(timeout=600)
        intruder_rc = intruder.popen.poll()
        procs.stop_all()
        outcome = Outcome(
            events=_events(result),
            node_of={n: i for n, i in node_of.items() if i is not None},
            killed=killed,
            run_rc=run_rc,
            intruder_rc=intruder_rc,
            intruder_log=intruder.output(),
            listening_bad=bad,
            listening_seen=seen,
            nodes_listed=listed,
            killed_group_alive=killed_group_alive,
            left_after_stop=left_after(str(root)),
        )
    finally:
        procs.stop_all()
        for pid in pids_with_marker(str(root)):  # whatever outlived its group: by its id
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    yield outcome


def test_run_completes(outcome: Outcome) -> None:
    assert outcome.run_rc == 0
    assert [e["event"] for e in outcome.events] == [
        "start", "batch", "batch", "paused", "batch", "batch", "done",
    ]  # fmt: skip


def test_state_persists_across_fresh_clientapp_processes(outcome: Outcome) -> None:
    dead = outcome.pid_of(outcome.killed)
    replies = {
        b: {r[0]: r for r in outcome.batch(b)["replies"]} for b in range(4)
    }  # reply = [sender, count, sum, node id, os pid]

    def expected(pid: int, batches: list[int]) -> list[int]:
        return [len(batches), sum(100 * b + pid for b in batches)]

    for pid in (1, 2, 3):
        assert replies[0][pid][1:3] == expected(pid, [0])
    for pid in {1, 3} - {dead}:
        assert replies[1][pid][1:3] == expected(pid, [0, 1])
        assert replies[0][pid][4] != replies[1][pid][4]  # another ClientApp process answered
    for pid in {1, 2, 3} - {dead}:
        # participant 2 rejected batch 1, so its state was left as it was after batch 0
        done = [0, 1, 2, 3] if pid != 2 else [0, 2, 3]
        assert replies[3][pid][1:3] == expected(pid, done)
        assert len({replies[b][pid][4] for b in (0, 2, 3)}) == 3


def test_reply_sender_is_the_mapped_node(outcome: Outcome) -> None:
    mapping = outcome.mapping
    assert sorted(mapping) == [1, 2, 3]
    assert sorted(mapping.values()) == sorted(outcome.node_of.values())
    for event in outcome.events:
        for reply in event.get("replies", []):
            # the node id the ClientApp saw in its own context is the one mapped to the
            # protocol id the exchange attributed the reply to
            assert reply[3] == mapping[reply[0]]


def test_handler_error_is_a_rejection_with_its_text(outcome: Outcome) -> None:
    assert outcome.batch(1)["rejected"] == [2]
    done = outcome.events[-1]
    assert done["rejections"] == [
        [2, 100, "ProtocolError: counter refuses frame 'reject' (test of error replies)"]
    ]
    assert done["dropped"] == {}


def test_unregistered_supernode_is_refused(outcome: Outcome) -> None:
    assert outcome.intruder_rc is not None and outcome.intruder_rc != 0
    assert "Exit Code: 305" in outcome.intruder_log
    online = re.findall(r"(\d{6,})\s*│[^│]*│\s*online", outcome.nodes_listed)
    assert sorted(int(n) for n in online) == sorted(outcome.node_of.values())


def test_killed_supernode_is_missing_within_timeout_and_next_batch_proceeds(
    outcome: Outcome,
) -> None:
    dead = outcome.pid_of(outcome.killed)
    for b in (2, 3):
        batch = outcome.batch(b)
        assert batch["missing"] == [dead] or batch["rejected"] == [dead]
        assert sorted(r[0] for r in batch["replies"]) == sorted({1, 2, 3} - {dead})
        # Flower's HTTP grid pulls every 3 s, so a call returns within one pull of its timeout
        assert batch["seconds"] <= TIMEOUT + 3.5


def test_everything_listens_on_loopback_only(outcome: Outcome) -> None:
    assert outcome.listening_seen >= 4  # the SuperLink and the SuperNodes' runtime APIs
    assert outcome.listening_bad == []


def test_every_process_is_stopped(outcome: Outcome) -> None:
    assert not outcome.killed_group_alive
    assert outcome.left_after_stop == set()
