"""``ssddl simulate --tensorboard``: event files TensorBoard's own reader loads, holding every
metric of metrics.csv per round, the participants' evaluations and the configuration and
guarantee as text; without the package the flag is refused with the install command."""

from __future__ import annotations

import csv
import math
import sys

import pytest

from ssddl.cli import main

TINY = ["--participants", "3", "--rounds", "2", "--steps", "2", "--no-progress"]


def _accumulator(logdir):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir))
    acc.Reload()
    return acc


def test_tensorboard_event_files_hold_every_metric(tmp_path, capsys):
    pytest.importorskip("tensorboard")
    out = tmp_path / "run"
    code = main(["simulate", *TINY, "--eval-participants", "1", "--out", str(out), "--tensorboard"])
    assert code == 0, capsys.readouterr().err
    logdir = out / "tensorboard"
    assert list(logdir.glob("events.out.tfevents.*")), "no event file written"
    acc = _accumulator(logdir)
    scalars = set(acc.Tags()["scalars"])
    with open(out / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    numeric = [k for k in rows[0] if k not in ("round", "status", "validated")]
    assert {f"metrics/{k}" for k in numeric} <= scalars
    assert "metrics/applied" in scalars
    for key in ("accuracy", "loss", "total_bytes", "upload_bytes_mean"):
        events = acc.Scalars(f"metrics/{key}")
        assert [e.step for e in events] == [0, 1]
        for event, row in zip(events, rows, strict=True):
            assert math.isclose(event.value, float(row[key]), rel_tol=1e-6)
    assert [e.value for e in acc.Scalars("metrics/applied")] == [1.0, 1.0]
    # traffic.csv, summed per round, kind and direction
    with open(out / "traffic.csv", newline="") as fh:
        traffic = list(csv.DictReader(fh))
    for rnd in (0, 1):
        ups = [r for r in traffic if r["round"] == str(rnd) and r["kind"] == "masked_upload"]
        expected = sum(int(r["bytes"]) for r in ups if r["sender"] != "0")
        assert expected > 0
        assert acc.Scalars("bytes_up/masked_upload")[rnd].value == expected
    kinds = {r["kind"] for r in traffic if r["round"] == "0"}
    assert {f"bytes_up/{k}" for k in kinds} <= scalars
    # the participants' own evaluations, each round (K = 1), and their spread
    with open(out / "participants.csv", newline="") as fh:
        evals = list(csv.DictReader(fh))
    assert len(evals) == 2 * 3
    for p in (1, 2, 3):
        mine = [r for r in evals if r["participant"] == str(p)]
        events = acc.Scalars(f"participant_accuracy/{p}")
        assert [e.step for e in events] == [0, 1]
        assert [e.value for e in events] == pytest.approx([float(r["accuracy"]) for r in mine])
    lows = acc.Scalars("participants/accuracy_min")
    highs = acc.Scalars("participants/accuracy_max")
    assert all(lo.value <= hi.value for lo, hi in zip(lows, highs, strict=True))
    texts = set(acc.Tags()["tensors"])
    assert {"config/text_summary", "guarantee/text_summary", "summary/text_summary"} <= texts
    config = acc.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert '"participants": 3' in config and '"mode": "prg"' in config
    guarantee = acc.Tensors("guarantee/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "collusion_bound" in guarantee and "honest-but-curious" in guarantee


def test_tensorboard_into_a_given_directory(tmp_path, capsys):
    pytest.importorskip("tensorboard")
    logdir = tmp_path / "tb" / "mine"
    code = main(["simulate", *TINY, "--out", str(tmp_path / "run"), "--tensorboard", str(logdir)])
    assert code == 0, capsys.readouterr().err
    acc = _accumulator(logdir)
    assert len(acc.Scalars("metrics/accuracy")) == 2
    assert not (tmp_path / "run" / "tensorboard").exists()


def test_tensorboard_refused_without_the_package(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard -> ImportError
    out = tmp_path / "run"
    code = main(["simulate", *TINY, "--out", str(out), "--tensorboard"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "--tensorboard" in err and "pip install 'ssddl[tensorboard]'" in err
    assert not (out / "metrics.csv").exists()  # refused before any training


def test_tensorboard_with_a_baseline_runner(tmp_path, capsys):
    pytest.importorskip("tensorboard")
    out = tmp_path / "run"
    code = main(["simulate", *TINY, "--mode", "centralized", "--out", str(out), "--tensorboard"])
    assert code == 0, capsys.readouterr().err
    acc = _accumulator(out / "tensorboard")
    assert [e.step for e in acc.Scalars("metrics/accuracy")] == [0, 1]
    assert {"config/text_summary", "guarantee/text_summary", "summary/text_summary"} <= set(
        acc.Tags()["tensors"]
    )
