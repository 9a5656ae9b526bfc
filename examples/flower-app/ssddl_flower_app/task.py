"""Data, model and configuration shared by the ServerApp and the ClientApp.

Everything here is derived from the public run config, exactly as ``ssddl.simulate`` derives
it, so a Flower run and an in-process simulation with the same seed and settings produce the
same global model bit for bit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ssddl.learning import build_model, load_digits, partition
from ssddl.learning.data import ArrayDataset, DatasetSplit
from ssddl.learning.train import LocalTrainConfig
from ssddl.protocol.config import ProtocolConfig


def digits(seed: int) -> DatasetSplit:
    return load_digits(seed=seed)


def local_data(seed: int, partition_id: int, num_partitions: int) -> ArrayDataset:
    """Partition ``partition_id`` of an iid split of the digits training set."""
    split = digits(seed)
    parts = partition(split.train.y, num_partitions, "iid", rng=np.random.default_rng(seed))
    return split.train.subset(parts[partition_id])


def model(seed: int) -> Any:
    split = digits(seed)
    return build_model("mlp", split.train.input_shape, split.train.num_classes, seed=seed)


def _or_none(value: int) -> int | None:
    return None if value < 0 else value


def protocol_config(run: Mapping[str, Any]) -> ProtocolConfig:
    return ProtocolConfig(
        mode=str(run["mode"]),
        rounds=int(run["num-server-rounds"]),
        threshold=int(run["threshold"]) or None,
        recovery=str(run["recovery"]) or None,
        consistency=bool(run["consistency"]),
        max_colluders=_or_none(int(run.get("max-colluders", -1))),
        group_size=int(run["group-size"]) or None,
        min_group_size=int(run["min-group-size"]),
        max_samples=int(run["max-samples"]),
    )


def train_config(run: Mapping[str, Any]) -> LocalTrainConfig:
    return LocalTrainConfig(
        epochs=int(run["epochs"]), lr=float(run["lr"]), batch_size=int(run["batch-size"])
    )
