"""One interface for every attack, one result type, and the registry the audit runs.

An :class:`Attack` names the guarantee it tests and what its adversary can do, and its
``run(context)`` plays that adversary against real participants (a recorded session from
:meth:`AttackContext.recorded`, or the live ones of :func:`ssddl.attacks.server.session`)
and returns :class:`AttackOutcome` values: what it attacked, whether it got what it was
after, and whether the stated guarantee said it should (``expected``). The audit
(:func:`ssddl.attacks.audit.run_audit`) runs every attack in the registry in order and
collects their outcomes; a claim fails where an outcome does not hold.

Adding an attack is a class and one :func:`register_attack` call (docs/writing-an-attack.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from ssddl.attacks.views import RecordedRun, record_run
from ssddl.exceptions import ConfigurationError
from ssddl.modes import secure_modes
from ssddl.protocol import ProtocolConfig

if TYPE_CHECKING:
    from ssddl.attacks.target import Victims

__all__ = [
    "SSDDL_MODES",
    "Attack",
    "AttackContext",
    "AttackOutcome",
    "AuditConfig",
    "attack_names",
    "expected_at",
    "get_attack",
    "register_attack",
    "unregister_attack",
]

#: the secure modes every attack on a secure view runs against: the catalogue's secure modes
#: (derived from the scheme registry), as registered when the attacks are imported
SSDDL_MODES = secure_modes()
MAX_AGGREGATE_INPUTS = 64  #: n·B at most (the dummies of batch DLG grow with it)
Progress = Callable[[str], None]


@dataclass(frozen=True)
class AuditConfig:
    """How big the audit is. ``quick`` is the ≤ 2-minute version; ``crypto_seed`` (32 bytes,
    tests only) derives keys, masks and shares from a seed."""

    participants: int = 8
    lr: float = 0.1
    dlg_iterations: int = 300
    dlg_members: int = 8
    coalition_n: int = 5
    coalition_size: int = 4000
    simulations: int = 50_000  #: simulated views for p_sim (its resolution is 1/simulations)
    theta_u: float = 0.1
    aggregate_groups: tuple[int, ...] = (2, 4, 8, 16)  #: n of the aggregate attacks
    aggregate_batches: tuple[int, ...] = (1, 2)  #: B, samples per member
    aggregate_iterations: int = 2000  #: L-BFGS iterations of batch DLG / iDLG
    #: distributed DP: the ε (one round) of the noised aggregates attacked and audited
    dp_epsilons: tuple[float, ...] = (1.0, 4.0, 16.0)
    dp_group: int = 4  #: n of the noised aggregates the inversion attacks run on (B = 1)
    canary_trials: int = 4000  #: trials of each canary setting at the aggregate level
    canary_rounds: int = 400  #: rounds of the canary setting run through the real protocol
    seed: int = 0
    crypto_seed: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for name in (
            "participants",
            "dlg_iterations",
            "coalition_size",
            "simulations",
            "aggregate_iterations",
            "canary_trials",
            "canary_rounds",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"AuditConfig.{name} must be an int >= 1, got {value!r}")
        for name, low in (("aggregate_groups", 2), ("aggregate_batches", 1)):
            values = getattr(self, name)
            if not isinstance(values, tuple) or not values:
                raise ConfigurationError(f"AuditConfig.{name} must be a non-empty tuple of ints")
            if any(isinstance(v, bool) or not isinstance(v, int) or v < low for v in values):
                raise ConfigurationError(
                    f"AuditConfig.{name} must hold ints >= {low}, got {values!r}"
                )
        if max(self.aggregate_groups) * max(self.aggregate_batches) > MAX_AGGREGATE_INPUTS:
            raise ConfigurationError(
                f"AuditConfig: n·B up to {MAX_AGGREGATE_INPUTS} samples in one aggregate; "
                "lower aggregate_groups or aggregate_batches"
            )
        _check_dp_fields(self)
        if self.participants < 2:
            raise ConfigurationError("AuditConfig.participants must be >= 2 (a group)")
        if self.coalition_n < 3:
            raise ConfigurationError("AuditConfig.coalition_n must be >= 3")
        if self.crypto_seed is not None and len(self.crypto_seed) != 32:
            raise ConfigurationError("AuditConfig.crypto_seed must be 32 bytes or None")

    @classmethod
    def quick(cls, **overrides: Any) -> AuditConfig:
        base: dict[str, Any] = {
            "participants": 4,
            "dlg_iterations": 100,
            "dlg_members": 2,
            "coalition_size": 1500,
            "simulations": 20_000,
            "aggregate_groups": (2, 4, 8),
            "aggregate_iterations": 300,
            "canary_trials": 600,
            "canary_rounds": 60,
        }
        return cls(**(base | overrides))


def _check_dp_fields(config: AuditConfig) -> None:
    epsilons = config.dp_epsilons
    if (
        not isinstance(epsilons, tuple)
        or not epsilons
        or any(
            isinstance(e, bool) or not isinstance(e, (int, float)) or not 0 < e < math.inf
            for e in epsilons
        )
    ):
        raise ConfigurationError(
            f"AuditConfig.dp_epsilons must be a non-empty tuple of positive numbers, got "
            f"{epsilons!r}"
        )
    group = config.dp_group
    if isinstance(group, bool) or not isinstance(group, int) or group < 2:
        raise ConfigurationError(f"AuditConfig.dp_group must be an int >= 2, got {group!r}")
    if config.canary_trials < 2 or config.canary_rounds < 2:
        raise ConfigurationError("AuditConfig.canary_trials and canary_rounds must be >= 2")


#: the fields every :meth:`AttackOutcome.as_row` starts with, in this order
ROW_FIELDS = (
    "attack",
    "setting",
    "target",
    "server",
    "colluders",
    "bound",
    "succeeded",
    "expected",
    "holds",
    "stopped_by",
    "detail",
)


@dataclass(frozen=True)
class AttackOutcome:
    """One run of an attack against one setting, judged against what its guarantee says.

    ``succeeded``: the adversary got what it was after (a member's change or input — each
    attack says how it measures that). ``expected``: what the stated guarantee says of this
    run — False, it must fail (at or within a bound); True, it must succeed (the control
    that shows the attack is real, or a view with no protection); None, measured only (no
    claim either way). ``bound`` is the stated bound the run is judged against, if one
    applies (:func:`expected_at` turns it into ``expected``). ``measured`` holds the
    attack's own numbers (JSON-ready values, flattened into :meth:`as_row`); ``images``
    (grid row -> participant -> image in [0, 1]) are what the audit draws, never a row.
    """

    attack: str
    setting: str  #: what it ran against: a mode, a configuration, a view
    succeeded: bool
    expected: bool | None
    target: str = ""  #: whom it attacked: "member 1", "the aggregate", ...
    server: str = "honest-but-curious"  #: or "lying"
    colluders: int = 0  #: participants colluding with the server
    bound: int | None = None
    stopped_by: str | None = None  #: what stopped it (an error a participant raised, ...)
    detail: str = ""
    measured: Mapping[str, Any] = field(default_factory=dict)
    images: Mapping[str, Mapping[int, np.ndarray]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not self.attack or not self.setting:
            raise ConfigurationError("AttackOutcome needs an attack name and a setting")
        if not isinstance(self.succeeded, bool):
            raise ConfigurationError(
                f"AttackOutcome.succeeded must be a bool, got {type(self.succeeded).__name__}"
            )
        if not any(self.expected is v for v in (True, False, None)):
            raise ConfigurationError(
                f"AttackOutcome.expected must be True, False or None, got {self.expected!r}"
            )

    @property
    def holds(self) -> bool:
        """The measurement agrees with the guarantee (or there is no claim to check)."""
        return self.expected is None or self.succeeded == self.expected

    def failure(self) -> str:
        """One line saying how this outcome contradicts its guarantee."""
        who = f" against {self.target}" if self.target else ""
        with_c = f" with {self.colluders} colluders" if self.colluders else ""
        bound = "" if self.bound is None else f" (stated bound {self.bound})"
        what = "succeeded" if self.succeeded else "failed"
        want = "fail" if self.expected is False else "succeed"
        return f"{self.attack} on {self.setting}{who}{with_c} {what}; it must {want}{bound}"

    def as_row(self) -> dict[str, Any]:
        """A flat row for JSON or CSV: :data:`ROW_FIELDS`, then every measured value whose
        name is not one of them."""
        row: dict[str, Any] = {
            "attack": self.attack,
            "setting": self.setting,
            "target": self.target,
            "server": self.server,
            "colluders": self.colluders,
            "bound": self.bound,
            "succeeded": self.succeeded,
            "expected": self.expected,
            "holds": self.holds,
            "stopped_by": self.stopped_by,
            "detail": self.detail,
        }
        return row | {k: v for k, v in self.measured.items() if k not in row}


def expected_at(colluders: int, bound: int | None) -> bool:
    """What a stated collusion bound says of a coalition of ``colluders``: it must fail at or
    within the bound (False) and may succeed beyond it (True, the control); with no bound
    stated (None) nothing protects the target."""
    return bound is None or colluders > bound


@runtime_checkable
class Attack(Protocol):
    """An attack the audit runs. ``name`` is its key in the registry; ``guarantee`` the
    claim it tests and ``adversary`` what the adversary holds or does (one sentence each,
    shown by ``attack_names`` users and the docs)."""

    name: str
    guarantee: str
    adversary: str

    def run(self, context: AttackContext) -> Sequence[AttackOutcome]:
        """Play the adversary against real participants; one outcome per setting tried."""
        ...


class AttackContext:
    """What every attack of one audit shares: its size (``config``), whether it is the
    quick audit, the victims (digits samples on a small network), one recorded real
    session per mode of those victims (made once, on first use), a progress line and
    notes for the report."""

    def __init__(
        self, config: AuditConfig, *, quick: bool = False, progress: Progress | None = None
    ) -> None:
        self.config = config
        self.quick = quick
        self.notes: list[str] = []
        self._progress = progress
        self._recorded: dict[str, RecordedRun] = {}

    def say(self, line: str) -> None:
        """One line of progress (stderr in the CLI)."""
        if self._progress is not None:
            self._progress(line)

    def note(self, line: str) -> None:
        """A note for the report: something that could not be run, and why."""
        self.notes.append(line)

    @cached_property
    def victims(self) -> Victims:
        """The audit's victims: ``config.participants`` digits samples, one per member,
        and enough more for the largest aggregate."""
        from ssddl.attacks.target import Victims  # torch: only once an attack needs it

        c = self.config
        pool = max(c.participants, max(c.aggregate_groups) * max(c.aggregate_batches))
        return Victims.drawn(c.participants, pool, seed=c.seed)

    def recorded(self, mode: str) -> RecordedRun:
        """A real one-round session of ``mode``: every victim a participant taking one SGD
        step on its own sample, recorded as the server (and any coalition) saw it."""
        if mode not in self._recorded:
            self.say(
                f"input recovery: a real {mode} session of {len(self.victims.xs)} participants"
            )
            protocol = ProtocolConfig(mode=mode, rounds=1, weighted=False)
            self._recorded[mode] = record_run(
                protocol,
                self.victims.trainers(self.config.lr),
                self.victims.initial,
                crypto_seed=self.config.crypto_seed,
            )
        return self._recorded[mode]


# -- the registry ----------------------------------------------------------------------------

_ATTACKS: dict[str, Attack] = {}
_BUILT_IN: set[str] = set()


def register_attack(attack: Attack, *, built_in: bool = False) -> Attack:
    """Add ``attack`` to the audit (after every attack already registered)."""
    if not built_in:
        _built_ins()
    if not isinstance(attack, Attack):
        raise ConfigurationError(
            "register_attack takes an object with name, guarantee, adversary and run(context)"
        )
    if not isinstance(attack.name, str) or not attack.name:
        raise ConfigurationError("an attack's name must be a non-empty string")
    if attack.name in _ATTACKS:
        raise ConfigurationError(
            f"an attack named {attack.name!r} is already registered; choose another name"
        )
    _ATTACKS[attack.name] = attack
    if built_in:
        _BUILT_IN.add(attack.name)
    return attack


def unregister_attack(name: str) -> None:
    """Remove an attack added with :func:`register_attack` (tests); built-ins stay."""
    _built_ins()
    if name in _BUILT_IN:
        raise ConfigurationError(f"{name!r} is one of the audit's own attacks; it stays")
    if _ATTACKS.pop(name, None) is None:
        raise ConfigurationError(f"no attack named {name!r} is registered")


def attack_names() -> tuple[str, ...]:
    """Every registered attack, in the order the audit runs them (built-ins first)."""
    _built_ins()
    return tuple(_ATTACKS)


def get_attack(name: str) -> Attack:
    """The attack registered as ``name``."""
    _built_ins()
    try:
        return _ATTACKS[name]
    except KeyError:
        raise ConfigurationError(
            f"no attack named {name!r}; registered: {', '.join(_ATTACKS) or 'none'}"
        ) from None


def _built_ins() -> None:
    """Register the audit's own attacks (once, before any other is added or looked up)."""
    import ssddl.attacks.suite  # noqa: F401  (registers on import)
