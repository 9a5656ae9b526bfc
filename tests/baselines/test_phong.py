"""Phong et al.: the server's encrypted aggregate equals the plaintext aggregate, a colluding
participant's key decrypts another's upload, and training on real ciphertexts works.

Paillier runs with 512-bit keys here: INSECURE, tests only (see conftest)."""

from __future__ import annotations

import numpy as np
import pytest

from ssddl.baselines.he import BFVBackend, HEBackend, HEKeyPair
from ssddl.baselines.phong import (
    collusion_decrypt,
    decrypt_weights,
    encrypt_update,
    encrypt_weights,
    phong_max_summands,
    server_add,
    train_phong,
)
from ssddl.exceptions import ConfigurationError
from ssddl.hazmat.codec import decode, encode, ring_sum
from ssddl.learning import ArrayDataset, DatasetSplit, model_to_vector
from tests.baselines.conftest import CODEC, TRAIN, make_paillier, small_mlp


@pytest.fixture(params=["paillier", "bfv"])
def scheme(request: pytest.FixtureRequest) -> tuple[HEBackend, HEKeyPair]:
    return (
        request.getfixturevalue(request.param),
        request.getfixturevalue(f"{request.param}_keys"),
    )


def test_encrypted_weights_plus_updates_equal_the_plaintext_aggregate(
    scheme: tuple[HEBackend, HEKeyPair],
) -> None:
    backend, keys = scheme
    rng = np.random.default_rng(11)
    weights = rng.uniform(-1, 1, 40).astype(np.float32)
    deltas = [rng.normal(0, 0.1, 40) for _ in range(3)]
    encrypted = encrypt_weights(backend, keys.public, weights)
    for delta in deltas:
        upload = encrypt_update(backend, keys.public, delta, scale=1 / 3)
        encrypted = server_add(backend, keys.public, encrypted, backend.ciphertext_to_bytes(upload))
    expected_words = ring_sum(
        [encode(weights.astype(np.float64), CODEC)] + [encode(d / 3, CODEC) for d in deltas]
    )
    np.testing.assert_array_equal(backend.decrypt(keys.secret, encrypted), expected_words)
    np.testing.assert_array_equal(
        decrypt_weights(backend, keys.secret, encrypted),
        decode(expected_words, CODEC).astype(np.float32),
    )


def test_collusion_decrypts_another_participants_upload(
    scheme: tuple[HEBackend, HEKeyPair],
) -> None:
    backend, keys = scheme
    # Participants 1 and 2 share the key pair; participant 2 colludes with the server.
    victim_delta = np.random.default_rng(5).normal(0, 0.05, 25)
    victim_upload = backend.ciphertext_to_bytes(
        encrypt_update(backend, keys.public, victim_delta, scale=0.5)
    )
    server_public = backend.public_from_bytes(backend.public_to_bytes(keys.public))
    colluder_secret = keys.secret  # what participant 2 holds: the same secret key
    recovered = collusion_decrypt(backend, colluder_secret, server_public, victim_upload)
    np.testing.assert_array_equal(recovered, decode(encode(victim_delta * 0.5, CODEC), CODEC))
    assert np.max(np.abs(recovered - victim_delta * 0.5)) <= 2.0 ** -(CODEC.frac_bits + 1)


def test_a_key_from_outside_the_group_does_not_decrypt(
    scheme: tuple[HEBackend, HEKeyPair],
) -> None:
    backend, keys = scheme
    outsider = backend.keygen()
    upload = backend.ciphertext_to_bytes(encrypt_update(backend, keys.public, np.ones(3)))
    with pytest.raises(ConfigurationError, match="another key"):
        collusion_decrypt(backend, outsider.secret, keys.public, upload)


def test_weights_beyond_clip_and_bad_scale_are_refused(
    bfv: BFVBackend, bfv_keys: HEKeyPair
) -> None:
    with pytest.raises(ConfigurationError, match="clip"):
        encrypt_weights(bfv, bfv_keys.public, np.array([0.0, CODEC.clip * 1.01]))
    with pytest.raises(ConfigurationError, match="scale"):
        encrypt_update(bfv, bfv_keys.public, np.ones(2), scale=0.0)
    with pytest.raises(ConfigurationError, match="HEBackend"):
        encrypt_update(object(), bfv_keys.public, np.ones(2))  # type: ignore[arg-type]


def test_max_summands_must_cover_the_run(participants: list[ArrayDataset]) -> None:
    assert phong_max_summands(4, 3) == 13
    backend = BFVBackend(CODEC, max_summands=12)
    with pytest.raises(ConfigurationError, match="max_summands >= 13"):
        train_phong(small_mlp(), participants, TRAIN, backend, rounds=3, seed=0)
    with pytest.raises(ConfigurationError, match="participants"):
        phong_max_summands(0, 3)


def test_phong_trains_on_bfv_ciphertexts(
    participants: list[ArrayDataset], digits: DatasetSplit
) -> None:
    backend = BFVBackend(CODEC, max_summands=phong_max_summands(len(participants), 3))
    model = small_mlp()
    before = model_to_vector(model)
    result = train_phong(model, participants, TRAIN, backend, rounds=3, seed=0, test=digits.test)
    assert result.final_accuracy is not None and result.final_accuracy > 0.5
    record = result.history[0]
    # One ciphertext vector either way (SEAL compresses, so sizes vary by a few bytes).
    assert record.upload_bytes == pytest.approx(record.download_bytes, rel=0.01)
    # One 4096-slot ciphertext for 2,410 weights: several times the float32 model.
    assert record.upload_bytes > 5 * 4 * before.size
    np.testing.assert_array_equal(model_to_vector(model), before)


def test_phong_paillier_test_key_trains_and_matches_bfv_bit_for_bit(
    participants: list[ArrayDataset], digits: DatasetSplit
) -> None:
    # Both schemes add the same ring words exactly, so the trained models are identical.
    rounds = 2
    summands = phong_max_summands(len(participants), rounds)
    paillier = make_paillier(max_summands=summands)  # 512-bit key: INSECURE, tests only
    bfv = BFVBackend(CODEC, max_summands=summands)
    runs = [
        train_phong(small_mlp(), participants, TRAIN, b, rounds=rounds, seed=0, test=digits.test)
        for b in (paillier, bfv)
    ]
    assert runs[0].final_accuracy is not None and runs[0].final_accuracy > 0.5
    np.testing.assert_array_equal(model_to_vector(runs[0].model), model_to_vector(runs[1].model))
    parts = -(-model_to_vector(runs[0].model).size // paillier.slots)
    assert runs[0].history[0].upload_bytes == 36 + parts * (4 + 128)
