"""The SSDDL workflow and ClientApp in one process, over a grid that hands every message to
the example app's ClientApp with a per-node Context (state kept, as a SuperNode keeps it).

The global model after every round must be bit-identical to ``ssddl.simulate`` with the same
seed and configuration — with Flower's FedAvg sampling and evaluating, with SSDDL's own
selection, with an even group size, and with a node that stops answering mid-round.

``NodeGrid`` runs each ClientApp call at push time, so the short stage and discovery timeouts
(1 s, 0.5 s) never race a reply on a busy machine; they only bound the wait for a node that
is muted by construction. Tests here share this grid with test_flower_trust.py and
test_flower_dp.py.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict

from ssddl.exceptions import ConfigurationError, InvalidKey
from ssddl.runtime.exchange import frame_kind
from ssddl.runtime.flower import WorkflowConfig, start
from ssddl.runtime.flower.mod import (
    HELLO,
    arrays_to_vector,
    node_settings,
    policy_from_config,
    vector_to_arrays,
)
from ssddl.runtime.flower.workflow import SSDDLFitWorkflow
from ssddl.runtime.inmemory import Vanish, VanishPhase
from ssddl.runtime.keyfiles import load_identity, load_roster, write_identities

APP_DIR = Path(__file__).resolve().parents[2] / "examples" / "flower-app"
sys.path.insert(0, str(APP_DIR))

from ssddl_flower_app import client_app, task  # noqa: E402

pytestmark = pytest.mark.usefixtures("task_identity")


#: three nodes that survive one dropout: no colluder, t = 2, the survivor set signed
DROPOUT_SAFE = {"consistency": True, "threshold": 2, "max-colluders": 0}


def run_config(**overrides: Any) -> dict[str, Any]:
    data = tomllib.loads((APP_DIR / "pyproject.toml").read_text())
    run = dict(data["tool"]["flwr"]["app"]["config"])
    run.update(overrides)
    return run


class NodeGrid:
    """Delivers messages to the example ClientApp; ``mute`` silences a node from a given
    point on (a node that dies)."""

    def __init__(self, keys: Path, run: dict[str, Any], n: int, app: Any = None) -> None:
        self.app = client_app.app if app is None else app
        self.run = SimpleNamespace(run_id=7)
        self.contexts = {
            1000 + 7 * k: Context(
                run_id=7,
                node_id=1000 + 7 * k,
                node_config={
                    "ssddl-identity-key": str(keys / f"participant-{k + 1}.key"),
                    "ssddl-roster": str(keys / "roster.json"),
                    "partition-id": k,
                    "num-partitions": n,
                },
                state=RecordDict(),
                run_config=run,
            )
            for k in range(n)
        }
        self.mute: Callable[[int, Message], bool] = lambda node, msg: False
        self.kinds: list[str] = []
        self._replies: list[Message] = []

    def get_node_ids(self) -> list[int]:
        return list(self.contexts)

    def send_and_receive(self, messages: Any, *, timeout: float | None = None) -> list[Message]:
        replies = []
        for msg in messages:
            msg.metadata.__dict__["_message_id"] = uuid.uuid4().hex
            node = msg.metadata.dst_node_id
            if self.mute(node, msg):
                continue
            if "ssddl" in msg.content.config_records:
                frames = msg.content.config_records["ssddl"]["frames"]
                self.kinds += [frame_kind(f) for f in frames]  # type: ignore[union-attr]
            replies.append(self.app(msg, self.contexts[node]))
        return replies

    def push_messages(self, messages: Any) -> list[str]:
        self._replies = self.send_and_receive(messages)
        ids = [m.metadata.message_id for m in messages]
        return ids

    def pull_messages(self, ids: Any) -> list[Message]:
        out, self._replies = self._replies, []
        return out


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("keys")
    write_identities(directory, 4)
    return directory


def simulated(run: dict[str, Any], n: int, vanish: tuple[Vanish, ...] = ()) -> list[np.ndarray]:
    import ssddl

    seed = int(run["seed"])
    weights: list[np.ndarray] = []
    config = ssddl.SimulationConfig(
        protocol=task.protocol_config(run), train=task.train_config(run), seed=seed, vanish=vanish
    )
    ssddl.simulate(
        task.model(seed),
        [task.local_data(seed, k, n) for k in range(n)],
        config,
        on_state=lambda s: weights.append(s.weights.copy()),
    )
    return weights


def workflow_config(keys: Path, run: dict[str, Any], n: int) -> WorkflowConfig:
    roster = {p: k for p, k in load_roster(keys / "roster.json").items() if p <= n}
    return WorkflowConfig(
        task.protocol_config(run), roster, stage_timeout=1.0, discovery_timeout=1.0
    )


def initial_arrays(run: dict[str, Any]) -> ArrayRecord:
    net = task.model(int(run["seed"]))
    return ArrayRecord(numpy_ndarrays=[p.detach().numpy() for p in net.parameters()])


def flower(
    keys: Path,
    run: dict[str, Any],
    n: int,
    *,
    strategy: Any = None,
    mute: Any = None,
    app: Any = None,
    train_config: Any = None,
) -> tuple[list[np.ndarray], Any, NodeGrid]:
    grid = NodeGrid(keys, run, n, app)
    if mute is not None:
        grid.mute = mute
    weights: list[np.ndarray] = []
    result = start(
        grid,
        workflow_config(keys, run, n),
        initial_arrays(run),
        strategy=strategy,
        train_config=train_config,
        on_round=lambda outcome, arrays: weights.append(arrays_to_vector(arrays)),
    )
    return weights, result, grid


def assert_identical(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    assert len(a) == len(b) and a
    for x, y in zip(a, b, strict=True):
        assert x.dtype == y.dtype == np.float32
        assert np.array_equal(x, y)
    assert not np.array_equal(a[0], a[-1])  # the model did move


def test_prg_with_fedavg_is_bit_identical_to_the_simulator_and_evaluates(keys: Path) -> None:
    from flwr.serverapp.strategy import FedAvg

    run = run_config(**{"num-server-rounds": 2})
    strategy = FedAvg(fraction_train=1.0, fraction_evaluate=1.0, min_available_nodes=2)
    weights, result, grid = flower(keys, run, 3, strategy=strategy)
    assert_identical(weights, simulated(run, 3))
    assert "round_start" in grid.kinds and "unmask_request" in grid.kinds
    assert sorted(result.evaluate_metrics_clientapp) == [1, 2]
    assert 0.0 < result.evaluate_metrics_clientapp[2]["accuracy"] <= 1.0
    assert result.train_metrics_clientapp[2]["contributors"] == 3
    # round ends and the key directory ride with the next batch: 2 round trips per round
    assert np.array_equal(arrays_to_vector(result.arrays), weights[-1])


def test_shamir_even_group_is_bit_identical(keys: Path) -> None:
    run = run_config(**{"mode": "shamir", "threshold": 3, "num-server-rounds": 2,
                        "num-partitions": 4, "min-group-size": 3})  # fmt: skip
    weights, _, _ = flower(keys, run, 4)
    assert_identical(weights, simulated(run, 4))


def test_node_silent_after_its_upload_is_a_dropout_and_the_next_round_proceeds(
    keys: Path,
) -> None:
    # three nodes survive a dropout only with no colluder: t = 2, and the survivor set signed
    # (without the signed round a split of survivor lists would need t = 3 at n = 3)
    run = run_config(**{"num-server-rounds": 3, **DROPOUT_SAFE})
    dead = 1000 + 7 * 2  # participant 3
    seen: list[str] = []

    def mute(node: int, msg: Message) -> bool:
        if node != dead or "ssddl" not in msg.content.config_records:
            return False
        kinds = [frame_kind(f) for f in msg.content.config_records["ssddl"]["frames"]]
        seen.extend(k for k in kinds if k == "unmask_request")
        return len(seen) >= 2  # round 0's unmask answered; round 1's is not

    # muted from round 1's unmask on: its upload arrived, then it was gone
    weights, result, _ = flower(keys, run, 3, mute=mute)
    expected = simulated(run, 3, (Vanish(3, 1, VanishPhase.AFTER_SHARE),))
    assert_identical(weights, expected)
    metrics = result.train_metrics_clientapp
    assert [metrics[r]["applied"] for r in (1, 2, 3)] == [1, 1, 1]
    assert metrics[2]["contributors"] == 3 and metrics[3]["contributors"] == 2


def test_discovery_keeps_only_roster_keys(keys: Path, tmp_path: Path) -> None:
    run = run_config()
    grid = NodeGrid(keys, run, 3)
    other = tmp_path / "other"
    other.mkdir()
    write_identities(other, 1)
    intruder = grid.contexts[1014]
    intruder.node_config["ssddl-identity-key"] = str(other / "participant-1.key")
    from ssddl.runtime.flower.workflow import discover

    found = discover(grid, load_roster(keys / "roster.json"), timeout=0.5, poll_interval=0.1)
    assert found == {1: 1000, 2: 1007}


def test_hello_proves_the_roster_id_of_the_node_key(keys: Path) -> None:
    from ssddl.runtime.flower.membership import Claim, verify_claim

    grid = NodeGrid(keys, run_config(), 3)
    challenge = bytes(range(32))
    msg = Message(RecordDict({HELLO: ConfigRecord({"v": 2, "challenge": challenge})}), 1007,
                  "query.ssddl")  # fmt: skip
    msg.metadata.__dict__["_message_id"] = "m1"
    reply = client_app.app(msg, grid.contexts[1007])
    record = reply.content.config_records[HELLO]
    roster = load_roster(keys / "roster.json")
    assert record["participant"] == 2 and record["public-key"] == roster[2]
    claim = Claim(1007, record["participant"], record["signature"])
    assert verify_claim(claim, roster, challenge, 7) == 2
    # without a challenge the node proves nothing and says why
    old = Message(RecordDict({HELLO: ConfigRecord({"v": 1})}), 1007, "query.ssddl")
    old.metadata.__dict__["_message_id"] = "m0"
    refused = client_app.app(old, grid.contexts[1007])
    assert refused.has_error() and "challenge" in refused.error.reason


def test_node_settings_come_from_the_node_config(keys: Path, tmp_path: Path) -> None:
    grid = NodeGrid(keys, run_config(), 3)
    context = grid.contexts[1000]
    context.node_config["ssddl-modes"] = "shamir"
    context.node_config["ssddl-min-group-size"] = 3
    settings = node_settings(context)
    assert settings.participant == 1
    assert settings.policy.modes == ("shamir",) and settings.policy.min_group_size == 3
    del context.node_config["ssddl-roster"]
    with pytest.raises(ConfigurationError, match="ssddl-roster"):
        node_settings(context)
    with pytest.raises(ConfigurationError, match="ssddl-recoveries"):
        policy_from_config({"ssddl-recoveries": "maybe"})


def test_policy_from_the_node_refuses_the_announced_mode(keys: Path) -> None:
    run = run_config(**{"mode": "shamir"})
    grid = NodeGrid(keys, run, 3)
    for context in grid.contexts.values():
        context.node_config["ssddl-modes"] = "prg"
    roster = load_roster(keys / "roster.json")
    config = WorkflowConfig(
        task.protocol_config(run),
        {p: roster[p] for p in (1, 2, 3)},
        stage_timeout=0.5,
        discovery_timeout=0.5,
    )
    net = task.model(0)
    initial = ArrayRecord(numpy_ndarrays=[p.detach().numpy() for p in net.parameters()])
    from ssddl.exceptions import GroupTooSmall

    with pytest.raises(GroupTooSmall, match="PolicyViolation"):  # nobody registers keys
        start(grid, config, initial)


def test_key_files(keys: Path, tmp_path: Path) -> None:
    key = keys / "participant-1.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert load_identity(key).public_bytes == load_roster(keys / "roster.json")[1]
    with pytest.raises(ConfigurationError, match="already exists"):
        write_identities(keys, 2)
    loose = tmp_path / "loose.key"
    loose.write_bytes(key.read_bytes())
    loose.chmod(0o644)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        load_identity(loose)
    bad = tmp_path / "bad.key"
    bad.write_bytes(b"not a key")
    bad.chmod(0o600)
    with pytest.raises(InvalidKey):
        load_identity(bad)
    (tmp_path / "roster.json").write_text('{"format": "other"}')
    with pytest.raises(ConfigurationError, match="format"):
        load_roster(tmp_path / "roster.json")


def test_vector_arrays_round_trip_and_size_check() -> None:
    template = ArrayRecord(numpy_ndarrays=[np.zeros((2, 3), np.float32), np.zeros(4, np.float32)])
    vector = np.arange(10, dtype=np.float32)
    arrays = vector_to_arrays(vector, template)
    assert np.array_equal(arrays_to_vector(arrays), vector)
    with pytest.raises(ConfigurationError, match="template"):
        vector_to_arrays(np.zeros(11, np.float32), template)


def test_mod_trains_through_call_next(keys: Path) -> None:
    from flwr.app import MetricRecord

    from ssddl.runtime.flower import ssddl_mod

    grid = NodeGrid(keys, run_config(), 3)
    template = ArrayRecord(numpy_ndarrays=[np.zeros(3, np.float32)])
    calls: list[str] = []

    def call_next(message: Message, context: Context) -> Message:
        calls.append(message.metadata.message_type)
        arrays = message.content["arrays"]
        trained = vector_to_arrays(arrays_to_vector(arrays) + 0.5, arrays)
        content = RecordDict({"arrays": trained, "metrics": MetricRecord({"num-examples": 8})})
        return Message(content, reply_to=message)

    mod = ssddl_mod(lambda context: template)
    from ssddl.runtime.flower.mod import call_next_trainer

    msg = Message(RecordDict({"ssddl": ConfigRecord({"frames": []})}), 1000, "query.ssddl")
    msg.metadata.__dict__["_message_id"] = "m2"
    update = call_next_trainer(msg, call_next, lambda c: template)(
        np.zeros(3, np.float32), 0, 1, grid.contexts[1000]
    )
    assert calls == ["train"] and update.num_samples == 8
    assert np.allclose(update.delta, 0.5)
    configs: list[dict[str, Any]] = []

    def remember(message: Message, context: Context) -> Message:
        configs.append(dict(message.content["config"]))
        return call_next(message, context)

    call_next_trainer(msg, remember, lambda c: template)(
        np.zeros(3, np.float32), 4, 1, grid.contexts[1000], config={"lr": 0.1, "server-round": 0}
    )
    assert configs == [{"lr": 0.1, "server-round": 5}]  # the protocol's round wins
    calls.clear()
    with pytest.raises(ConfigurationError, match="legacy"):
        ssddl_mod(lambda context: template, legacy="yes")  # type: ignore[arg-type]
    # other message types pass through the mod; query.ssddl is answered by it
    other = Message(RecordDict({"arrays": template}), 1000, "train")
    other.metadata.__dict__["_message_id"] = "m3"
    mod(other, grid.contexts[1000], call_next)
    assert calls == ["train"]
    answered = mod(msg, grid.contexts[1000], call_next)
    assert not answered.has_error() and calls == ["train"]


@pytest.fixture(autouse=True)
def _no_leftover_path() -> Iterator[None]:
    yield


# -- the legacy API: DefaultWorkflow + LegacyContext on the server, client_fn + mod on nodes --


def legacy_client_app(seen: list[dict[str, Any]]) -> Any:
    """A legacy ``ClientApp(client_fn=...)`` whose NumPyClient trains the example's model
    exactly as the simulator's trainer does, with ``ssddl_mod(legacy=True)`` in front."""
    from flwr.client import NumPyClient
    from flwr.clientapp import ClientApp

    from ssddl.learning.train import train_local
    from ssddl.learning.vector import model_to_vector, vector_to_model
    from ssddl.runtime.flower import ssddl_mod
    from ssddl.runtime.seeds import train_seed

    class Client(NumPyClient):  # type: ignore[misc]
        def __init__(self, context: Context) -> None:
            self.context = context

        def fit(self, parameters: Any, config: Any) -> Any:
            seen.append(dict(config))
            run = self.context.run_config
            seed = int(run["seed"])
            pid = node_settings(self.context).participant
            count = int(self.context.node_config["num-partitions"])
            data = task.local_data(seed, pid - 1, count)
            net = task.model(seed)
            vector_to_model(np.concatenate([np.ravel(a) for a in parameters]), net)
            round_number = int(config["server-round"]) - 1
            result = train_local(
                net, data, task.train_config(run), seed=train_seed(seed, pid, round_number)
            )
            trained = [p.detach().numpy().copy() for p in net.parameters()]
            assert np.array_equal(np.concatenate([t.ravel() for t in trained]),
                                  model_to_vector(net))  # fmt: skip
            return trained, result.num_samples, {"loss": float(result.mean_loss)}

    def template(context: Context) -> ArrayRecord:
        return initial_arrays(dict(context.run_config))

    return ClientApp(
        client_fn=lambda context: Client(context).to_client(),
        mods=[ssddl_mod(template, legacy=True)],
    )


