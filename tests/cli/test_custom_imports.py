"""``--model``, ``--dataset`` and ``--train-step`` as import paths: the example package in
examples/custom-model runs from the command line (and from its config.toml), and every
mistake is one line naming the option, before any training."""

from __future__ import annotations

import importlib
import json
import sys
import textwrap
from pathlib import Path

import pytest

from ssddl.cli import main

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "custom-model"
CUSTOM = [
    "--dataset",
    "custom_task.data:blobs",
    "--model",
    "custom_task.model:tiny_mlp",
    "--train-step",
    "custom_task.loss:smoothed_cross_entropy",
]
TINY = ["--participants", "3", "--rounds", "2", "--steps", "2", "--no-progress"]


@pytest.fixture
def example(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    for name in [m for m in sys.modules if m == "custom_task" or m.startswith("custom_task.")]:
        monkeypatch.delitem(sys.modules, name)
    return EXAMPLE


def test_example_package_runs_from_the_command_line(example, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["simulate", *CUSTOM, *TINY, "--rounds", "3", "--out", str(out), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    loss = importlib.import_module("custom_task.loss")
    # 3 rounds x 3 participants x 2 steps, plus the one probe before training
    assert loss.calls == 3 * 3 * 2 + 1
    assert summary["model_size"] == 8 * 32 + 32 + 32 * 3 + 3  # tiny_mlp on 8 features, 3 classes
    assert summary["final_accuracy"] > 0.6  # three blobs: chance is 1/3
    assert summary["config"]["model"] == "custom_task.model:tiny_mlp"
    written = (out / "config.toml").read_text()
    assert 'train_step = "custom_task.loss:smoothed_cross_entropy"' in written
    # the written config repeats the run: the same model, the same accuracy
    code = main(["simulate", "--config", str(out / "config.toml"), "--out", str(tmp_path / "again"),
                 "--no-progress", "--json"])  # fmt: skip
    again = json.loads(capsys.readouterr().out)
    assert code == 0
    assert again["final_accuracy"] == summary["final_accuracy"]


def test_example_config_file(example, tmp_path, capsys):
    code = main(["simulate", "--config", str(example / "config.toml"), "--rounds", "2",
                 "--out", str(tmp_path / "run"), "--no-progress"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    rows = (tmp_path / "run" / "participants.csv").read_text().splitlines()
    assert rows[0] == "round,participant,accuracy,loss,samples"
    assert [r.split(",")[:2] for r in rows[1:]] == [["1", str(p)] for p in (1, 2, 3, 4)]


def test_train_step_changes_training(example, tmp_path, capsys):
    def final(*extra: str) -> float:
        out = tmp_path / f"run{len(extra)}"
        code = main(["simulate", *CUSTOM[:4], *extra, *TINY, "--out", str(out), "--json"])
        assert code == 0
        return json.loads(capsys.readouterr().out)["final_loss"]

    plain = final()
    custom = final("--train-step", "custom_task.loss:smoothed_cross_entropy")
    assert plain != custom


BAD = """
import numpy as np
from torch import nn
from ssddl.learning import ArrayDataset

NOT_CALLABLE = 3
def tiny(shape, classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(shape)), classes))
def not_module(shape, classes): return "a network"
def wrong_out(shape, classes): return nn.Linear(int(np.prod(shape)), classes + 1)
def wrong_in(shape, classes): return nn.Linear(5, classes)
def double(shape, classes): return tiny(shape, classes).double()
def raises(shape, classes): raise ValueError("boom")
def data_list(seed): return [1, 2]
def step_float(model, x, y): return 1.0
def step_vector(model, x, y): return nn.functional.cross_entropy(model(x), y, reduction="none")
"""


@pytest.fixture
def bad(tmp_path, monkeypatch):
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "ux27_bad.py").write_text(textwrap.dedent(BAD))
    (tmp_path / "mods" / "ux27_broken.py").write_text("import ux27_no_such_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))
    for name in ("ux27_bad", "ux27_broken"):
        monkeypatch.delitem(sys.modules, name, raising=False)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--model", "ux27_nowhere.models:f"], "no module named 'ux27_nowhere'; put the directory"),
        (["--model", "ux27_broken:f"], "needs the module 'ux27_no_such_dependency'; install it"),
        (["--model", "ux27_bad:tiy"], "has no attribute 'tiy' (did you mean 'tiny'?)"),
        (["--model", "ux27_bad:NOT_CALLABLE"], "is not callable (its type is int)"),
        (["--model", "ux27_bad:"], "is not an import path: write package.module:factory"),
        (["--model", "ux27_bad:not_module"], "returned a str, not a torch.nn.Module"),
        (["--model", "ux27_bad:wrong_out"], "it must give logits of shape (2, 10)"),
        (["--model", "ux27_bad:wrong_in"], "build it for inputs of shape (64,)"),
        (["--model", "ux27_bad:double"], "needs float32 parameters"),
        (["--model", "ux27_bad:raises"], "calling it raised ValueError: boom"),
        (["--dataset", "ux27_bad:data_list"], "return a DatasetSplit(train, test)"),
        (["--train-step", "ux27_bad:step_float"], "returned a float; it must return"),
        (["--train-step", "ux27_bad:step_vector"], "returned a tensor of shape (2,)"),
        (["--train-step", "cross_entropy"], "must be an import path package.module:function"),
        (["--train-step", "ux27_bad:step_float", "--mode", "centralized"], "--train-step does not"),
    ],
)
def test_mistakes_are_one_line(bad, tmp_path, capsys, args, expected):
    out = tmp_path / "run"
    code = main(["simulate", *args, *TINY, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert expected in err, err
    flag = args[0]
    assert err.startswith(f"ssddl: error: {flag}"), err
    assert not (out / "metrics.csv").exists()


def test_a_mistyped_built_in_name_still_suggests(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["simulate", "--model", "mpl"])
    assert exc.value.code == 2
    assert "did you mean 'mlp'?" in capsys.readouterr().err


def test_import_path_in_toml(bad, tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_text('model = "ux27_bad:tiny"\nparticipants = 3\n[protocol]\nrounds = 1\n'
                      "[train]\nsteps = 1\n")  # fmt: skip
    code = main(["simulate", "--config", str(config), "--out", str(tmp_path / "r"),
                 "--no-progress", "--json"])  # fmt: skip
    summary = json.loads(capsys.readouterr().out)
    assert code == 0
    assert summary["model_size"] == 64 * 10 + 10
