"""Every baseline is a mode: the schemes run through the protocol, the runners write the
simulator's rows; each trains better than chance on digits; DSSGD's upload is exactly the
selected entries and its size follows θu."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ssddl.baselines.dssgd import DSSGDConfig, select_upload, selection_count
from ssddl.baselines.runners import ROW_FIELDS, RUNNERS, RunnerConfig, run_baseline
from ssddl.baselines.schemes import dssgd_mode
from ssddl.exceptions import ConfigurationError, MalformedMessage
from ssddl.learning import LocalTrainConfig, build_model, load_dataset, partition
from ssddl.protocol import ProtocolConfig
from ssddl.protocol.messages import SparseUpload, decode_message
from ssddl.runtime.simulator import RoundMetrics, SimulationConfig, simulate

pytest.importorskip("tenseal")
pytest.importorskip("phe")


@pytest.fixture(scope="module")
def digits():
    split = load_dataset("digits", seed=0)
    parts = partition(split.train.y, 3, "iid", rng=np.random.default_rng(0))
    model = build_model("mlp", split.train.input_shape, split.train.num_classes, seed=0)
    return model, [split.train.subset(i) for i in parts], split.test


def test_runner_rows_have_the_simulator_columns():
    assert tuple(f.name for f in dataclasses.fields(RoundMetrics)) == ROW_FIELDS


@pytest.mark.parametrize("mode", RUNNERS)
def test_each_runner_trains_better_than_chance(digits, mode):
    model, datasets, test = digits
    config = RunnerConfig(
        rounds=2, train=LocalTrainConfig(epochs=1), insecure_test_key=True,
        he_real_rounds=1 if mode == "phong-paillier" else None, he_real_participants=1,
        he_key_bits=512 if mode == "phong-paillier" else 2048,
    )  # fmt: skip
    with pytest.warns() if mode == "phong-paillier" else _nothing():
        run = run_baseline(mode, model, datasets, config, test=test)
    assert [r["round"] for r in run.rows] == [0, 1]
    assert all(set(ROW_FIELDS) <= set(r) for r in run.rows)
    assert run.rows[-1]["accuracy"] > 0.3  # ten classes: chance is 0.1
    if mode.startswith("phong"):
        assert [r["encrypted"] for r in run.rows] == [True, mode == "phong-bfv"]
        for row in run.rows:  # real ciphertext sizes on the wire, as the rows count them
            ups = [t[4] for t in run.traffic if t[1] == "he_update" and t[0] == row["round"]]
            assert len(ups) == len(datasets)
            assert sum(ups) / len(ups) == row["upload_bytes_mean"]


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize(
    ("mode", "train"),
    [
        ("fedavg", LocalTrainConfig(epochs=1)),
        ("fedsgd", LocalTrainConfig(lr=0.5, momentum=0.0)),
        (None, LocalTrainConfig(epochs=1)),  # dssgd θu = 0.1
    ],
)
def test_each_scheme_baseline_trains_better_than_chance(digits, mode, train):
    from ssddl.baselines.schemes import fedsgd_train_config

    model, datasets, test = digits
    mode = mode or dssgd_mode(DSSGDConfig(theta_u=0.1))
    if mode == "fedsgd":
        train = fedsgd_train_config(train, datasets)
        assert train.steps == 1 and train.batch_size == max(len(d) for d in datasets)
    rounds = 8 if mode == "fedsgd" else 2
    config = SimulationConfig(protocol=ProtocolConfig(mode=mode, rounds=rounds), train=train)
    result = simulate(model, datasets, config, test=test)
    assert result.final_accuracy > 0.3
    assert all(h.status == "applied" for h in result.history)


def test_dssgd_uploads_exactly_the_selected_entries_and_bytes_follow_theta(digits):
    model, datasets, test = digits
    sizes = {}
    for theta in (0.01, 0.1):
        mode = dssgd_mode(DSSGDConfig(theta_u=theta))
        config = SimulationConfig(
            protocol=ProtocolConfig(mode=mode, rounds=1, clip=100.0),
            train=LocalTrainConfig(epochs=1),
        )
        result = simulate(model, datasets, config, test=test)
        frames = [r for r in result.transport.records if r.kind.name == "SPARSE_UPLOAD"]
        assert len(frames) == len(datasets)
        sizes[theta] = {r.nbytes for r in frames}
        assert len(sizes[theta]) == 1
    m = result.model_size
    k1, k2 = selection_count(0.01, m), selection_count(0.1, m)
    (b1,), (b2,) = sizes[0.01], sizes[0.1]
    assert b2 - b1 == 8 * (k2 - k1)  # 4-byte index + 4-byte value per selected entry


def test_a_sparse_upload_carries_exactly_the_top_entries():
    rng = np.random.default_rng(3)
    delta = rng.normal(size=1000)
    config = DSSGDConfig(theta_u=0.05)
    sparse = select_upload(delta, config)
    msg = SparseUpload(b"s" * 16, 0, 1, 5, sparse.indices, sparse.values)
    back = decode_message(msg.encode())
    assert isinstance(back, SparseUpload)
    top = np.sort(np.argsort(-np.abs(delta))[:50])
    assert np.array_equal(back.indices, top)
    assert np.array_equal(back.values, delta[top].astype(np.float32))
    with pytest.raises(MalformedMessage, match="increasing"):
        SparseUpload(b"s" * 16, 0, 1, 5, sparse.indices[::-1].copy(), sparse.values)


def test_dssgd_scheme_refuses_partial_download_and_names_its_modes():
    assert dssgd_mode() == "dssgd-parallel"
    assert dssgd_mode(DSSGDConfig(theta_u=0.01)) == "dssgd-parallel-u0p01-d1p0"
    with pytest.raises(ConfigurationError, match="dssgd-rr"):
        dssgd_mode(DSSGDConfig(theta_d=0.5))
