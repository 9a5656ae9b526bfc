"""The run directory is claimed before anything is written: an earlier run there is refused
(or moved aside with ``--force``, never deleted), a user's own files are never overwritten, and
a second run into the same directory at the same time is refused in one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ssddl.cli import main
from ssddl.experiments.rundir import claim

TINY = ["--participants", "3", "--rounds", "2", "--steps", "2", "--no-progress"]


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["simulate", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _files(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ssddl: error: "), err
    assert "Traceback" not in err
    return lines[0]


def test_an_out_that_holds_a_run_is_refused_and_left_alone(tmp_path, capsys):
    out = tmp_path / "run"
    assert run(capsys, *TINY, "--out", str(out))[0] == 0
    before = _files(out)
    code, stdout, err = run(capsys, *TINY, "--seed", "3", "--out", str(out))
    assert code == 2 and stdout == ""
    line = _one_error_line(err)
    assert "holds an earlier run" in line and "--resume" in line and "--force" in line
    assert _files(out) == before


def test_force_moves_the_earlier_run_aside(tmp_path, capsys):
    out = tmp_path / "run"
    assert run(capsys, *TINY, "--out", str(out))[0] == 0
    before = _files(out)
    code, _, err = run(capsys, *TINY, "--seed", "3", "--out", str(out), "--force")
    assert code == 0, err
    [aside] = tmp_path.glob("run.replaced-*")
    assert f"moved to {aside}" in err
    old = _files(aside)
    assert old == {k: v for k, v in before.items() if k != ".ssddl.lock"}
    assert json.loads((out / "summary.json").read_text())["config"]["seed"] == 3


def test_the_default_directory_moves_an_earlier_run_aside(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run(capsys, *TINY)[0] == 0
    first = (tmp_path / "runs" / "latest" / "summary.json").read_bytes()
    code, _, err = run(capsys, *TINY, "--seed", "4")
    assert code == 0, err
    [aside] = (tmp_path / "runs").glob("latest.replaced-*")
    assert (aside / "summary.json").read_bytes() == first


def test_a_users_own_config_toml_is_never_overwritten(tmp_path, capsys, monkeypatch):
    mine = "# my notes: keep this comment\nparticipants = 3\nseed = 2\n"
    (tmp_path / "config.toml").write_text(mine)
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "--config", "config.toml", *TINY, "--out", ".")
    assert code == 2
    line = _one_error_line(err)
    assert "config.toml" in line and "never overwrites" in line
    assert (tmp_path / "config.toml").read_text() == mine
    assert not (tmp_path / "metrics.csv").exists() and not (tmp_path / "checkpoint").exists()


def test_a_directory_in_use_by_another_run_is_refused(tmp_path, capsys):
    out = tmp_path / "busy"
    with claim(str(out)) as held:
        assert held.path == out
        code, _, err = run(capsys, *TINY, "--out", str(out))
        assert code == 2
        assert "in use by another ssddl run" in _one_error_line(err)
    # released: the directory can be claimed again (it holds no run yet)
    assert run(capsys, *TINY, "--out", str(out))[0] == 0


def test_force_with_resume_is_refused(tmp_path, capsys):
    code, _, err = run(capsys, "--resume", str(tmp_path), "--force")
    assert code == 2 and "--force" in _one_error_line(err)


@pytest.mark.slow
def test_two_runs_started_at_once_into_one_directory(tmp_path):
    out = tmp_path / "same"
    command = [sys.executable, "-m", "ssddl.cli", "simulate", *TINY, "--out", str(out)]
    procs = [
        subprocess.Popen(
            [*command, "--seed", str(seed)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (11, 12)
    ]
    results = []
    try:
        for proc in procs:
            _, err = proc.communicate(timeout=600)
            results.append((proc.returncode, err))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    winner = next(seed for seed, (code, _) in zip((11, 12), results, strict=True) if code == 0)
    [(_, loser_err)] = [r for r in results if r[0] == 2]
    line = _one_error_line(loser_err)
    assert "in use by another ssddl run" in line or "holds an earlier run" in line
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["seed"] == winner and not summary["interrupted"]
