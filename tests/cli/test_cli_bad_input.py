"""Every error a user can cause exits with status 2 and one line naming the flag or key and
the fix — never a traceback — and nothing is trained."""

from __future__ import annotations

import os
import re

import pytest
import torch

from ssddl.cli import main

TOML = object()  # marker: the case's text is written to a config file passed with --config


def _cases() -> list[tuple[str, list[str] | tuple[object, str], str]]:
    return [
        # -- the run directory ---------------------------------------------------------
        ("out-is-a-file", ["--out", "{file}"], r"--out .* existing file"),
        ("out-under-a-file", ["--out", "{file}/sub"], r"--out .*parent of it is a file"),
        ("out-in-proc", ["--out", "/proc/ssddl-nope"], r"--out /proc/ssddl-nope cannot be"),
        ("out-empty", ["--out", ""], r"--out is empty"),
        ("out-blank", ["--out", "  "], r"--out is empty"),
        # -- config files --------------------------------------------------------------
        ("config-is-a-directory", ["--config", "{dir}"], r"is a directory.*config\.toml"),
        ("config-missing", ["--config", "{dir}/none.toml"], r"does not exist"),
        ("config-not-toml", (TOML, "participants = ["), r"not valid TOML"),
        ("config-not-utf8", (TOML, "\udcff"), r"config file"),
        ("protocol-not-a-table", (TOML, "protocol = 5"), r"`protocol` must be a table"),
        ("train-not-a-table", (TOML, 'train = "fast"'), r"`train` must be a table"),
        ("unknown-section", (TOML, "[network]\nport = 1"), r"unknown section \[network\]"),
        ("unknown-top-key", (TOML, "participant = 3"), r"'participant' at the top level"),
        ("unknown-protocol-key", (TOML, "[protocol]\nmood = 'prg'"), r"'mood' in \[protocol\]"),
        ("unknown-train-key", (TOML, "[train]\nsgd = 1"), r"'sgd' in \[train\]"),
        ("participants-string", (TOML, 'participants = "ten"'), r"--participants"),
        ("participants-float", (TOML, "participants = 1.5"), r"--participants"),
        ("validate-string", (TOML, 'validate = "yes"'), r"--validate\b.*true or false"),
        ("dataset-number", (TOML, "dataset = 3"), r"--dataset\b.*must be a string, got integer 3"),
        (
            "rounds-float",
            (TOML, "[protocol]\nrounds = 2.0"),
            r"'rounds' in \[protocol\] \(--rounds\) must be an integer, got float 2\.0",
        ),
        (
            "participants-bool",
            (TOML, "participants = true"),
            r"'participants' .*must be an integer, got boolean true",
        ),
        (
            "lr-bool",
            (TOML, "[train]\nlr = true"),
            r"'lr' in \[train\] \(--lr\) must be a number, got boolean true",
        ),
        ("mode-unknown", (TOML, "[protocol]\nmode = 'fast'"), r"--mode='fast'"),
        ("rounds-zero", (TOML, "[protocol]\nrounds = 0"), r"rounds"),
        ("lr-negative-toml", (TOML, "[train]\nlr = -1"), r"--lr\b.*must be"),
        ("optimizer-unknown", (TOML, "[train]\noptimizer = 'rmsprop'"), r"--optimizer"),
        ("weighted-string", (TOML, "[protocol]\nweighted = 'no'"), r"weighted"),
        # -- options that do not apply -------------------------------------------------
        ("alpha-with-iid", ["--alpha", "0.3"], r"--alpha does not apply.*--partition dirichlet"),
        ("data-dir-with-digits", ["--data-dir", "x"], r"--data-dir does not apply"),
        ("download-with-digits", ["--download"], r"--download does not apply"),
        ("cipher-with-plain", ["--mode", "plain", "--cipher", "chacha20"], r"--cipher does not"),
        ("aead-with-plain", ["--mode", "plain", "--aead", "aes-256-gcm"], r"--aead does not apply"),
        (
            "threshold-without-double-mask",
            ["--recovery", "none", "--threshold", "3"],
            r"--threshold does not apply",
        ),
        ("recovery-with-shamir", ["--mode", "shamir", "--recovery", "none"], r"--recovery"),
        ("threshold-one", ["--mode", "shamir", "--threshold", "1"], r"--threshold"),
        (
            "consistency-minority-threshold",
            ["--participants", "6", "--consistency", "--threshold", "3"],
            r"different lists.*threshold >= 4",
        ),
        (
            "split-threshold",  # issue 21: a lying server splits survivor lists at t = 3
            ["--participants", "10", "--threshold", "3"],
            r"--threshold=3 for groups of 10 .*different lists.*use threshold >= 6",
        ),
        ("colluders-over-group", ["--max-colluders", "9"], r"--max-colluders=9 needs groups"),
        ("colluders-negative", ["--max-colluders", "-1"], r"max.colluders"),
        ("shards-with-iid", ["--shards-per-participant", "3"], r"--shards-per-participant"),
        ("dropout-at-alone", ["--dropout-at", "after_share"], r"--dropout-at .*--dropout"),
        ("compare-with-plain", ["--mode", "plain", "--compare", "plain"], r"--compare does not"),
        ("validate-with-plain", ["--mode", "plain", "--validate"], r"--validate does not"),
        ("frac-bits-with-plain", ["--mode", "plain", "--frac-bits", "8"], r"--frac-bits does"),
        ("steps-and-epochs", ["--steps", "2", "--epochs", "2"], r"--steps and --epochs"),
        ("max-samples-unweighted", ["--no-weighted", "--max-samples", "64"], r"--max-samples"),
        # -- values --------------------------------------------------------------------
        ("participants-zero", ["--participants", "0"], r"--participants=0"),
        ("group-too-large", ["--group-size", "20"], r"--group-size=20 exceeds"),
        ("frac-bits-overflow", ["--frac-bits", "29"], r"--frac-bits"),
        ("clip-zero", ["--clip", "0"], r"clip"),
        ("ring-overflow", ["--clip", "1e12"], r"ring_bits|--ring-bits|clip"),
        ("lr-negative", ["--lr", "-1"], r"--lr\b.*must be"),
        ("lr-nan", ["--lr", "nan"], r"--lr\b.*must be"),
        ("batch-size-zero", ["--batch-size", "0"], r"--batch-size\b.*must be"),
        ("momentum-one", ["--momentum", "1"], r"--momentum\b.*must be"),
        ("min-group-one", ["--min-group-size", "1"], r"--min-group-size=1"),
        ("dropout-one", ["--dropout", "1"], r"--dropout=1"),
        ("threads-zero", ["--threads", "0"], r"--threads=0"),
        ("threads-absurd", ["--threads", "100000"], r"--threads=100000 is more than 4x the"),
        (
            "participants-absurd",
            ["--participants", "99999999999999999999"],
            r"--participants=9+ needs at least .* of memory .* use at most",
        ),
        ("mnist-without-dir", ["--dataset", "mnist"], r"--data-dir"),
        ("mnist-missing-files", ["--dataset", "mnist", "--data-dir", "{dir}"], r"pass --download"),
        ("too-many-participants", ["--participants", "2000"], r"use fewer --participants"),
        # -- resume --------------------------------------------------------------------
        ("resume-missing", ["--resume", "{dir}/none"], r"--resume .* not a run directory"),
        ("resume-no-config", ["--resume", "{dir}"], r"holds no config\.toml"),
        ("resume-with-options", ["--resume", "{dir}", "--lr", "0.1"], r"drop --lr"),
    ]


