"""Warm starts and extended runs (issue 27, item 3).

- ``--init model.pt|model.safetensors`` starts a run from saved weights. "Starts at the saved
  run's final accuracy" is checked precisely: the model a ``--init`` run starts from, evaluated
  on the same test split before any training, has the finished run's final test accuracy
  within 0.5 points. Weights that do not fit the model, and a missing or damaged file, are
  refused in one line (exit 2) naming the file.
- ``--resume DIR --rounds N+2`` after an N-round run ends as the uninterrupted N+2-round run
  with the same seed: the model bit for bit, ``metrics.csv`` and ``participants.csv`` apart
  from clock columns; the files continue (one row per round, no gap, no repeat). Any other
  option given with ``--resume`` is refused in one line.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from ssddl.cli import main
from ssddl.experiments.config import ExperimentConfig, flatten, load_toml
from ssddl.experiments.run import prepare
from ssddl.learning.train import evaluate

ARGS = ["--participants", "3", "--steps", "2", "--no-progress", "--eval-participants", "1"]


def _rows(path: Path) -> list[dict[str, str]]:
    """A CSV's rows without the clock readings (``*seconds*`` columns)."""
    with open(path) as fh:
        return [{k: v for k, v in r.items() if "seconds" not in k} for r in csv.DictReader(fh)]


