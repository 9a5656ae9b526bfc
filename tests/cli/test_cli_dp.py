"""The CLI's distributed-DP options: bad ones exit 2 with one line naming the flag and the
fix, before any training."""

from __future__ import annotations

import re

import pytest

from ssddl.cli import main

CASES = [
    (["--dp", "ddg"], r"--dp needs --no-weighted"),
    (["--noise-multiplier", "2"], r"--noise-multiplier does not apply.*--dp ddg"),
    (["--dp", "ddg", "--no-weighted", "--noise-multiplier", "0"], r"--noise-multiplier"),
    (["--dp", "ddg", "--no-weighted", "--l2-clip", "-1"], r"--l2-clip"),
    (["--dp", "ddg", "--no-weighted", "--dp-bits", "40"], r"--dp-bits=40 is out of range"),
    (["--dp", "ddg", "--no-weighted", "--dp-delta", "2"], r"--dp-delta=2.0 must be below 1"),
    (["--dp", "skellam", "--no-weighted", "--mode", "plain"], r"--dp|secure mode"),
]


@pytest.mark.parametrize(("args", "pattern"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_dp_options_exit_2_with_one_line(tmp_path, capsys, monkeypatch, args, pattern):
    import ssddl.experiments.run as run

    def no_training(*_a, **_k):
        raise AssertionError("training started")

    monkeypatch.setattr(run, "simulate", no_training)
    code = main(["simulate", "--no-progress", *args, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert re.search(pattern, err), err
