"""`ssddl bench --quick` runs end to end and fills every table from its own measurements."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from ssddl.cli import main

KEYS = {
    "prg_over_plain_round",
    "prg_over_plain_step",
    "prg_over_plain_n100",
    "mask_over_ceiling",
    "dp_upload_over_plain",
    "dp_noise_over_mask",
}


@pytest.mark.slow(seconds=66)
def test_quick_bench_writes_the_report_and_a_json_last_line(tmp_path, capsys, monkeypatch):
    import benchmarks.bench_perf

    def flower(quick, log):  # the Flower point itself (Ray, ~45 s) is tests/bench/test_bench_flower
        assert quick
        return {"rows": [], "lines": ["## Flower: SecAgg+, FedAvg and SSDDL", "", "(rows)", ""]}

    monkeypatch.setattr(benchmarks.bench_perf, "perf_section", flower)
    assert main(["bench", "--quick", "--json", "--out", str(tmp_path)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    headline = json.loads(last)
    assert set(headline) >= KEYS
    assert all(math.isfinite(headline[k]) and headline[k] > 0 for k in KEYS)
    report = (tmp_path / "BENCHMARKS.md").read_text()
    for title in (
        "Round time against plain",
        "Mask build against",
        "Scaling against N",
        "## Flower: SecAgg+, FedAvg and SSDDL\n\n(rows)\n\n## Headline",
    ):
        assert title in report
    assert "nan" not in report.lower()
    rows = [line for line in report.splitlines() if re.match(r"^\| [^-|]", line)]
    assert len(rows) >= 3 + 3 + 2 + 4  # header rows + measured rows of the three tables
    for png in ("bench_rounds.png", "bench_masks.png", "bench_scaling.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({png})" in report
    payload = json.loads((tmp_path / "bench_perf.json").read_text())
    assert payload["headline"] == headline
    assert {r["key"] for r in payload["rounds"]} >= {"default", "step", "n100"}
    n100 = next(r for r in payload["rounds"] if r["key"] == "n100")
    assert n100["degree"] == 34  # sparse pairing by default at n = 100


def test_bench_refuses_unknown_options(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--fast"])
    assert exc.value.code == 2
    assert "--fast" in capsys.readouterr().err


def test_bench_writes_under_runs_unless_asked_to_publish(monkeypatch, tmp_path):
    """A quick check never rewrites the published BENCHMARKS.md: the default is runs/bench,
    and only --publish points at the checkout's root."""
    from benchmarks import bench_perf

    seen: list[list[str]] = []
    monkeypatch.setattr(bench_perf, "main", lambda argv: seen.append(argv) or 0)
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "--quick"]) == 0
    assert main(["bench", "--quick", "--publish"]) == 0
    assert seen[0][:2] == ["--out", "runs/bench"]
    root = Path(__file__).resolve().parents[2]
    assert Path(seen[1][1]) == root and (root / "BENCHMARKS.md").is_file()
    with pytest.raises(SystemExit):  # one or the other
        main(["bench", "--out", "x", "--publish"])
