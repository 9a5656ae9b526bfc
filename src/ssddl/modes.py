"""One catalogue of modes: every value of ``--mode``, SSDDL's sharing schemes and the
baselines alike, and what each one is.

An entry (:class:`ModeEntry`) gives a mode's name, the words ``--mode``'s help uses for it,
whether it is secure, the guarantee it states, the options that apply only to it, its engine
and the runs ``ssddl reproduce`` makes of it. The command line (``--mode``'s choices and
help, the options that apply), the experiment configuration, ``ssddl reproduce``, ``ssddl
audit`` and the benchmarks all read it; none of them writes a list of modes out.

* **SSDDL's modes** are the schemes of the protocol's registry
  (:func:`ssddl.protocol.schemes.scheme_names`), in the order they were registered, so a
  scheme added with :func:`~ssddl.protocol.schemes.register_scheme` is a mode at once.
  Whether one is secure and what it guarantees are its scheme's own (``Scheme.secure``,
  ``Scheme.guarantee``): :func:`secure_modes` derives the secure ones from the registry.
* **Baselines** are added with :func:`register_baseline` (``docs/writing-a-baseline.md``).
  A baseline that is "a participant contribution + server aggregation over messages" runs
  in the protocol's scheme slot: its :class:`~ssddl.protocol.schemes.Scheme` is registered
  under the same name and its entry has no runner (engine :attr:`Engine.SIMULATOR`). Any
  other runs outside the protocol: its entry names a runner function and states its own
  guarantee (engine :attr:`Engine.RUNNER`).

The order is the order users see: ``--mode`` lists the simulator's modes (SSDDL's, then the
baselines in the scheme slot), then the runners; ``ssddl reproduce`` compares the baselines
in the order they were registered, then SSDDL's secure modes. This module loads no torch, so
``ssddl --help`` answers at once.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ssddl.baselines.schemes import fedsgd_train_config, runner_guarantee
from ssddl.exceptions import ConfigurationError
from ssddl.protocol.config import SessionParams
from ssddl.protocol.schemes import get_scheme, scheme_names
from ssddl.protocol.schemes._common import Guarantee

__all__ = [
    "Engine",
    "Guarantee",
    "ModeEntry",
    "catalogue",
    "comparison",
    "entry",
    "mode_help",
    "mode_names",
    "modes_using",
    "register_baseline",
    "runner_names",
    "secure_modes",
    "unregister_baseline",
]

#: one run of ``ssddl reproduce``'s comparison: (label, experiment options it sets)
Comparison = tuple[str, Mapping[str, Any]]


class Engine(enum.Enum):
    """What runs a mode."""

    #: the SSDDL protocol (:mod:`ssddl.runtime.simulator`), the mode's scheme in its slot
    SIMULATOR = "simulator"
    #: a baseline runner outside the protocol (:func:`ssddl.baselines.runners.run_baseline`)
    RUNNER = "runner"


@dataclass(frozen=True)
class ModeEntry:
    """One mode of the catalogue.

    ``summary``: how ``--mode``'s help names it. ``options``: the keys of the options that
    apply only to it (and to the other modes that list them), e.g. ``"theta_u"``; any other
    is refused with it. ``compared``: the runs ``ssddl reproduce`` makes of it, as (label,
    experiment options) — none: it is not in the comparison. ``baseline``: a mode SSDDL is
    compared against rather than one of its own.

    A mode in the scheme slot has no ``runner``; whether it is ``secure`` and its guarantee
    are its scheme's. A runner mode gives ``runner`` — a function ``(model, datasets,
    RunnerConfig, *, test, on_round) -> BaselineRun``, or the name of one of
    :data:`ssddl.baselines.runners.RUNNERS` — and ``states``, its guarantee for a number of
    participants; ``secure`` says whether the server alone never sees a participant's change.
    ``local_train``: turns the run's local-training config into the mode's (FedSGD's one
    full-batch step), given the participants' datasets.
    """

    name: str
    summary: str
    options: tuple[str, ...] = ()
    compared: tuple[Comparison, ...] = ()
    baseline: bool = True
    runner: Callable[..., Any] | str | None = None
    states: Callable[[int], Guarantee] | None = None
    secure: bool = False
    local_train: Callable[[Any, Sequence[Any]], Any] | None = None

    def __post_init__(self) -> None:
        name = self.name
        if not isinstance(name, str) or not name or not name.replace("-", "").isalnum():
            raise ConfigurationError(f"mode name {name!r} must be a short alphanumeric word")
        if not isinstance(self.summary, str) or not self.summary:
            raise ConfigurationError(f"mode {name!r}: give a summary, the words --mode's help uses")
        if (self.runner is None) != (self.states is None):
            raise ConfigurationError(
                f"mode {name!r}: a runner mode gives both runner and states (its guarantee); "
                f"a mode in the scheme slot gives neither (its scheme states it)"
            )
        object.__setattr__(self, "options", tuple(self.options))
        object.__setattr__(self, "compared", tuple(self.compared))

    @property
    def engine(self) -> Engine:
        return Engine.SIMULATOR if self.runner is None else Engine.RUNNER

    def guarantee(self, participants: int, params: SessionParams | None = None) -> Guarantee:
        """What the mode protects with ``participants`` members: a runner's stated guarantee,
        or the scheme's for the resolved session ``params`` (needed in the scheme slot)."""
        if self.states is not None:
            return self.states(participants)
        if params is None:
            raise ConfigurationError(
                f"mode {self.name!r} states its guarantee for a resolved session: give params"
            )
        stated: Guarantee = get_scheme(params.mode).guarantee(params)
        return stated


