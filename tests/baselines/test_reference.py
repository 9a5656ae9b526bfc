"""Centralized and standalone training: better than chance, reproducible, statistics right,
the caller's model untouched, bad input named."""

from __future__ import annotations

import statistics

import numpy as np
import pytest

from ssddl.baselines._train import derive_seed
from ssddl.baselines.reference import train_centralized, train_standalone
from ssddl.exceptions import ConfigurationError
from ssddl.learning import ArrayDataset, DatasetSplit, model_to_vector
from tests.baselines.conftest import TRAIN, small_mlp


def test_centralized_trains_and_is_reproducible(
    participants: list[ArrayDataset], digits: DatasetSplit
) -> None:
    model = small_mlp()
    before = model_to_vector(model)
    runs = [
        train_centralized(model, participants, TRAIN, epochs=2, seed=3, test=digits.test)
        for _ in range(2)
    ]
    assert len(runs[0].history) == 2 and runs[0].history[-1].round == 2
    assert runs[0].final_accuracy is not None and runs[0].final_accuracy > 0.8
    np.testing.assert_array_equal(model_to_vector(runs[0].model), model_to_vector(runs[1].model))
    np.testing.assert_array_equal(model_to_vector(model), before)
    other = train_centralized(model, participants, TRAIN, epochs=1, seed=4)
    assert other.final_accuracy is None
    assert not np.array_equal(model_to_vector(other.model), model_to_vector(runs[0].model))


def test_standalone_reports_mean_and_spread(
    participants: list[ArrayDataset], digits: DatasetSplit
) -> None:
    result = train_standalone(small_mlp(), participants, TRAIN, epochs=3, seed=0, test=digits.test)
    assert len(result.models) == len(participants) == len(result.accuracies)
    assert result.mean_accuracy == pytest.approx(statistics.fmean(result.accuracies))
    assert result.std_accuracy == pytest.approx(statistics.pstdev(result.accuracies))
    assert result.mean_accuracy > 0.5
    # Each participant trained on its own data only: the models differ.
    vectors = [model_to_vector(m) for m in result.models]
    assert not np.array_equal(vectors[0], vectors[1])


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"epochs": 0}, "epochs"),
        ({"seed": -1}, "seed"),
        ({"datasets": []}, "datasets"),
        ({"model": "mlp"}, "model"),
    ],
)
def test_bad_input_names_the_field(
    change: dict[str, object], field: str, participants: list[ArrayDataset]
) -> None:
    args: dict[str, object] = {
        "model": small_mlp(),
        "datasets": participants,
        "config": TRAIN,
        "epochs": 1,
        "seed": 0,
        **change,
    }
    with pytest.raises(ConfigurationError, match=field):
        train_centralized(**args)  # type: ignore[arg-type]


def test_standalone_needs_a_test_set(participants: list[ArrayDataset]) -> None:
    with pytest.raises(ConfigurationError, match="test"):
        train_standalone(small_mlp(), participants, TRAIN, epochs=1, seed=0, test=None)  # type: ignore[arg-type]


def test_pooling_refuses_mismatched_datasets(participants: list[ArrayDataset]) -> None:
    odd = ArrayDataset(np.zeros((3, 8), dtype=np.float32), np.zeros(3, dtype=np.int64), 10)
    with pytest.raises(ConfigurationError, match="pooled"):
        train_centralized(small_mlp(), [participants[0], odd], TRAIN, epochs=1, seed=0)


def test_derived_seeds_differ_and_repeat() -> None:
    seeds = {derive_seed(0, r, i) for r in range(5) for i in range(5)}
    assert len(seeds) == 25 and all(0 <= s < 2**63 for s in seeds)
    assert derive_seed(1, 2, 3) == derive_seed(1, 2, 3)
