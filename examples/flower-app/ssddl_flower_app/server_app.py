"""ServerApp: SSDDL rounds driven by Flower's FedAvg strategy (it samples and evaluates;
SSDDL aggregates securely)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

from ssddl.learning.train import evaluate as evaluate_model
from ssddl.learning.vector import model_to_vector, vector_to_model
from ssddl.protocol.server import RoundOutcome
from ssddl.runtime.exchange import Frame, frame_kind
from ssddl.runtime.flower import FlowerExchange, WorkflowConfig, start
from ssddl.runtime.flower.mod import arrays_to_vector
from ssddl.runtime.flower.report import log
from ssddl.runtime.keyfiles import load_roster
from ssddl_flower_app import task

app = ServerApp()


def workflow_config(run: dict[str, Any]) -> WorkflowConfig:
    return WorkflowConfig(
        protocol=task.protocol_config(run),
        roster=load_roster(str(run["roster"])),
        seed=int(run["seed"]),
        stage_timeout=float(run["stage-timeout"]),
        discovery_timeout=float(run["discovery-timeout"]),
        evaluate_timeout=float(run["stage-timeout"]),
        poll_interval=float(run["poll-interval"]) or None,
    )


def record_dir(run: dict[str, Any], run_id: int) -> Path:
    """Where the run is recorded: ``record-dir``, or by default ``runs/flower/run-<run id>``
    under the ServerApp's working directory (the SuperLink's, in the deployment engine)."""
    record = Path(str(run["record-dir"]) or f"runs/flower/run-{run_id}")
    record.mkdir(parents=True, exist_ok=True)
    log.info("SSDDL records this run in %s", record.resolve())
    return record


def pause_before(run: dict[str, Any]) -> Any:
    """Testing aid: hold the first batch of ``pause-kind`` in round ``pause-round`` until
    ``pause-file`` exists (at most 120 s), so a test can kill a node mid-round."""
    kind, when, go = str(run["pause-kind"]), int(run["pause-round"]), str(run["pause-file"])
    if not kind or not go:
        return None

    def hook(exchange: FlowerExchange) -> None:
        inner = exchange.send_and_receive
        done = [False]

        def send_and_receive(frames: list[Frame], *, timeout: Any, round_number: int = -1) -> Any:
            if (
                not done[0]
                and round_number == when
                and any(frame_kind(f.data) == kind for f in frames)
            ):
                done[0] = True
                Path(go + ".paused").touch()
                deadline = time.monotonic() + 120.0
                while not Path(go).exists() and time.monotonic() < deadline:
                    time.sleep(0.2)
            return inner(frames, timeout=timeout, round_number=round_number)

        exchange.send_and_receive = send_and_receive  # type: ignore[method-assign]

    return hook


@app.main()
def main(grid: Grid, context: Context) -> None:
    run = dict(context.run_config)
    seed = int(run["seed"])
    net = task.model(seed)
    initial = ArrayRecord(numpy_ndarrays=[p.detach().cpu().numpy() for p in net.parameters()])
    record = record_dir(run, context.run_id)
    test = task.digits(seed).test

    def on_round(outcome: RoundOutcome, arrays: ArrayRecord) -> None:
        np.save(record / f"round-{outcome.round}.npy", arrays_to_vector(arrays), allow_pickle=False)

    def central(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        vector_to_model(arrays_to_vector(arrays), net)
        result = evaluate_model(net, test)
        return MetricRecord({"accuracy": float(result.accuracy), "loss": float(result.loss)})

    strategy = None
    if run["use-strategy"]:
        strategy = FedAvg(
            fraction_train=1.0,
            fraction_evaluate=float(run["fraction-evaluate"]),
            min_available_nodes=int(run["min-group-size"]),
            min_train_nodes=int(run["min-group-size"]),
            min_evaluate_nodes=1,
        )
    result = start(
        grid,
        workflow_config(run),
        initial,
        strategy=strategy,
        evaluate_fn=central,
        on_round=on_round,
        exchange_hook=pause_before(run),
        record_dir=record,
    )
    summary = {
        "train": {str(r): dict(m) for r, m in result.train_metrics_clientapp.items()},
        "evaluate": {str(r): dict(m) for r, m in result.evaluate_metrics_clientapp.items()},
        "central": {str(r): dict(m) for r, m in result.evaluate_metrics_serverapp.items()},
        "initial": model_to_vector(net).size,
    }
    (record / "result.json").write_text(json.dumps(summary))
