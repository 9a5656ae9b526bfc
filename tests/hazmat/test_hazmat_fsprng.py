"""Forward-secure PRNG: chain, jumps, erasure, refusal to go back."""

from __future__ import annotations

import copy
import hashlib
import hmac
import pickle

import pytest

from ssddl.exceptions import ConfigurationError, ForwardSecurityError, InvalidKey
from ssddl.hazmat import ForwardSecurePRNG, prf

SEED = hashlib.sha256(b"fsprng test seed").digest()


def chain(seed: bytes, rounds: int) -> list[tuple[bytes, bytes]]:
    """(state, round key) of rounds 0..rounds-1, computed with hmac directly."""
    out = []
    state = seed
    for _ in range(rounds):
        key = hmac.new(state, b"mask", hashlib.sha256).digest()
        out.append((state, key))
        state = hmac.new(state, b"next", hashlib.sha256).digest()
    return out


def test_prf_is_hmac_sha256() -> None:
    assert prf(SEED, b"mask") == hmac.new(SEED, b"mask", hashlib.sha256).digest()
    assert prf(bytearray(SEED), b"next") == hmac.new(SEED, b"next", hashlib.sha256).digest()
    assert len(prf(SEED, b"")) == 32


@pytest.mark.parametrize("key", [bytes(31), bytearray(33), b"", "k" * 32])
def test_prf_rejects_bad_keys(key: object) -> None:
    with pytest.raises(InvalidKey, match=r"32 bytes|must be bytes"):
        prf(key, b"mask")  # type: ignore[arg-type]


def test_prf_rejects_bad_label() -> None:
    with pytest.raises(ConfigurationError, match="label"):
        prf(SEED, "mask")  # type: ignore[arg-type]


def test_round_keys_follow_the_chain() -> None:
    expected = chain(SEED, 6)
    generator = ForwardSecurePRNG(SEED)
    assert generator.round == 0
    for r, (_, key) in enumerate(expected):
        assert generator.round_key() == key
        assert generator.round_key() == key  # round_key does not advance
        generator.advance()
        assert generator.round == r + 1


def test_round_keys_reads_both_keys_of_the_round_without_advancing() -> None:
    generator = ForwardSecurePRNG(SEED, start_round=3)
    for r in range(3, 6):
        state = chain(SEED, r - 2)[-1][0]
        share = hmac.new(state, b"share", hashlib.sha256).digest()
        assert generator.round_keys() == (generator.round_key(), share)
        assert generator.round_keys() == generator.round_keys() and generator.round == r
        assert ForwardSecurePRNG(bytes(state), start_round=r).take_round_keys(r) == (
            generator.round_keys()
        )
        generator.advance()
    generator.erase()
    with pytest.raises(ForwardSecurityError):
        generator.round_keys()


def test_take_round_key_jumps_and_advances() -> None:
    expected = chain(SEED, 10)
    generator = ForwardSecurePRNG(SEED)
    assert generator.take_round_key(0) == expected[0][1]
    assert generator.round == 1
    assert generator.take_round_key(4) == expected[4][1]  # skips rounds 1..3
    assert generator.round == 5
    assert generator.take_round_key(5) == expected[5][1]


def test_start_round_labels_the_seed() -> None:
    expected = chain(SEED, 4)
    generator = ForwardSecurePRNG(SEED, start_round=7)
    assert generator.round == 7
    assert generator.round_key() == expected[0][1]
    generator.jump_to(10)
    assert generator.round == 10
    assert generator.round_key() == expected[3][1]


def test_state_after_jump_equals_the_chain_and_old_state_is_overwritten() -> None:
    expected = chain(SEED, 4)
    generator = ForwardSecurePRNG(SEED)
    state = generator._state
    generator.jump_to(3)
    assert generator._state is state  # the same buffer, overwritten in place
    assert bytes(state) == expected[3][0]
    assert SEED not in bytes(state)


def test_backwards_is_refused() -> None:
    generator = ForwardSecurePRNG(SEED)
    generator.take_round_key(3)
    with pytest.raises(ForwardSecurityError, match="round 3 is already erased") as info:
        generator.jump_to(3)
    assert "round 4" in str(info.value)  # says what is still possible
    with pytest.raises(ForwardSecurityError):
        generator.take_round_key(0)
    generator.jump_to(4)  # the current round is fine
    assert generator.round == 4


def test_revealing_a_round_key_does_not_reveal_the_state() -> None:
    generator = ForwardSecurePRNG(SEED)
    key = generator.round_key()
    assert key != bytes(generator._state)
    generator.advance()
    assert key != bytes(generator._state)
    assert key != generator.round_key()


def test_erase_zeroes_and_locks() -> None:
    generator = ForwardSecurePRNG(SEED, start_round=2)
    state = generator._state
    generator.erase()
    assert bytes(state) == bytes(32)
    assert generator.erased
    for call in (generator.round_key, generator.advance, lambda: generator.jump_to(5)):
        with pytest.raises(ForwardSecurityError, match="erased"):
            call()
    assert "erased" in repr(generator)


def test_repr_and_copies_do_not_leak_the_state() -> None:
    generator = ForwardSecurePRNG(SEED, start_round=1)
    text = repr(generator)
    assert SEED.hex() not in text
    assert "round=1" in text
    with pytest.raises(TypeError, match="cannot be pickled or copied"):
        pickle.dumps(generator)
    with pytest.raises(TypeError, match="cannot be pickled or copied"):
        copy.deepcopy(generator)


@pytest.mark.parametrize("seed", [bytes(16), bytes(64), b"", "s" * 32, None])
def test_bad_seed(seed: object) -> None:
    with pytest.raises(InvalidKey, match="seed") as info:
        ForwardSecurePRNG(seed)  # type: ignore[arg-type]
    if isinstance(seed, bytes) and seed:
        assert seed.hex() not in str(info.value)


@pytest.mark.parametrize("start", [-1, 1.5, "0", True])
def test_bad_start_round(start: object) -> None:
    with pytest.raises(ConfigurationError, match="start_round"):
        ForwardSecurePRNG(SEED, start_round=start)  # type: ignore[arg-type]


@pytest.mark.parametrize("target", [-1, 2.0, None])
def test_bad_jump_target(target: object) -> None:
    with pytest.raises(ConfigurationError, match="r must be"):
        ForwardSecurePRNG(SEED).jump_to(target)  # type: ignore[arg-type]
