"""The CLI's distributed-DP options: bad ones exit 2 with one line naming the flag and the
fix, before any training."""

from __future__ import annotations

import csv
import json
import re

import pytest

from ssddl.cli import main

CASES = [
    (["--dp", "ddg"], r"--dp needs --no-weighted"),
    (["--noise-multiplier", "2"], r"--noise-multiplier does not apply.*--dp ddg"),
    (["--dp", "ddg", "--no-weighted", "--noise-multiplier", "0"], r"--noise-multiplier"),
    (["--dp", "ddg", "--no-weighted", "--l2-clip", "-1"], r"--l2-clip"),
    (["--dp", "ddg", "--no-weighted", "--bits", "40"], r"--bits=40 is out of range"),
    (["--bits", "20", "--mode", "plain"], r"--bits does not apply: mode plain"),
    (["--bits", "8", "--clip", "4", "--frac-bits", "10"], r"bits=8 cannot hold the sum"),
    (["--mode", "centralized", "--bits", "20"], r"--bits=20 packs .*mode 'centralized'"),
    (["--mode", "centralized", "--dp", "ddg", "--no-weighted"], r"not 'centralized'$"),
    (["--dp", "ddg", "--no-weighted", "--delta", "2"], r"^ssddl: error: --delta=2.0 must"),
    (["--dp", "ddg", "--no-weighted", "--delta", "0"], r"--delta=0.0 must be"),
    (["--dp", "ddg", "--no-weighted", "--delta", "nan"], r"--delta"),
    # the deprecated alias: the same checks, naming the option's flag
    (["--dp", "ddg", "--no-weighted", "--dp-delta", "2"], r"--delta=2.0 must be below 1"),
    (["--delta", "1e-6"], r"--delta does not apply: it is only used with --dp"),
    (["--dp-delta", "1e-6"], r"--delta does not apply: it is only used with --dp"),
    (["--dp", "skellam", "--no-weighted", "--mode", "plain"], r"--dp|secure mode"),
    (["--target-epsilon", "8"], r"--target-epsilon does not apply"),
    (["--max-epsilon", "8"], r"--max-epsilon does not apply"),
    (["--dp", "ddg", "--no-weighted", "--max-epsilon", "-1"], r"--max-epsilon"),
    (["--dp", "ddg", "--no-weighted", "--target-epsilon", "0"], r"--target-epsilon"),
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


@pytest.mark.parametrize("flag", ["--delta", "--dp-delta"])
def test_a_delta_that_is_not_a_number_is_refused_by_the_parser(capsys, flag):
    with pytest.raises(SystemExit) as stop:
        main(["simulate", "--no-progress", "--dp", "ddg", "--no-weighted", flag, "x"])
    assert stop.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == "ssddl simulate: error: argument --delta/--dp-delta: invalid float value: 'x'"


def test_delta_and_its_deprecated_alias_set_the_same_option(tmp_path):
    from ssddl.cli import _chosen, build_parser
    from ssddl.experiments.config import ExperimentConfig

    def chosen(*args):
        parsed = build_parser().parse_args(["simulate", "--dp", "ddg", "--no-weighted", *args])
        return _chosen(parsed)

    assert chosen("--delta", "1e-6")["protocol.delta"] == 1e-6
    assert chosen("--dp-delta", "1e-6")["protocol.delta"] == 1e-6
    config = ExperimentConfig.from_choices(chosen("--dp-delta", "1e-7"))
    assert config.protocol.dp_delta == 1e-7
    # a config file: `delta`, or the old `dp_delta` (run directories written before), and the
    # command line wins over either
    for key in ("delta", "dp_delta"):
        path = tmp_path / f"{key}.toml"
        path.write_text(f'[protocol]\ndp = "ddg"\nweighted = false\n{key} = 2e-6\n')
        from_file = chosen("--config", str(path))
        assert ExperimentConfig.from_choices(from_file).protocol.dp_delta == 2e-6
        overridden = chosen("--config", str(path), "--delta", "3e-6")
        assert ExperimentConfig.from_choices(overridden).protocol.dp_delta == 3e-6


def test_a_config_file_with_delta_under_both_names_is_refused(tmp_path, capsys):
    path = tmp_path / "both.toml"
    path.write_text('[protocol]\ndp = "ddg"\nweighted = false\ndelta = 1e-6\ndp_delta = 1e-6\n')
    code = main(["simulate", "--no-progress", "--config", str(path), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert "`delta` and `dp_delta` are the same option (--delta); give only `delta`" in err


def test_a_config_file_with_a_bad_delta_names_the_key(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text('[protocol]\ndp = "ddg"\nweighted = false\ndelta = "small"\n')
    code = main(["simulate", "--no-progress", "--config", str(path), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "'delta' in [protocol]" in err, err


def test_a_dp_run_reports_epsilon_per_round_and_in_the_summary(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["--participants", "4", "--rounds", "2", "--steps", "2", "--no-progress"]
    code = main(
        ["simulate", *args, "--dp", "ddg", "--no-weighted", "--target-epsilon", "8",
         "--out", str(out), "--json", "--compare", "plain"]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    assert summary["dp"] == "ddg" and summary["bits"] == 20 and summary["delta"] == 1e-5
    assert summary["epsilon"] <= 8.0
    assert summary["epsilon"] > 7.9  # calibrated to the target, to 0.1 % of the noise
    assert summary["noise_multiplier"] > 0
    assert summary["resolved_config"]["protocol"]["noise_multiplier"] == summary["noise_multiplier"]
    assert summary["wrap_probability_bound_per_round"] < 1e-9
    # the fixed-point bound does not describe a DP round; dp_decoding_error does
    assert summary["decoding_error_bound"] is None
    error = summary["dp_decoding_error"]
    assert error["contributors"] == 4
    assert error["wrap_probability_bound_per_round"] == summary["wrap_probability_bound_per_round"]
    # mean of 4: the noise z·c of the honest floor, spread over the whole group's 4 shares
    floor = summary["noise_members"]
    expected_noise = summary["noise_multiplier"] * summary["l2_clip"] * (4 / floor) ** 0.5 / 4
    assert error["noise_std"] == pytest.approx(expected_noise, rel=1e-9)
    assert error["rounding_rms_bound"] == pytest.approx(1 / error["scale"], rel=1e-12)
    assert error["rounding_std"] == pytest.approx(0.25 / error["scale"], rel=1e-12)
    assert 0 < error["rounding_std"] < error["rounding_rms_bound"] < 1e-3 < error["noise_std"]
    report = (out / "report.md").read_text()
    assert "| DP noise std per coordinate (whole group) |" in report
    assert "decoding error bound per coordinate" not in report
    assert summary["compare"]["plain_final_accuracy"] is not None  # non-private FedAvg
    with open(out / "metrics.csv") as fh:
        eps = [float(row["epsilon"]) for row in csv.DictReader(fh)]
    assert len(eps) == 2 and 0 < eps[0] < eps[1] == summary["epsilon"]


def test_a_run_without_dp_reports_no_epsilon(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["--participants", "3", "--rounds", "1", "--steps", "1", "--no-progress"]
    assert main(["simulate", *args, "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert "epsilon" not in summary and "dp" not in summary
    with open(out / "metrics.csv") as fh:
        assert "epsilon" not in next(csv.reader(fh))


def test_a_dp_run_stops_before_the_round_that_would_exceed_max_epsilon(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["--participants", "4", "--rounds", "3", "--steps", "1", "--no-progress"]
    dp = ["--dp", "ddg", "--no-weighted", "--target-epsilon", "8", "--max-epsilon", "7"]
    assert main(["simulate", *args, *dp, "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["stopped"]["reason"] == "max_epsilon"
    assert summary["stopped"]["before_round"] == 2
    assert summary["stopped"]["epsilon_next_round"] > 7.0 >= summary["epsilon"]
    assert summary["rounds"] == 2 and not summary["interrupted"]
    assert (out / "model.safetensors").exists()
    with open(out / "metrics.csv") as fh:
        assert [row["round"] for row in csv.DictReader(fh)] == ["0", "1"]
    # resuming would take the next round over the budget: refused, exit 2, one line
    assert main(["simulate", "--resume", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--max-epsilon=7.0" in err, err


def test_a_budget_the_first_round_exceeds_is_refused(tmp_path, capsys):
    args = ["--participants", "4", "--rounds", "3", "--steps", "1", "--no-progress"]
    dp = ["--dp", "ddg", "--no-weighted", "--noise-multiplier", "0.5", "--max-epsilon", "1"]
    assert main(["simulate", *args, *dp, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "round 0 would already take epsilon" in err, err


def test_bits_runs_beside_its_plain_reference(tmp_path, capsys):
    """--compare plain with --bits: the reference is float32 FedAvg (bits dropped), and the
    summary carries the packed upload against plain's."""
    args = ["--participants", "3", "--rounds", "1", "--steps", "1", "--no-progress"]
    code = main(["simulate", *args, "--bits", "20", "--compare", "plain", "--json",
                 "--out", str(tmp_path / "run")])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    assert summary["resolved_config"]["protocol"]["bits"] == 20
    assert "plain_final_accuracy" in summary["compare"]
    ratio = (
        summary["upload_bytes_per_participant_round"]
        / summary["plain_upload_bytes_per_participant_round"]
    )
    assert 0.625 < ratio < 0.65


def test_dp_fedavg_puts_plain_fedavgs_bytes_on_the_record(tmp_path, capsys):
    """The central-DP reference records the traffic plain FedAvg's run puts on its wire:
    the model down and the float32 change up, per member and round, in traffic.csv, the
    metrics and the summary (so reproduce's byte tables carry it)."""
    args = ["--participants", "3", "--rounds", "2", "--steps", "1", "--no-progress"]

    def traffic(mode):
        out = tmp_path / mode
        assert main(["simulate", *args, "--mode", mode, "--out", str(out)]) == 0
        with open(out / "traffic.csv") as fh:
            rows = [r for r in csv.DictReader(fh) if r["kind"] in ("round_start", "plain_upload")]
        summary = json.loads((out / "summary.json").read_text())
        return sorted(tuple(r.values()) for r in rows), summary

    plain, plain_summary = traffic("plain")
    central, summary = traffic("dp-fedavg")
    capsys.readouterr()
    assert central == plain and len(central) == 2 * 3 * 2
    upload = summary["upload_bytes_per_participant_round"]
    assert upload == plain_summary["upload_bytes_per_participant_round"] > 0
    assert upload == summary["plain_upload_bytes_per_participant_round"]
    with open(tmp_path / "dp-fedavg" / "metrics.csv") as fh:
        for row in csv.DictReader(fh):
            assert float(row["upload_bytes_mean"]) == upload
            assert float(row["download_bytes_mean"]) > upload
