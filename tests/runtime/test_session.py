"""The one way in: ``Session.build`` wires every in-process session, and the simulator takes
any exchange."""

from __future__ import annotations

import ast
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from ssddl.hazmat.codec import ring_sum
from ssddl.learning import LocalTrainConfig, build_model, load_digits, partition
from ssddl.protocol import LocalUpdate, ProtocolConfig, UniformSubset
from ssddl.protocol.messages import RoundStatus
from ssddl.runtime import Frame, InMemoryExchange, SimulationConfig, simulate
from ssddl.runtime.hosts import LiveHost, PersistedHost
from ssddl.runtime.inmemory import Metered, metered
from ssddl.runtime.session import Session, in_memory, live, persisted
from tests.protocol.helpers import labelled, synthetic_delta

SRC = Path(__file__).resolve().parents[2] / "src" / "ssddl"
SEED = b"\x22" * 32


def trainers(n: int, size: int) -> dict[int, object]:
    def trainer_for(pid: int):
        return lambda weights, r: LocalUpdate(synthetic_delta(pid, r, size), 10 + pid)

    return {p: trainer_for(p) for p in range(1, n + 1)}


def build(host=live, exchange=None, mode="prg", n=5, size=33, inspectors=None):
    seen: dict[int, dict[int, np.ndarray]] = {}

    def keep(pid):
        return lambda r, x: seen.setdefault(r, {}).__setitem__(pid, x)

    session = Session.build(
        ProtocolConfig(mode=mode, rounds=2, max_samples=64),
        trainers(n, size),
        np.zeros(size, dtype=np.float32),
        selection=UniformSubset(np.random.default_rng(0)),
        sources=labelled("session-test"),
        inspectors=inspectors or keep,
        host=host,
        exchange=exchange,
    )
    return session, seen


@pytest.mark.parametrize("mode", ["prg", "explicit", "shamir"])
def test_a_built_session_sums_exactly_in_the_ring(mode):
    session, seen = build(mode=mode)
    session.driver.init()
    for _ in range(2):
        outcome = session.driver.round()
        assert outcome.status is RoundStatus.APPLIED
        expected = ring_sum([seen[outcome.round][p] for p in outcome.contributors])
        assert np.array_equal(outcome.aggregate, expected)
    session.driver.finish()


def test_live_and_persisted_hosts_give_the_same_bytes():
    """A participant kept as state bytes, rebuilt for every message, behaves exactly like the
    live object: same frames on the wire, same aggregate."""
    runs = []
    for host in (live, persisted):
        carrier = InMemoryExchange()
        session, _ = build(host=host, exchange=carrier.attach)
        assert session.exchange is carrier
        wanted = PersistedHost if host is persisted else LiveHost
        assert all(isinstance(h, wanted) for h in carrier.hosts.values())
        session.driver.init()
        outcomes = [session.driver.round() for _ in range(2)]
        runs.append(([r.nbytes for r in carrier.records], [o.aggregate for o in outcomes]))
    assert runs[0][0] == runs[1][0]
    assert all(np.array_equal(a, b) for a, b in zip(runs[0][1], runs[1][1], strict=True))


def test_session_participant_reads_the_current_rebuilt_object():
    session, _ = build(host=persisted)
    session.driver.init()
    session.driver.round()
    current = session.participant(2)
    assert current is not session.participants[2]  # rebuilt from state for every message
    assert current.to_bytes() == session.exchange.hosts[2].state


class Relay:
    """An exchange that is not the in-memory one: it forwards through a private in-memory
    exchange and keeps nothing itself (as a network exchange would not count for us)."""

    def __init__(self, hosts):
        self._inner = InMemoryExchange(hosts)
        self.batches = 0

    def send_and_receive(
        self, frames: Sequence[Frame], *, timeout: float | None = None, round_number: int = -1
    ) -> list[Frame]:
        self.batches += 1
        return self._inner.send_and_receive(frames, timeout=timeout, round_number=round_number)


def test_metered_counts_what_the_in_memory_exchange_counts():
    counted = []
    for make in (None, lambda hosts: Metered(Relay(hosts))):
        session, _ = build(exchange=make)
        session.driver.init()
        outcome = session.driver.round()
        traffic = metered(session.exchange)
        counted.append((traffic.bytes_by_participant(outcome.round), traffic.total_bytes()))
    assert counted[0] == counted[1]
    relay = Relay({})
    assert metered(relay) is not relay and isinstance(metered(relay), Metered)
    carrier = InMemoryExchange()
    assert metered(carrier) is carrier


@pytest.fixture(scope="module")
def digits():
    split = load_digits(seed=0)
    parts = partition(split.train.y, 4, "iid", rng=np.random.default_rng(0))
    return [split.train.subset(p) for p in parts], split.test


def test_the_simulator_runs_over_any_exchange(digits):
    datasets, test = digits
    config = SimulationConfig(
        protocol=ProtocolConfig(mode="prg", rounds=2),
        train=LocalTrainConfig(epochs=1, lr=0.05),
        validate=True,
        insecure_crypto_seed=SEED,
        mask_worker="thread",
    )
    relays: list[Relay] = []

    def relay(hosts):
        relays.append(Relay(hosts))
        return relays[-1]

    with pytest.warns(UserWarning, match="insecure_crypto_seed"):
        default = simulate(build_model("mlp", (64,), 10, seed=0), datasets, config, test=test)
    with pytest.warns(UserWarning, match="insecure_crypto_seed"):
        other = simulate(
            build_model("mlp", (64,), 10, seed=0), datasets, config, test=test, exchange=relay
        )
    assert relays and relays[0].batches > 0  # the frames went through the relay
    assert [h.validated for h in other.history] == [True, True]
    assert [h.accuracy for h in other.history] == [h.accuracy for h in default.history]
    assert [h.upload_bytes_mean for h in other.history] == [
        h.upload_bytes_mean for h in default.history
    ]
    assert other.summary()["total_bytes"] == default.summary()["total_bytes"]


def test_in_memory_factory_applies_its_faults():
    from ssddl.protocol.messages import MessageKind
    from ssddl.runtime import Delay

    session, _ = build(exchange=in_memory([Delay(2, 0, MessageKind.MASKED_UPLOAD)]))
    session.driver.init()
    outcome = session.driver.round()
    assert 2 not in outcome.contributors and outcome.status is RoundStatus.APPLIED


# -- the wiring appears once ---------------------------------------------------------------

#: the files allowed to construct protocol roles: the one wiring, and the Flower mod, which
#: hosts the single participant of its node (built from context.state per message)
WIRING = {"runtime/session.py", "runtime/flower/mod.py"}


def constructions(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name | ast.Attribute):
            name = node.func.id if isinstance(node.func, ast.Name) else node.func.attr
            if name in {"Participant", "Server", "Driver", "restore"}:
                found.add(name)
    return found


def test_the_session_is_wired_in_one_place():
    outside = {
        str(p.relative_to(SRC)): constructions(p)
        for p in SRC.rglob("*.py")
        if str(p.relative_to(SRC)) not in WIRING and not p.is_relative_to(SRC / "protocol")
    }
    assert {path: names for path, names in outside.items() if names} == {}


def test_the_wiring_check_sees_a_hand_written_session(tmp_path):
    source = tmp_path / "wired.py"
    source.write_text(
        "from ssddl.protocol import server\n"
        "def wire(c, r, w, s):\n"
        "    p = Participant(1, key, r, t)\n"
        "    return server.Server(c, r, w, selection=s), p\n"
    )
    assert constructions(source) == {"Participant", "Server"}
