"""--eval-participants in a run directory: participants.csv in long format, held-out splits
kept out of training, the rows of a resumed run continue the same file without duplicates."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from ssddl.exceptions import ConfigurationError
from ssddl.experiments.config import ExperimentConfig
from ssddl.experiments.participants import hold_out, read_participants
from ssddl.experiments.run import prepare, run_in_directory
from ssddl.experiments.rundir import claim
from ssddl.learning import ArrayDataset
from ssddl.runtime.callbacks import RunCallback

CHOSEN = {
    "participants": 3,
    "eval_participants": 1,
    "protocol.rounds": 4,
    "train.steps": 2,
}


def test_held_out_splits_are_disjoint_and_kept_out_of_training():
    config = ExperimentConfig.from_choices(CHOSEN)
    prep = prepare(config)
    plain = prepare(ExperimentConfig.from_choices({**CHOSEN, "eval_participants": None}))
    assert prep.holdout is not None and len(prep.holdout) == 3
    for train, held, whole in zip(prep.datasets, prep.holdout, plain.datasets, strict=True):
        assert len(train) + len(held) == len(whole)
        assert len(held) == round(0.2 * len(whole))
        rows = {r.tobytes() for r in whole.x}
        assert {r.tobytes() for r in train.x} | {r.tobytes() for r in held.x} == rows
        assert not {r.tobytes() for r in train.x} & {r.tobytes() for r in held.x}
    assert prep.sim.eval_participants == 1


def test_a_participant_with_one_sample_cannot_hold_out():
    one = ArrayDataset(np.zeros((1, 2), np.float32), np.zeros(1, np.int64), 2)
    with pytest.raises(ConfigurationError, match="participant 2 holds 1 sample"):
        hold_out([one.subset(np.array([0, 0])), one], seed=0)


class StopAt(RunCallback):
    """Ctrl-C right after the participants evaluated round ``at`` (before its checkpoint)."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_participants(self, round, results):
        if round == self.at:
            raise KeyboardInterrupt


def test_participants_csv_long_format_and_resume(tmp_path):
    config = ExperimentConfig.from_choices(CHOSEN)
    out = tmp_path / "run"
    out.mkdir()
    first = run_in_directory(config, out, chosen=CHOSEN, command="test", callbacks=[StopAt(2)])
    assert first.interrupted
    rows = read_participants(out)
    assert {r["round"] for r in rows} == {0, 1, 2}  # round 2 evaluated, never checkpointed
    done = run_in_directory(config, out, chosen=CHOSEN, command="test", resume=True)
    assert not done.interrupted
    with open(out / "participants.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert list(table[0]) == ["round", "participant", "accuracy", "loss", "samples"]
    assert [(int(r["round"]), int(r["participant"])) for r in table] == [
        (rnd, p) for rnd in range(4) for p in (1, 2, 3)
    ]
    assert all(0.0 <= float(r["accuracy"]) <= 1.0 for r in table)
    # a fresh run without the flag (--force: the earlier run is moved aside) leaves no stale
    # participants.csv behind
    no_eval = {k: v for k, v in CHOSEN.items() if k != "eval_participants"}
    with claim(str(out), force=True) as directory:
        run_in_directory(
            ExperimentConfig.from_choices(no_eval), directory, chosen=no_eval, command="t"
        )
    assert not (out / "participants.csv").exists()
    [aside] = tmp_path.glob("run.replaced-*")
    with open(aside / "participants.csv", newline="") as fh:
        assert list(csv.DictReader(fh)) == table  # moved aside whole, not deleted
