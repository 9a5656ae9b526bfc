"""A run interrupted at any stage — during key setup, between rounds, during the plain
reference, while it writes its final outputs — by SIGTERM (what ``timeout``, ``docker stop``
and Slurm send) or SIGKILL is finished by ``--resume`` with the final outputs of the
uninterrupted run with the same seed. SIGTERM ends the run like Ctrl-C: what finished is
written, the ``--resume`` command is printed, exit status 143."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ssddl.cli import main

ARGS = ["--participants", "3", "--rounds", "4", "--steps", "2", "--compare", "plain"]
ARGS += ["--no-progress"]

#: The child: ``ssddl`` with one step held until a signal ends it. It writes the name of the
#: step to the marker file when it gets there, so the test signals at a known stage.
_CHILD = """
import signal, sys
from pathlib import Path
signal.signal(signal.SIGINT, signal.default_int_handler)
stage, marker = sys.argv[1], Path(sys.argv[2])
import ssddl.experiments.run as run
from ssddl.experiments.rundir import RunDirectory

def held(real, after, when=lambda *a: True):
    def hold(*args, **kwargs):
        if after:
            real(*args, **kwargs)
        if when(*args):
            marker.write_text(stage)
            while True:
                signal.pause()
        return real(*args, **kwargs)
    return hold

if stage == "key-setup":
    import ssddl.cli
    ssddl.cli._Reporter.setup = held(ssddl.cli._Reporter.setup, False)
elif stage == "between-rounds":
    RunDirectory.save_checkpoint = held(
        RunDirectory.save_checkpoint, True, lambda self, ckpt: ckpt.round == 1
    )
elif stage == "plain-reference":
    run.plain_reference = held(run.plain_reference, False)
else:
    name = {"model": "write_model", "plot": "write_plot", "report": "write_report"}[stage]
    setattr(RunDirectory, name, held(getattr(RunDirectory, name), False))
from ssddl.cli import main
sys.exit(main(sys.argv[3:]))
"""


def _rows(path: Path) -> list[dict[str, str]]:
    """A CSV's rows without the clock readings (``*seconds*`` columns)."""
    with open(path) as fh:
        return [{k: v for k, v in r.items() if "seconds" not in k} for r in csv.DictReader(fh)]


def _results(out: Path) -> dict[str, object]:
    """What must not depend on an interruption: the model, bit for bit, the metrics (clock
    columns aside), the plain reference and the summary's figures."""
    rows, reference = (_rows(out / name) for name in ("metrics.csv", "compare-plain.csv"))
    summary = json.loads((out / "summary.json").read_text())
    volatile = {"wall_seconds", "round_seconds_median", "command", "started", "out", "resumed"}
    volatile |= {"total_bytes"}  # a resumed run sets its keys up again (a second Init)
    model = load_file(str(out / "model.safetensors"))
    assert (out / "plot.png").stat().st_size > 0 and (out / "report.md").stat().st_size > 0
    return {
        "model": {k: v.numpy().tobytes() for k, v in model.items()},
        "pt": {k: v.numpy().tobytes() for k, v in torch.load(out / "model.pt").items()},
        "metrics": rows,
        "compare": reference,
        "summary": {k: v for k, v in summary.items() if k not in volatile},
    }


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("whole") / "run"
    assert main(["simulate", *ARGS, "--out", str(out)]) == 0
    return _results(out)


def _wait_for(marker: Path, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 300  # generous: a loaded machine starts slowly
    while not marker.exists():
        if proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr else ""
            raise AssertionError(f"the run ended before reaching the held stage: {err}")
        if time.monotonic() > deadline:
            raise AssertionError(f"the run did not reach the stage in {marker} within 300 s")
        time.sleep(0.01)


STAGES = ["key-setup", "between-rounds", "plain-reference", "model", "plot", "report"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("stage", "how"),
    [(s, signal.SIGTERM) for s in STAGES] + [("plot", signal.SIGKILL)],
    ids=[f"term-{s}" for s in STAGES] + ["kill-plot"],
)
def test_resume_after_an_interruption_at_any_stage(tmp_path, capsys, uninterrupted, stage, how):
    out = tmp_path / "cut"
    marker = tmp_path / "reached"
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, stage, str(marker), "simulate", *ARGS, "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(marker, proc)
        proc.send_signal(how)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if how is signal.SIGTERM:
        assert proc.returncode == 143, err
        lines = [line for line in err.splitlines() if line.startswith("ssddl")]
        assert len(lines) == 1 and "terminated (SIGTERM)" in lines[0], err
        assert f"ssddl simulate --resume {out}" in lines[0] and "Traceback" not in err
    else:
        assert proc.returncode == -signal.SIGKILL
    assert main(["simulate", "--resume", str(out), "--no-progress"]) == 0
    err = capsys.readouterr().err
    if stage in ("model", "plot", "report"):
        assert "wrote the final outputs an interruption left out" in err
    assert _results(out) == uninterrupted
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["finished"] and set(state["outputs"]) == {
        "model.pt",
        "model.safetensors",
        "compare-plain.csv",
        "summary.json",
        "plot.png",
        "report.md",
    }
    # and now there is nothing left to do
    assert main(["simulate", "--resume", str(out), "--no-progress"]) == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_a_resume_rewrites_an_output_deleted_after_the_run(tmp_path, capsys):
    out = tmp_path / "run"
    tiny = ["--participants", "3", "--rounds", "2", "--steps", "2", "--no-progress"]
    assert main(["simulate", *tiny, "--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    (out / "report.md").unlink()
    assert main(["simulate", "--resume", str(out), "--no-progress"]) == 0
    assert "(report.md)" in capsys.readouterr().err
    assert (out / "report.md").read_text().split("| wall time")[0] == report.split("| wall time")[0]
