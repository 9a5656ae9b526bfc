"""Trackers that plug into a run as :class:`~ssddl.runtime.callbacks.RunCallback`:
TensorBoard (``--tensorboard [DIR]``), and the place to start for your own (MLflow, W&B:
see docs/howto/tracking.md).

:class:`TensorBoardCallback` writes, per round (the step is the round number), every column
of ``metrics.csv`` under ``metrics/`` (``status`` as ``metrics/applied`` 1 or 0,
``validated`` as 1 or 0 when checked), the round's bytes by message kind under ``bytes_up/``
and ``bytes_down/`` (``traffic.csv`` summed), each participant's held-out accuracy and loss under
``participant_accuracy/`` and ``participant_loss/`` with their spread under
``participants/``, and the run's configuration, guarantee and summary as text.
It needs the optional ``tensorboard`` package (``pip install 'ssddl[tensorboard]'``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ssddl.exceptions import ConfigurationError
from ssddl.runtime.callbacks import ParticipantEval, RunCallback

if TYPE_CHECKING:
    from ssddl.runtime.simulator import RoundMetrics

__all__ = ["TENSORBOARD_INSTALL", "TensorBoardCallback", "require_tensorboard"]

TENSORBOARD_INSTALL = "pip install 'ssddl[tensorboard]'"


def require_tensorboard() -> type:
    """torch's ``SummaryWriter``, or a ConfigurationError naming the install command."""
    try:
        import tensorboard  # noqa: F401  (torch's writer needs it; say so before torch does)
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigurationError(
            f"--tensorboard needs the tensorboard package, which is not installed; install "
            f"it with: {TENSORBOARD_INSTALL}"
        ) from None
    return SummaryWriter


def _code(data: Any) -> str:
    """A JSON value as a Markdown code block (TensorBoard's text tab renders Markdown)."""
    text = json.dumps(data, indent=2, sort_keys=True, default=str)
    return "\n".join("    " + line for line in text.splitlines())


class TensorBoardCallback(RunCallback):
    """Writes a run's figures as TensorBoard event files in ``logdir``."""

    def __init__(self, logdir: str | Path) -> None:
        writer = require_tensorboard()
        self.logdir = Path(logdir)
        try:
            self.logdir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(
                f"--tensorboard {logdir} cannot be created ({exc.strerror}); give another directory"
            ) from None
        self._writer = writer(log_dir=str(self.logdir))

    def on_start(self, config: Mapping[str, Any], guarantee: Mapping[str, Any]) -> None:
        self._writer.add_text("config", _code(dict(config)), 0)
        text = guarantee.get("text", "")
        self._writer.add_text("guarantee", f"{text}\n\n{_code(dict(guarantee))}", 0)
        self._writer.flush()

    def on_round(self, metrics: RoundMetrics) -> None:
        step = metrics.round
        for name, value in metrics.as_row().items():
            if name == "round":
                continue
            if name == "status":
                self._writer.add_scalar("metrics/applied", float(value == "applied"), step)
            elif isinstance(value, (bool, int, float)):  # validated: 1 or 0 when checked
                self._writer.add_scalar(f"metrics/{name}", float(value), step)
        self._writer.flush()

    def on_traffic(self, round: int, bytes_by_kind: Mapping[str, Mapping[str, int]]) -> None:
        for kind, directions in sorted(bytes_by_kind.items()):
            for direction, nbytes in sorted(directions.items()):
                self._writer.add_scalar(f"bytes_{direction}/{kind}", float(nbytes), round)

    def on_participants(self, round: int, results: Sequence[ParticipantEval]) -> None:
        for r in results:
            self._writer.add_scalar(f"participant_accuracy/{r.participant}", r.accuracy, round)
            self._writer.add_scalar(f"participant_loss/{r.participant}", r.loss, round)
        for key in ("accuracy", "loss"):
            values = sorted(getattr(r, key) for r in results if math.isfinite(getattr(r, key)))
            if not values:
                continue
            middle = len(values) // 2
            median = (
                values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2
            )
            self._writer.add_scalar(f"participants/{key}_min", values[0], round)
            self._writer.add_scalar(f"participants/{key}_median", median, round)
            self._writer.add_scalar(f"participants/{key}_max", values[-1], round)
        self._writer.flush()

    def on_end(self, summary: Mapping[str, Any]) -> None:
        shown = {k: v for k, v in summary.items() if k not in ("config", "resolved_config")}
        self._writer.add_text("summary", _code(shown), 0)
        self._writer.flush()
        self._writer.close()
