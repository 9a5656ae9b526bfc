"""Session-wide: the simulator's mask worker process is stopped when the tests end; tests
that start Flower or Ray processes run one after another in one pytest-xdist worker (their
group), everything else on the other; Hypothesis profiles ``ci`` (the default: every test's
own example count) and ``dev`` (``make check``: fewer examples where a test sets none)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import settings

settings.register_profile("ci", settings.get_profile("default"))
settings.register_profile("dev", max_examples=20)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Process tests (marker ``flower``) share one xdist group: they start SuperLinks,
    SuperNodes and Ray, and wait on them, so they never run beside each other."""
    for item in items:
        if item.get_closest_marker("flower") is not None:
            item.add_marker(pytest.mark.xdist_group("processes"))


@pytest.fixture(scope="session", autouse=True)
def _stop_the_mask_worker() -> Iterator[None]:
    yield
    from ssddl.protocol import maskproc

    process = maskproc._process
    maskproc.shutdown()
    if process is not None:
        try:
            os.kill(process.pid, 0)
        except ProcessLookupError:
            return
        raise AssertionError(f"the mask worker process {process.pid} outlived the tests")