def _model(out: Path) -> dict[str, bytes]:
    return {k: v.numpy().tobytes() for k, v in load_file(str(out / "model.safetensors")).items()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A 2-round run extended to 4 rounds, and an uninterrupted 4-round run."""
    base = tmp_path_factory.mktemp("warm")
    whole, extended = base / "whole", base / "extended"
    assert main(["simulate", *ARGS, "--rounds", "4", "--out", str(whole)]) == 0
    assert main(["simulate", *ARGS, "--rounds", "2", "--out", str(extended)]) == 0
    two_rounds = _model(extended)
    assert main(["simulate", "--resume", str(extended), "--rounds", "4", "--no-progress"]) == 0
    return whole, extended, two_rounds


def test_resume_with_more_rounds_equals_the_longer_run(runs):
    whole, extended, two_rounds = runs
    assert _model(extended) == _model(whole)
    assert _model(extended) != two_rounds  # it trained on
    pt = torch.load(extended / "model.pt", weights_only=True)
    assert {k: v.numpy().tobytes() for k, v in pt.items()} == _model(whole)
    for name in ("metrics.csv", "participants.csv"):
        assert _rows(extended / name) == _rows(whole / name), name
    assert [r["round"] for r in _rows(extended / "metrics.csv")] == ["0", "1", "2", "3"]
    summary = json.loads((extended / "summary.json").read_text())
    assert summary["rounds"] == summary["rounds_planned"] == 4
    assert summary["resumed"] == {"from_round": 1}
    assert (
        summary["final_accuracy"]
        == json.loads((whole / "summary.json").read_text())["final_accuracy"]
    )
    # traffic continues the same file: rounds 0-3, each once (the resumed session's keys
    # are set up again, a second Init at round -1)
    with open(extended / "traffic.csv") as fh:
        rounds = {int(r["round"]) for r in csv.DictReader(fh)}
    assert rounds == {-1, 0, 1, 2, 3}
    # config.toml now says 4 rounds: a plain --resume finds nothing left to do
    saved = flatten(load_toml(str(extended / "config.toml")), "config.toml")
    assert saved["protocol.rounds"] == 4


def test_a_finished_extended_run_has_nothing_to_resume(runs, capsys):
    _, extended, _ = runs
    assert main(["simulate", "--resume", str(extended), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nothing to resume" in err and "--rounds N" in err


def test_resume_refuses_fewer_rounds_than_run(runs, capsys):
    _, extended, _ = runs
    before = (extended / "config.toml").read_text()
    assert main(["simulate", "--resume", str(extended), "--rounds", "3", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "already finished 4 rounds" in err
    assert "--rounds 4 or more" in err
    assert (extended / "config.toml").read_text() == before


@pytest.mark.parametrize(
    ("extra", "named"),
    [(["--lr", "0.5"], "--lr"), (["--seed", "3"], "--seed"), (["--init", "x.pt"], "--init")],
)
def test_resume_refuses_any_other_changed_option(runs, capsys, extra, named):
    _, extended, _ = runs
    argv = ["simulate", "--resume", str(extended), "--rounds", "6", *extra, "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"drop {named}" in err and "--rounds" in err


def test_extending_a_run_with_dropout_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["simulate", *ARGS, "--rounds", "1", "--dropout", "0.3", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["simulate", "--resume", str(out), "--rounds", "3", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--dropout" in err and "cannot extend" in err


def _config(out: Path, **changes: object) -> ExperimentConfig:
    chosen = flatten(load_toml(str(out / "config.toml")), "config.toml")
    return dataclasses.replace(ExperimentConfig.from_choices(chosen), **changes)


@pytest.mark.parametrize("name", ["model.pt", "model.safetensors"])
def test_init_starts_at_the_saved_runs_final_accuracy(runs, tmp_path, name):
    whole, _, _ = runs
    final = json.loads((whole / "summary.json").read_text())["final_accuracy"]
    fresh = prepare(_config(whole))
    warm = prepare(_config(whole, init=str(whole / name)))
    start = evaluate(warm.model, warm.split.test).accuracy
    assert abs(start - final) <= 0.005, (start, final)
    assert abs(evaluate(fresh.model, fresh.split.test).accuracy - final) > 0.005  # not by luck
    # and a run with --init trains on from there
    out = tmp_path / "warm"
    argv = ["simulate", *ARGS, "--rounds", "1", "--init", str(whole / name), "--out", str(out)]
    assert main(argv) == 0
    saved = flatten(load_toml(str(out / "config.toml")), "config.toml")
    assert saved["init"] == str(whole / name)
    accuracy = json.loads((out / "summary.json").read_text())["final_accuracy"]
    assert accuracy >= final - 0.05


def _refusal(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    return err


def test_init_refuses_weights_of_another_shape(runs, tmp_path, capsys):
    whole, _, _ = runs
    state = load_file(str(whole / "model.safetensors"))
    name, tensor = next(iter(state.items()))
    wrong = dict(state)
    wrong[name] = torch.zeros(tensor.shape[0] + 1, *tensor.shape[1:])
    path = tmp_path / "wrong.safetensors"
    save_file(wrong, str(path))
    err = _refusal(capsys, ["simulate", *ARGS, "--init", str(path), "--out", str(tmp_path / "o")])
    assert "--init" in err and str(path) in err and name in err
    want = "(" + ", ".join(str(d) for d in tensor.shape) + ")"
    assert want in err and "shape" in err
    assert not (tmp_path / "o" / "config.toml").exists()  # refused before anything is written
    missing = dict(state)
    missing.pop(name)
    torch.save(missing, tmp_path / "missing.pt")
    err = _refusal(
        capsys,
        ["simulate", *ARGS, "--init", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "p")],
    )
    assert f"no tensor {name!r}" in err and "missing.pt" in err


def test_init_refuses_a_missing_or_damaged_file(runs, tmp_path, capsys):
    whole, _, _ = runs
    gone = tmp_path / "gone.pt"
    err = _refusal(capsys, ["simulate", *ARGS, "--init", str(gone), "--out", str(tmp_path / "a")])
    assert str(gone) in err and "no such file" in err
    for name in ("model.pt", "model.safetensors"):
        cut = tmp_path / f"cut-{name}"
        cut.write_bytes((whole / name).read_bytes()[:100])
        argv = ["simulate", *ARGS, "--init", str(cut), "--out", str(tmp_path / name)]
        err = _refusal(capsys, argv)
        assert str(cut) in err and "cannot be read" in err
    other = tmp_path / "weights.npy"
    other.write_bytes(b"x")
    err = _refusal(capsys, ["simulate", *ARGS, "--init", str(other), "--out", str(tmp_path / "b")])
    assert "model.pt or model.safetensors" in err


def test_an_extended_run_continues_its_tensorboard_files(tmp_path, capsys):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    assert main(["simulate", *ARGS, "--rounds", "1", "--out", str(out), "--tensorboard"]) == 0
    assert main(["simulate", "--resume", str(out), "--rounds", "3", "--no-progress"]) == 0
    acc = EventAccumulator(str(out / "tensorboard"))
    acc.Reload()
    steps = [e.step for e in acc.Scalars("metrics/accuracy")]
    assert steps == [0, 1, 2]
    accuracy = [float(r["accuracy"]) for r in _rows(out / "metrics.csv")]
    assert [e.value for e in acc.Scalars("metrics/accuracy")] == pytest.approx(accuracy)
    assert [e.step for e in acc.Scalars("participants/accuracy_median")] == [0, 1, 2]


def test_an_interrupted_extension_is_finished_by_a_plain_resume(runs, tmp_path, monkeypatch):
    """Ctrl-C after the first extra round: ``--resume DIR`` (config.toml now says 4 rounds)
    finishes it as the uninterrupted 4-round run."""
    from ssddl.experiments.rundir import RunDirectory

    whole, _, _ = runs
    out = tmp_path / "run"
    assert main(["simulate", *ARGS, "--rounds", "2", "--out", str(out)]) == 0
    real = RunDirectory.save_checkpoint

    def interrupted(self, checkpoint):
        real(self, checkpoint)
        if checkpoint.round == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(RunDirectory, "save_checkpoint", interrupted)
    assert main(["simulate", "--resume", str(out), "--rounds", "4", "--no-progress"]) == 130
    monkeypatch.setattr(RunDirectory, "save_checkpoint", real)
    assert [r["round"] for r in _rows(out / "metrics.csv")] == ["0", "1", "2"]
    assert main(["simulate", "--resume", str(out), "--no-progress"]) == 0
    assert _model(out) == _model(whole)
    assert _rows(out / "metrics.csv") == _rows(whole / "metrics.csv")
    assert _rows(out / "participants.csv") == _rows(whole / "participants.csv")


@pytest.mark.parametrize("rounds", [None, "3"], ids=["resume", "extend"])
def test_ctrl_c_while_a_finished_run_is_read_back_changes_nothing(
    tmp_path, capsys, monkeypatch, rounds
):
    """Ctrl-C in the first moments of a --resume (its checkpoint still being read) leaves the
    run exactly as it was: no output is rewritten from rows not loaded yet."""
    from ssddl.experiments import run as run_module

    out = tmp_path / "run"
    assert main(["simulate", *ARGS, "--rounds", "2", "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_module._Recorder, "resume", interrupted)
    extra = ["--rounds", rounds] if rounds else []
    capsys.readouterr()
    assert main(["simulate", "--resume", str(out), *extra, "--no-progress"]) == 130
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert {k: v for k, v in after.items() if k != "config.toml"} == {
        k: v for k, v in before.items() if k != "config.toml"
    }
    assert "Traceback" not in capsys.readouterr().err
