"""Almost-right input is refused in one line: a damaged checkpoint (naming the file), a
``reproduce --data-dir`` that does not hold MNIST; an integer option in TOML refuses a float
or a boolean (tested with the other bad input), while a float option takes an integer."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ssddl.cli import main
from ssddl.experiments.config import flatten

TINY = ["--participants", "3", "--rounds", "3", "--steps", "1", "--no-progress"]


@pytest.fixture(scope="module")
def cut_run(tmp_path_factory) -> Path:
    """A run that stopped after its second round (its checkpoint, as a kill leaves it)."""
    out = tmp_path_factory.mktemp("cut") / "run"
    assert main(["simulate", *TINY, "--out", str(out)]) == 0
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["round"] == 2
    return out


def _truncate_state(out: Path) -> str:
    path = out / "checkpoint" / "state.json"
    path.write_text(path.read_text()[:200])
    return "checkpoint/state.json"


def _delete_weights(out: Path) -> str:
    [weights] = (out / "checkpoint").glob("weights-*.npy")
    weights.unlink()
    return f"checkpoint/{weights.name}"


def _cut_weights(out: Path) -> str:
    [weights] = (out / "checkpoint").glob("weights-*.npy")
    weights.write_bytes(weights.read_bytes()[:100])
    return f"checkpoint/{weights.name}"


def _other_weights(out: Path) -> str:
    [weights] = (out / "checkpoint").glob("weights-*.npy")
    np.save(weights, np.zeros(10, dtype=np.float32), allow_pickle=False)
    return f"checkpoint/{weights.name}"


def _drop_a_field(out: Path) -> str:
    path = out / "checkpoint" / "state.json"
    state = json.loads(path.read_text())
    del state["selection_state"]
    path.write_text(json.dumps(state))
    return "checkpoint/state.json"


@pytest.mark.parametrize(
    "damage", [_truncate_state, _delete_weights, _cut_weights, _other_weights, _drop_a_field]
)
def test_a_damaged_checkpoint_is_refused_naming_the_file(tmp_path, capsys, cut_run, damage):
    out = tmp_path / "run"
    shutil.copytree(cut_run, out)
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    state.update(round=1, finished=False, outputs=[])  # as if killed after round 1
    (out / "checkpoint" / "state.json").write_text(json.dumps(state))
    name = damage(out)
    code = main(["simulate", "--resume", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert f"{out / name} is damaged" in lines[0] and "--force" in lines[0]


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_reproduce_refuses_a_data_dir_without_mnist(tmp_path, capsys, make):
    data = tmp_path / "mnits"  # a typo
    if make == "empty":
        data.mkdir()
    code = main(["reproduce", "--quick", "--data-dir", str(data), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"--data-dir {data}" in lines[0], err


def test_a_float_option_takes_a_toml_integer():
    assert flatten({"train": {"lr": 1}, "seed": 3}, "c.toml") == {"train.lr": 1, "seed": 3}
