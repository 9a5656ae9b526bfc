"""The capacity check counts the rounding slack; secret-bearing values never print."""

from __future__ import annotations

import numpy as np
import pytest

from ssddl.exceptions import ConfigurationError
from ssddl.hazmat.codec import FixedPoint, decode, encode, ring_sum
from ssddl.protocol import LocalUpdate, ProtocolConfig
from ssddl.protocol import messages as m

# clip · 2^f = 429496729.5: five encodings of +clip round to 429496730 each, and
# 5 · 429496730 = 2^31 + 2 — past the signed range of a 32-bit ring.
CLIP, FRAC = 214748364.75, 1


def test_five_members_at_clip_would_wrap_to_negative_without_the_slack():
    codec = FixedPoint.__new__(FixedPoint)  # bypass the check to show what it prevents
    object.__setattr__(codec, "ring_bits", 32)
    object.__setattr__(codec, "frac_bits", FRAC)
    object.__setattr__(codec, "clip", CLIP)
    words = [encode(np.array([CLIP]), codec) for _ in range(5)]
    total = decode(ring_sum(words), codec)[0]
    assert total < 0  # +5·clip came back negative: the overflow the check must refuse


def test_the_check_refuses_that_configuration_and_accepts_one_unit_less():
    with pytest.raises(ConfigurationError, match="capacity"):
        FixedPoint(ring_bits=32, frac_bits=FRAC, clip=CLIP).check_capacity(5)
    with pytest.raises(ConfigurationError, match="capacity"):
        ProtocolConfig(clip=CLIP, frac_bits=FRAC, weighted=False).resolve(5)
    safe = (2**31 // 5 - 2) / 2**FRAC  # 5 · (floor(clip·2^f) + 1) < 2^31
    FixedPoint(ring_bits=32, frac_bits=FRAC, clip=safe).check_capacity(5)
    codec = FixedPoint(ring_bits=32, frac_bits=FRAC, clip=safe)
    total = decode(ring_sum([encode(np.array([safe]), codec) for _ in range(5)]), codec)[0]
    assert total == pytest.approx(5 * safe)


def test_automatic_frac_bits_always_pass_the_check():
    for n in (2, 3, 5, 10, 100, 1000):
        for clip in (0.1, 1.0, 4.0, 1000.0):
            for mode in ("prg", "shamir"):
                params = ProtocolConfig(mode=mode, clip=clip, weighted=False).resolve(n)
                params.codec().check_capacity(n, modulus=params.capacity_modulus)


def test_sample_count_bound_uses_the_field_in_shamir():
    # 2^30 · 3 < 2^63 (ring) but not < (2^61 − 1)/2 (field)
    ProtocolConfig(mode="prg", ring_bits=64, max_samples=2**60, clip=1e-3).resolve(3)
    with pytest.raises(ConfigurationError, match="max_samples"):
        ProtocolConfig(
            mode="shamir", ring_bits=64, max_samples=2**60, clip=1e-3, frac_bits=4
        ).resolve(3)


def test_reprs_hold_no_secret_bearing_value():
    delta = np.array([0.123456789, -9.87654321], dtype=np.float32)
    texts = [
        repr(LocalUpdate(delta, 3)),
        repr(m.PlainUpload(b"\0" * 16, 0, 1, 3, delta)),
        repr(m.RevealResponse(b"\0" * 16, 0, 1, (2,), (b"\xab" * 32,))),
        repr(m.UnmaskResponse(b"\0" * 16, 0, 1, (1,), (b"\xcd" * 40,), (2,), (b"\xef" * 32,))),
    ]
    from ssddl.runtime import SimulationConfig

    texts.append(repr(SimulationConfig(insecure_crypto_seed=b"\x5a" * 32)))
    blob = "\n".join(texts)
    needles = ("0.123", "9.876", "ab" * 8, "\\xab", "cd" * 8, "ef" * 8, "5a" * 8, "\\x5a", "ZZZZ")
    for needle in needles:
        assert needle not in blob
