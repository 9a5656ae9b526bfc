"""What a tracker sees of a run: its start, every round, each participant's own evaluation
and its end.

A tracker (TensorBoard, MLflow, Weights & Biases, a test) subclasses :class:`RunCallback`
and overrides the methods it needs; the others do nothing. :func:`~ssddl.runtime.simulator.simulate`
drives the callbacks given as ``callbacks=``, and so does the ``ssddl simulate`` run loop
(:func:`ssddl.experiments.run.run_in_directory`), with the run's full configuration and its
``summary.json``. A callback sees only what the metrics files hold: figures, never a key,
share, mask, raw update or sample.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ssddl.exceptions import ConfigurationError

if TYPE_CHECKING:  # the simulator imports this module
    from ssddl.runtime.simulator import RoundMetrics

__all__ = ["CallbackList", "ParticipantEval", "Relay", "RunCallback"]


@dataclass(frozen=True)
class ParticipantEval:
    """One participant's evaluation of the global model on its own held-out split, computed
    where its data lives: only these three figures leave it."""

    participant: int
    accuracy: float
    loss: float
    samples: int  #: the size of its held-out split


class RunCallback:
    """Hooks into a run; every method does nothing unless overridden.

    - ``on_start(config, guarantee)``: once, before the first round. ``config`` is the run's
      configuration as a nested dict (what ``summary.json`` calls ``resolved_config`` in the
      command line's run loop, the resolved protocol parameters in :func:`simulate`);
      ``guarantee`` what the session protects (collusion and dropout bounds, in words under
      ``"text"``).
    - ``on_round(metrics)``: after every round, its :class:`RoundMetrics` (one row of
      ``metrics.csv``).
    - ``on_traffic(round, bytes_by_kind)``: after every round, the bytes of its frames by
      message kind and direction, ``{"masked_upload": {"up": 1234, "down": 0}, ...}`` (the
      round's rows of ``traffic.csv``, summed; runs of the protocol only).
    - ``on_participants(round, results)``: after the rounds that evaluate participants
      (``eval_participants``), one :class:`ParticipantEval` per participant that answered.
    - ``on_end(summary)``: once, after the last round (:meth:`SimulationResult.summary`); in
      the command line's run loop also after Ctrl-C, with the dict ``summary.json`` holds.
    """

    def on_start(self, config: Mapping[str, Any], guarantee: Mapping[str, Any]) -> None:
        """Before the first round."""

    def on_round(self, metrics: RoundMetrics) -> None:
        """After every round."""

    def on_traffic(self, round: int, bytes_by_kind: Mapping[str, Mapping[str, int]]) -> None:
        """After every round: its bytes by message kind, ``"up"`` and ``"down"``."""

    def on_participants(self, round: int, results: Sequence[ParticipantEval]) -> None:
        """After a round whose global model the participants evaluated."""

    def on_end(self, summary: Mapping[str, Any]) -> None:
        """After the run."""


class CallbackList(RunCallback):
    """Several callbacks as one, called in order."""

    def __init__(self, callbacks: Iterable[RunCallback] = ()) -> None:
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            if not isinstance(cb, RunCallback):
                raise ConfigurationError(
                    f"callbacks must be RunCallback instances, got {type(cb).__name__}"
                )

    def on_start(self, config: Mapping[str, Any], guarantee: Mapping[str, Any]) -> None:
        for cb in self.callbacks:
            cb.on_start(config, guarantee)

    def on_round(self, metrics: RoundMetrics) -> None:
        for cb in self.callbacks:
            cb.on_round(metrics)

    def on_traffic(self, round: int, bytes_by_kind: Mapping[str, Mapping[str, int]]) -> None:
        for cb in self.callbacks:
            cb.on_traffic(round, bytes_by_kind)

    def on_participants(self, round: int, results: Sequence[ParticipantEval]) -> None:
        for cb in self.callbacks:
            cb.on_participants(round, results)

    def on_end(self, summary: Mapping[str, Any]) -> None:
        for cb in self.callbacks:
            cb.on_end(summary)


class Relay(CallbackList):
    """Forwards rounds, traffic and participants' evaluations, not the start and end: for a caller
    that reports those itself, with figures of its own (the command line's run loop)."""

    def on_start(self, config: Mapping[str, Any], guarantee: Mapping[str, Any]) -> None:
        return None

    def on_end(self, summary: Mapping[str, Any]) -> None:
        return None
