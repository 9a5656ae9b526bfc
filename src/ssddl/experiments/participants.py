"""Per-participant evaluation (``--eval-participants K``): held-out splits and
``participants.csv``.

Each participant keeps a fifth of its local data out of training (:func:`hold_out`, from
the public seed, like the partition). Every K rounds it evaluates the global model on that
split where the data lives and reports only its accuracy and mean loss
(:func:`ssddl.runtime.training.model_evaluator`); the run directory's
``participants.csv`` holds them in long format, one row per (round, participant).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ssddl.exceptions import ConfigurationError
from ssddl.learning.data import ArrayDataset
from ssddl.runtime.callbacks import ParticipantEval, RunCallback

__all__ = [
    "HELD_OUT_FRACTION",
    "PARTICIPANTS_CSV",
    "ParticipantsCsv",
    "hold_out",
    "read_participants",
]

HELD_OUT_FRACTION = 0.2
PARTICIPANTS_CSV = "participants.csv"
_HEADER = ["round", "participant", "accuracy", "loss", "samples"]


def hold_out(
    datasets: Sequence[ArrayDataset], seed: int, fraction: float = HELD_OUT_FRACTION
) -> tuple[list[ArrayDataset], list[ArrayDataset]]:
    """Each participant's data split into what it trains on and what it evaluates on
    (``fraction`` of it, at least one sample), drawn from the public ``seed``."""
    rng = np.random.default_rng([seed, 0xE7A1])
    train, held = [], []
    for i, data in enumerate(datasets, start=1):
        n = len(data)
        if n < 2:
            raise ConfigurationError(
                f"eval_participants: participant {i} holds {n} sample(s), too few to keep "
                f"some out of training; use fewer --participants or drop --eval-participants"
            )
        k = max(1, round(n * fraction))
        order = rng.permutation(n)
        held.append(data.subset(np.sort(order[:k])))
        train.append(data.subset(np.sort(order[k:])))
    return train, held


class ParticipantsCsv(RunCallback):
    """Writes ``participants.csv`` in ``out`` as the evaluations arrive: a fresh file, or on
    resume the rows up to round ``keep_through`` kept."""

    def __init__(self, out: Path, *, keep_through: int | None = None) -> None:
        self.path = out / PARTICIPANTS_CSV
        kept = (
            [r for r in read_participants(out) if r["round"] <= keep_through]
            if keep_through is not None
            else []
        )
        with open(self.path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=_HEADER)
            writer.writeheader()
            writer.writerows(kept)

    def on_participants(self, round: int, results: Sequence[ParticipantEval]) -> None:
        with open(self.path, "a", newline="") as fh:
            writer = csv.writer(fh)
            for r in results:
                writer.writerow([round, r.participant, r.accuracy, r.loss, r.samples])


def read_participants(out: Path) -> list[dict[str, Any]]:
    """The rows of ``out/participants.csv`` (none when it is missing); a line cut short by
    a kill is left out."""
    path = out / PARTICIPANTS_CSV
    if not path.is_file():
        return []
    rows = []
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            try:
                rows.append(_parsed(row))
            except (TypeError, ValueError):
                continue
    return rows


def _parsed(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "round": int(row["round"]),
        "participant": int(row["participant"]),
        "accuracy": float(row["accuracy"]),
        "loss": float(row["loss"]),
        "samples": int(row["samples"]),
    }


def spread(rows: Sequence[Mapping[str, Any]], key: str) -> list[tuple[int, float, float, float]]:
    """(round, min, median, max) of ``key`` across participants, per evaluated round."""
    by_round: dict[int, list[float]] = {}
    for r in rows:
        by_round.setdefault(int(r["round"]), []).append(float(r[key]))
    return [(rnd, min(v), float(np.median(v)), max(v)) for rnd, v in sorted(by_round.items()) if v]
