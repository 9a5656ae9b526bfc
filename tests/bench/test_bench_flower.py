"""The Flower benchmark's plumbing: the deployment app's run config, the rows, the report
section of ``ssddl bench`` — and one real simulation-engine point (``-m flower``)."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from benchmarks import bench_flower
from benchmarks.bench_flower import Spec


def test_the_deployment_app_config_names_every_spec_field():
    data = tomllib.loads((bench_flower.DEPLOY_APP / "pyproject.toml").read_text())
    run = data["tool"]["flwr"]["app"]["config"]
    spec = bench_flower.spec_from_run_config(run)
    assert spec == Spec("fedavg", 5, 100_000, 3, 7, 5, 3, "", 0.0)
    assert set(run) == {f.replace("_", "-") for f in spec.__dataclass_fields__} | {"out"}
    components = data["tool"]["flwr"]["app"]["components"]
    assert components == {
        "serverapp": "ssddl_bench_app.apps:server_app",
        "clientapp": "ssddl_bench_app.apps:client_app",
    }


@pytest.mark.parametrize(("n", "shares"), [(3, (3, 2)), (5, (5, 3)), (7, (7, 4)), (20, (7, 4))])
def test_secagg_shares_never_exceed_the_nodes(n, shares):
    assert bench_flower.deployment_shares(n) == shares


def _clock(path: Path, seconds, up, down, **extra) -> Path:
    path.write_text(json.dumps({"clock": {"seconds": seconds, "up": up, "down": down, **extra}}))
    return path


def test_a_row_is_the_median_of_rounds_after_the_first(tmp_path):
    spec = Spec("ssddl", 2, 10, 4)
    out = _clock(tmp_path / "p.json", [9.0, 1.0, 3.0, 2.0], [50, 8, 8, 8], [40, 4, 4, 6])
    row = bench_flower.point_row(spec, out, 12.5)
    assert row["round_seconds"] == 2.0  # median of 1, 3, 2: round 1 left out
    assert row["upload_bytes_per_client"] == 4.0  # 24 bytes, 3 rounds, 2 clients
    assert row["download_bytes_per_client"] == pytest.approx(14 / 6)
    assert row["per_round"] == [9.0, 1.0, 3.0, 2.0] and row["rounds_measured"] == 3
    assert "run_seconds" not in row  # a clock from before whole-run timing
    timed = _clock(tmp_path / "t.json", [9.0, 1.0], [5, 5], [5, 5], run_seconds=14.5)
    assert bench_flower.point_row(spec, timed, 15.0)["run_seconds"] == 14.5
    failed = bench_flower.point_row(spec, tmp_path / "missing.json", 1.0, "exit code 1")
    assert failed["error"] == "exit code 1" and "round_seconds" not in failed


def _rows():
    rows = []
    for entry, seconds, run, up in (
        ("fedavg", 0.2, 1.0, 400),
        ("secagg+", 1.0, 4.0, 800),
        ("ssddl", 0.4, 2.6, 401),
        ("ssddl-none", 0.21, 2.0, 400),
    ):
        rows.append(
            {"entry": entry, "n": 5, "m": 100, "round_seconds": seconds, "run_seconds": run,
             "rounds": 3, "upload_bytes_per_client": up, "download_bytes_per_client": up}
        )  # fmt: skip
    return rows


def test_ratios_and_the_deployment_table():
    rows = _rows()
    bench_flower.add_ratios(rows)
    by = {r["entry"]: r for r in rows}
    assert by["ssddl"]["time_vs_secagg"] == pytest.approx(0.4)
    assert by["ssddl-none"]["time_vs_fedavg"] == pytest.approx(1.05)
    assert by["ssddl"]["upload_vs_secagg"] == pytest.approx(401 / 800)
    # the whole run, key setup included: 2.6 s against 4.0 s
    assert by["ssddl"]["run_time_vs_secagg"] == pytest.approx(0.65)
    # SecAgg+'s 101 ring values (M + 1) at 4 bytes instead of 8: 800 - 404 = 396
    assert by["ssddl"]["upload_vs_secagg_same_width"] == pytest.approx(401 / 396)
    assert "time_vs_secagg" not in by["fedavg"]
    md, csv_text = bench_flower.render(rows, 3, "deployment")
    assert "deployment engine" in md and "N=5: 5/3" in md
    assert "| ssddl-none | 5 | 100 | 0.210 | 1.05 | 0.21 | 2.00 | 0.50 |" in md
    assert "| 401 | 1.00 | 0.50 | 1.01 |" in md  # as sent, then at the same width
    header = csv_text.splitlines()[0]
    assert header.startswith("entry,n,m,pull,repeats,round_seconds,mean_round_seconds,")


def test_points_with_another_pull_interval_are_never_compared():
    fine = [dict(r, pull=0.005, round_seconds=r["round_seconds"] / 2) for r in _rows()]
    fine[0]["round_seconds"] = 0.2  # FedAvg as slow as at the default pull: ratios halve
    rows = _rows() + fine
    bench_flower.add_ratios(rows)
    assert rows[3]["time_vs_fedavg"] == pytest.approx(1.05)  # against the default-pull FedAvg
    assert rows[7]["time_vs_fedavg"] == pytest.approx(0.525)  # against the fine-pull FedAvg
    assert rows[6]["time_vs_secagg"] == pytest.approx(0.4)  # 0.2 / 0.5
    md, _ = bench_flower.render(rows, 8)
    assert md.count("| entry | N | M |") == 2
    default, fine_part = md.split("The grid pulls replies every 5 ms:")
    assert "every 0.1 s (Flower's default)" in default and "| 0.210 | 1.05 |" in default
    assert "| ssddl-none | 5 | 100 | 0.105 | 0.52 | 0.21 |" in fine_part  # 0.105 / 0.2


def test_the_headline_reads_the_fine_pull_target_point_when_it_was_measured():
    n, m = bench_flower.TARGET_POINT
    quick = _rows()  # N = 5, M = 100 at the default pull: what --quick measures
    fine = [dict(r, n=n, m=m, pull=bench_flower.FINE_PULL, round_seconds=r["round_seconds"] / 2)
            for r in _rows()]  # fmt: skip
    fine[0]["round_seconds"] = 0.2  # FedAvg as slow as at the default pull
    bench_flower.add_ratios(quick)
    bench_flower.add_ratios(fine)
    assert bench_flower.target_headline(quick) == {
        "flower_point_n": 5,
        "flower_point_m": 100,
        "flower_point_rounds": 3,
        "flower_none_over_fedavg": pytest.approx(1.05),
        "flower_ssddl_over_secagg_time": pytest.approx(0.4),
        "flower_ssddl_over_secagg_run_time": pytest.approx(0.65),
        "flower_ssddl_over_secagg_bytes": pytest.approx(401 / 800),
        "flower_ssddl_over_secagg_bytes_same_width": pytest.approx(401 / 396),
    }
    both = bench_flower.target_headline(quick + fine)
    assert (both["flower_point_n"], both["flower_point_m"]) == (n, m)
    assert both["flower_none_over_fedavg"] == pytest.approx(0.525)  # the fine-pull rows'
    assert bench_flower.target_headline([]) == {}


def test_the_report_section_comes_from_the_grid_it_ran(monkeypatch):
    calls = []

    def grid(ns, ms, names, rounds, scratch, limit, log):
        calls.append((ns, ms, tuple(names), rounds))
        return _rows()

    monkeypatch.setattr(bench_flower, "run_grid", grid)
    section = bench_flower.perf_section(True, log=lambda m: None)
    assert calls == [((5,), (100_000,), ("fedavg", "secagg+", "ssddl", "ssddl-none"), 3)]
    text = "\n".join(section["lines"])
    assert text.startswith("## Flower: SecAgg+, FedAvg and SSDDL")
    assert "--rounds 3 --n 5 --m 100000" in text
    assert "| ssddl | 5 | 100 | 0.400 | 2.00 | 0.40 | 2.60 | 0.65 |" in text
    assert section["rows"][2]["time_vs_secagg"] == pytest.approx(0.4)
    headline = bench_flower.target_headline(section["rows"])
    assert headline["flower_ssddl_over_secagg_run_time"] == pytest.approx(0.65)


def test_the_full_report_measures_the_target_point_again_with_a_fine_pull(monkeypatch):
    calls = []

    def grid(ns, ms, names, rounds, scratch, limit, log, pull=0.0, repeats=1):
        calls.append((ns, ms, rounds, pull, repeats))
        if repeats == 1:
            return [dict(r, n=ns[0], m=ms[0], pull=pull) for r in _rows()]
        return _repeated(repeats, n=ns[0], m=ms[0], pull=pull)

    monkeypatch.setattr(bench_flower, "run_grid", grid)
    section = bench_flower.perf_section(False, log=lambda m: None)
    (n, m), fine = bench_flower.TARGET_POINT, bench_flower.FINE_PULL
    repeats = bench_flower.TARGET_REPEATS
    assert calls == [
        ((5, 10, 20), (100_000, 1_000_000), 3, 0.0, 1),
        ((n,), (m,), 8, fine, repeats),
    ]
    text = "\n".join(section["lines"])
    assert f"--n {n} --m {m} --rounds 8 --pull-interval {fine} --repeat {repeats}" in text
    assert len(section["rows"]) == 4 + 4 * repeats
    # the median of the repeats' ratios (1.05, 1.25, 0.95, ...), not the ratio of medians
    headline = bench_flower.target_headline(section["rows"])
    assert headline["flower_none_over_fedavg"] == pytest.approx(1.05)
    assert "| ssddl-none | 10 | 1,000,000 | 0.210 | 1.05 (0.95–1.31) |" in text


def _repeated(repeats, **point):
    """Repeats in which FedAvg takes 0.2, 0.16 and 0.22 s and ssddl-none 0.21 s throughout:
    its per-repeat ratios 1.05, 1.3125, 0.9545 (median 1.05)."""
    rows = []
    for repeat in range(repeats):
        for r in _rows():
            row = dict(r, **point, repeat=repeat)
            if r["entry"] == "fedavg":
                row["round_seconds"] = (0.2, 0.16, 0.22)[repeat % 3]
            rows.append(row)
    bench_flower.add_ratios(rows)
    return rows


def test_repeats_pair_each_entry_with_fedavg_of_its_own_repeat():
    rows = _repeated(3, n=5, m=100, pull=0.005)
    none = [r["time_vs_fedavg"] for r in rows if r["entry"] == "ssddl-none"]
    assert none == pytest.approx([1.05, 0.21 / 0.16, 0.21 / 0.22])
    summary = {r["entry"]: r for r in bench_flower.summarize(rows)}
    assert summary["ssddl-none"]["repeats"] == 3
    assert summary["ssddl-none"]["time_vs_fedavg"] == pytest.approx(1.05)
    assert summary["ssddl-none"]["time_vs_fedavg_range"] == pytest.approx((0.21 / 0.22, 1.3125))
    assert summary["fedavg"]["round_seconds"] == pytest.approx(0.2)  # median of the repeats
    assert summary["ssddl"]["time_vs_secagg"] == pytest.approx(0.4)
    md, csv_text = bench_flower.render(bench_flower.summarize(rows), 8)
    assert "| ssddl-none | 5 | 100 | 0.210 | 1.05 (0.95–1.31) | 0.21 |" in md
    assert "| ssddl | 5 | 100 | 0.400 | 2.00 (1.82–2.50) | 0.40 |" in md
    assert ",repeats," in csv_text.splitlines()[0]
    failed = dict(rows[0], error="exit code 1")
    assert bench_flower.summarize([failed])[-1]["error"] == "exit code 1"  # kept, not summed


def test_without_flower_the_section_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "flwr", None)  # import flwr raises ImportError
    section = bench_flower.perf_section(False)
    assert section["rows"] == [] and "needs the `flower` extra" in "\n".join(section["lines"])


@pytest.mark.flower
def test_one_simulation_point_per_entry_runs_and_counts_bytes():
    # a short scratch path: Ray's unix sockets live under it (pytest's tmp_path is too long)
    with tempfile.TemporaryDirectory(prefix="ssddl-bench-", dir="/tmp") as tmp:
        rows = bench_flower.run_grid(
            (3,), (1000,), ["fedavg", "ssddl-none"], 2, Path(tmp), 120.0, log=lambda m: None
        )
    assert [r.get("error") for r in rows] == [None, None]
    fedavg, ssddl = rows
    assert fedavg["upload_bytes_per_client"] == 4000 + 151  # float32 model + Flower's keys
    assert ssddl["upload_bytes_per_client"] == 4004 + 51  # uint32 words + count word + frame
    assert all(r["round_seconds"] > 0 and len(r["per_round"]) == 2 for r in rows)
    # the whole run: both rounds and, for SSDDL, discovery and key setup
    assert all(r["run_seconds"] >= sum(r["per_round"]) for r in rows)
