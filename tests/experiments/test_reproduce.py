"""``ssddl reproduce --quick`` writes a report whose every table comes from its CSVs."""

from __future__ import annotations

import csv
import re

import pytest

from ssddl.cli import main
from ssddl.experiments.reproduce import fmt

pytest.importorskip("tenseal")
pytest.importorskip("phe")


@pytest.mark.slow
def test_quick_reproduce_writes_a_report_built_from_its_csvs(tmp_path, capsys):
    out = tmp_path / "rep"
    assert main(["reproduce", "--quick", "--out", str(out), "--no-progress"]) == 0
    report = (out / "REPORT.md").read_text()
    assert "ssddl reproduce --quick" in report  # the exact command
    assert "versions:" in report and "seed 0" in report and "CPU(s)" in report
    for png in re.findall(r"\]\(([\w.-]+\.png)\)", report):
        assert (out / png).stat().st_size > 1000
    tables = re.findall(r"<!-- source: ([\w.]+) -->\n((?:\|.*\n)+)", report)
    assert {name for name, _ in tables} >= {
        "e1_final.csv", "e2_bytes.csv", "e3_seconds.csv", "e6_scaling.csv",
        "e7_properties.csv", "headline.csv",
    }  # fmt: skip
    for name, body in tables:
        lines = body.strip().splitlines()
        header = [c.strip() for c in lines[0].strip("|").split("|")]
        cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
        with open(out / name, newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert header == list(rows[0])
        assert cells == [[fmt(r[c]) for c in header] for r in rows], name
    # the CSVs hold the runs' numbers: E1's final accuracy is the last round's of e1_rounds
    with open(out / "e1_rounds.csv", newline="") as fh:
        rounds = list(csv.DictReader(fh))
    with open(out / "e1_final.csv", newline="") as fh:
        final = list(csv.DictReader(fh))
    for row in final:
        last = [r for r in rounds if r["scheme"] == row["scheme"] and r["dataset"] == "digits"]
        assert float(row["digits"]) == round(float(last[-1]["accuracy"]), 4)
    assert float(final[0]["digits"]) > 0.3  # centralized learns
    with open(out / "e7_properties.csv", newline="") as fh:
        props = {r["scheme"]: r for r in csv.DictReader(fh)}
    assert props["ssddl prg"]["collusion_tolerated"] == "1"  # n - 2 for 3 participants