def test_legacy_default_workflow_with_a_legacy_client_is_bit_identical(keys: Path) -> None:
    from flwr.common import ndarrays_to_parameters
    from flwr.server import ServerConfig
    from flwr.server.compat.legacy_context import LegacyContext
    from flwr.server.strategy import FedAvg as LegacyFedAvg
    from flwr.server.workflow import DefaultWorkflow

    run = run_config(**{"num-server-rounds": 2})
    seen: list[dict[str, Any]] = []
    grid = NodeGrid(keys, run, 3, legacy_client_app(seen))
    central: list[int] = []

    def evaluate_fn(server_round: int, parameters: Any, config: Any) -> Any:
        central.append(server_round)
        return 0.0, {}

    strategy = LegacyFedAvg(
        fraction_fit=1.0,
        fraction_evaluate=0.0,
        min_fit_clients=3,
        min_available_clients=3,
        initial_parameters=ndarrays_to_parameters(initial_arrays(run).to_numpy_ndarrays()),
        on_fit_config_fn=lambda r: {"tag": f"fit-{r}"},
        evaluate_fn=evaluate_fn,
    )
    context = LegacyContext(
        Context(run_id=7, node_id=0, node_config={}, state=RecordDict(), run_config=run),
        config=ServerConfig(num_rounds=2),
        strategy=strategy,
    )
    workflow = SSDDLFitWorkflow(workflow_config(keys, run, 3))
    DefaultWorkflow(fit_workflow=workflow)(grid, context)

    expected = simulated(run, 3)
    final = arrays_to_vector(context.state.array_records["parameters"])
    assert np.array_equal(final, expected[-1]) and not np.array_equal(expected[0], final)
    assert workflow.session is not None and workflow.session.server.round == 1
    assert "unmask_request" in grid.kinds and "session_end" in grid.kinds
    # every node trained through the legacy fit with the strategy's config, once per round
    assert sorted((c["tag"], c["server-round"]) for c in seen) == sorted(
        [("fit-1", 1)] * 3 + [("fit-2", 2)] * 3
    )
    assert central == [0, 1, 2]
    fit_metrics = context.history.metrics_distributed_fit
    assert [v for _, v in fit_metrics["contributors"]] == [3, 3]


