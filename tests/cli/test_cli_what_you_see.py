"""What a person sees at the end of ``ssddl simulate``: the table carries the guarantee and
the ``--validate`` result, and the run's files follow one permission policy (the model and
the checkpoint owner-only, the rest world-readable)."""

from __future__ import annotations

import os
import stat

import pytest

from ssddl.cli import main
from ssddl.experiments.rundir import PRIVATE_DIR_MODE, PRIVATE_MODE, PUBLIC_MODE, file_mode

TINY = ["--participants", "3", "--rounds", "2", "--steps", "2", "--no-progress"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("seen") / "run"
    old = os.umask(0o022)
    try:
        assert main(["simulate", *TINY, "--validate", "--out", str(out)]) == 0
    finally:
        os.umask(old)
    return out


def test_the_table_carries_the_guarantee_and_the_validation(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["simulate", *TINY, "--validate", "--out", str(out)]) == 0
    text = " ".join(capsys.readouterr().out.split())  # rich wraps the caption
    assert "sums validated (--validate) │ passed, every round" in text
    assert "Guarantee: Against an honest-but-curious server: up to 1 of the 3 members" in text
    assert main(["simulate", *TINY, "--out", str(tmp_path / "plain-sums")]) == 0
    assert "sums validated (--validate) │ not run" in " ".join(capsys.readouterr().out.split())


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_model_and_checkpoint_are_owner_only_the_rest_world_readable(run):
    files = [p for p in run.rglob("*") if p.is_file() and not p.name.startswith(".")]
    names = {p.relative_to(run).as_posix() for p in files}
    assert {"model.pt", "model.safetensors", "checkpoint/state.json", "plot.png"} <= names
    for path in files:
        private = path.name.startswith("model.") or path.parent.name == "checkpoint"
        want = PRIVATE_MODE if private else PUBLIC_MODE
        assert _mode(path) == want == file_mode(path), (path, oct(_mode(path)))
    assert _mode(run / "checkpoint") == PRIVATE_DIR_MODE
    assert _mode(run / "model.pt") == 0o600 and _mode(run / "report.md") == 0o644


def test_the_plain_reference_run_shows_its_progress(tmp_path, capsys):
    args = [a for a in TINY if a != "--no-progress"]
    assert main(["simulate", *args, "--compare", "plain", "--out", str(tmp_path / "r")]) == 0
    err = capsys.readouterr().err.splitlines()
    start = err.index("running the plain reference with the same seeds (--compare plain)")
    plain = [line for line in err[start:] if line.startswith("plain reference rounds:")]
    assert [line.split()[3] for line in plain] == ["1/2", "2/2"], err


def test_a_ctrl_c_after_the_run_finished_says_the_files_are_complete(tmp_path, capsys,
                                                                      monkeypatch):  # fmt: skip
    import ssddl.cli

    def interrupted(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(ssddl.cli, "_print_table", interrupted)
    out = tmp_path / "run"
    assert main(["simulate", *TINY, "--out", str(out)]) == 130
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"ssddl: interrupted after the run finished; its files are complete in {out}"]
    monkeypatch.undo()
    assert main(["simulate", "--resume", str(out), "--no-progress"]) == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_a_second_ctrl_c_after_an_interrupted_run_gives_a_resume_that_works(
    tmp_path, capsys, monkeypatch
):
    import ssddl.cli
    from ssddl.experiments.rundir import RunDirectory

    save = RunDirectory.save_checkpoint

    def first_ctrl_c(self, ckpt, *a, **k):
        save(self, ckpt, *a, **k)
        if ckpt.round == 0:
            raise KeyboardInterrupt

    def second_ctrl_c(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(RunDirectory, "save_checkpoint", first_ctrl_c)
    monkeypatch.setattr(ssddl.cli, "_print_table", second_ctrl_c)
    out = tmp_path / "run"
    assert main(["simulate", *TINY, "--out", str(out)]) == 130
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        f"ssddl: interrupted; the checkpoint after 1 rounds is kept in {out}. Continue with: "
        f"ssddl simulate --resume {out}"
    ]
    monkeypatch.undo()
    assert main(["simulate", "--resume", str(out), "--no-progress"]) == 0
