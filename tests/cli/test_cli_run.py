"""``ssddl simulate`` end to end on tiny runs: JSON purity, replay of a written config, the
trained model, checkpoints and resume after a kill, Ctrl-C, dropouts, the plain comparison and
a run that applies no round."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from ssddl.cli import main

TINY = ["--participants", "3", "--rounds", "2", "--steps", "2", "--no-progress"]


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["simulate", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_json_stdout_is_one_object_and_compare_plain(tmp_path, capsys):
    out = tmp_path / "run"
    # progress on: it must go to stderr, like the table
    code, stdout, err = run(
        capsys,
        "--participants",
        "3",
        "--rounds",
        "2",
        "--steps",
        "2",
        "--out",
        str(out),
        "--json",
        "--compare",
        "plain",
        "--validate",
    )
    assert code == 0, err
    summary = json.loads(stdout)  # the whole of stdout parses
    assert stdout.count("\n") == 1
    assert "rounds: 2/2" in err and "final test accuracy" in err
    assert "identity keys: 3/3" in err and "key agreement: 6/6" in err  # setup is never silent
    assert summary["compare"]["plain_final_accuracy"] is not None
    assert abs(summary["compare"]["accuracy_difference"]) <= 0.05
    assert summary["validation"] == {"ran": True, "passed": True}
    assert summary["guarantee"]["collusion_bound"] == 1
    assert 0 < summary["decoding_error_bound"] < 1e-4
    assert summary["version"] and summary["command"].startswith("ssddl simulate")
    assert summary["wall_seconds"] > 0 and summary["started"]
    report = (out / "report.md").read_text()
    for text in ("Guarantee", "decoding error bound", "plain reference", "Command:", "wall time"):
        assert text in report
    with open(out / "compare-plain.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 2
    # the trained model, in both formats, equal and matching the reported accuracy
    pt = torch.load(out / "model.pt", weights_only=True)
    st = load_file(str(out / "model.safetensors"))
    assert pt.keys() == st.keys() and all(torch.equal(pt[k], st[k]) for k in pt)
    from ssddl.learning import build_model, evaluate, load_digits

    split = load_digits(seed=0)
    model = build_model("mlp", split.train.input_shape, split.train.num_classes, seed=0)
    model.load_state_dict(pt)
    assert evaluate(model, split.test).accuracy == summary["final_accuracy"]


def test_written_config_replays_with_another_participant_count(tmp_path, capsys):
    first = tmp_path / "a"
    code, _, err = run(capsys, *TINY, "--mode", "shamir", "--out", str(first))
    assert code == 0, err
    text = (first / "config.toml").read_text()
    assert "threshold" not in text and "group_size" not in text and "frac_bits" not in text
    second = tmp_path / "b"
    code, stdout, err = run(
        capsys,
        "--config",
        str(first / "config.toml"),
        "--participants",
        "5",
        "--out",
        str(second),
        "--json",
    )
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["participants"] == 5 and summary["group_size"] == 5
    assert summary["threshold"] == 4 and summary["mode"] == "shamir"  # 2n/3 + 1
    assert summary["resolved_config"]["protocol"]["threshold"] == 4
    assert "participants = 5" in (second / "config.toml").read_text()


def test_no_round_applied_exits_nonzero_and_says_why(tmp_path, capsys):
    code, _, err = run(
        capsys,
        "--participants",
        "3",
        "--rounds",
        "1",
        "--epochs",
        "1",
        "--lr",
        "1e8",
        "--no-progress",
        "--out",
        str(tmp_path / "o"),
    )
    assert code == 1
    assert "no round was applied" in err and "lower the learning rate" in err


def test_dropout_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "d"
    code, stdout, err = run(
        capsys,
        "--participants",
        "6",
        "--rounds",
        "3",
        "--steps",
        "1",
        "--mode",
        "shamir",
        "--dropout",
        "0.5",
        "--dropout-at",
        "after_share",
        "--out",
        str(out),
        "--json",
        "--no-progress",
    )
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["dropouts"] and all(d["phase"] == "after_share" for d in summary["dropouts"])
    with open(out / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    vanished = {d["participant"] for d in summary["dropouts"] if d["round"] <= 1}
    assert int(rows[-1]["contributors"]) == 6 - len(vanished) or rows[-1]["status"] == "aborted"
    # the schedule is reproducible from the seed
    from ssddl.experiments.config import ExperimentConfig
    from ssddl.experiments.run import dropout_schedule

    config = ExperimentConfig.from_choices(
        {"participants": 6, "protocol.rounds": 3, "dropout": 0.5, "dropout_at": "after_share"}
    )
    assert [
        {"participant": v.participant, "round": v.round, "phase": v.phase.value}
        for v in dropout_schedule(config)
    ] == summary["dropouts"]


#: ``ssddl`` as a terminal starts it: Ctrl-C raises KeyboardInterrupt. A shell starts a
#: background job (``cmd &``, e.g. a CI runner's) with SIGINT ignored, and a child inherits
#: that; the CLI rightly keeps an ignored SIGINT ignored, so the test sets it back first.
_CLI_WITH_CTRL_C = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from ssddl.cli import main; sys.exit(main())"
)


def _spawn(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _CLI_WITH_CTRL_C, "simulate", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_round(proc: subprocess.Popen[str], state: Path, at_least: int) -> int:
    deadline = time.monotonic() + 300  # generous: a loaded machine starts slowly
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the run ended before it could be interrupted"
        try:
            done = json.loads(state.read_text())["round"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            done = -1
        if done >= at_least:
            return int(done)
        time.sleep(0.01)
    raise AssertionError(f"no checkpoint of round {at_least} appeared in {state} in time")


LONG = ["--participants", "3", "--rounds", "25", "--epochs", "1", "--no-progress"]


def _same_model(a: Path, b: Path) -> None:
    left, right = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert left.keys() == right.keys()
    for key in left:
        assert torch.equal(left[key], right[key]), key


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("whole")
    assert main(["simulate", *LONG, "--out", str(out)]) == 0
    return out


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT], ids=["kill", "ctrl-c"])
def test_resume_after_interruption_ends_with_the_same_model(tmp_path, capsys, uninterrupted, how):
    out = tmp_path / "cut"
    proc = _spawn([*LONG, "--out", str(out)])
    try:
        done = _wait_for_round(proc, out / "checkpoint" / "state.json", 2)
        proc.send_signal(how)
        _, err = proc.communicate(timeout=600)  # generous: a loaded machine
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if how is signal.SIGINT:
        assert proc.returncode == 130, err
        assert "interrupted after" in err and f"--resume {out}" in err
        assert "Traceback" not in err
        summary = json.loads((out / "summary.json").read_text())
        assert summary["interrupted"] and summary["rounds"] >= done + 1
        assert (out / "model.safetensors").is_file() and (out / "report.md").is_file()
    else:
        assert proc.returncode == -signal.SIGKILL
    # the checkpoint holds only public state: round, weights, generator states, history
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert set(state) == {
        "format",
        "round",
        "rounds",
        "config_sha256",
        "weights_file",
        "selection_state",
        "rounding_states",
        "optimizer_state",
        "history",
        "outcomes",
        "rejections",
        "gone",
        "started",
        "wall_seconds",
        "outputs",
        "finished",
    }
    names = {p.name for p in (out / "checkpoint").iterdir()}
    assert {"state.json", state["weights_file"]} <= names
    # a kill between the weights and state.json may leave the next round's weights file
    assert all(n == "state.json" or re.fullmatch(r"weights-\d+\.npy", n) for n in names)
    assert main(["simulate", "--resume", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    _same_model(out, uninterrupted)
    with open(out / "metrics.csv") as fh:
        rounds = [int(r["round"]) for r in csv.DictReader(fh)]
    assert rounds == list(range(25))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed"]["from_round"] >= 2 and not summary["interrupted"]
    whole = json.loads((uninterrupted / "summary.json").read_text())
    assert summary["final_accuracy"] == whole["final_accuracy"]


def test_resume_refuses_a_finished_run_and_a_changed_config(tmp_path, capsys):
    out = tmp_path / "done"
    assert main(["simulate", *TINY, "--out", str(out)]) == 0
    code, _, err = run(capsys, "--resume", str(out))
    assert code == 2 and "already finished" in err
    (out / "config.toml").write_text("seed = 5\n" + (out / "config.toml").read_text())
    code, _, err = run(capsys, "--resume", str(out))
    assert code == 2 and "config.toml changed" in err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_device_cuda_trains_there(tmp_path, capsys):  # pragma: no cover - no GPU in CI
    code, stdout, err = run(capsys, *TINY, "--device", "cuda", "--out", str(tmp_path), "--json")
    assert code == 0, err
    assert json.loads(stdout)["device"].startswith("cuda")


def test_threads_and_device_auto_are_recorded(tmp_path, capsys):
    code, stdout, err = run(
        capsys, *TINY, "--threads", "2", "--device", "auto", "--out", str(tmp_path), "--json"
    )
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["threads"] == 2
    assert summary["device"] == ("cuda" if torch.cuda.is_available() else "cpu")


def test_help_and_version_do_not_import_torch():
    code = (
        "import sys, contextlib, io\n"
        "from ssddl.cli import main\n"
        "for argv in (['--version'], ['simulate', '--help']):\n"
        "    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "        main(argv)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=600)


def test_checkpoint_weights_are_plain_npy(tmp_path):
    assert main(["simulate", *TINY, "--out", str(tmp_path)]) == 0
    state = json.loads((tmp_path / "checkpoint" / "state.json").read_text())
    weights = np.load(tmp_path / "checkpoint" / state["weights_file"], allow_pickle=False)
    assert weights.dtype == np.float32 and state["round"] == 1


def test_a_command_line_run_keeps_no_round_arrays_in_memory(tmp_path, monkeypatch):
    # its results go to files: the simulator must not hold every round's aggregate and update
    import ssddl.experiments.run as run_module

    seen = []
    real = run_module.simulate

    def recording(model, datasets, config, **kwargs):
        result = real(model, datasets, config, **kwargs)
        seen.append((config, result.outcomes))
        return result

    monkeypatch.setattr(run_module, "simulate", recording)
    assert main(["simulate", *TINY, "--rounds", "3", "--out", str(tmp_path)]) == 0
    [(config, outcomes)] = seen
    assert config.keep_round_arrays is False
    assert [o.update is None for o in outcomes] == [True, True, False]


def test_a_long_setup_is_announced_before_it_starts():
    from ssddl.cli import _setup_warning
    from ssddl.experiments.config import ExperimentConfig
    from ssddl.runtime.setupcost import InitCosts

    costs = InitCosts(member=2e-4, agreement=5e-5)  # as measured on a 2-core machine
    assert _setup_warning(ExperimentConfig.from_choices({"participants": 10}), costs) is None
    # sparse pairing: 1000 members agree 78 keys each, a few seconds
    assert _setup_warning(ExperimentConfig.from_choices({"participants": 1000}), costs) is None
    dense = {"participants": 500, "protocol.sparse_from": 1000}  # the complete graph
    note = _setup_warning(ExperimentConfig.from_choices(dense), costs)
    assert note is not None and "500 participants" in note and "about 19 s" in note
    assert "249,500 pair key agreements at 50 µs each" in note
    plain = ExperimentConfig.from_choices({"participants": 500, "protocol.mode": "plain"})
    assert _setup_warning(plain, costs) is None
