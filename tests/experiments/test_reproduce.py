"""``ssddl reproduce --quick`` writes a report whose every table comes from its CSVs, and a
results.json with every row's seeds, mean and spread."""

from __future__ import annotations

import csv
import json
import re
import statistics

import pytest

from ssddl.cli import main
from ssddl.experiments.reproduce import fmt

pytest.importorskip("tenseal")
pytest.importorskip("phe")


def _csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow(seconds=120)
def test_quick_reproduce_writes_a_report_built_from_its_csvs(tmp_path, capsys):
    out = tmp_path / "rep"
    argv = ["reproduce", "--quick", "--json", "--no-secaggplus", "--out", str(out)]
    assert main([*argv, "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    report = (out / "REPORT.md").read_text()
    assert "ssddl reproduce --quick" in report  # the exact command
    assert "versions:" in report and "seeds 0, 1" in report and "CPU(s)" in report
    assert "MNIST not run" in report  # no --data-dir: the run says so
    for png in re.findall(r"\]\(([\w.-]+\.png)\)", report):
        assert (out / png).stat().st_size > 1000
    tables = re.findall(r"<!-- source: ([\w.]+) -->\n((?:\|.*\n)+)", report)
    assert {name for name, _ in tables} >= {
        "e1_final.csv", "e1_noniid.csv", "e2_bytes.csv", "e3_seconds.csv", "costs.csv",
        "e6_scaling.csv", "e7_properties.csv", "headline.csv", "dp_epsilon.csv",
    }  # fmt: skip
    for name, body in tables:
        lines = body.strip().splitlines()
        header = [c.strip() for c in lines[0].strip("|").split("|")]
        cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
        rows = _csv(out / name)
        assert header == list(rows[0])
        assert cells == [[fmt(r[c]) for c in header] for r in rows], name
    # E1: the final accuracy is the mean over seeds of each seed's last round, with its spread
    rounds = _csv(out / "e1_rounds.csv")
    final = _csv(out / "e1_final.csv")
    for row in final:
        mine = [r for r in rounds if r["scheme"] == row["scheme"] and r["dataset"] == "digits"]
        mine = [r for r in mine if r["partition"] == "iid"]
        last = {r["seed"]: float(r["accuracy"]) for r in mine}  # rows in round order
        assert sorted(last) == ["0", "1"]
        assert float(row["digits"]) == round(statistics.fmean(last.values()), 4)
        assert float(row["digits_std"]) == round(statistics.stdev(last.values()), 4)
    labels = [r["scheme"] for r in final]
    assert "dssgd-rr θu=0.01" in labels and "dssgd-parallel θu=0.1 (variant)" in labels
    assert float(final[0]["digits"]) > 0.3  # centralized learns
    assert {r["partition"] for r in rounds} == {"iid", "dirichlet α=0.3", "shards"}
    props = {r["scheme"]: r for r in _csv(out / "e7_properties.csv")}
    assert props["ssddl prg"]["collusion_tolerated"] == "1"  # n - 2 for 3 participants
    # costs: every scheme at the same point, repeated, CPU and wall
    costs = _csv(out / "costs.csv")
    assert {(r["participants"], r["model_size"], r["repeats"]) for r in costs} == {
        ("3", "10000", "2")
    }
    names = {r["scheme"] for r in costs}
    assert {"ssddl prg", "ssddl explicit", "ssddl shamir", "phong-paillier-3072"} <= names
    assert all(float(r["cpu_seconds"]) > 0 and int(r["upload_bytes"]) > 0 for r in costs)
    # --json and results.json
    assert summary["e1_dssgd_variant"] == "round_robin"
    assert len(summary["seeds"]) >= 2
    assert summary["cost_cpu_ratio_paillier"] > 1 and summary["cost_cpu_ratio_lattice"] > 0
    assert summary["secaggplus"]["status"] == "not run"
    # DP: per dataset and epsilon, SSDDL-DDG and central DP over the seeds, FedAvg beside
    dp = summary["dp"]
    assert dp["status"] == "measured" and dp["seeds"] == [0, 1] and dp["delta"] == 1e-5
    assert dp["rounds"] >= 1 and dp["participants"] >= 3
    runs = _csv(out / "dp_accuracy.csv")
    for dataset in ("digits", "mnist1d"):
        for eps, point in dp["datasets"][dataset]["epsilons"].items():
            for scheme, key in (("ssddl-ddg", "ssddl_ddg"), ("dp-fedavg", "central_dp")):
                mine = [
                    float(r["accuracy"])
                    for r in runs
                    if (r["dataset"], r["scheme"]) == (dataset, scheme)
                    and float(r["epsilon"]) == float(eps)
                ]
                assert len(mine) == 2
                assert point[key]["mean"] == pytest.approx(statistics.fmean(mine))
                assert point[key]["spread"] == pytest.approx(statistics.stdev(mine))
                assert point[key]["noise_multiplier"] > 0
    results = json.loads((out / "results.json").read_text())
    assert results["e1_dssgd_variant"] == "round_robin"
    for name, rows in results["experiments"].items():
        assert rows, name
        for row in rows:
            assert "seeds" in row, name
            if name != "e7":
                assert "mean" in row and "spread" in row, name
    e1 = results["experiments"]["e1"]
    assert all(len(r["seeds"]) == 2 and len(r["values"]) == 2 for r in e1)
