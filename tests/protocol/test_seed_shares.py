"""Seed shares split and sealed before the update exists: the same bytes as splitting and
sealing one by one at the share step, a request framing that refuses anything malformed, and
a random source that takes early draws back. The worker process that seals them is tested in
``tests/runtime/test_seed_shares_worker.py``."""

from __future__ import annotations

import contextlib
import hashlib
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssddl.exceptions import ConfigurationError, InvalidCiphertext, MalformedMessage, ShareError
from ssddl.hazmat.aead import AeadAlgorithm, open_sealed, seal
from ssddl.hazmat.keys import derive_key
from ssddl.hazmat.rand import InsecureSeededRandom, RewindableSource
from ssddl.hazmat.sharing import SHAMIR_PRIME, shamir_reconstruct
from ssddl.protocol.ports import InlineMaskBuilder
from ssddl.protocol.seedshares import (
    SHARE_AEAD_PURPOSE,
    SealedSeedShares,
    SeedShareRequest,
    draw_seed_share_request,
    seal_seed_shares,
    seed_to_field,
    share_bytes,
    split_seed,
)

SESSION = b"session-7"
SEED = hashlib.sha256(b"seed").digest()
DIGEST = hashlib.sha256(b"the round's model").digest()


def _source(label: str = "r") -> InsecureSeededRandom:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return InsecureSeededRandom(hashlib.sha256(label.encode()).digest())


def _request(
    holders=(3, 5, 8, 9),
    owner=5,
    threshold=3,
    algorithm=AeadAlgorithm.CHACHA20_POLY1305,
    label="r",
    digest=DIGEST,
) -> SeedShareRequest:
    keys = [hashlib.sha256(b"e%d" % p).digest() for p in holders if p != owner]
    return draw_seed_share_request(
        _source(label),
        session_id=SESSION,
        round_number=4,
        owner=owner,
        holders=tuple(holders),
        threshold=threshold,
        seed=SEED,
        share_keys=keys,
        algorithm=algorithm,
        model_digest=digest,
    )


@pytest.mark.parametrize("algorithm", list(AeadAlgorithm))
@pytest.mark.parametrize(
    ("holders", "owner", "threshold"), [((1, 2), 1, 1), ((4, 6, 2, 9, 1), 2, 3)]
)
def test_the_shares_are_those_split_and_sealed_one_by_one(algorithm, holders, owner, threshold):
    request = _request(holders, owner, threshold, algorithm)
    got = seal_seed_shares(request)
    # the share step's way: split (the coefficients drawn), then one nonce per receiver
    source = _source()
    shares = dict(
        zip(
            holders,
            split_seed(SEED, threshold=threshold, points=holders, source=source),
            strict=True,
        )
    )
    receivers = [p for p in holders if p != owner]
    assert got.own == share_bytes(shares[owner])
    for index, peer in enumerate(receivers):
        key = derive_key(request.share_keys[index], SHARE_AEAD_PURPOSE, SESSION)
        assert got.aead_keys[index] == key
        expected = seal(
            key,
            share_bytes(shares[peer]),
            session_id=SESSION,
            round_number=4,
            sender=owner,
            receiver=peer,
            nonce=source.random_bytes(12),
            algorithm=algorithm,
            context=DIGEST,
        )
        assert got.sealed[index] == expected
        opened = open_sealed(
            key, got.sealed[index], session_id=SESSION, round_number=4, sender=owner,
            receiver=peer, algorithm=algorithm, context=DIGEST,
        )  # fmt: skip
        assert opened == share_bytes(shares[peer])
        with pytest.raises(InvalidCiphertext):  # a member shown another model cannot open it
            open_sealed(
                key, got.sealed[index], session_id=SESSION, round_number=4, sender=owner,
                receiver=peer, algorithm=algorithm, context=bytes(32),
            )  # fmt: skip
    # any t shares give the seed back
    points = list(holders)[:threshold]
    rows = [np.frombuffer(share_bytes(shares[p]), dtype="<u8") for p in points]
    assert np.array_equal(
        shamir_reconstruct(rows, points, threshold=threshold), seed_to_field(SEED)
    )


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(1, 2**40), min_size=1, max_size=30, unique=True),
    st.data(),
)
def test_a_request_survives_its_framing(holders, data):
    owner = data.draw(st.sampled_from(holders))
    threshold = data.draw(st.integers(1, len(holders)))
    algorithm = data.draw(st.sampled_from(list(AeadAlgorithm)))
    request = _request(tuple(holders), owner, threshold, algorithm)
    again = SeedShareRequest.from_bytes(request.to_bytes())
    names = ("session_id", "round_number", "owner", "holders", "threshold", "seed", "model_digest")
    for name in names:
        assert getattr(again, name) == getattr(request, name)
    assert again.share_keys == request.share_keys and again.nonces == request.nonces
    assert again.algorithm is request.algorithm
    assert np.array_equal(again.coefficients, request.coefficients)
    assert seal_seed_shares(again) == seal_seed_shares(request)


def test_no_secret_in_a_repr():
    request = _request()
    result = seal_seed_shares(request)
    text = repr(request) + repr(result)
    for secret in (SEED, *request.share_keys, *result.aead_keys, result.own):
        assert secret.hex() not in text and repr(secret) not in text
    assert "hidden" in repr(request) and "hidden" in repr(result)


def test_every_cut_or_stretched_request_is_refused():
    body = _request().to_bytes()
    for end in range(len(body)):
        with pytest.raises(MalformedMessage):
            SeedShareRequest.from_bytes(body[:end])
    with pytest.raises(MalformedMessage):
        SeedShareRequest.from_bytes(body + b"\0")


