"""Argument checks and the length-prefixed encoding shared by the hazmat modules (private).

Messages name the argument and say what is expected; they never echo the argument's value,
which may be secret.
"""

from __future__ import annotations

import operator
import struct
from typing import Any

from ssddl.exceptions import ConfigurationError, InvalidKey

U64_LIMIT = 1 << 64


def as_int(value: Any, name: str, *, low: int = 0, high: int | None = None) -> int:
    """``value`` as an int in ``[low, high)``, else ConfigurationError naming ``name``."""
    if type(value) is int and low <= value and (high is None or value < high):
        return value  # the common case, checked without the general path's calls
    if isinstance(value, bool):
        raise ConfigurationError(f"{name} must be an int, not a bool")
    try:
        number = operator.index(value)
    except TypeError:
        raise ConfigurationError(
            f"{name} must be an int, got type {type(value).__name__}"
        ) from None
    if number < low or (high is not None and number >= high):
        upper = "" if high is None else f" and below {high}"
        raise ConfigurationError(f"{name} must be at least {low}{upper}")
    return number


def as_bytes(value: Any, name: str, *, error: type[Exception] = ConfigurationError) -> bytes:
    """``value`` (bytes, bytearray or memoryview) as bytes, else ``error`` naming ``name``."""
    if type(value) is bytes:
        return value
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise error(f"{name} must be bytes, got type {type(value).__name__}")
    return bytes(value)


def as_key(value: Any, name: str, size: int = 32) -> bytes:
    """A ``size``-byte secret key, else InvalidKey (the key itself is never shown)."""
    key = as_bytes(value, name, error=InvalidKey)
    if len(key) != size:
        raise InvalidKey(f"{name} must be exactly {size} bytes, got {len(key)}")
    return key


def lp(data: bytes) -> bytes:
    """Length-prefixed field: 4-byte big-endian length, then the bytes."""
    if len(data) >= 1 << 32:
        raise ConfigurationError("a length-prefixed field must be shorter than 2**32 bytes")
    return len(data).to_bytes(4, "big") + data


def u64(value: Any, name: str) -> bytes:
    """An int in ``[0, 2**64)`` as 8 bytes big-endian."""
    if type(value) is int and 0 <= value < U64_LIMIT:
        return value.to_bytes(8, "big")
    return as_int(value, name, high=U64_LIMIT).to_bytes(8, "big")


_THREE_U64 = struct.Struct(">QQQ")
#: the fields an address of a round's pair message is made of
ADDRESS_FIELDS = ("round_number", "sender", "receiver")


def u64_address(round_number: Any, sender: Any, receiver: Any) -> bytes:
    """:func:`u64` of the round number, sender and receiver, joined (24 bytes): packed at
    once, which is most of the cost of a nonce or an associated data derived per pair."""
    try:
        packed = _THREE_U64.pack(round_number, sender, receiver)
        if type(round_number) is int and type(sender) is int and type(receiver) is int:
            return packed
    except struct.error:  # out of range, or not an int: the checks below name the field
        pass
    values = (round_number, sender, receiver)
    return b"".join(u64(v, name) for v, name in zip(values, ADDRESS_FIELDS, strict=True))
