"""Issue 23 in process: membership proved at discovery, sealed participant state, what the
operator sees in the log, and the Message-API mod with ``@app.train()`` as docs/flower.md
shows it. The workflow runs against :class:`NodeGrid` (the example's ClientApp per node)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from ssddl.exceptions import KeyCompromise
from ssddl.protocol.state import ParticipantState
from ssddl.runtime.flower import WorkflowConfig, node_settings, ssddl_mod, start
from ssddl.runtime.flower.client import STATE_KEY, STATE_RECORD
from ssddl.runtime.flower.mod import HELLO, SSDDLClient, _unpack, arrays_to_vector
from ssddl.runtime.flower.sealed import SEAL_HEADER, open_state
from ssddl.runtime.flower.workflow import discover
from ssddl.runtime.keyfiles import load_identity, load_roster, write_identities
from tests.flower.test_flower_workflow import (
    DROPOUT_SAFE,
    NodeGrid,
    assert_identical,
    client_app,
    initial_arrays,
    run_config,
    simulated,
    task,
    workflow_config,
)

pytestmark = pytest.mark.usefixtures("task_identity")

INTRUDER = 1021  # the fourth node of a NodeGrid(n=4)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("keys")
    write_identities(directory, 4)
    return directory


@pytest.fixture
def ssddl_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="flwr.ssddl")
    return caplog


def per_node(default: Any, **apps: Any) -> Any:
    """One ClientApp for most nodes, others for the nodes named ``n<id>``."""

    def app(message: Message, context: Context) -> Message:
        return apps.get(f"n{context.node_id}", default)(message, context)

    return app


def forged_hello(participant: int, public: bytes, signature: Any) -> Any:
    """A node that answers discovery with a claim it cannot back (and nothing else)."""

    def app(message: Message, context: Context) -> Message:
        record: dict[str, Any] = {"participant": participant, "public-key": public}
        if signature is not None:
            record["signature"] = signature
        return Message(RecordDict({HELLO: ConfigRecord(record)}), reply_to=message)

    return app


def grid_with_intruder(keys: Path, run: dict[str, Any], intruder: Any) -> NodeGrid:
    grid = NodeGrid(keys, run, 4, per_node(client_app.app, **{f"n{INTRUDER}": intruder}))
    del grid.contexts[INTRUDER].node_config["ssddl-identity-key"]
    for context in grid.contexts.values():  # the data of the three-member run
        context.node_config["num-partitions"] = 3
    return grid


def run_start(grid: NodeGrid, keys: Path, run: dict[str, Any], **kwargs: Any) -> Any:
    weights: list[np.ndarray] = []
    result = start(
        grid,
        workflow_config(keys, run, 3),
        initial_arrays(run),
        on_round=lambda outcome, arrays: weights.append(arrays_to_vector(arrays)),
        **kwargs,
    )
    return weights, result


# -- item 2: membership proved, not claimed ------------------------------------------------


@pytest.mark.parametrize("signature", [None, bytes(64)], ids=["no-signature", "bad-signature"])
def test_a_claimant_without_the_key_cannot_evict_participant_1(
    keys: Path, ssddl_log: pytest.LogCaptureFixture, signature: Any
) -> None:
    roster = load_roster(keys / "roster.json")
    run = run_config(**{"num-server-rounds": 2})
    grid = grid_with_intruder(keys, run, forged_hello(1, roster[1], signature))
    weights, result = run_start(grid, keys, run)
    # participant 1 stays in; the run is the simulator's three-member run, bit for bit
    assert_identical(weights, simulated(run, 3))
    assert result.train_metrics_clientapp[2]["contributors"] == 3
    refused = [r.getMessage() for r in ssddl_log.records if "refused node" in r.getMessage()]
    assert len(refused) == 1 and f"node {INTRUDER}" in refused[0]
    assert "participant 1" in refused[0] and "InvalidSignature" in refused[0]


def test_a_replayed_proof_is_refused(keys: Path, ssddl_log: pytest.LogCaptureFixture) -> None:
    roster = load_roster(keys / "roster.json")
    run = run_config()
    answers: list[Any] = []

    def recording(message: Message, context: Context) -> Message:
        reply = client_app.app(message, context)
        if context.node_id == 1000:
            answers.append(dict(reply.content.config_records[HELLO]))
        return reply

    grid = NodeGrid(keys, run, 3, recording)
    first = discover(grid, roster, timeout=0.5, poll_interval=0.1)
    assert first == {1: 1000, 2: 1007, 3: 1014} and len(answers) == 1
    old = answers[0]["signature"]
    # participant 1's own node, answering a later discovery with its earlier proof
    grid.app = per_node(client_app.app, n1000=forged_hello(1, roster[1], old))
    assert discover(grid, roster, timeout=0.5, poll_interval=0.1) == {2: 1007, 3: 1014}
    # another node replaying it
    grid = NodeGrid(keys, run, 4, per_node(client_app.app, n1021=forged_hello(1, roster[1], old)))
    assert discover(grid, roster, timeout=0.5, poll_interval=0.1) == {1: 1000, 2: 1007, 3: 1014}
    lines = [r.getMessage() for r in ssddl_log.records if "refused node" in r.getMessage()]
    assert len(lines) == 2 and all("replayed proof" in line for line in lines)


def test_a_node_error_at_discovery_is_logged_on_one_line(
    keys: Path, ssddl_log: pytest.LogCaptureFixture
) -> None:
    from flwr.app import Error

    def failing(message: Message, context: Context) -> Message:
        return Message(Error(code=100, reason="bad\nINFO : forged line"), reply_to=message)

    grid = NodeGrid(keys, run_config(), 4, per_node(client_app.app, n1021=failing))
    roster = load_roster(keys / "roster.json")
    assert discover(grid, roster, timeout=0.5, poll_interval=0.1) == {1: 1000, 2: 1007, 3: 1014}
    lines = [r.getMessage() for r in ssddl_log.records if "node 1021 refused" in r.getMessage()]
    assert lines == ["discovery: node 1021 refused: bad INFO : forged line (code 100)"]


def test_two_nodes_proving_one_key_stop_the_run_as_a_key_compromise(
    keys: Path, ssddl_log: pytest.LogCaptureFixture
) -> None:
    run = run_config()
    grid = NodeGrid(keys, run, 4)
    grid.contexts[INTRUDER].node_config["ssddl-identity-key"] = str(keys / "participant-1.key")
    with pytest.raises(KeyCompromise, match=r"1000, 1021 both proved participant 1's"):
        run_start(grid, keys, run)
    assert any(r.levelno == logging.ERROR and "key compromise" in r.getMessage()
               for r in ssddl_log.records)  # fmt: skip


# -- item 3: sealed state ------------------------------------------------------------------


class SnapshotGrid(NodeGrid):
    """Keeps every node's stored ``context.state`` bytes after every batch."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stored: list[tuple[int, bytes]] = []

    def send_and_receive(self, messages: Any, *, timeout: float | None = None) -> list[Message]:
        replies = super().send_and_receive(messages, timeout=timeout)
        for node, context in self.contexts.items():
            for record in context.state.config_records.values():
                for value in record.values():
                    if isinstance(value, bytes):
                        self.stored.append((node, value))
        return replies


