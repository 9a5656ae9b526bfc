"""Phong as in the paper (``he_schedule="async"``, the default): the members take turns on
the encrypted model, each update added at once; the real ciphertexts and the clear twin give
the same model word for word; the synchronous schedule (FedAvg on ciphertexts) is another
model."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from ssddl.baselines.runners import RunnerConfig, run_baseline
from ssddl.exceptions import ConfigurationError
from ssddl.learning import LocalTrainConfig, build_model, load_dataset, partition

pytest.importorskip("tenseal")
pytest.importorskip("phe")


@pytest.fixture(scope="module")
def digits():
    split = load_dataset("digits", seed=0)
    parts = partition(split.train.y, 3, "iid", rng=np.random.default_rng(0))
    model = build_model("mlp", split.train.input_shape, split.train.num_classes, seed=0)
    return model, [split.train.subset(i) for i in parts], split.test


def _run(digits, mode, **fields):
    model, datasets, test = digits
    config = RunnerConfig(
        rounds=2, train=LocalTrainConfig(epochs=1), insecure_test_key=True,
        he_key_bits=512 if mode == "phong-paillier" else 2048, **fields,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the 512-bit test key warns
        return run_baseline(mode, model, datasets, config, test=test)


@pytest.mark.parametrize("mode", ["phong-bfv", "phong-paillier"])
def test_the_paper_s_turns_on_ciphertexts_give_the_clear_twin_s_model(digits, mode):
    clear = _run(digits, mode, he_real_rounds=0)
    real = _run(digits, mode, he_real_rounds=1, he_real_participants=2)
    assert real.extra["schedule"] == "async"
    assert [r["encrypted"] for r in real.rows] == [True, False]
    assert np.array_equal(real.weights, clear.weights)
    # what the wire carried: every member downloads E(w) and uploads E(Δw) in its turn
    ups = [t for t in real.traffic if t[1] == "he_update" and t[0] == 0]
    downs = [t for t in real.traffic if t[1] == "he_weights" and t[0] == 0]
    assert [t[2] for t in ups] == [1, 2, 3] and [t[3] for t in downs] == [1, 2, 3]
    assert all(t[4] > 0 for t in ups + downs)
    assert np.isnan(clear.rows[0]["upload_bytes_mean"])  # nothing encrypted: unmeasured
    assert real.rows[-1]["accuracy"] > 0.3


def test_turns_differ_from_synchronous_rounds(digits):
    paper = _run(digits, "phong-bfv")
    sync = _run(digits, "phong-bfv", he_schedule="sync")
    assert not np.array_equal(paper.weights, sync.weights)
    assert sync.rows[-1]["accuracy"] > 0.3 and paper.rows[-1]["accuracy"] > 0.3


def test_an_unknown_schedule_is_refused_by_name():
    with pytest.raises(ConfigurationError, match="he_schedule='round-robin' is not one of"):
        RunnerConfig(rounds=1, he_schedule="round-robin")
