"""A dataset factory: ``factory(seed) -> DatasetSplit`` (or a ``(train, test)`` pair).

ssddl then splits ``train`` among the participants as ``--partition`` says and evaluates the
global model on ``test``. Here: three Gaussian blobs in 8 dimensions, drawn from ``seed``.
"""

from __future__ import annotations

import numpy as np

from ssddl.learning import ArrayDataset, DatasetSplit

FEATURES = 8
CLASSES = 3


def _draw(rng: np.random.Generator, centres: np.ndarray, n: int) -> ArrayDataset:
    y = rng.integers(0, CLASSES, size=n)
    x = centres[y] + rng.normal(size=(n, FEATURES))
    return ArrayDataset(x.astype(np.float32), y.astype(np.int64), CLASSES, name="blobs")


def blobs(seed: int) -> DatasetSplit:
    """600 training and 200 test samples of three well separated blobs."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=2.0, size=(CLASSES, FEATURES))
    return DatasetSplit(train=_draw(rng, centres, 600), test=_draw(rng, centres, 200))