@pytest.mark.parametrize(
    "change",
    [
        {"owner": 4},  # not a holder
        {"holders": (3, 5, 5, 9)},  # twice
        {"threshold": 0},
        {"threshold": 5},  # beyond the holders
        {"seed": b"short"},
        {"coefficients": np.full((2, 5), SHAMIR_PRIME, dtype=np.uint64)},  # not in the field
        {"coefficients": np.zeros((3, 5), dtype=np.uint64)},  # not threshold − 1 rows
        {"nonces": (b"n" * 12,)},  # one a receiver
        {"share_keys": (b"k" * 31, b"k" * 32, b"k" * 32)},
        {"model_digest": b"d" * 31},  # a digest is 32 bytes (or none yet)
    ],
)
def test_a_request_with_a_bad_field_is_refused(change):
    import dataclasses

    with pytest.raises(MalformedMessage):
        dataclasses.replace(_request(), **change)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_parsing_random_bytes_gives_a_request_or_malformed_message(data):
    with contextlib.suppress(MalformedMessage):
        SeedShareRequest.from_bytes(data)


def test_sealed_shares_of_the_wrong_size_are_refused():
    result = seal_seed_shares(_request())
    data = result.to_bytes()
    assert SealedSeedShares.parse(data, 3) == result
    for bad, receivers in ((data[:-1], 3), (data, 2), (data + b"x", 3)):
        with pytest.raises(MalformedMessage, match="sealed seed shares"):
            SealedSeedShares.parse(bad, receivers)


# -- taking early draws back ----------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=1, max_size=8), st.integers(0, 3))
def test_bytes_pushed_back_come_out_again_in_order(sizes, back):
    plain = _source("d")
    expected = plain.random_bytes(sum(sizes) + 64)
    rewind = RewindableSource(_source("d"))
    back = min(back, len(sizes))
    with rewind.recording() as record:
        for size in sizes[:back]:
            rewind.random_bytes(size)
    rewind.push_back(record.drawn)  # the early draws, never used
    got = b"".join(rewind.random_bytes(size) for size in sizes) + rewind.random_bytes(64)
    assert got == expected


def test_a_rewindable_source_keeps_its_secrets_and_records_one_block_at_a_time():
    rewind = RewindableSource(_source())
    drawn = rewind.random_bytes(16)
    rewind.push_back(drawn)
    assert drawn.hex() not in repr(rewind) and "16 bytes" in repr(rewind)
    rewind.clear()
    assert rewind.random_bytes(16) != drawn  # forgotten: the source's next bytes
    inner = rewind.recording()
    with rewind.recording(), pytest.raises(ConfigurationError, match="one block"):
        inner.__enter__()
    with pytest.raises(ConfigurationError, match="RandomSource"):
        RewindableSource(object())  # type: ignore[arg-type]


def test_shares_sealed_ahead_are_used_only_under_the_rounds_keys_and_pairs():
    from types import SimpleNamespace

    from ssddl.exceptions import ShareError
    from ssddl.protocol.schemes.prg import _early_shares
    from ssddl.protocol.seedshares import PendingShares

    request = _request()  # holders 3, 5, 8, 9; owner 5
    keys = dict(zip(request.receivers, request.share_keys, strict=True))
    member = SimpleNamespace(share_keys=keys, model_digest=DIGEST)
    got = _early_shares(member, PendingShares(request, None, b""), (3, 8, 9))  # type: ignore[arg-type]
    assert got == seal_seed_shares(request)
    for others, share_keys in (
        ((3, 9, 8), keys),  # another order of pairs
        ((3, 8), keys),  # other pairs
        ((3, 8, 9), {**keys, 8: b"x" * 32}),  # another round's key
    ):
        stale = SimpleNamespace(share_keys=share_keys, model_digest=DIGEST)
        with pytest.raises(ShareError, match="another round"):
            _early_shares(stale, PendingShares(request, None, b""), others)  # type: ignore[arg-type]
    shown_another = SimpleNamespace(share_keys=keys, model_digest=bytes(32))
    with pytest.raises(ShareError, match="another model"):
        _early_shares(shown_another, PendingShares(request, None, b""), (3, 8, 9))  # type: ignore[arg-type]


def test_shares_drawn_ahead_are_sealed_only_once_bound_to_the_rounds_model():
    """Drawn before the round started (no digest yet), a request is not sealed; the round's
    start binds it (and then it seals as if drawn with the digest); a second bind to another
    digest is refused."""
    from ssddl.protocol.seedshares import PendingShares, start_seed_shares

    unbound = _request(digest=b"")
    with pytest.raises(ShareError, match="model digest"):
        seal_seed_shares(unbound)

    class Sealer(InlineMaskBuilder):  # a builder that would seal elsewhere
        def seal_shares(self, request):
            raise AssertionError("a request without a model digest is not sent to be sealed")

    pending = start_seed_shares(unbound, b"", Sealer())
    assert pending.model_digest == b""
    pending.bind(DIGEST)
    pending.bind(DIGEST)  # the same digest again: nothing to do
    with pytest.raises(ShareError, match="another model"):
        pending.bind(bytes(32))
    assert pending.result() == seal_seed_shares(_request())
    with pytest.raises(ShareError, match="already used"):
        pending.bind(DIGEST)
    with pytest.raises(ShareError, match="model digest"):  # never sealed unbound
        PendingShares(unbound, None, b"").result()
