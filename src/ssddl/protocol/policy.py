"""What a participant accepts, whatever the server announces.

A participant checks the announced session against its own :class:`ParticipantPolicy` before
it makes any key, and every round against it again. The policy comes from the participant's
own configuration (the simulator builds it from the user's config; a Flower SuperNode reads it
from its node config), never from the server: a server that announces ``plain``, a threshold
of 1, a round group of 2 or a round number far in the future is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from ssddl.exceptions import ConfigurationError, GroupTooSmall, PolicyViolation
from ssddl.protocol.config import PairKeys, ProtocolConfig, Recovery, SessionParams
from ssddl.protocol.schemes import get_scheme
from ssddl.validators import check_bool, check_int

__all__ = ["DEFAULT_MAX_ROUND", "ParticipantPolicy"]

#: the largest round number a participant follows by default (a bound on PRNG jumps)
DEFAULT_MAX_ROUND = 1_000_000
SECURE_MODES = ("prg", "explicit", "shamir")
SAFE_RECOVERIES = (Recovery.DOUBLE_MASK, Recovery.NONE)


@dataclass(frozen=True)
class ParticipantPolicy:
    """A participant's own limits.

    ``modes``: the sharing modes it takes part in (``plain`` sends the change in the clear and
    is never accepted unless listed). ``min_threshold``: the smallest threshold it accepts
    (2 at least: a threshold of 1 makes every share the secret). ``min_group_size``: the
    smallest round group it shares in — with pairwise masks the collusion bound is the group
    size minus 2, so this is the participant's real protection. ``max_round``: the largest
    round number it follows. ``recoveries``: the dropout recoveries it accepts
    (``unsafe-reveal-keys`` only if listed). ``require_consistency``: refuse sessions without
    the signed consistency check (an actively malicious server). ``lazy_pair_keys``: accept
    sessions that agree pair keys lazily (the exchange key then lives for the whole session,
    so a compromise during it reveals earlier rounds' pair keys); refused unless set.
    """

    modes: tuple[str, ...] = SECURE_MODES
    min_threshold: int = 2
    min_group_size: int = 2
    max_round: int = DEFAULT_MAX_ROUND
    recoveries: tuple[Recovery, ...] = SAFE_RECOVERIES
    require_consistency: bool = False
    lazy_pair_keys: bool = False

    def __post_init__(self) -> None:
        if not self.modes or not all(isinstance(m, str) for m in self.modes):
            raise ConfigurationError("policy modes must be a non-empty tuple of mode names")
        check_int(self.min_threshold, "policy min_threshold", low=2)
        check_int(self.min_group_size, "policy min_group_size", low=1)
        check_int(self.max_round, "policy max_round", low=0, high=2**40)
        object.__setattr__(self, "recoveries", tuple(Recovery(r) for r in self.recoveries))
        check_bool(self.require_consistency, "policy require_consistency")
        check_bool(self.lazy_pair_keys, "policy lazy_pair_keys")

    @classmethod
    def for_config(cls, config: ProtocolConfig | SessionParams) -> ParticipantPolicy:
        """The policy that accepts exactly the user's configuration: its mode, its recovery,
        its smallest group and threshold (what the simulator and the CLI give participants)."""
        return cls(
            modes=(config.mode,),
            min_threshold=max(2, config.threshold or 2),
            min_group_size=config.min_group_size,
            max_round=config.rounds - 1,
            recoveries=(get_scheme(config.mode).resolve_recovery(config.recovery),),
            require_consistency=config.consistency,
            lazy_pair_keys=config.pair_keys is PairKeys.LAZY,
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

    def check_round(self, round_number: int, group_size: int | None = None) -> None:
        """Refuse a round number beyond ``max_round`` or a group below ``min_group_size``."""
        if round_number > self.max_round:
            raise PolicyViolation(
                f"round {round_number} is beyond this participant's max_round={self.max_round}"
            )
        if group_size is not None and group_size < self.min_group_size:
            raise GroupTooSmall(
                f"round {round_number} has {group_size} members, below this participant's "
                f"min_group_size={self.min_group_size}; it will not share in it"
            )
