"""Typed, frozen, validated configuration of one SSDDL session (DESIGN.md §2).

The server fixes a :class:`ProtocolConfig` and publishes it with the session id; every
participant checks it before taking part. ``resolve`` turns the user's config into the one that
actually runs (group size, threshold and fractional bits filled in and checked for overflow).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ssddl.exceptions import ConfigurationError
from ssddl.hazmat.aead import AeadAlgorithm
from ssddl.hazmat.codec import FixedPoint
from ssddl.hazmat.prg import StreamCipher
from ssddl.hazmat.sharing import SHAMIR_PRIME

__all__ = ["Aggregation", "Mode", "ProtocolConfig", "Rounding", "check_known_options"]

#: No point in more fractional bits than a float32 mantissa carries.
MAX_AUTO_FRAC_BITS = 24


class Mode(str, Enum):
    """How a participant's parameter change reaches the server."""

    PRG = "prg"  #: pairwise shares regenerated from forward-secure PRNGs; one ring vector up
    EXPLICIT = "explicit"  #: fresh additive shares sent encrypted through the server
    SHAMIR = "shamir"  #: Shamir t-of-n shares; any t uploads give the sum (dropout-tolerant)
    PLAIN = "plain"  #: no sharing: the reference the secure modes are checked against


class Rounding(str, Enum):
    NEAREST = "nearest"
    STOCHASTIC = "stochastic"


class Aggregation(str, Enum):
    MEAN = "mean"  #: w += server_lr * (weighted) mean of the changes
    SUM = "sum"  #: w += server_lr * sum of the changes (DSSGD-style summation)


