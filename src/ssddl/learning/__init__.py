"""The learning layer: datasets and partitions, models, local training, model ⇄ vector.

Everything random takes a seed or a ``np.random.Generator``; no function here changes the
global ``random``, ``np.random`` or torch RNG state.
"""

from ssddl.learning.data import (
    DATASETS,
    ArrayDataset,
    DatasetSplit,
    load_dataset,
    load_digits,
    load_fashion_mnist,
    load_mnist,
    load_mnist1d,
    read_idx,
)
from ssddl.learning.models import MLP, MODELS, Conv1DNet, SmallCNN, build_model
from ssddl.learning.partition import (
    PARTITIONS,
    partition,
    partition_dirichlet,
    partition_iid,
    partition_shards,
)
from ssddl.learning.train import (
    OPTIMIZERS,
    EvalResult,
    LocalTrainConfig,
    TrainResult,
    evaluate,
    train_local,
)
from ssddl.learning.vector import model_to_vector, parameter_count, vector_to_model

__all__ = [
    "DATASETS",
    "MLP",
    "MODELS",
    "OPTIMIZERS",
    "PARTITIONS",
    "ArrayDataset",
    "Conv1DNet",
    "DatasetSplit",
    "EvalResult",
    "LocalTrainConfig",
    "SmallCNN",
    "TrainResult",
    "build_model",
    "evaluate",
    "load_dataset",
    "load_digits",
    "load_fashion_mnist",
    "load_mnist",
    "load_mnist1d",
    "model_to_vector",
    "parameter_count",
    "partition",
    "partition_dirichlet",
    "partition_iid",
    "partition_shards",
    "read_idx",
    "train_local",
    "vector_to_model",
]
