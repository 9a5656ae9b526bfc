"""Run every benchmark: ``python -m benchmarks [--quick] [--out DIR] [--only NAME ...]``.

Benchmarks are the modules ``benchmarks/bench_*.py`` that define ``main(argv) -> int``; they
are found at run time, so a new file plugs in without touching this one. Each gets the same
``--quick`` / ``--out`` options.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

import benchmarks


def discover() -> list[str]:
    """Names (without the package) of the benchmark modules, sorted."""
    return sorted(
        info.name
        for info in pkgutil.iter_modules(benchmarks.__path__)
        if info.name.startswith("bench_")
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, a few seconds each")
    parser.add_argument("--out", type=Path, default=None, help="write JSON + Markdown here")
    parser.add_argument(
        "--only", action="append", default=[], metavar="NAME", help="run only bench_NAME"
    )
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)

    names = discover()
    if args.list:
        print("\n".join(names))
        return 0
    if args.only:
        wanted = {n if n.startswith("bench_") else f"bench_{n}" for n in args.only}
        unknown = wanted - set(names)
        if unknown:
            parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
        names = [n for n in names if n in wanted]

    forwarded = ["--quick"] if args.quick else []
    if args.out is not None:
        forwarded += ["--out", str(args.out)]

    failures = []
    for name in names:
        module = importlib.import_module(f"benchmarks.{name}")
        run = getattr(module, "main", None)
        if not callable(run):
            print(f"== {name}: skipped (no main(argv))")
            continue
        print(f"== {name}")
        started = time.perf_counter()
        try:
            status = run(list(forwarded))
        except SystemExit as stop:  # e.g. argparse refusing the common options: a failure
            status = stop.code if isinstance(stop.code, int) else 1
        except Exception:
            traceback.print_exc()
            status = 1
        # main returns an exit code; None or a result object (e.g. a dict) counts as success
        failed = isinstance(status, int) and not isinstance(status, bool) and status != 0
        verdict = "FAILED" if failed else "ok"
        print(f"== {name}: {verdict} in {time.perf_counter() - started:.1f} s")
        if failed:
            failures.append(name)
    if failures:
        print("failed: " + ", ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