def _secrets(plain: bytes) -> list[bytes]:
    state = ParticipantState.from_bytes(_unpack(plain)[0])
    found = [state.exchange_private, *state.prng_states, *state.round_keys, *state.share_keys]
    if state.scheme_state:  # the seed and the seed shares of double masking
        found += [state.scheme_state[i : i + 32] for i in range(0, len(state.scheme_state), 32)]
    return [s for s in found if len(s) >= 16]


def test_no_key_seed_or_share_appears_in_the_stored_state(keys: Path) -> None:
    run = run_config(**{"num-server-rounds": 2})
    grid = SnapshotGrid(keys, run, 3)
    weights, _ = run_start(grid, keys, run)
    assert_identical(weights, simulated(run, 3))
    secrets: set[bytes] = set()
    for node, stored in grid.stored:
        assert stored.startswith(SEAL_HEADER)
        context = grid.contexts[node]
        identity = load_identity(context.node_config["ssddl-identity-key"])
        pid = node_settings(context).participant
        plain = open_state(identity, stored, run_id=7, node_id=node, participant=pid)
        secrets.update(_secrets(plain))
    assert len(secrets) > 20  # exchange keys, generator states, round keys, seed shares
    everything = b"".join(stored for _, stored in grid.stored)
    assert not [s for s in secrets if s in everything]


