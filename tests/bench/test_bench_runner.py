"""`python -m benchmarks` (make bench): every benchmark module takes the common options the
runner forwards, and a module that refuses them is one failure, not the end of the run."""

from __future__ import annotations

import ast
import importlib
import json
import sys
import types
from pathlib import Path

import benchmarks
import pytest
from benchmarks import __main__ as runner


def _parser_flags(name: str) -> set[str]:
    """The option strings of the ArgumentParser a benchmark's ``main`` builds, read from
    the parser itself (``parse_args`` is stopped before it runs anything)."""
    module = importlib.import_module(f"benchmarks.{name}")
    seen: list[set[str]] = []

    class Stop(Exception):
        pass

    def capture(self, args=None, namespace=None):
        seen.append({s for a in self._actions for s in a.option_strings})
        raise Stop

    original = benchmarks.argparse.ArgumentParser.parse_args
    benchmarks.argparse.ArgumentParser.parse_args = capture  # type: ignore[method-assign]
    try:
        with pytest.raises(Stop):
            module.main(["--quick"])
    finally:
        benchmarks.argparse.ArgumentParser.parse_args = original  # type: ignore[method-assign]
    return seen[0]


@pytest.mark.parametrize("name", runner.discover())
def test_every_benchmark_takes_the_runners_options(name: str) -> None:
    assert {"--quick", "--out"} <= _parser_flags(name), name


def test_bench_noise_quick_writes_its_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from benchmarks import bench_noise

    assert (
        bench_noise.main(["--quick", "--words", "4096", "--repeat", "1", "--out", str(tmp_path)])
        == 0
    )
    report = json.loads((tmp_path / "bench_noise.json").read_text())
    assert report["benchmark"] == "bench_noise" and report["summary"]["words"] == 4096
    assert report["summary"]["ddg_var_1e4_ms"] > 0
    assert "M = 4096" in (tmp_path / "bench_noise.md").read_text()
    with pytest.raises(SystemExit) as refused:
        bench_noise.main(["--words", "0"])
    assert refused.value.code == 2


def test_a_benchmark_that_exits_is_a_failure_and_the_rest_still_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ran: list[str] = []

    def refusing(argv: list[str]) -> int:
        raise SystemExit(2)

    def fine(argv: list[str]) -> int:
        ran.append("bench_zz_fine")
        return 0

    for name, main in (("bench_aa_refusing", refusing), ("bench_zz_fine", fine)):
        module = types.ModuleType(f"benchmarks.{name}")
        module.main = main  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, f"benchmarks.{name}", module)
    monkeypatch.setattr(runner, "discover", lambda: ["bench_aa_refusing", "bench_zz_fine"])
    assert runner.main(["--quick"]) == 1
    out = capsys.readouterr().out
    assert "== bench_aa_refusing: FAILED" in out and "failed: bench_aa_refusing" in out
    assert ran == ["bench_zz_fine"]


def test_the_modules_parse_their_own_options_only_through_main() -> None:
    """No benchmark parses ``sys.argv`` at import (the runner imports them all)."""
    for name in runner.discover():
        tree = ast.parse(Path(benchmarks.__path__[0], f"{name}.py").read_text())
        top = [n for n in tree.body if isinstance(n, ast.Expr)]
        assert not any("parse_args" in ast.dump(n) for n in top), name
