"""Session-wide: no mask worker process outlives the tests (every engine that started one
closed it: ``ssddl.runtime.masking`` keeps no process-global worker to stop here); tests that
start Flower or Ray processes run one after another in one pytest-xdist worker (their group),
everything else on the other; Hypothesis profiles ``ci`` (the default: every test's own
example count) and ``dev`` (``make check``: fewer examples where a test sets none)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

settings.register_profile("ci", settings.get_profile("default"))
settings.register_profile("dev", max_examples=20)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's worker turns group marks into ids
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Process tests (marker ``flower``) share one xdist group: they start SuperLinks,
    SuperNodes and Ray, and wait on them, so they never run beside each other (and each
    session fixture that runs a deployment runs once). tests/test_suite_groups.py checks that
    pytest-xdist honours the group."""
    for item in items:
        if item.get_closest_marker("flower") is not None:
            item.add_marker(pytest.mark.xdist_group("processes"))
    items.sort(key=_start_order)


def _start_order(item: pytest.Item) -> tuple[int, float]:
    """Slow tests first, the longest first (``slow(seconds=...)``, measured under ``make
    test``), the rest in collection order (``sort`` is stable). pytest-xdist hands tests out in
    this order, so the long end-to-end runs start while the short tests fill the other
    workers, instead of one starting last and running alone at the end."""
    slow = item.get_closest_marker("slow")
    if slow is None:
        return (1, 0.0)
    return (0, -float(slow.kwargs.get("seconds", 0)))


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
