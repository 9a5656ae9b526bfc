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
    session fixture that runs a deployment runs once). The other tests that use a
    module-scoped fixture of their own module share a group per module, so that fixture (often
    a whole training run) is computed once, not once per worker that gets one of them.
    tests/test_suite_groups.py checks that pytest-xdist honours the groups."""
    for item in items:
        if item.get_closest_marker("flower") is not None:
            item.add_marker(pytest.mark.xdist_group("processes"))
        elif (module := _shared_module(item)) is not None:
            item.add_marker(pytest.mark.xdist_group(module))
    items.sort(key=_start_order)


def _shared_module(item: pytest.Item) -> str | None:
    """The test's module if the test uses a module-scoped fixture defined in that module."""
    module = item.nodeid.split("::")[0]
    info = getattr(item, "_fixtureinfo", None)
    for defs in info.name2fixturedefs.values() if info is not None else ():
        if defs and defs[-1].scope == "module" and defs[-1].baseid == module:
            return module
    return None


def _start_order(item: pytest.Item) -> tuple[int, float]:
    """The process tests first (one worker runs them, one after another: the longest chain),
    then the slow tests, the longest first (``slow(seconds=...)``, measured under ``make
    test``), then the rest in collection order (``sort`` is stable). With
    ``--no-loadscope-reorder`` pytest-xdist hands tests out in this order, so the long
    end-to-end runs start while the short tests fill the other workers, instead of one starting
    last and running alone at the end."""
    if item.get_closest_marker("flower") is not None:
        return (0, 0.0)
    slow = item.get_closest_marker("slow")
    if slow is None:
        return (2, 0.0)
    return (1, -float(slow.kwargs.get("seconds", 0)))


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
