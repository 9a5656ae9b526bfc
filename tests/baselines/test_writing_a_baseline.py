"""docs/writing-a-baseline.md, done exactly as the page says: a baseline written and
registered in this file alone is a value of ``ssddl simulate --mode``, runs through the CLI
into a run directory, and is one of ``ssddl reproduce``'s comparison runs."""

from __future__ import annotations

import copy
import csv
import json
import time
from collections.abc import Iterator

import numpy as np
import pytest
from torch import nn

from ssddl.baselines.runners import BaselineRun, RowCallback, RunnerConfig, round_row
from ssddl.cli import build_parser, main
from ssddl.exceptions import ConfigurationError
from ssddl.experiments.reproduce import e1_modes
from ssddl.learning import (
    ArrayDataset,
    evaluate,
    model_to_vector,
    train_local,
    vector_to_model,
)
from ssddl.modes import Guarantee, ModeEntry, mode_names, register_baseline, unregister_baseline

# -- the page's step 1: the runner ------------------------------------------------------------


def run_weight_mean(
    model: nn.Module,
    datasets: list[ArrayDataset],
    config: RunnerConfig,
    *,
    test: ArrayDataset | None,
    on_round: RowCallback | None,
) -> BaselineRun:
    """Every round each participant trains a copy of the global model on its data; the
    server takes the mean of the trained weights, in the clear."""
    work = copy.deepcopy(model)  # the caller's model stays untouched
    weights = model_to_vector(model)
    rows = []
    for r in range(config.rounds):
        started = time.perf_counter()
        trained = []
        for who, data in enumerate(datasets, start=1):
            vector_to_model(weights, work)
            train_local(work, data, config.train, seed=config.seed * 10_000 + r * 100 + who)
            trained.append(model_to_vector(work))
        weights = np.mean(trained, axis=0).astype(np.float32)
        vector_to_model(weights, work)
        scores = evaluate(work, test) if test is not None else None
        row = round_row(
            r,
            len(datasets),
            accuracy=float("nan") if scores is None else scores.accuracy,
            loss=float("nan") if scores is None else scores.loss,
            round_seconds=time.perf_counter() - started,
        )
        rows.append(row)
        if on_round is not None:
            on_round(row)
    return BaselineRun("weight-mean", rows, [], weights, int(weights.size), len(datasets))


# -- step 2: its catalogue entry ----------------------------------------------------------------

WEIGHT_MEAN = ModeEntry(
    "weight-mean",
    "weight-mean (weights averaged in the clear)",
    runner=run_weight_mean,
    states=lambda n: Guarantee(
        0, n - 1, 1, "none: the server sees every member's trained weights in the clear"
    ),
    secure=False,
    compared=(("weight mean", {}),),
)


@pytest.fixture
def weight_mean() -> Iterator[ModeEntry]:
    register_baseline(WEIGHT_MEAN)
    try:
        yield WEIGHT_MEAN
    finally:
        unregister_baseline(WEIGHT_MEAN.name)


# -- step 3: it is a mode -----------------------------------------------------------------------


def _mode_action() -> object:
    commands = next(a for a in build_parser()._actions if a.dest == "command")
    simulate = commands.choices["simulate"]  # type: ignore[attr-defined]
    return next(a for a in simulate._actions if a.dest == "mode")


def test_a_registered_baseline_is_a_choice_of_mode_with_its_help(weight_mean):
    assert mode_names()[-1] == "weight-mean"  # runners come last, in registration order
    action = _mode_action()
    assert "weight-mean" in action.choices  # type: ignore[attr-defined]
    assert "weight-mean (weights averaged in the clear)" in action.help  # type: ignore[attr-defined]


def test_it_runs_through_the_cli_into_a_run_directory(weight_mean, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["--mode", "weight-mean", "--participants", "3", "--rounds", "2", "--epochs", "1"]
    code = main(["simulate", *args, "--out", str(out), "--json", "--no-progress"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    assert summary["mode"] == "weight-mean"
    assert summary["rounds"] == summary["rounds_applied"] == 2
    assert summary["final_accuracy"] > 0.6  # digits, 10 classes: chance is 0.1
    assert summary["guarantee"]["collusion_bound"] == 0
    assert "trained weights in the clear" in summary["guarantee"]["text"]
    with open(out / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["round"] for r in rows] == ["0", "1"]
    assert json.loads((out / "summary.json").read_text())["mode"] == "weight-mean"


def test_an_option_of_another_mode_is_refused_with_it(weight_mean, capsys):
    code = main(["simulate", "--mode", "weight-mean", "--theta-u", "0.5", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert "--theta-u does not apply: it is only used with --mode dssgd-rr or dssgd-parallel" in err


def test_it_is_one_of_the_runs_reproduce_compares(weight_mean):
    runs = e1_modes()
    labels = [label for label, _, _ in runs]
    assert ("weight mean", "weight-mean", {}) in runs
    assert labels.index("weight mean") < labels.index("ssddl prg")  # baselines, then SSDDL


def test_unregistered_it_is_gone_and_a_name_is_taken_once(weight_mean):
    with pytest.raises(ConfigurationError, match="already in the catalogue"):
        register_baseline(WEIGHT_MEAN)
    unregister_baseline("weight-mean")
    assert "weight-mean" not in mode_names()
    assert all(mode != "weight-mean" for _, mode, _ in e1_modes())
    register_baseline(WEIGHT_MEAN)  # for the fixture to remove
