"""Typed, frozen, validated configuration of one SSDDL session (DESIGN.md §2).

Two types, one per moment:

- :class:`ProtocolConfig` is what a user writes: automatic fields may be left as ``None``.
- :class:`SessionParams` is what actually runs, returned by ``ProtocolConfig.resolve`` for a
  number of registered participants: every field filled in and the whole configuration checked
  for overflow. The server publishes it in ``SessionAnnounce``; every participant checks it.

What depends on the sharing mode (which thresholds exist, the smallest safe group, the modulus
the sum lives in) is asked of the mode's scheme (:mod:`ssddl.protocol.schemes`), never decided
here by name.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import warnings
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ssddl.exceptions import ConfigurationError, MalformedMessage, SecurityWarning
from ssddl.hazmat.aead import AeadAlgorithm
from ssddl.hazmat.codec import FixedPoint
from ssddl.hazmat.prg import StreamCipher
from ssddl.protocol.pairing import (
    DEFAULT_CORRUPT_FRACTION,
    DEFAULT_DROPOUT_FRACTION,
    DEFAULT_SPARSE_FROM,
    sparse_parameters,
)
from ssddl.protocol.registry import get_scheme
from ssddl.validators import check_bool, check_enum, check_float, check_int, did_you_mean

__all__ = [
    "Aggregation",
    "Mode",
    "PairKeys",
    "ProtocolConfig",
    "Recovery",
    "Rounding",
    "SessionParams",
    "check_known_options",
    "default_threshold",
]

#: No point in more fractional bits than a float32 mantissa carries.
MAX_AUTO_FRAC_BITS = 24
#: the distributed-DP mechanisms (``ProtocolConfig.dp``)
DP_MECHANISMS = ("ddg", "skellam")
#: the ring Z_(2**bits) of a DP session that sets no ``bits`` (TensorFlow Federated's default)
DP_DEFAULT_BITS = 20
#: fields published (and written) only when they differ from their default
_OPTIONAL = {"optional": True}


class Mode(str, Enum):
    """The names of the built-in sharing schemes (``ProtocolConfig.mode`` holds the name)."""

    PRG = "prg"  #: pairwise shares regenerated from forward-secure PRNGs; one ring vector up
    EXPLICIT = "explicit"  #: fresh additive shares sent encrypted through the server
    SHAMIR = "shamir"  #: Shamir t-of-n shares; any t uploads give the sum (dropout-tolerant)
    PLAIN = "plain"  #: no sharing: the reference the secure modes are checked against


class Recovery(str, Enum):
    """What mode ``prg`` does when a member's upload does not arrive."""

    #: self-masks + seed shares (Bonawitz et al.): a late upload stays masked
    DOUBLE_MASK = "double-mask"
    NONE = "none"  #: the paper's behaviour: a dropout aborts the round
    UNSAFE_REVEAL = "unsafe-reveal-keys"  #: reveal pair keys only: a LATE upload is unmasked


class PairKeys(str, Enum):
    """When a member agrees its pair keys (X25519 + HKDF) with the other registered members.

    ``eager``: every pair it may need at Init, then the exchange key is erased — a member
    compromised at round r reveals no pair key of an earlier round. O(N) agreements per
    member (O(N²) in one simulator process). ``lazy``: a pair's key on the pair's first
    round, so a member pays only for the pairs it uses; the exchange key must then live for
    the whole session, and a member compromised during the session reveals the pair keys of
    every round of every pair it has (docs/threat-model.md, "Forward security").
    """

    EAGER = "eager"
    LAZY = "lazy"


class Rounding(str, Enum):
    NEAREST = "nearest"
    STOCHASTIC = "stochastic"


class Aggregation(str, Enum):
    MEAN = "mean"  #: w += server_lr * (weighted) mean of the changes
    SUM = "sum"  #: w += server_lr * sum of the changes (DSSGD-style summation)