def check_known_options(data: dict[str, Any], cls: type, section: str) -> None:
    """Refuse keys of ``data`` that are not fields of the dataclass ``cls``, naming them."""
    if not isinstance(data, dict):
        raise ConfigurationError(f"[{section}] must be a table of options")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigurationError(
            f"unknown {section} option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )


def _enum(cls: type[Enum], value: Any, field: str) -> Any:
    if isinstance(value, cls):
        return value
    try:
        return cls(value)
    except ValueError:
        choices = ", ".join(repr(m.value) for m in cls)
        raise ConfigurationError(f"{field}={value!r} is not one of {choices}") from None


def _int(value: Any, field: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(f"{field} must be an integer, got {type(value).__name__}")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ConfigurationError(f"{field}={value} is out of range: it must be {bound}")
    return value


def _float(value: Any, field: str, *, positive: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(f"{field} must be a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or (positive and value <= 0):
        raise ConfigurationError(f"{field}={value} must be a finite number > 0")
    return value


@dataclass(frozen=True)
class ProtocolConfig:
    """Everything the server fixes in Init and publishes to the participants.

    ``frac_bits=None`` picks the largest number of fractional bits (at most 24) for which the
    sum of a full group cannot overflow the ring; ``threshold=None`` picks ``n // 2 + 1``;
    ``group_size=None`` selects every registered participant each round.

    With ``weighted=True`` each member scales its change by ``num_samples / max_samples``
    and puts ``num_samples`` in the shared vector, so the server learns only the total count.
    The scaling costs ``log2(max_samples / num_samples)`` bits of precision, so keep
    ``max_samples`` a tight public bound; the simulator sets it, when it is ``None``, to the
    smallest power of two that holds the largest local dataset.
    """

    mode: Mode = Mode.PRG
    rounds: int = 20
    group_size: int | None = None
    min_group_size: int = 2
    threshold: int | None = None
    ring_bits: int = 32
    frac_bits: int | None = None
    clip: float = 4.0
    rounding: Rounding = Rounding.NEAREST
    weighted: bool = True
    max_samples: int | None = None
    aggregation: Aggregation = Aggregation.MEAN
    server_lr: float = 1.0
    cipher: StreamCipher = StreamCipher.AES_CTR
    aead: AeadAlgorithm = AeadAlgorithm.CHACHA20_POLY1305

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", _enum(Mode, self.mode, "mode"))
        object.__setattr__(self, "rounding", _enum(Rounding, self.rounding, "rounding"))
        object.__setattr__(self, "aggregation", _enum(Aggregation, self.aggregation, "aggregation"))
        object.__setattr__(self, "cipher", _enum(StreamCipher, self.cipher, "cipher"))
        object.__setattr__(self, "aead", _enum(AeadAlgorithm, self.aead, "aead"))
        _int(self.rounds, "rounds", 1)
        _int(self.min_group_size, "min_group_size", 1)
        if self.mode in (Mode.PRG, Mode.EXPLICIT) and self.min_group_size < 2:
            raise ConfigurationError(
                f"min_group_size={self.min_group_size} lets one member's change be the whole "
                f"aggregate in mode {self.mode.value!r}; use min_group_size >= 2"
            )
        if self.group_size is not None:
            _int(self.group_size, "group_size", self.min_group_size)
        if self.threshold is not None:
            _int(self.threshold, "threshold", 1)
            if self.mode is not Mode.SHAMIR:
                raise ConfigurationError(
                    f"threshold is only used in mode 'shamir', not {self.mode.value!r}; drop it"
                )
        if self.ring_bits not in (32, 64):
            raise ConfigurationError(f"ring_bits={self.ring_bits!r} must be 32 or 64")
        if self.frac_bits is not None:
            _int(self.frac_bits, "frac_bits", 0, self.ring_bits - 2)
        object.__setattr__(self, "clip", _float(self.clip, "clip"))
        object.__setattr__(self, "server_lr", _float(self.server_lr, "server_lr"))
        if not isinstance(self.weighted, bool):
            raise ConfigurationError("weighted must be true or false")
        if self.max_samples is not None:
            _int(self.max_samples, "max_samples", 1)

    # -- derived -------------------------------------------------------------------------

    @property
    def secure(self) -> bool:
        return self.mode is not Mode.PLAIN

    @property
    def capacity_modulus(self) -> int:
        """The modulus the signed sum must stay inside: Q, or also the Shamir prime."""
        q = 1 << self.ring_bits
        return min(q, SHAMIR_PRIME) if self.mode is Mode.SHAMIR else q

    def codec(self) -> FixedPoint:
        if self.frac_bits is None:
            raise ConfigurationError("frac_bits is unresolved; call resolve() first")
        return FixedPoint(ring_bits=self.ring_bits, frac_bits=self.frac_bits, clip=self.clip)

    def resolve(self, num_participants: int, *, max_samples: int | None = None) -> ProtocolConfig:
        """Fill in the automatic fields for ``num_participants`` registered participants and
        check that the configuration cannot overflow. ``max_samples`` is used when the
        config leaves it unset. Raises ConfigurationError naming the field to change."""
        _int(num_participants, "participants", 1)
        if self.max_samples is None and max_samples is not None:
            _int(max_samples, "max_samples", 1)
            return dataclasses.replace(self, max_samples=max_samples).resolve(num_participants)
        n = num_participants if self.group_size is None else self.group_size
        if n > num_participants:
            raise ConfigurationError(
                f"group_size={n} exceeds the {num_participants} registered participants; "
                f"lower group_size or add participants"
            )
        if n < self.min_group_size:
            raise ConfigurationError(
                f"{n} participants per round is below min_group_size={self.min_group_size}; "
                f"add participants or lower min_group_size"
            )
        threshold = self.threshold
        if self.mode is Mode.SHAMIR:
            threshold = n // 2 + 1 if threshold is None else threshold
            if threshold > n:
                raise ConfigurationError(
                    f"threshold={threshold} exceeds the group size {n}; use threshold <= {n}"
                )
        frac_bits = self.frac_bits
        modulus = self.capacity_modulus
        if self.mode is Mode.PLAIN and frac_bits is None:
            frac_bits = MAX_AUTO_FRAC_BITS  # unused for transport, kept for symmetric reports
        elif frac_bits is None:
            # largest f with n * clip * 2^f < modulus / 2
            room = modulus / 2 / (n * self.clip)
            if room <= 1:
                raise ConfigurationError(
                    f"ring_bits={self.ring_bits} cannot hold the sum of {n} values clipped to "
                    f"{self.clip}; use a smaller clip or ring_bits=64"
                )
            frac_bits = min(MAX_AUTO_FRAC_BITS, math.floor(math.log2(room) - 1e-12))
        if self.weighted and self.max_samples is None:
            raise ConfigurationError(
                "max_samples is unset: with weighted=true give a public upper bound on a "
                "participant's sample count (or weighted=false)"
            )
        if self.weighted and n * self.max_samples >= (1 << self.ring_bits) // 2:  # type: ignore[operator]
            raise ConfigurationError(
                f"the total sample count of {n} participants with max_samples="
                f"{self.max_samples} can overflow ring_bits={self.ring_bits}; "
                f"lower max_samples or use ring_bits=64"
            )
        resolved = dataclasses.replace(self, group_size=n, threshold=threshold, frac_bits=frac_bits)
        if self.secure:
            resolved.codec().check_capacity(n, modulus=modulus)
        return resolved

    # -- serialisation (published in SessionAnnounce; written to run directories) ------------

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.value if isinstance(value, Enum) else value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProtocolConfig:
        check_known_options(data, cls, "protocol")
        return cls(**data)

    def canonical_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