def test_legacy_workflow_refuses_a_plain_context(keys: Path) -> None:
    run = run_config()
    context = Context(run_id=7, node_id=0, node_config={}, state=RecordDict(), run_config=run)
    with pytest.raises(ConfigurationError, match="LegacyContext"):
        SSDDLFitWorkflow(workflow_config(keys, run, 3))(NodeGrid(keys, run, 3), context)
    with pytest.raises(ConfigurationError, match="WorkflowConfig"):
        SSDDLFitWorkflow(run)  # type: ignore[arg-type]


def test_the_strategy_train_config_reaches_local_train(keys: Path) -> None:
    from flwr.clientapp import ClientApp
    from flwr.serverapp.strategy import FedAvg

    from ssddl.runtime.flower import SSDDLClient

    seen: list[tuple[int, int, dict[str, Any]]] = []

    def train(weights: np.ndarray, round_number: int, participant: int, context: Context,
              config: dict[str, Any]) -> Any:  # fmt: skip
        seen.append((participant, round_number, config))
        return client_app.train(weights, round_number, participant, context)

    app = ClientApp()
    app.query("ssddl")(SSDDLClient(train, settings=client_app.settings).query)
    run = run_config(**{"num-server-rounds": 2})
    strategy = FedAvg(fraction_train=1.0, fraction_evaluate=0.0, min_available_nodes=3)
    weights, _, _ = flower(keys, run, 3, strategy=strategy, app=app,
                           train_config=ConfigRecord({"lr-hint": 0.25}))  # fmt: skip
    assert_identical(weights, simulated(run, 3))
    assert sorted((p, r) for p, r, _ in seen) == [(p, r) for p in (1, 2, 3) for r in (0, 1)]
    for _, r, config in seen:
        assert config["lr-hint"] == 0.25 and config["server-round"] == r + 1


def test_a_strategy_waiting_for_absent_nodes_gives_up(keys: Path) -> None:
    import time

    from flwr.serverapp.strategy import FedAvg

    from ssddl.exceptions import GroupTooSmall

    run = run_config()
    strategy = FedAvg(fraction_train=1.0, fraction_evaluate=0.0, min_available_nodes=5)
    started = time.monotonic()
    with pytest.raises(GroupTooSmall, match="min_available_nodes"):
        flower(keys, run, 3, strategy=strategy)
    assert time.monotonic() - started < 10