CASES = _cases()


def test_the_table_is_large_enough():
    assert len(CASES) >= 40
    assert len({name for name, _, _ in CASES}) == len(CASES)


@pytest.mark.parametrize(("name", "args", "pattern"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, monkeypatch, name, args, pattern):
    import ssddl.experiments.run as run

    def no_training(*_a, **_k):  # every case must fail before any training
        raise AssertionError("training started")

    monkeypatch.setattr(run, "simulate", no_training)
    afile = tmp_path / "afile"
    afile.write_text("x")
    workdir = tmp_path / "work"
    workdir.mkdir()
    if isinstance(args, tuple):
        cfg = tmp_path / "bad.toml"
        text = args[1]
        assert isinstance(text, str)
        cfg.write_bytes(text.encode("utf-8", "surrogateescape"))
        argv = ["--config", str(cfg)]
    else:
        argv = [a.format(file=afile, dir=workdir) for a in args]
    if "--out" not in argv and "--resume" not in argv:
        argv += ["--out", str(tmp_path / "out")]
    code = main(["simulate", "--no-progress", *argv])
    captured = capsys.readouterr()
    assert code == 2, captured.err
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("ssddl: error: ")
    assert "Traceback" not in captured.err
    assert re.search(pattern, lines[0]), lines[0]


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_unwritable_out_directory(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code = main(["simulate", "--out", str(locked / "run")])
    finally:
        locked.chmod(0o700)
    assert code == 2
    assert "--out" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_device_cuda_without_cuda_is_refused(tmp_path, capsys):
    code = main(["simulate", "--device", "cuda", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "--device='cuda'" in err and "no CUDA device" in err


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--participants", "ten"], "--participants"),
        (["--mode", "fast"], "--mode"),
        (["--bogus"], "--bogus"),
        (["--ring-bits", "48"], "--ring-bits"),
    ],
)
def test_parse_errors_exit_2(capsys, args, flag):
    with pytest.raises(SystemExit) as exc:
        main(["simulate", *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert flag in err and "Traceback" not in err