def test_a_state_whose_seal_fails_is_refused_with_the_reason(
    keys: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="flwr.ssddl.node")
    grid = NodeGrid(keys, run_config(), 3)
    query = SSDDLClient(client_app.train, settings=client_app.settings).query

    def message(node: int, name: str) -> Message:
        msg = Message(RecordDict({"ssddl": ConfigRecord({"frames": []})}), node, "query.ssddl")
        msg.metadata.__dict__["_message_id"] = name
        return msg

    a, b = grid.contexts[1000], grid.contexts[1007]
    assert not query(message(1000, "m1"), a).has_error()
    sealed = a.state.config_records[STATE_RECORD][STATE_KEY]
    assert isinstance(sealed, bytes)
    b.state[STATE_RECORD] = ConfigRecord({STATE_KEY: sealed})  # another node's state
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    a.state[STATE_RECORD] = ConfigRecord({STATE_KEY: tampered})
    for context, node in ((a, 1000), (b, 1007)):
        reply = query(message(node, f"m{node}"), context)
        assert reply.has_error() and reply.error.code == 100
        assert reply.error.reason.startswith("InvalidCiphertext: the persisted ssddl state")
        assert "refused" in reply.error.reason
    assert a.state.config_records[STATE_RECORD][STATE_KEY] == tampered  # left as it was
    assert sum("InvalidCiphertext" in r.getMessage() for r in caplog.records) == 2


# -- item 4: what the operator sees --------------------------------------------------------


