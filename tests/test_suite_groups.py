"""The suite's own scheduling: under ``make test`` (pytest-xdist ``--dist loadgroup``) every
process test (marker ``flower``) carries the ``processes`` group in its node id, which is what
makes xdist run them one after another in one worker and compute each session fixture (the
deployment script's run) once. A pytest that stores node ids where pytest-xdist does not look
(pytest 9.2 with pytest-xdist 3.8) drops the groups silently; this test then fails."""

from __future__ import annotations

import os

import pytest


@pytest.mark.flower
def test_process_tests_carry_their_xdist_group(request: pytest.FixtureRequest) -> None:
    grouped = getattr(request.config.option, "loadgroup", False)
    if not os.environ.get("PYTEST_XDIST_WORKER") or not grouped:
        pytest.skip("checked under `make test` (pytest-xdist, --dist loadgroup)")
    assert request.node.nodeid.endswith("@processes"), request.node.nodeid


def test_the_group_is_given_by_the_flower_marker(request: pytest.FixtureRequest) -> None:
    marks = [m.args for m in request.node.iter_markers("xdist_group")]
    assert marks == [], "only process tests join the group"


def test_slow_tests_start_first_longest_first(request: pytest.FixtureRequest) -> None:
    """pytest-xdist hands tests out in collection order: the conftest puts the slow ones first,
    by their ``slow(seconds=...)`` (longest first), so none of them starts last and runs alone."""
    items = request.session.items
    slow = [item.get_closest_marker("slow") for item in items]
    flags = [mark is not None for mark in slow]
    if not any(flags):
        pytest.skip("checked when the session collects slow tests (make test)")
    assert flags == sorted(flags, reverse=True), "a slow test comes after a quick one"
    seconds = [float(mark.kwargs.get("seconds", 0)) for mark in slow if mark is not None]
    assert seconds == sorted(seconds, reverse=True), seconds
