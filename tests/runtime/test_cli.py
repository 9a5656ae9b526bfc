"""The ``ssddl simulate`` command: options, run directory, JSON line, errors."""

from __future__ import annotations

import csv
import gzip
import json
import struct

import numpy as np

from ssddl.cli import main

KEYS = {
    "mode",
    "participants",
    "group_size",
    "rounds",
    "final_accuracy",
    "upload_bytes_per_participant_round",
    "plain_upload_bytes_per_participant_round",
    "round_seconds_median",
}


def simulate(capsys, *args):
    code = main(["simulate", "--no-progress", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_json_line_and_run_directory(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, err = simulate(
        capsys,
        "--rounds",
        "2",
        "--participants",
        "4",
        "--epochs",
        "1",
        "--out",
        str(out),
        "--json",
        "--validate",
    )
    assert code == 0
    summary = json.loads(stdout)  # stdout holds the JSON object and nothing else
    assert set(summary) >= KEYS
    assert summary["mode"] == "prg" and summary["participants"] == 4 and summary["rounds"] == 2
    assert (
        summary["upload_bytes_per_participant_round"]
        <= 1.01 * summary["plain_upload_bytes_per_participant_round"]
    )
    assert "final test accuracy" in err  # the summary table goes to stderr with --json
    for name in (
        "config.toml",
        "metrics.csv",
        "traffic.csv",
        "summary.json",
        "plot.png",
        "report.md",
    ):
        assert (out / name).stat().st_size > 0
    with open(out / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2
    assert {
        "accuracy",
        "loss",
        "upload_bytes_mean",
        "download_bytes_mean",
        "train_seconds_mean",
        "share_seconds_mean",
        "server_seconds",
        "round_seconds",
    } <= set(rows[0])
    assert all(r["validated"] == "True" for r in rows)
    assert (out / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "mode `prg`" in (out / "report.md").read_text()


def test_resolved_config_file_repeats_the_run(tmp_path, capsys):
    first = tmp_path / "a"
    simulate(
        capsys,
        "--rounds",
        "2",
        "--participants",
        "3",
        "--epochs",
        "1",
        "--mode",
        "shamir",
        "--out",
        str(first),
        "--json",
    )
    text = (first / "config.toml").read_text()
    # what the user chose, not the resolved values (those are in summary.json)
    assert 'mode = "shamir"' in text and "threshold" not in text and "frac_bits" not in text
    resolved = json.loads((first / "summary.json").read_text())["resolved_config"]
    assert resolved["protocol"]["threshold"] == 3 and resolved["protocol"]["frac_bits"] > 0
    second = tmp_path / "b"
    code, stdout, _ = simulate(
        capsys, "--config", str(first / "config.toml"), "--out", str(second), "--json"
    )
    assert code == 0
    again = json.loads(stdout.strip().splitlines()[-1])
    original = json.loads((first / "summary.json").read_text())
    assert again["final_accuracy"] == original["final_accuracy"]
    assert again["mode"] == "shamir" and again["threshold"] == 3


def test_command_line_overrides_the_config_file(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        'participants = 3\n[protocol]\nmode = "explicit"\nrounds = 1\n[train]\nsteps = 1\n'
    )
    code, stdout, _ = simulate(
        capsys, "--config", str(cfg), "--mode", "plain", "--out", str(tmp_path / "o"), "--json"
    )
    assert code == 0
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["mode"] == "plain" and summary["participants"] == 3 and summary["rounds"] == 1


def test_unknown_config_keys_are_named(tmp_path, capsys):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[protocol]\nmood = 'prg'\n")
    code, _, err = simulate(capsys, "--config", str(cfg))
    assert code == 2 and "mood" in err
    cfg.write_text("participants = [")
    code, _, err = simulate(capsys, "--config", str(cfg))
    assert code == 2 and "not valid TOML" in err


def _write_idx(path, array: np.ndarray, *, compress: bool) -> None:
    code = {np.dtype(np.uint8): 0x08}[array.dtype]
    header = struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)


def test_mnist_from_idx_files_with_the_cnn(tmp_path, capsys):
    rng = np.random.default_rng(0)
    root = tmp_path / "mnist"
    root.mkdir()
    for prefix, n in (("train", 80), ("t10k", 20)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 256, (n, 28, 28)).astype(np.uint8)
        _write_idx(root / f"{prefix}-images-idx3-ubyte", images, compress=prefix == "train")
        _write_idx(root / f"{prefix}-labels-idx1-ubyte", labels, compress=False)
    code, stdout, err = simulate(
        capsys,
        "--dataset",
        "mnist",
        "--data-dir",
        str(root),
        "--model",
        "cnn",
        "--participants",
        "2",
        "--rounds",
        "1",
        "--steps",
        "1",
        "--out",
        str(tmp_path / "m"),
        "--json",
    )
    assert code == 0, err
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["participants"] == 2 and 0.0 <= summary["final_accuracy"] <= 1.0
