"""What the ServerApp tells its operator: one report per round, logged and recorded.

Every line goes to the ``flwr.ssddl`` logger, a child of Flower's own logger, so it appears
in the ServerApp's output and in ``flwr run --stream``. A report holds only what the server
learned anyway (who was in the group, who contributed, who dropped, who refused and why, how
many bytes moved, the evaluation metrics): never a participant's values.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ssddl.runtime.exchange import Rejection

__all__ = [
    "RoundReport",
    "describe",
    "evaluation_line",
    "log_refusals",
    "one_line",
    "write_report",
]

#: The ServerApp's log: a child of Flower's logger, so ``flwr run --stream`` shows it.
log = logging.getLogger("flwr.ssddl")


def one_line(text: object, limit: int = 500) -> str:
    """A remote party's text as one bounded log line (no line breaks it could forge)."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def describe(rejection: Rejection) -> str:
    """A refusal as one line of text: who refused what, and the reason."""
    who = "the server" if rejection.at == 0 else f"participant {rejection.at}"
    what = (
        f"{rejection.kind} from participant {rejection.sender}"
        if rejection.at == 0
        else (rejection.kind)
    )
    reason = f"{rejection.error}: {rejection.detail}" if rejection.detail else rejection.error
    if rejection.at != 0 and rejection.error.startswith("FlowerError"):
        # an error reply the node's ClientApp or the SuperLink made (node gone, expired, ...)
        return f"{rejection.kind} to participant {rejection.at} failed: {one_line(reason)}"
    return f"{who} refused {what}: {one_line(reason)}"


def log_refusals(where: str, rejections: Iterable[Rejection]) -> list[str]:
    """Log every refusal (WARNING) and return their lines."""
    lines = [describe(r) for r in rejections]
    for line in lines:
        log.warning("%s: %s", where, line)
    return lines


@dataclass(frozen=True)
class RoundReport:
    """One round as the server saw it (SSDDL's round numbers start at 0)."""

    round: int
    status: str
    group: tuple[int, ...]
    contributors: tuple[int, ...]
    dropped: tuple[int, ...]
    num_examples: int
    refusals: tuple[str, ...]
    bytes_up: int
    bytes_down: int
    seconds: float
    reason: str = ""
    evaluation: dict[str, float] = field(default_factory=dict)

    def line(self) -> str:
        ids = lambda xs: "[" + ", ".join(map(str, xs)) + "]"  # noqa: E731
        text = (
            f"SSDDL round {self.round}: {self.status}; group {ids(self.group)}, "
            f"contributors {ids(self.contributors)}, dropped {ids(self.dropped)}, "
            f"{len(self.refusals)} refusal(s); {self.bytes_up} B up, {self.bytes_down} B down, "
            f"{self.seconds:.2f} s"
        )
        return text + (f" ({self.reason})" if self.reason else "")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["members"] = list(self.contributors)
        data["applied"] = int(self.status == "applied")
        data["num-examples"] = data.pop("num_examples")
        return data


def evaluation_line(round_number: int, metrics: Mapping[str, Mapping[str, Any]]) -> str:
    """``metrics`` by source ("clients", "server") as one log line."""
    parts = []
    for source, values in metrics.items():
        shown = ", ".join(
            f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()
        )
        parts.append(f"{source}: {shown}")
    return f"SSDDL round {round_number} evaluated: " + "; ".join(parts)


def write_report(directory: Path, report: RoundReport) -> None:
    """Append ``report`` to ``directory/rounds.jsonl`` (one JSON object per round)."""
    with open(Path(directory) / "rounds.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps(report.to_json()) + "\n")