def test_every_round_is_logged_with_refusals_dropouts_bytes_and_accuracy(
    keys: Path, ssddl_log: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    import json

    from flwr.serverapp.strategy import FedAvg

    from ssddl.runtime.exchange import frame_kind

    run = run_config(**{"num-server-rounds": 3, **DROPOUT_SAFE})
    grid = NodeGrid(keys, run, 3)
    unmasks: list[int] = []

    def mute(node: int, msg: Message) -> bool:  # participant 3 is gone from round 1's unmask
        if node != 1014 or "ssddl" not in msg.content.config_records:
            return False
        frames = msg.content.config_records["ssddl"]["frames"]
        unmasks.extend(1 for f in frames if frame_kind(f) == "unmask_request")  # type: ignore[union-attr]
        return len(unmasks) >= 2

    grid.mute = mute
    strategy = FedAvg(fraction_train=1.0, fraction_evaluate=1.0, min_available_nodes=2)
    run_start(grid, keys, run, strategy=strategy, record_dir=tmp_path)
    lines = [r.getMessage() for r in ssddl_log.records]
    rounds = [line for line in lines if line.startswith("SSDDL round") and "B up" in line]
    assert len(rounds) == 3
    assert "applied; group [1, 2, 3], contributors [1, 2, 3], dropped []" in rounds[0]
    assert "contributors [1, 2], dropped [3]" in rounds[2]
    assert all(" B up, " in line and " B down" in line for line in rounds)
    evaluated = [line for line in lines if "evaluated" in line]
    assert len(evaluated) == 3 and "accuracy=" in evaluated[0]
    assert any(line.startswith("SSDDL Init: 3 of 3 participants") for line in lines)
    records = [json.loads(x) for x in (tmp_path / "rounds.jsonl").read_text().splitlines()]
    assert [r["round"] for r in records] == [0, 1, 2]
    assert records[2]["dropped"] == [3] and records[0]["bytes_up"] > 0
    assert "clients-accuracy" in records[0]["evaluation"]


def test_a_refusal_is_logged_with_its_reason_not_just_its_type(
    keys: Path, ssddl_log: pytest.LogCaptureFixture
) -> None:
    from ssddl.exceptions import GroupTooSmall

    run = run_config(**{"mode": "shamir"})
    grid = NodeGrid(keys, run, 3)
    for context in grid.contexts.values():
        context.node_config["ssddl-modes"] = "prg"
    with pytest.raises(GroupTooSmall, match=r"PolicyViolation: .*shamir"):
        run_start(grid, keys, run)

    def refusals(logger: str) -> list[str]:
        return [r.getMessage() for r in ssddl_log.records
                if r.name == logger and "refused" in r.getMessage()]  # fmt: skip

    # the ServerApp's log names each refusal's reason; each node logs why it refused
    for logger in ("flwr.ssddl", "flwr.ssddl.node"):
        lines = refusals(logger)
        assert len(lines) == 3
        assert all("PolicyViolation: " in line and "shamir" in line for line in lines)


# -- item 6: the Message-API mod, exactly as docs/flower.md shows it -----------------------


def message_api_app() -> ClientApp:
    """``ClientApp(mods=[ssddl_mod(template)])`` with an ``@app.train()`` that trains the
    example's model as the simulator does (docs/flower.md, "The ServerApp and ClientApp API")."""
    from ssddl.learning.train import train_local
    from ssddl.learning.vector import vector_to_model
    from ssddl.runtime.seeds import train_seed

    def template(context: Context) -> ArrayRecord:
        return initial_arrays(dict(context.run_config))

    app = ClientApp(mods=[ssddl_mod(template)])

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        run = context.run_config
        seed = int(run["seed"])
        pid = node_settings(context).participant
        net = task.model(seed)
        vector_to_model(arrays_to_vector(msg.content["arrays"]), net)
        round_number = int(msg.content["config"]["server-round"]) - 1
        data = task.local_data(seed, pid - 1, int(context.node_config["num-partitions"]))
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # as ssddl.simulate trains: the same float32 sums, bit for bit
        try:
            result = train_local(
                net, data, task.train_config(run), seed=train_seed(seed, pid, round_number)
            )
        finally:  # a ClientApp process would simply exit; this test shares its worker
            torch.set_num_threads(threads)
        arrays = ArrayRecord(numpy_ndarrays=[p.detach().numpy() for p in net.parameters()])
        metrics = MetricRecord({"num-examples": result.num_samples})
        return Message(RecordDict({"arrays": arrays, "metrics": metrics}), reply_to=msg)

    return app


def test_message_api_mod_with_app_train_is_bit_identical(keys: Path) -> None:
    import dataclasses

    run = run_config(**{"num-server-rounds": 2})
    grid = NodeGrid(keys, run, 3, message_api_app())
    config = dataclasses.replace(workflow_config(keys, run, 3), message_type="train")
    weights: list[np.ndarray] = []
    start(grid, config, initial_arrays(run),
          on_round=lambda outcome, arrays: weights.append(arrays_to_vector(arrays)))  # fmt: skip
    assert_identical(weights, simulated(run, 3))
    # the same app cannot be reached by query.ssddl: Flower routes before any mod runs
    msg = Message(RecordDict({HELLO: ConfigRecord({"v": 2})}), 1000, "query.ssddl")
    msg.metadata.__dict__["_message_id"] = "q"
    with pytest.raises(ValueError, match="No query function registered"):
        message_api_app()(msg, grid.contexts[1000])


def test_workflow_config_accepts_train_as_message_type(keys: Path) -> None:
    from ssddl.exceptions import ConfigurationError
    from ssddl.runtime.flower import FlowerExchange

    assert FlowerExchange(object(), {1: 5}, message_type="train").message_type == "train"
    with pytest.raises(ConfigurationError, match="message_type"):
        FlowerExchange(object(), {1: 5}, message_type="evaluate")
    protocol = task.protocol_config(run_config())
    assert WorkflowConfig(protocol, {1: b"k" * 32}, message_type="train").message_type == "train"
    with pytest.raises(ConfigurationError, match="message_type"):
        WorkflowConfig(protocol, {1: b"k" * 32}, message_type="ssddl")


def test_the_example_server_app_records_the_run_by_default(
    keys: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ssddl_log: pytest.LogCaptureFixture
) -> None:
    import json

    from ssddl_flower_app import server_app

    run = run_config(**{"num-server-rounds": 1, "roster": str(keys / "roster.json"),
                        "stage-timeout": 5.0, "discovery-timeout": 5.0,
                        "poll-interval": 0.0})  # fmt: skip
    assert run["record-dir"] == ""  # the shipped default
    monkeypatch.chdir(tmp_path)
    context = Context(run_id=7, node_id=0, node_config={}, state=RecordDict(), run_config=run)
    server_app.main(NodeGrid(keys, run, 3), context)
    record = tmp_path / "runs" / "flower" / "run-7"
    lines = (record / "rounds.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["contributors"] == [1, 2, 3]
    assert (record / "round-0.npy").exists() and (record / "result.json").exists()
    assert any(str(record) in r.getMessage() for r in ssddl_log.records)


def test_refusal_lines_say_who_refused_what_and_why() -> None:
    from ssddl.runtime.exchange import Rejection
    from ssddl.runtime.flower.report import describe

    node = Rejection(1, 2, 0, "round_start", "PolicyViolation", "mode 'shamir'\nnot accepted")
    assert describe(node) == (
        "participant 2 refused round_start: PolicyViolation: mode 'shamir' not accepted"
    )
    gone = Rejection(1, 3, 0, "unmask_request", "FlowerError5", "Error: Node Unavailable")
    assert describe(gone) == (
        "unmask_request to participant 3 failed: FlowerError5: Error: Node Unavailable"
    )
    server = Rejection(1, 0, 4, "upload", "ReplayedMessage", "a second upload")
    assert describe(server) == (
        "the server refused upload from participant 4: ReplayedMessage: a second upload"
    )
