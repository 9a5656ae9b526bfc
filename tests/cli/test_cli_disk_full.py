"""A file that cannot be written — a full disk, a file-size limit — stops a run with one line
naming the file and what was kept (exit 1); once the space is back, ``--resume`` finishes it
with the outputs of an uninterrupted run. ``--out`` that cannot be a directory is refused before
any work by every command that writes one."""

from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

import ssddl.experiments.rundir as rundir
from ssddl.cli import main

TINY = ["--participants", "3", "--rounds", "3", "--steps", "2", "--no-progress"]


def _disk_fills_at(monkeypatch, name: str) -> None:
    """Writing the file ``name`` (its temporary copy) fails as on a full disk."""
    real = rundir._fsync

    def full(path: Path) -> None:
        if path.name.startswith(f".{Path(name).stem}.tmp"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path)

    monkeypatch.setattr(rundir, "_fsync", full)


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("ssddl")]
    assert len(lines) == 1 and lines[0].startswith("ssddl: error: "), err
    assert "Traceback" not in err
    return lines[0]


def _model(out: Path) -> dict[str, bytes]:
    return {k: v.numpy().tobytes() for k, v in load_file(str(out / "model.safetensors")).items()}


@pytest.fixture(scope="module")
def whole(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("whole") / "run"
    assert main(["simulate", *TINY, "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize(
    ("name", "kept"),
    [("weights-1.npy", "after 1 rounds"), ("report.md", "after 3 rounds")],
    ids=["during-training", "final-outputs"],
)
def test_a_full_disk_keeps_the_checkpoint_and_resume_finishes(
    tmp_path, capsys, monkeypatch, whole, name, kept
):
    out = tmp_path / "run"
    _disk_fills_at(monkeypatch, name)
    assert main(["simulate", *TINY, "--out", str(out)]) == 1
    line = _one_error_line(capsys.readouterr().err)
    assert f"cannot write {out}" in line and name in line and "No space left on device" in line
    assert kept in line and f"--resume {out}" in line
    assert not list(out.rglob(".*.tmp*")), "a temporary file was left behind"
    monkeypatch.undo()  # space is freed
    assert main(["simulate", "--resume", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    assert _model(out) == _model(whole)
    assert (out / "report.md").is_file() and (out / "plot.png").is_file()


def test_a_full_disk_before_the_first_file_keeps_nothing_and_a_rerun_works(
    tmp_path, capsys, monkeypatch
):
    out = tmp_path / "run"
    _disk_fills_at(monkeypatch, "config.toml")
    assert main(["simulate", *TINY, "--out", str(out)]) == 1
    line = _one_error_line(capsys.readouterr().err)
    assert "config.toml" in line and "nothing was kept" in line
    monkeypatch.undo()
    assert main(["simulate", *TINY, "--out", str(out)]) == 0


def test_a_disk_without_room_for_the_run_is_refused_before_training(tmp_path, capsys, monkeypatch):
    import shutil

    import ssddl.experiments.run as run

    real = shutil.disk_usage
    monkeypatch.setattr(rundir.shutil, "disk_usage", lambda p: real(p)._replace(free=500_000))
    monkeypatch.setattr(run, "simulate", lambda *a, **k: pytest.fail("training started"))
    out = tmp_path / "run"
    assert main(["simulate", *TINY, "--out", str(out)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"--out {out}: 0.5 MiB free, the run needs about" in line
    assert not (out / "config.toml").exists()


#: the CLI under a file-size limit (a real write failure, no root needed); plain mode, whose
#: run writes no scratch file of its own that the limit would stop first
_LIMITED = (
    "import resource, signal, sys\n"
    "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
    "resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, resource.getrlimit("
    "resource.RLIMIT_FSIZE)[1]))\n"
    "from ssddl.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


@pytest.mark.slow
def test_a_file_size_limit_is_one_line_and_resume_finishes(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["simulate", *TINY, "--mode", "plain", "--out", str(out)]
    done = subprocess.run(
        [sys.executable, "-c", _LIMITED, *args], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 1, done.stderr
    line = _one_error_line(done.stderr)
    assert "weights-0.npy" in line and "File too large" in line
    assert main(["simulate", "--resume", str(out), "--no-progress"]) == 0
    whole = tmp_path / "whole"
    assert main([*args[:-1], str(whole)]) == 0
    capsys.readouterr()
    assert _model(out) == _model(whole)


@pytest.mark.parametrize("command", ["bench", "reproduce", "audit", "simulate"])
@pytest.mark.parametrize("where", ["/proc/ssddl-nope", "{file}"])
def test_an_out_that_cannot_be_a_directory_is_refused_before_work(tmp_path, capsys, command, where):
    afile = tmp_path / "afile"
    afile.write_text("mine\n")
    args = [command, "--out", where.format(file=afile)]
    assert main(args) == 2
    captured = capsys.readouterr()
    line = _one_error_line(captured.err)
    assert "--out" in line
    assert afile.read_text() == "mine\n"


@pytest.mark.slow
def test_stdout_that_fills_or_closes_is_one_line_or_silent(tmp_path):
    args = [sys.executable, "-m", "ssddl.cli", "simulate", *TINY, "--json"]
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [*args, "--out", str(tmp_path / "a")],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=600,
        )
    assert done.returncode == 1, done.stderr
    assert "standard output" in _one_error_line(done.stderr)
    assert (tmp_path / "a" / "summary.json").is_file()
    # ``| head -c 1``: the reader is gone before the JSON line is printed
    proc = subprocess.Popen(
        [*args, "--out", str(tmp_path / "b")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        proc.stdout.close()
        _, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 141, err
    assert "Traceback" not in err and "Exception ignored" not in err
    assert (tmp_path / "b" / "summary.json").is_file()
