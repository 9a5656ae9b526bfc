"""The documented deployment, run as written: ``examples/deploy-loopback.sh`` end to end on
127.0.0.1 (the one SSDDL deployment run of the suite).

The script makes the keys, certificates and the app's signature; starts a TLS SuperLink with
SuperNode authentication and three SuperNodes that run only apps signed by the trusted key
(``ssddl supernode ... --trusted-entities``) and a fourth whose key was never registered;
pushes a changed copy of the example app signed by another key, which every SuperNode must
refuse without running any of its code; then runs the signed app (``prg`` with double masking
and the signed survivor set, 2 rounds), kills SuperNode 3 (SIGKILL to its process group) while
the ServerApp holds round 0's unmask request, and tears everything down by process group.

Checked here: the script exits 0; the unregistered SuperNode exited with Flower's code 305;
each SuperNode logged the refusal and the changed app left no trace; round 0 keeps node 3's
upload (its self-mask rebuilt from the others' shares) and round 1 runs without
it; every round's global model equals ``ssddl.simulate`` bit for bit with the same seed and
configuration (with ``Vanish(3, 0, after_share)``), which also shows that every node's
protocol state survived Flower's fresh ClientApp process per message and that every reply
came from the node it was sent to; everything listened on 127.0.0.1 only; no process is left.
This is the suite's one run of Flower's deployment engine (the exchange's semantics are
checked in process over Flower's message types in ``test_flower_exchange.py``). The docs
show the script's commands (``test_the_docs_show_the_scripts_commands``, no processes).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "deploy-loopback.sh"
APP = ROOT / "examples" / "flower-app"
#: the longest the whole script may take on a loaded machine (it takes ~3-5 min)
LIMIT = 1800.0


@dataclass
class Outcome:
    rc: int
    output: str
    work: Path
    addresses: set[str]
    left: set[int]


@pytest.fixture(scope="session")  # once per worker, however xdist orders the group
def outcome(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outcome]:
    from tests.flower.harness import flower_env, pids_with_marker, watch_until_exit

    root = tmp_path_factory.mktemp("deploy-script")
    work = root / "work"
    env = flower_env(root / "unused-home")
    del env["FLWR_HOME"]  # the script sets its own
    src = str(ROOT / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    env["DEPLOY_WAIT_LIMIT"] = "900"
    log = root / "script.log"
    with open(log, "wb") as handle:
        proc = subprocess.Popen(
            ["bash", str(SCRIPT), str(work)],
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=root,
            start_new_session=True,
        )
    try:
        rc, addresses, left = watch_until_exit(proc, str(work), limit=LIMIT)
        yield Outcome(rc, log.read_text(errors="replace"), work, addresses, left)
    finally:
        # only if the script itself outlived the limit: its group, then what it started
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        for pid in pids_with_marker(str(work)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.flower
def test_the_script_exits_0(outcome: Outcome) -> None:
    assert outcome.rc == 0, outcome.output[-4000:]


@pytest.mark.flower
def test_the_unregistered_supernode_was_refused(outcome: Outcome) -> None:
    log = (outcome.work / "logs" / "intruder.log").read_text(errors="replace")
    assert "Exit Code: 305" in log, log[-2000:]
    assert "the unregistered SuperNode was refused" in outcome.output


@pytest.mark.flower
def test_every_supernode_refused_the_differently_signed_app(outcome: Outcome) -> None:
    for i in (1, 2, 3):
        log = (outcome.work / "logs" / f"supernode-{i}.log").read_text(errors="replace")
        assert "FAB verification failed" in log, f"SuperNode {i} did not refuse the changed app"
    assert not (outcome.work / "tampered-app-ran").exists()
    # and the signed app ran on them: one signature per bundle, the trusted one used
    assert len(list((outcome.work / "signatures").glob("*.sig"))) == 2


@pytest.mark.flower
def test_a_supernode_killed_mid_round_and_every_round_bit_identical(outcome: Outcome) -> None:
    sys.path.insert(0, str(APP))
    from ssddl.runtime.inmemory import Vanish, VanishPhase
    from tests.flower.test_flower_workflow import run_config, simulated

    records = outcome.work / "records"
    rounds = [json.loads(x) for x in (records / "rounds.jsonl").read_text().splitlines()]
    # round 0: node 3 uploaded, then died; round 1: only the survivors
    assert [r["members"] for r in rounds] == [[1, 2, 3], [1, 2]]
    assert [r["applied"] for r in rounds] == [1, 1]
    settings = tomllib.loads((outcome.work / "run.toml").read_text())
    run = run_config(**settings)
    expected = simulated(run, 3, (Vanish(3, 0, VanishPhase.AFTER_SHARE),))
    weights = [np.load(records / f"round-{r}.npy") for r in range(len(rounds))]
    assert len(weights) == len(expected) == 2
    for got, want in zip(weights, expected, strict=True):
        assert np.array_equal(got, want)
    assert not np.array_equal(weights[0], weights[-1])


@pytest.mark.flower
def test_listens_on_loopback_only_and_stops_everything(outcome: Outcome) -> None:
    hosts = {a.rsplit(":", 1)[0].strip("[]") for a in outcome.addresses}
    assert outcome.addresses, "no listening socket was seen while the script ran"
    assert hosts <= {"127.0.0.1", "::1", "::ffff:127.0.0.1"}, sorted(outcome.addresses)
    assert outcome.left == set()


def _script_commands() -> list[str]:
    """The script's command lines (``ssddl``, ``flwr`` and what its ``start NAME`` helper
    runs in the background), continuation lines joined, comments dropped."""
    commands, current = [], ""
    for line in SCRIPT.read_text().splitlines():
        text = line.strip()
        if current:
            current = current[:-1].rstrip() + " " + text
        elif re.match(r"^(mkdir|printf) ", line) or re.match(
            r"^(ssddl|flwr|start|for i in 1 2 3; do flwr) ", text
        ):
            current = text
        if current and not current.endswith("\\"):
            current = re.sub(r"\s+#.*$", "", current)
            commands.append(re.sub(r"^start \S+ ", "", current))
            current = ""
    return commands


def test_the_docs_show_the_scripts_commands() -> None:
    text = (ROOT / "docs" / "flower.md").read_text()
    joined = re.sub(r"\s*\\\n\s*", " ", text)
    commands = _script_commands()
    assert len(commands) >= 12
    assert any(c.startswith("ssddl supernode --app-signatures") for c in commands)
    missing = [c for c in commands if c not in joined]
    assert missing == [], f"docs/flower.md lacks these commands of {SCRIPT.name}: {missing}"


def test_the_readme_shows_only_the_scripts_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Participants on separate machines") :]
    begin = section.index("```sh\n") + 6
    block = section[begin : section.index("```", begin)]
    joined = re.sub(r"\s*\\\n\s*", " ", block)
    shown = [re.sub(r"\s+(#.*|&)$", "", line.strip()) for line in joined.splitlines()]
    shown = [c for c in shown if re.match(r"^(ssddl|flwr|flower-superlink|for i .*flwr) ", c)]
    commands = _script_commands()
    assert len(shown) >= 8
    assert [c for c in shown if c not in commands] == []