def default_threshold(group_size: int) -> int:
    """The default threshold: ``⌊2n/3⌋ + 1`` (Bonawitz et al.'s choice against an active
    server), at most n. Against a server that splits lists it leaves about n/3 colluders."""
    return min(group_size, 2 * group_size // 3 + 1)


def check_known_options(data: dict[str, Any], cls: type, section: str) -> None:
    """Refuse keys of ``data`` that are not fields of the dataclass ``cls``, naming them."""
    if not isinstance(data, dict):
        raise ConfigurationError(f"[{section}] must be a table of options")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        hint = did_you_mean(unknown[0], known)
        raise ConfigurationError(
            f"unknown {section} option(s) {', '.join(unknown)}{hint}; "
            f"known: {', '.join(sorted(known))}"
        )


@dataclass(frozen=True)
class ProtocolConfig:
    """Everything the server fixes in Init, as the user wrote it.

    ``mode`` names a registered sharing scheme (``ssddl.protocol.schemes.scheme_names()``).
    ``frac_bits=None`` picks the largest number of fractional bits (at most 24) for which the
    sum of a full group cannot overflow the ring; ``threshold=None`` lets the scheme pick
    (``⌊2n/3⌋ + 1``, raised to survive ``max_colluders`` against a server that splits lists);
    ``group_size=None`` selects every registered participant. ``max_colluders=None`` is the
    most the resolved configuration survives against a server that lies.

    With ``weighted=True`` each member scales its change by ``num_samples / max_samples``
    and puts ``num_samples`` in the shared vector, so the server learns only the total count.
    The scaling costs ``log2(max_samples / num_samples)`` bits of precision, so keep
    ``max_samples`` a tight public bound; the simulator sets it, when it is ``None``, to the
    smallest power of two that holds the largest local dataset.
    """

    mode: str = Mode.PRG.value
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
    recovery: Recovery | None = None
    consistency: bool = False
    #: the largest coalition of members (with the server) the session must survive; None:
    #: the most the resolved configuration survives against a server that lies
    max_colluders: int | None = None
    #: groups of at least this many (every registered member, mode prg) pair sparsely
    sparse_from: int = dataclasses.field(default=DEFAULT_SPARSE_FROM, metadata=_OPTIONAL)
    corrupt_fraction: float = dataclasses.field(
        default=DEFAULT_CORRUPT_FRACTION, metadata=_OPTIONAL
    )
    dropout_fraction: float = dataclasses.field(
        default=DEFAULT_DROPOUT_FRACTION, metadata=_OPTIONAL
    )
    #: when pair keys are agreed (see :class:`PairKeys`)
    pair_keys: PairKeys = dataclasses.field(default=PairKeys.EAGER, metadata=_OPTIONAL)
    #: compression (docs/privacy.md): the secure sum lives in Z_(2**bits) (8 to 32, at most
    #: ring_bits) and every ring word travels in ``bits`` bits; None: whole ring words (with
    #: ``dp``: 20). The capacity check holds the sum to ``2**bits``.
    bits: int | None = dataclasses.field(default=None, metadata=_OPTIONAL)
    #: distributed DP (docs/privacy.md): None (off), "ddg" or "skellam"; then every member
    #: clips its change to ``l2_clip``, rotates, scales, rounds, adds its noise share and the
    #: server reads the sum modulo ``2**bits``; ``noise_multiplier``: the honest
    #: contributors' total noise is ``noise_multiplier * l2_clip`` (standard deviation)
    dp: str | None = dataclasses.field(default=None, metadata=_OPTIONAL)
    noise_multiplier: float = dataclasses.field(default=1.0, metadata=_OPTIONAL)
    l2_clip: float = dataclasses.field(default=1.0, metadata=_OPTIONAL)
    dp_delta: float = dataclasses.field(default=1e-5, metadata=_OPTIONAL)
    #: dp: pick ``noise_multiplier`` so that ε(dp_delta) after ``rounds`` rounds is at most
    #: this (the runner calibrates it once the model's size is known; None: as given)
    target_epsilon: float | None = dataclasses.field(default=None, metadata=_OPTIONAL)
    #: dp: a run stops, everything saved, before the round that would take ε above this
    max_epsilon: float | None = dataclasses.field(default=None, metadata=_OPTIONAL)

    def __post_init__(self) -> None:
        scheme = get_scheme(self.mode)
        object.__setattr__(self, "mode", scheme.name)
        object.__setattr__(self, "rounding", check_enum(Rounding, self.rounding, "rounding"))
        object.__setattr__(
            self, "aggregation", check_enum(Aggregation, self.aggregation, "aggregation")
        )
        object.__setattr__(self, "cipher", check_enum(StreamCipher, self.cipher, "cipher"))
        object.__setattr__(self, "aead", check_enum(AeadAlgorithm, self.aead, "aead"))
        object.__setattr__(self, "pair_keys", check_enum(PairKeys, self.pair_keys, "pair_keys"))
        check_int(self.rounds, "rounds", low=1)
        check_int(self.min_group_size, "min_group_size", low=1)
        if self.min_group_size < scheme.min_group_floor:
            raise ConfigurationError(
                f"min_group_size={self.min_group_size} lets one member's change be the whole "
                f"aggregate in mode {scheme.name!r}; use min_group_size >= "
                f"{scheme.min_group_floor}"
            )
        if self.group_size is not None:
            check_int(self.group_size, "group_size", low=self.min_group_size)
        if self.recovery is not None:
            object.__setattr__(self, "recovery", check_enum(Recovery, self.recovery, "recovery"))
        recovery = scheme.resolve_recovery(self.recovery)  # None: the scheme's default
        check_bool(self.consistency, "consistency")
        if self.consistency and recovery is Recovery.UNSAFE_REVEAL:
            raise ConfigurationError(
                "consistency=true protects the double-mask recovery; with recovery "
                "'unsafe-reveal-keys' use recovery 'double-mask' instead"
            )
        if self.threshold is not None:
            # threshold 1 would make every share the secret itself: refused everywhere
            check_int(self.threshold, "threshold", low=2)
            if not scheme.takes_threshold(recovery):
                raise ConfigurationError(
                    f"threshold is only used in mode 'shamir' and in mode 'prg' with "
                    f"recovery 'double-mask', not here ({scheme.name!r}); drop it"
                )
        if self.ring_bits not in (32, 64) or isinstance(self.ring_bits, bool):
            raise ConfigurationError(f"ring_bits={self.ring_bits!r} must be 32 or 64")
        if self.frac_bits is not None:
            check_int(self.frac_bits, "frac_bits", low=0, high=self.ring_bits - 2)
        object.__setattr__(self, "clip", check_float(self.clip, "clip", positive=True))
        object.__setattr__(
            self, "server_lr", check_float(self.server_lr, "server_lr", positive=True)
        )
        check_bool(self.weighted, "weighted")
        if self.max_samples is not None:
            check_int(self.max_samples, "max_samples", low=1)
        if self.max_colluders is not None:
            check_int(self.max_colluders, "max_colluders", low=0)
        _check_pairing(self)
        _check_bits(self)
        _check_dp(self)

    @property
    def secure(self) -> bool:
        """Whether the mode hides a participant's change (``plain`` does not)."""
        return bool(get_scheme(self.mode).secure)

    def resolve(self, num_participants: int, *, max_samples: int | None = None) -> SessionParams:
        """The parameters that run for ``num_participants`` registered participants: automatic
        fields filled in, overflow checked. ``max_samples`` is used when the config leaves it
        unset. Raises ConfigurationError naming the field to change."""
        check_int(num_participants, "participants", low=1)
        if self.max_samples is None and max_samples is not None:
            check_int(max_samples, "max_samples", low=1)
            return dataclasses.replace(self, max_samples=max_samples).resolve(num_participants)
        scheme = get_scheme(self.mode)
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
        recovery = scheme.resolve_recovery(self.recovery)
        degree, threshold = _sparse_pairing(self, recovery, n)
        max_colluders = resolve_colluders(self, scheme, n, threshold, recovery, sparse=bool(degree))
        bits = self.bits if self.bits is not None else (DP_DEFAULT_BITS if self.dp else 0)
        modulus = scheme.capacity_modulus(self.ring_bits)
        if bits:
            modulus = min(modulus, 1 << bits)
        frac_bits, max_samples_resolved = _fit_ring(self, scheme.secure, n, modulus, bits)
        params = SessionParams(
            mode=self.mode,
            rounds=self.rounds,
            group_size=n,
            min_group_size=self.min_group_size,
            threshold=threshold,
            ring_bits=self.ring_bits,
            frac_bits=frac_bits,
            clip=self.clip,
            rounding=self.rounding,
            weighted=self.weighted,
            max_samples=max_samples_resolved,
            aggregation=self.aggregation,
            server_lr=self.server_lr,
            cipher=self.cipher,
            aead=self.aead,
            recovery=recovery,
            consistency=self.consistency,
            max_colluders=max_colluders,
            sparse_from=self.sparse_from,
            corrupt_fraction=self.corrupt_fraction,
            dropout_fraction=self.dropout_fraction,
            pair_keys=self.pair_keys,
            dp=self.dp or "",
            noise_multiplier=self.noise_multiplier,
            l2_clip=self.l2_clip,
            dp_delta=self.dp_delta,
            bits=bits,
            degree=degree,
            max_samples_given=self.max_samples is not None,
        )
        scheme.check_params(params)
        return params

    # -- serialisation (written to run directories) ---------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return _as_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProtocolConfig:
        check_known_options(data, cls, "protocol")
        return cls(**data)


def _check_bits(config: ProtocolConfig) -> None:
    """Compression: ``bits`` in [8, 32] (at most ring_bits), in a secure mode."""
    if config.bits is None:
        return
    check_int(config.bits, "bits", low=8, high=min(config.ring_bits, 32))
    if not get_scheme(config.mode).secure:
        raise ConfigurationError(
            f"bits={config.bits} packs the secure sum's ring words; mode {config.mode!r} sends "
            "float32 changes: drop bits or use a secure mode"
        )


def _fit_ring(
    config: ProtocolConfig, secure: bool, n: int, modulus: int, bits: int
) -> tuple[int, int]:
    """(frac_bits, max_samples) for ``n`` members whose sum must stay inside ``modulus``;
    ConfigurationError naming the fix (``bits`` first, when it is what the sum outgrows)."""

    def fits(check: Any) -> Any:
        try:
            return check()
        except ConfigurationError:
            if not bits:
                raise
            raise _bits_overflow(bits, n, config) from None

    frac_bits = config.frac_bits
    if frac_bits is None:
        frac_bits = (
            fits(lambda: _auto_frac_bits(n, config.clip, modulus, config.ring_bits))
            if secure
            else MAX_AUTO_FRAC_BITS  # unused for transport, kept for symmetric reports
        )
    if config.weighted and config.max_samples is None:
        raise ConfigurationError(
            "max_samples is unset: with weighted=true give a public upper bound on a "
            "participant's sample count (or weighted=false)"
        )
    max_samples = config.max_samples if config.max_samples is not None else 1
    if config.weighted and n * max_samples >= modulus // 2:
        if bits:
            raise _bits_overflow(bits, n, config)
        raise ConfigurationError(
            f"the total sample count of {n} participants with max_samples="
            f"{config.max_samples} can overflow ring_bits={config.ring_bits}; "
            f"lower max_samples or use ring_bits=64"
        )
    if secure:
        codec = FixedPoint(ring_bits=config.ring_bits, frac_bits=frac_bits, clip=config.clip)
        fits(lambda: codec.check_capacity(n, modulus=modulus))
    return frac_bits, max_samples


def _bits_overflow(bits: int, n: int, config: ProtocolConfig) -> Exception:
    """The one-line refusal of a configuration whose sum can leave Z_(2**bits)."""
    given = config.weighted and config.max_samples is not None
    weights = f"max_samples={config.max_samples}, " if given else ""
    frac_bits = config.frac_bits if config.frac_bits is not None else "auto"
    return ConfigurationError(
        f"bits={bits} cannot hold the sum of {n} members' words ({weights}clip={config.clip}, "
        f"frac_bits={frac_bits}): raise bits (at most 32), lower frac_bits or clip"
        f"{', or set weighted=false' if config.weighted else ''}"
    )


def _check_dp(config: ProtocolConfig) -> None:
    """Distributed DP's fields: a known mechanism, a secure mode, one count word per member
    (each member's contribution is bounded by ``l2_clip`` alone, not scaled by its count)."""
    if config.dp is None or config.dp == "":
        object.__setattr__(config, "dp", None)
        for name in ("target_epsilon", "max_epsilon"):
            if getattr(config, name) is not None:
                raise ConfigurationError(f"{name} needs dp='ddg' or dp='skellam'")
        return
    for name in ("target_epsilon", "max_epsilon"):
        if getattr(config, name) is not None:
            value = check_float(getattr(config, name), name, positive=True)
            object.__setattr__(config, name, value)
    if config.dp not in DP_MECHANISMS:
        raise ConfigurationError(f"dp={config.dp!r} must be one of {', '.join(DP_MECHANISMS)}")
    if not get_scheme(config.mode).secure:
        raise ConfigurationError(
            f"dp adds noise under secure aggregation: use a secure mode, not {config.mode!r}"
        )
    if config.weighted:
        raise ConfigurationError("dp needs weighted=false (each member counts once)")
    for name in ("noise_multiplier", "l2_clip"):
        object.__setattr__(config, name, check_float(getattr(config, name), name, positive=True))
    delta = check_float(config.dp_delta, "dp_delta", positive=True)
    if delta >= 1:
        raise ConfigurationError(f"dp_delta={delta} must be below 1, e.g. 1e-5")
    object.__setattr__(config, "dp_delta", delta)


def _check_pairing(config: ProtocolConfig) -> None:
    check_int(config.sparse_from, "sparse_from", low=3)
    for name in ("corrupt_fraction", "dropout_fraction"):
        value = check_float(getattr(config, name), name, low=0.0)
        if value >= 1:
            raise ConfigurationError(f"{name}={value} must be below 1 (a fraction of the group)")
        object.__setattr__(config, name, value)
    if config.corrupt_fraction + config.dropout_fraction >= 1:
        raise ConfigurationError(
            "corrupt_fraction + dropout_fraction must be below 1; lower one of them"
        )


def _sparse_pairing(config: ProtocolConfig, recovery: Recovery, n: int) -> tuple[int, int]:
    """(degree, threshold): the pairing graph's degree (0: complete) and the threshold.

    Sparse pairing applies to schemes that support it when the group has at least
    ``sparse_from`` members. When every registered member is in every group the graph is
    fixed at Init; when groups are smaller, each round draws a graph over its own group
    (:func:`~ssddl.protocol.pairing.round_graph`)."""
    scheme = get_scheme(config.mode)
    threshold = scheme.resolve_threshold(
        config.threshold,
        n,
        recovery,
        colluders=config.max_colluders,
        consistency=config.consistency,
    )
    if not (
        getattr(scheme, "sparse_pairing", False)
        and recovery in (Recovery.DOUBLE_MASK, Recovery.NONE)
        and n >= config.sparse_from
    ):
        return 0, threshold
    chosen = sparse_parameters(n, config.corrupt_fraction, config.dropout_fraction)
    if chosen is None:
        return 0, threshold
    degree, sparse_threshold = chosen
    if config.consistency:
        raise ConfigurationError(
            f"consistency=true is not supported with sparse pairing (groups of {n} >= "
            f"sparse_from={config.sparse_from}); raise sparse_from above {n}"
        )
    if recovery is not Recovery.DOUBLE_MASK:
        return degree, threshold
    if config.threshold is not None and config.threshold != sparse_threshold:
        raise ConfigurationError(
            f"threshold={config.threshold}: with sparse pairing (groups of {n}) the threshold "
            f"is derived ({sparse_threshold} of {degree} neighbours); drop threshold or raise "
            f"sparse_from above {n}"
        )
    return degree, sparse_threshold


def resolve_colluders(
    config: ProtocolConfig, scheme: Any, n: int, threshold: int, recovery: Recovery, *, sparse: bool
) -> int:
    """The largest coalition the session survives, which participants then enforce: the
    user's ``max_colluders`` checked against the rest, or (None) the most the configuration
    survives against a server that lies. ConfigurationError names the field to change."""
    if not scheme.secure:
        return 0
    wanted = config.max_colluders
    if wanted is not None and wanted > n - 2:
        raise ConfigurationError(
            f"max_colluders={wanted} needs groups of {wanted + 2} or more (the colluders and "
            f"two honest members); the group has {n}: lower max_colluders or enlarge the group"
        )
    if sparse:  # the pairing graph was drawn for corrupt_fraction (pairing.sparse_parameters)
        most = math.floor(config.corrupt_fraction * n)
        what = f"corrupt_fraction={config.corrupt_fraction} (sparse pairing of {n})"
    elif scheme.all_contribute(recovery):
        most, what = n - 2, f"groups of {n}"
    elif scheme.split_margin(recovery, config.consistency) is None:
        # unsafe-reveal-keys: the survivors' floor (a lying server unmasks late uploads)
        floor = max(threshold or default_threshold(n), config.min_group_size)
        most, what = floor - 2, f"groups of {n}"
    else:
        most, what = _split_bound(config, scheme, n, threshold, recovery)
    if wanted is None:
        return max(0, min(most, n - 2))
    if wanted > most:
        raise ConfigurationError(
            f"max_colluders={wanted}: {what} survive at most {max(0, most)}; lower "
            f"max_colluders or enlarge the group"
        )
    if wanted < most:
        warnings.warn(  # stacklevel 2: one location (ProtocolConfig.resolve), shown once
            f"max_colluders={wanted} is below the {most} that {what} survive: participants "
            f"then hold the server to {wanted} colluder(s) only (groups of {wanted + 2} or "
            f"more, thresholds no split breaks with {wanted})",
            SecurityWarning,
            stacklevel=2,
        )
    return wanted


def _split_bound(
    config: ProtocolConfig, scheme: Any, n: int, threshold: int, recovery: Recovery
) -> tuple[int, str]:
    """(the most colluders, what limits them) where a lying server can split lists:
    ``2t − n − margin``, and the floor of contributors. Refuses a threshold that a split
    breaks with fewer colluders than asked for (or with none)."""
    margin = scheme.split_margin(recovery, config.consistency)
    most = min(max(threshold, config.min_group_size) - 2, 2 * threshold - n - margin)
    what = f"threshold={threshold} for groups of {n}"
    c = config.max_colluders or 0
    if most < c:
        needed = -(-(n + c + margin) // 2)
        fix = f"use threshold >= {needed}" if needed <= n else "enlarge the group"
        signed = -(-(n + c + 1) // 2)
        if margin == 2 and signed < min(needed, n + 1):
            fix += f" (or >= {signed} with consistency=true)"
        raise ConfigurationError(
            f"{what} lets a server that shows members different lists unmask a member with "
            f"{c} colluder(s) (it needs 2·threshold − group size − {margin} >= {c}); {fix}"
        )
    return most, what


def _auto_frac_bits(n: int, clip: float, modulus: int, ring_bits: int) -> int:
    """The largest f <= 24 for which n encodings of values clipped to ``clip`` (each up to
    floor(clip * 2^f) + 1 after rounding) sum below modulus / 2."""
    for frac_bits in range(MAX_AUTO_FRAC_BITS, -1, -1):
        if frac_bits > ring_bits - 2:
            continue
        try:
            FixedPoint(ring_bits=ring_bits, frac_bits=frac_bits, clip=clip).check_capacity(
                n, modulus=modulus
            )
        except ConfigurationError:
            continue
        return frac_bits
    raise ConfigurationError(
        f"ring_bits={ring_bits} cannot hold the sum of {n} values clipped to "
        f"{clip}; use a smaller clip or ring_bits=64"
    )


def _as_dict(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        if not f.metadata.get("published", True):
            continue
        if f.metadata.get("optional") and getattr(obj, f.name) == f.default:
            continue  # published only when changed: the default announcement stays as it was
        value = getattr(obj, f.name)
        out[f.name] = value.value if isinstance(value, Enum) else value
    return out


@dataclass(frozen=True)
class SessionParams:
    """The resolved configuration of a session: what the server publishes and what runs.

    Every field is set. ``threshold`` is 0 in schemes that use none (it is published as
    ``null`` there). ``max_samples`` is 1 when ``weighted`` is false and none was given.
    """

    mode: str
    rounds: int
    group_size: int
    min_group_size: int
    threshold: int
    ring_bits: int
    frac_bits: int
    clip: float
    rounding: Rounding
    weighted: bool
    max_samples: int
    aggregation: Aggregation
    server_lr: float
    cipher: StreamCipher
    aead: AeadAlgorithm
    recovery: Recovery
    consistency: bool
    max_colluders: int
    sparse_from: int = dataclasses.field(default=DEFAULT_SPARSE_FROM, metadata=_OPTIONAL)
    corrupt_fraction: float = dataclasses.field(
        default=DEFAULT_CORRUPT_FRACTION, metadata=_OPTIONAL
    )
    dropout_fraction: float = dataclasses.field(
        default=DEFAULT_DROPOUT_FRACTION, metadata=_OPTIONAL
    )
    pair_keys: PairKeys = dataclasses.field(default=PairKeys.EAGER, metadata=_OPTIONAL)
    #: distributed DP's mechanism, "" when off (see ProtocolConfig.dp)
    dp: str = dataclasses.field(default="", metadata=_OPTIONAL)
    noise_multiplier: float = dataclasses.field(default=1.0, metadata=_OPTIONAL)
    l2_clip: float = dataclasses.field(default=1.0, metadata=_OPTIONAL)
    dp_delta: float = dataclasses.field(default=1e-5, metadata=_OPTIONAL)
    #: the ring Z_(2**bits) of the sum and the words' width on the wire; 0: whole ring words
    bits: int = dataclasses.field(default=0, metadata=_OPTIONAL)
    #: the pairing graph's degree k; 0 = the complete graph (derived, never published)
    degree: int = dataclasses.field(default=0, metadata={"published": False})
    max_samples_given: bool = dataclasses.field(default=True, metadata={"published": False})

    def __post_init__(self) -> None:
        # the one lookup of the mode: stages, policy, participant and server ask `scheme`
        object.__setattr__(self, "_scheme", get_scheme(self.mode))

    @property
    def scheme(self) -> Any:
        """The registered scheme that runs this session (a
        :class:`~ssddl.protocol.schemes.base.Scheme`; untyped here, below the schemes),
        looked up once, when the parameters were made."""
        return self._scheme  # type: ignore[attr-defined]

    @property
    def secure(self) -> bool:
        return bool(self.scheme.secure)

    @property
    def capacity_modulus(self) -> int:
        """The modulus the signed sum must stay inside: Q, or also the scheme's field, or
        also ``2**bits``."""
        modulus = int(self.scheme.capacity_modulus(self.ring_bits))
        return min(modulus, 1 << self.bits) if self.bits else modulus

    @property
    def min_contributors(self) -> int:
        """The fewest contributors a round may apply with: ``max_colluders + 2`` (so that
        the colluders learn nothing beyond the sum of two honest changes), the threshold,
        and ``min_group_size``, whichever is largest."""
        return max(self.max_colluders + 2, self.threshold, self.min_group_size)

    @property
    def consistency_threshold(self) -> int:
        """How many members must sign a set in the consistency check: the threshold, or a
        majority of the group where the scheme has none."""
        return self.threshold if self.threshold else self.group_size // 2 + 1

    def codec(self) -> FixedPoint:
        """The session's fixed-point code (built once: the server checks every upload's
        words against it)."""
        return self._codec

    @functools.cached_property
    def _codec(self) -> FixedPoint:
        return FixedPoint(ring_bits=self.ring_bits, frac_bits=self.frac_bits, clip=self.clip)

    def config(self) -> ProtocolConfig:
        """The same values as an explicit ProtocolConfig (resolving it gives these back)."""
        data = self.to_dict()
        if not self.max_samples_given:
            data["max_samples"] = None
        return ProtocolConfig.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        """The published form; schemes without a threshold publish ``threshold: null``."""
        out = _as_dict(self)
        if not self.threshold:
            out["threshold"] = None
        if not self.max_samples_given:
            out["max_samples"] = None
        return out

    def canonical_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_announcement(cls, text: str, num_participants: int) -> SessionParams:
        """Parse and re-check a published configuration (MalformedMessage if it is not a
        resolved configuration; ConfigurationError if it could overflow)."""
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise TypeError("not an object")
            config = ProtocolConfig.from_dict(data)
        except (ValueError, TypeError) as exc:
            raise MalformedMessage(f"the announced configuration is invalid: {exc}") from None
        if config.group_size is None or config.frac_bits is None:
            raise MalformedMessage("the announced configuration is not resolved")
        if config.weighted and config.max_samples is None:
            raise MalformedMessage("the announced configuration is not resolved (max_samples)")
        with warnings.catch_warnings():  # the announcer's choice: the member has its own floor
            warnings.simplefilter("ignore", SecurityWarning)
            params = config.resolve(num_participants)
        if config.threshold is None and params.threshold:
            raise MalformedMessage("the announced configuration is not resolved (threshold)")
        return params