# -- SSDDL's own modes: the registry's schemes, described --------------------------------------

#: --mode's help words and the options of the built-in schemes (any other: its name, none)
_SCHEME_WORDS = {
    "prg": "prg masks",
    "explicit": "explicit shares",
    "shamir": "Shamir shares",
    "plain": "plain (no protection)",
}
_SCHEME_OPTIONS = {
    "prg": (
        "protocol.recovery",
        "protocol.sparse_from",
        "protocol.corrupt_fraction",
        "protocol.dropout_fraction",
        "protocol.cipher",
    ),
}


def _variant_of(name: str) -> str | None:
    """The mode a registered scheme is a variant of (DSSGD registers one per θ it is asked
    for, under a name that spells them out), or None for a mode of its own."""
    variant = getattr(get_scheme(name), "variant_of", None)
    return variant if isinstance(variant, str) else None


def _scheme_entry(name: str) -> ModeEntry:
    secure = bool(get_scheme(name).secure)
    return ModeEntry(
        name,
        _SCHEME_WORDS.get(name, name),
        _SCHEME_OPTIONS.get(name, ()),
        compared=((f"ssddl {name}", {}),) if secure else (),
        baseline=False,
        secure=secure,
    )


# -- the baselines -----------------------------------------------------------------------------

_DSSGD_OPTIONS = ("theta_u", "theta_d", "gamma", "laplace_scale")

_BASELINES: dict[str, ModeEntry] = {}
_BUILT_IN: set[str] = set()


def _runner(name: str, summary: str, *, secure: bool, **fields: Any) -> ModeEntry:
    states = functools.partial(runner_guarantee, name)
    return ModeEntry(name, summary, runner=name, states=states, secure=secure, **fields)


def register_baseline(mode: ModeEntry, *, built_in: bool = False) -> ModeEntry:
    """Add ``mode`` to the catalogue, after the baselines already there: ``--mode`` takes it,
    ``ssddl reproduce`` runs its ``compared`` runs. A mode in the scheme slot needs its
    scheme registered under the same name first."""
    if not isinstance(mode, ModeEntry):
        raise ConfigurationError("register_baseline takes a ModeEntry")
    taken = mode.name in _BASELINES or (mode.runner is not None and mode.name in scheme_names())
    if taken:
        raise ConfigurationError(f"a mode named {mode.name!r} is already in the catalogue")
    if mode.runner is None and mode.name not in scheme_names():
        raise ConfigurationError(
            f"mode {mode.name!r} has no runner, so it runs in the scheme slot: register its "
            f"scheme first (ssddl.protocol.register_scheme), or give runner= and states="
        )
    _BASELINES[mode.name] = mode
    if built_in:
        _BUILT_IN.add(mode.name)
    return mode


def unregister_baseline(name: str) -> None:
    """Remove a baseline added with :func:`register_baseline` (tests); built-ins stay."""
    if name in _BUILT_IN:
        raise ConfigurationError(f"the built-in mode {name!r} cannot be removed")
    _BASELINES.pop(name, None)


# -- reading the catalogue ---------------------------------------------------------------------


def catalogue() -> tuple[ModeEntry, ...]:
    """Every mode: SSDDL's (the registry's schemes, in their order), then the baselines in the
    order they were registered. A scheme-slot baseline says ``secure`` as its scheme does."""
    own = [
        _scheme_entry(n) for n in scheme_names() if n not in _BASELINES and _variant_of(n) is None
    ]
    return (*own, *(_as_registered(m) for m in _BASELINES.values()))


def _as_registered(mode: ModeEntry) -> ModeEntry:
    """A scheme-slot baseline as its scheme says (``secure``); a runner as it is."""
    if mode.runner is not None:
        return mode
    return dataclasses.replace(mode, secure=bool(get_scheme(mode.name).secure))


