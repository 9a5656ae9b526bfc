"""Session-wide: no mask worker process outlives the tests (every engine that started one
closed it: ``ssddl.runtime.masking`` keeps no process-global worker to stop here)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

CHILD = b"ssddl.runtime.masking.child"


def _mask_workers() -> list[int]:
    """The pids of this process's children that run a mask worker (Linux; [] elsewhere)."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            running = CHILD in (entry / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and running:
            found.append(int(entry.name))
    return found


@pytest.fixture(scope="session", autouse=True)
def _no_mask_worker_outlives_the_tests() -> Iterator[None]:
    yield
    left = _mask_workers()
    if left:
        raise AssertionError(f"mask worker processes {left} outlived the tests: close engines")
