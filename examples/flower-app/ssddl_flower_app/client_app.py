"""ClientApp: one SSDDL participant per SuperNode.

Its identity key, the roster and its policy come from the SuperNode's own ``--node-config``
(``ssddl-identity-key``, ``ssddl-roster``, ``ssddl-modes``, ...); in the simulation engine,
where virtual nodes have no config of their own, from the run config's ``ssddl-keys-dir``.
LocalTrain is the digits MLP trained on the node's own partition.

torch, the model and the data are imported by the two handlers that train or evaluate, not at
the top: Flower's deployment engine runs every message in a fresh ClientApp process, and the
messages that agree keys, send shares or unmask need none of them (importing torch and
scikit-learn is about 2 s of CPU per process on a 2-core machine).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from flwr.app import Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from ssddl.protocol.localtrain import LocalUpdate
from ssddl.runtime.flower import SSDDLClient, node_settings
from ssddl.runtime.flower.mod import NodeSettings, arrays_to_vector, simulation_settings


def settings(context: Context) -> NodeSettings:
    if "ssddl-identity-key" in context.node_config:
        return node_settings(context)
    return simulation_settings(context)


def _partition(participant: int, context: Context) -> tuple[int, int]:
    node = context.node_config
    run = context.run_config
    part = node.get("partition-id", participant - 1)
    count = node.get("num-partitions", run["num-partitions"])
    return int(part), int(count)


def train(
    weights: np.ndarray, round_number: int, participant: int, context: Context
) -> LocalUpdate:
    """LocalTrain: the simulator's trainer for this node's partition and protocol id."""
    import torch

    from ssddl.runtime.training import model_trainer
    from ssddl_flower_app import task

    torch.set_num_threads(1)
    run = context.run_config
    seed = int(run["seed"])
    part, count = _partition(participant, context)
    trainer = model_trainer(
        task.model(seed),
        task.local_data(seed, part, count),
        task.train_config(run),
        seed=seed,
        participant=participant,
    )
    return trainer(weights, round_number)


client = SSDDLClient(train, settings=settings)
app = ClientApp()
app.query("ssddl")(client.query)


@app.evaluate()
def evaluate(message: Message, context: Context) -> Message:
    """Flower's evaluation (the strategy's configure_evaluate): local accuracy of the model."""
    import torch

    from ssddl.learning.train import evaluate as evaluate_model
    from ssddl.learning.vector import vector_to_model
    from ssddl_flower_app import task

    torch.set_num_threads(1)
    run = context.run_config
    seed = int(run["seed"])
    net = task.model(seed)
    vector_to_model(arrays_to_vector(message.content["arrays"]), net)
    part, count = _partition(settings(context).participant, context)
    data = task.local_data(seed, part, count)
    result = evaluate_model(net, data)
    metrics: dict[str, Any] = {
        "accuracy": float(result.accuracy),
        "loss": float(result.loss),
        "num-examples": len(data),
    }
    return Message(RecordDict({"metrics": MetricRecord(metrics)}), reply_to=message)
