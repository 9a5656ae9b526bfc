"""Compression on a real run: the upload bytes of ``--bits`` against plain float32 FedAvg,
exactly (bytes are deterministic), and the run validated bit for bit in Z_(2**bits)."""

from __future__ import annotations

import numpy as np
import pytest

from ssddl.hazmat.packing import packed_size
from ssddl.learning import LocalTrainConfig, build_model, load_digits, model_to_vector, partition
from ssddl.protocol import ProtocolConfig
from ssddl.runtime import SimulationConfig, simulate

SEED = b"\x12" * 32
#: an Upload frame without its words: header 6, session id 4 + 16, round 8, sender 8, and the
#: packed array's code, dtype, bits (3) and count (8)
PACKED_UPLOAD_OVERHEAD = 6 + 20 + 8 + 8 + 3 + 8


@pytest.fixture(scope="module")
def digits():
    split = load_digits(seed=0)
    parts = partition(split.train.y, 4, "iid", rng=np.random.default_rng(0))
    return [split.train.subset(p) for p in parts], split.test


def run(digits, **protocol):
    datasets, test = digits
    config = SimulationConfig(
        protocol=ProtocolConfig(rounds=1, weighted=False, **protocol),
        train=LocalTrainConfig(steps=1, lr=0.05),
        validate=True,
        insecure_crypto_seed=SEED,
    )
    with pytest.warns(UserWarning, match="insecure_crypto_seed"):
        return simulate(build_model("mlp", (64,), 10, seed=0), datasets, config, test=test)


def test_upload_at_20_bits_is_0_64_of_plain_float32(digits):
    result = run(digits, mode="prg", recovery="none", bits=20)
    summary = result.summary()
    size = model_to_vector(result.model).size
    assert result.history[0].validated is True  # Σ x_i mod 2**20, bit for bit
    up = summary["upload_bytes_per_participant_round"]
    plain = summary["plain_upload_bytes_per_participant_round"]
    assert up == PACKED_UPLOAD_OVERHEAD + packed_size(size + 1, 20)
    assert plain == 6 + 20 + 8 + 8 + 8 + 9 + 4 * size  # PlainUpload: num_samples, float32
    assert up / plain == pytest.approx(0.625, abs=0.002)
    assert up / plain <= 0.65


def test_bits_saves_exactly_the_words_bytes_with_double_masking(digits):
    whole = run(digits, mode="prg").summary()["upload_bytes_per_participant_round"]
    packed = run(digits, mode="prg", bits=20).summary()["upload_bytes_per_participant_round"]
    size = model_to_vector(build_model("mlp", (64,), 10, seed=0)).size
    assert whole - packed == 4 * (size + 1) - packed_size(size + 1, 20) - 2
