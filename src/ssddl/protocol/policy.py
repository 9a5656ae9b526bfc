"""What a participant accepts, whatever the server announces.

A participant checks the announced session against its own :class:`ParticipantPolicy` before
it makes any key, and every round against it again. The policy comes from the participant's
own configuration (the simulator builds it from the user's config; a Flower SuperNode reads it
from its node config), never from the server: a server that announces ``plain``, a threshold
of 1, a round group of 2 or a round number far in the future is refused.

The policy's ``max_colluders`` (c) is the largest coalition the participant must survive, and
everything else follows from it: it joins no group smaller than c + 2, releases nothing that
completes a round with fewer than c + 2 contributors (unmask responses, seed shares, key
reveals, share sums), and accepts only thresholds with which a server that shows members
different lists cannot unmask anyone with c colluders (``Scheme.split_margin``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ssddl.exceptions import ConfigurationError, GroupTooSmall, PolicyViolation
from ssddl.protocol.config import PairKeys, ProtocolConfig, Recovery, SessionParams
from ssddl.protocol.registry import secure_built_ins
from ssddl.validators import check_bool, check_float, check_int

__all__ = ["DEFAULT_MAX_ROUND", "ParticipantPolicy", "secure_modes"]

#: the largest round number a participant follows by default (a bound on PRNG jumps)
DEFAULT_MAX_ROUND = 1_000_000
SAFE_RECOVERIES = (Recovery.DOUBLE_MASK, Recovery.NONE)


def secure_modes() -> tuple[str, ...]:
    """The modes a policy accepts unless it lists its own: the built-in secure schemes, from
    the registry (``prg``, ``explicit``, ``shamir``). A scheme registered later is taken
    part in only where a policy names it."""
    return secure_built_ins()


@dataclass(frozen=True)
class ParticipantPolicy:
    """A participant's own limits.

    ``modes``: the sharing modes it takes part in (default: :func:`secure_modes`; ``plain``
    sends the change in the clear and is never accepted unless listed). ``max_colluders``: the
    largest coalition of members (with the server) it must survive — the participant's real
    protection (module docstring). ``min_threshold``: the smallest threshold it accepts (2 at
    least: a threshold of 1 makes every share the secret). ``min_group_size``: the smallest
    round group it shares in (never below ``max_colluders + 2``). ``max_round``: the largest
    round number it follows. ``recoveries``: the dropout recoveries it accepts
    (``unsafe-reveal-keys`` only if listed). ``require_consistency``: refuse sessions without
    the signed consistency check (an actively malicious server). ``lazy_pair_keys``: accept
    sessions that agree pair keys lazily (the exchange key then lives for the whole session, so
    a compromise during it reveals earlier rounds' pair keys); refused unless set.
    ``max_epsilon``: distributed DP's ε (at the session's δ, over its announced rounds, for
    the announced model size and this participant's own contributor floor less its
    ``max_colluders``) above which it refuses a session — also one without DP; None: no
    requirement.
    """

    modes: tuple[str, ...] = dataclasses.field(default_factory=secure_modes)
    max_colluders: int = 0
    min_threshold: int = 2
    min_group_size: int = 2
    max_round: int = DEFAULT_MAX_ROUND
    recoveries: tuple[Recovery, ...] = SAFE_RECOVERIES
    require_consistency: bool = False
    lazy_pair_keys: bool = False
    max_epsilon: float | None = None

    def __post_init__(self) -> None:
        if not self.modes or not all(isinstance(m, str) for m in self.modes):
            raise ConfigurationError("policy modes must be a non-empty tuple of mode names")
        check_int(self.min_threshold, "policy min_threshold", low=2)
        check_int(self.max_colluders, "policy max_colluders", low=0)
        check_int(self.min_group_size, "policy min_group_size", low=1)
        check_int(self.max_round, "policy max_round", low=0, high=2**40)
        object.__setattr__(self, "recoveries", tuple(Recovery(r) for r in self.recoveries))
        check_bool(self.require_consistency, "policy require_consistency")
        check_bool(self.lazy_pair_keys, "policy lazy_pair_keys")
        if self.max_epsilon is not None:
            check_float(self.max_epsilon, "policy max_epsilon", positive=True)

    @classmethod
    def for_config(
        cls, config: ProtocolConfig | SessionParams, participants: int | None = None
    ) -> ParticipantPolicy:
        """The policy that accepts exactly the user's configuration: its mode, its recovery,
        its smallest group, threshold and the coalition its guarantee states (what the
        simulator and the CLI give participants). A ProtocolConfig is resolved for
        ``participants`` registered members first."""
        target = config.target_epsilon if isinstance(config, ProtocolConfig) else None
        if isinstance(config, ProtocolConfig):
            if participants is None:
                raise ConfigurationError(
                    "ParticipantPolicy.for_config needs the number of participants to "
                    "resolve a ProtocolConfig (or pass the resolved SessionParams)"
                )
            max_samples = config.max_samples if config.max_samples is not None else 1
            config = dataclasses.replace(config, max_samples=max_samples).resolve(participants)
        return cls(
            modes=(config.mode,),
            max_colluders=config.max_colluders,
            min_threshold=max(2, config.threshold or 2),
            min_group_size=config.min_group_size,
            max_round=config.rounds - 1,
            recoveries=(config.recovery,),
            require_consistency=config.consistency,
            lazy_pair_keys=config.pair_keys is PairKeys.LAZY,
            max_epsilon=target,
        )

    # -- checks ------------------------------------------------------------------------------

    def check_session(self, params: SessionParams) -> None:
        """Refuse an announced session outside the policy (before any key is made)."""
        if params.mode not in self.modes:
            raise PolicyViolation(
                f"the server announced mode {params.mode!r}; this participant accepts only "
                f"{', '.join(repr(m) for m in self.modes)}"
            )
        if params.threshold and params.threshold < self.min_threshold:
            raise PolicyViolation(
                f"the server announced threshold={params.threshold}; this participant "
                f"needs at least {self.min_threshold}"
            )
        if params.min_group_size < self.min_group_size:
            raise PolicyViolation(
                f"the server announced min_group_size={params.min_group_size}; this "
                f"participant shares only in groups of {self.min_group_size} or more"
            )
        if params.recovery not in self.recoveries:
            raise PolicyViolation(
                f"the server announced recovery {params.recovery.value!r}; this participant "
                f"accepts {', '.join(repr(r.value) for r in self.recoveries)}"
            )
        if params.pair_keys is PairKeys.LAZY and not self.lazy_pair_keys:
            raise PolicyViolation(
                "the server announced pair_keys 'lazy' (no forward security within the "
                "session); this participant accepts it only with lazy_pair_keys=true"
            )
        if self.require_consistency and not params.consistency:
            raise PolicyViolation(
                "the server announced no consistency check; this participant requires it"
            )
        self._check_collusion(params)

    def _check_collusion(self, params: SessionParams) -> None:
        """Refuse a session whose groups or threshold cannot hide a member from this
        participant's ``max_colluders`` — against a server that lies, too."""
        c, n = self.max_colluders, params.group_size
        if n < c + 2:
            raise GroupTooSmall(
                f"the server announced groups of {n}; this participant must survive "
                f"{c} colluders and shares only in groups of {c + 2} or more"
            )
        scheme = params.scheme
        margin = scheme.split_margin(params.recovery, params.consistency)
        if margin is None or params.degree:
            return  # no list to split (or the sparse graph's own bound)
        if 2 * params.threshold - n - margin < c:
            raise PolicyViolation(
                f"the server announced threshold={params.threshold} for groups of {n}: a "
                f"server that shows members different lists could unmask a member with "
                f"{c} colluder(s); this participant needs threshold >= "
                f"{-(-(n + c + margin) // 2)}"
            )

    @property
    def smallest_group(self) -> int:
        """The smallest round group it shares in: ``min_group_size``, and never below
        ``max_colluders + 2`` (the coalition it must survive plus two honest members)."""
        return max(self.min_group_size, self.max_colluders + 2)

    def contributor_floor(self, params: SessionParams) -> int:
        """The fewest contributors for which this participant releases anything that
        completes a round: the session's floor or its own, whichever is larger."""
        return max(params.min_contributors, self.smallest_group)

    def check_round(self, round_number: int, group_size: int | None = None) -> None:
        """Refuse a round number beyond ``max_round`` or a group below ``min_group_size``."""
        if round_number > self.max_round:
            raise PolicyViolation(
                f"round {round_number} is beyond this participant's max_round={self.max_round}"
            )
        if group_size is not None and group_size < self.smallest_group:
            raise GroupTooSmall(
                f"round {round_number} has {group_size} members, below the "
                f"{self.smallest_group} this participant shares in (max_colluders="
                f"{self.max_colluders}, min_group_size={self.min_group_size})"
            )