def mode_names() -> tuple[str, ...]:
    """``--mode``'s choices: the simulator's modes (SSDDL's, then the baselines in the scheme
    slot), then the runners."""
    modes = catalogue()
    return tuple(m.name for m in modes if m.runner is None) + runner_names()


def runner_names() -> tuple[str, ...]:
    """The modes that run outside the protocol."""
    return tuple(m.name for m in catalogue() if m.runner is not None)


def secure_modes() -> tuple[str, ...]:
    """SSDDL's secure modes: the registry's schemes that hide a participant's change."""
    return tuple(m.name for m in catalogue() if not m.baseline and m.secure)


def entry(name: str) -> ModeEntry:
    """The entry of mode ``name`` (a registered variant, such as a DSSGD θ, gives its mode's)."""
    base = _variant_of(name) if isinstance(name, str) and name in scheme_names() else None
    wanted = name if base is None else base
    for mode in catalogue():
        if mode.name == wanted:
            return mode
    raise ConfigurationError(f"mode={name!r} is not one of {', '.join(mode_names())}")


def modes_using(option: str) -> tuple[str, ...]:
    """The modes that ``option`` (a key such as ``"theta_u"``) applies to only."""
    return tuple(m.name for m in catalogue() if option in m.options)


def comparison() -> tuple[tuple[str, str, Mapping[str, Any]], ...]:
    """``ssddl reproduce``'s runs, as (label, mode, experiment options): the baselines first,
    in the order they were registered, then SSDDL's secure modes."""
    modes = sorted(catalogue(), key=lambda m: not m.baseline)  # stable: each part keeps its order
    return tuple((label, m.name, extra) for m in modes for label, extra in m.compared)


def _listing(words: Sequence[str]) -> str:
    return ", ".join(words[:-1]) + ", or " + words[-1] if len(words) > 2 else " or ".join(words)


def mode_help() -> str:
    """``--mode``'s help: SSDDL's modes, then the baselines, in the order of the choices."""
    ordered = {m.name: m for m in catalogue()}
    modes = [ordered[n] for n in mode_names()]
    own = _listing([m.summary for m in modes if not m.baseline])
    text = f"how a participant's change reaches the server: {own}"
    baselines = [m.summary for m in modes if m.baseline]
    if baselines:
        text += f"; or a baseline: {', '.join(baselines)}"
    return text


def _dp_fedavg(*args: Any, **kwargs: Any) -> Any:
    """DP-FedAvg at noise multiplier 1 and clip 1 (``ssddl.baselines.central_dp``, imported
    when it runs: the catalogue loads no torch)."""
    from ssddl.baselines.central_dp import CentralDp, dp_fedavg_runner

    return dp_fedavg_runner(CentralDp())(*args, **kwargs)


#: E1's DSSGD: the paper's algorithm (Shokri & Shmatikov 2015, round robin); a report says it
DSSGD_E1_VARIANT = "round_robin"

for _mode in (
    _runner("centralized", "centralized", secure=False, compared=(("centralized", {}),)),
    _runner("standalone", "standalone", secure=True, compared=(("standalone", {}),)),
    ModeEntry("fedavg", "fedavg", compared=(("fedavg", {}),)),
    ModeEntry("fedsgd", "fedsgd", local_train=fedsgd_train_config),
    _runner(
        "dssgd-rr",
        "dssgd-rr (the paper's DSSGD: round robin, local models kept)",
        secure=False,
        options=_DSSGD_OPTIONS,
        compared=(
            ("dssgd-rr θu=0.01", {"theta_u": 0.01}),
            ("dssgd-rr θu=0.1", {"theta_u": 0.1}),
        ),
    ),
    ModeEntry(
        "dssgd-parallel",
        "dssgd-parallel (a variant, not the paper's: all members at once, sparse uploads "
        "averaged)",
        _DSSGD_OPTIONS,
        compared=(("dssgd-parallel θu=0.1 (variant)", {"theta_u": 0.1}),),
    ),
    _runner(
        "phong-paillier",
        "phong-paillier",
        secure=True,
        options=("he_key_bits", "he_real_rounds"),
        compared=(("phong-paillier", {}),),
    ),
    _runner(
        "phong-bfv",
        "phong-bfv (BFV standing in for the paper's LWE scheme)",
        secure=True,
        options=("he_poly_degree", "he_real_rounds"),
        compared=(("phong-bfv (BFV for LWE)", {}),),
    ),
    ModeEntry(
        "dp-fedavg",
        "dp-fedavg (central DP: a trusted server adds Gaussian noise to the clipped mean)",
        runner=_dp_fedavg,
        states=lambda n: Guarantee(
            0,
            n - 1,
            1,
            "none from the aggregation: the server sees each member's clipped change in the "
            "clear; only the model it publishes is differentially private (its noise)",
        ),
        secure=False,
    ),
):
    register_baseline(_mode, built_in=True)
