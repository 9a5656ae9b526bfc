"""Benchmarks of ssddl: code, off by default, reporting ratios against baselines measured in
the same run.

``python -m benchmarks`` runs every ``benchmarks/bench_*.py`` module that defines
``main(argv) -> int``; each accepts ``--quick`` (small sizes, a few seconds) and ``--out DIR``
(write ``<name>.json`` and ``<name>.md`` there). See ``benchmarks/__main__.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["base_parser", "environment", "markdown_table", "write_report"]


def base_parser(description: str) -> argparse.ArgumentParser:
    """The options every benchmark module understands."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small sizes, a few seconds")
    parser.add_argument("--out", type=Path, default=None, help="write JSON and Markdown here")
    return parser


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def environment() -> dict[str, Any]:
    """Where the numbers come from: interpreter, libraries, CPUs, time."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": cpus,
        "numpy": _version("numpy"),
        "cryptography": _version("cryptography"),
        "ssddl": _version("ssddl"),
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
    ]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def write_report(out: Path, name: str, payload: dict[str, Any], markdown: str) -> list[Path]:
    """Write ``<out>/<name>.json`` and ``<out>/<name>.md``; return the paths."""
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / f"{name}.json"
    md_path = out / f"{name}.md"
    json_path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    md_path.write_text(markdown.rstrip() + "\n")
    return [json_path, md_path]
