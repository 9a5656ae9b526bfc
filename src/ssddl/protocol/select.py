"""SelectGroup: which registered participants take part in a round.

A policy is an object with ``select(registered, size, round_number) -> group`` (sorted ids)
and a ``state()``/``restore()`` pair so the server's state can be persisted. The group is
public: every member learns it from ``RoundStart``.
"""

from __future__ import annotations

import json
from typing import Protocol

import numpy as np

from ssddl.exceptions import ConfigurationError, MalformedMessage

__all__ = ["AllParticipants", "RoundRobin", "SelectionPolicy", "UniformSubset"]


class SelectionPolicy(Protocol):
    def select(
        self, registered: tuple[int, ...], size: int, round_number: int
    ) -> tuple[int, ...]: ...

    def state(self) -> str: ...

    def restore(self, state: str) -> None: ...


class UniformSubset:
    """A uniform ``size``-subset of the registered participants (all of them when ``size``
    covers everyone), drawn from a seeded generator: the draw is public, not a secret."""

    def __init__(self, rng: np.random.Generator) -> None:
        if not isinstance(rng, np.random.Generator):
            raise ConfigurationError("UniformSubset needs a numpy Generator")
        self._rng = rng

    def select(self, registered: tuple[int, ...], size: int, round_number: int) -> tuple[int, ...]:
        if size >= len(registered):
            return registered
        picked = self._rng.choice(len(registered), size=size, replace=False)
        return tuple(sorted(registered[int(i)] for i in picked))

    def state(self) -> str:
        return json.dumps(self._rng.bit_generator.state, sort_keys=True)

    def restore(self, state: str) -> None:
        try:
            self._rng.bit_generator.state = json.loads(state)
        except (ValueError, TypeError, KeyError) as exc:
            raise MalformedMessage(f"the saved selection state is invalid: {exc}") from None


class AllParticipants:
    """Every registered participant, every round (``size`` is ignored)."""

    def select(self, registered: tuple[int, ...], size: int, round_number: int) -> tuple[int, ...]:
        return registered

    def state(self) -> str:
        return ""

    def restore(self, state: str) -> None:
        return None


class RoundRobin:
    """Consecutive blocks of ``size`` participants in id order, wrapping around: round r
    takes the block starting at ``r * size mod N``. Stateless: the group follows the round."""

    def select(self, registered: tuple[int, ...], size: int, round_number: int) -> tuple[int, ...]:
        n = len(registered)
        if size >= n:
            return registered
        start = (round_number * size) % n
        return tuple(sorted(registered[(start + k) % n] for k in range(size)))

    def state(self) -> str:
        return ""

    def restore(self, state: str) -> None:
        return None
