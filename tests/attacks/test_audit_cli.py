"""``ssddl audit --quick --json``: the report files and the JSON summary's contract."""

from __future__ import annotations

import hashlib
import json

import pytest

from ssddl.attacks import audit
from ssddl.cli import main


@pytest.mark.slow(seconds=52)
def test_the_quick_audit_writes_its_report_and_prints_the_summary_last(
    tmp_path, capsys, monkeypatch
):
    seeded = audit.AuditConfig.quick(crypto_seed=hashlib.sha256(b"tests/cli-audit").digest())
    monkeypatch.setattr(audit.AuditConfig, "quick", classmethod(lambda cls, **kw: seeded))
    out = tmp_path / "audit"
    assert main(["audit", "--quick", "--out", str(out), "--json"]) == 0
    stdout = capsys.readouterr().out
    summary = json.loads(stdout.strip().splitlines()[-1])
    recovery = summary["input_recovery"]
    assert set(recovery) >= {"plain", "dssgd", "prg", "explicit", "shamir"}
    assert recovery["plain"] < 1e-4
    assert all(recovery[m] > 0.5 for m in ("prg", "explicit", "shamir"))
    assert summary["coalition"] == {"0": False, "1": False, "2": False, "3": False, "4": True}
    # shamir at n = 5 has t = 4: three colluders' shares do not interpolate, four do
    assert summary["coalition_by_mode"]["shamir"] == {
        "0": False,
        "1": False,
        "2": False,
        "3": False,
        "4": True,
    }
    attacks = summary["server_attacks"]
    assert attacks and all(a["holds"] for a in attacks)
    assert all({"config", "colluders", "bound", "recovered"} <= set(a) for a in attacks)
    # a model sent to one member only: fails where members bind it, succeeds bypassed
    models = summary["model_inconsistency"]
    assert {a["recovered"] for a in models} == {True, False} and all(a["holds"] for a in models)
    assert all(a["recovered"] == ("bypassed" in a["attack"]) for a in models)
    # each bound is attacked on both sides: fails at it, succeeds one beyond
    assert any(a["recovered"] and not a["within_bound"] for a in attacks)
    assert any(not a["recovered"] and a["within_bound"] for a in attacks)
    assert {p.name for p in out.iterdir()} == {"report.md", "audit.json", "reconstructions.png"}
    assert (out / "reconstructions.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| first-layer | plain | 4/4 |" in (out / "report.md").read_text()
    # the aggregate: what secure aggregation does not hide, measured on real prg sums
    rows = summary["aggregate_recovery"]
    fields = {"n", "batch", "attack", "view", "recovered", "inputs", "best_psnr"}
    assert rows and all(fields <= set(r) for r in rows)
    real = [r for r in rows if r["view"] == "prg aggregate"]
    assert {(r["n"], r["batch"]) for r in real} == {(2, 1), (2, 2), (4, 1), (4, 2), (8, 1), (8, 2)}
    assert all(r["inputs"] == r["n"] * r["batch"] for r in rows)
    assert any(r["recovered"] == 2 for r in real if (r["n"], r["batch"]) == (2, 1))
    control = [r for r in rows if r["view"] == "uniform words"]
    assert len(control) == 3 and all(r["recovered"] == 0 for r in control)
    assert summary["aggregate_is_plaintext_sum"] is True
    assert len(summary["aggregate_best"]) == 6
    written = json.loads((out / "audit.json").read_text())
    assert written["aggregate_recovery"] == rows
    # every attack's outcomes in one list of flat rows, each judged against its guarantee
    outcomes = summary["attacks"]
    assert written["attacks"] == outcomes and all(o["holds"] for o in outcomes)
    assert {o["attack"] for o in outcomes} >= {"coalition", "coalition_floor", "iDLG"}
    seen = {(o["attack"], o["setting"], o["colluders"], o["succeeded"]) for o in outcomes}
    assert all((a["attack"], a["config"], a["colluders"], a["recovered"]) in seen for a in attacks)
    assert sum(o["expected"] is False for o in outcomes) > 0
    assert sum(o["expected"] is True for o in outcomes) > 0
    assert "## The attacks" in (out / "report.md").read_text()
    assert "## What secure aggregation does not hide" in (out / "report.md").read_text()
    # distributed DP: the attacks on the noised aggregate per ε, and the canary's ε bound
    noised = summary["dp_aggregate_recovery"]
    assert {r["epsilon"] is None for r in noised} == {True, False}
    assert {round(r["epsilon"]) for r in noised if r["epsilon"] is not None} == {1, 4, 16}
    assert all(r["recovered"] == 0 for r in noised if r["epsilon"] is not None)
    assert any(r["recovered"] == r["inputs"] for r in noised if r["epsilon"] is None)
    found = summary["empirical_epsilon"]
    assert found and all(f["holds"] for f in found)
    for f in found:
        assert {"accountant_epsilon", "empirical_epsilon", "confidence", "trials"} <= set(f)
    assert written["empirical_epsilon"] == found
    assert "an empirical lower bound on ε" in (out / "report.md").read_text()


def test_an_out_path_that_is_a_file_is_refused(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("x")
    assert main(["audit", "--quick", "--out", str(target)]) == 2
    assert "--out" in capsys.readouterr().err
