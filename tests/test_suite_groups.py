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


def test_process_tests_start_first_then_the_slow_ones_longest_first(
    request: pytest.FixtureRequest,
) -> None:
    """pytest-xdist (``--no-loadscope-reorder``) hands tests out in collection order: the
    conftest puts the process tests first, then the slow ones by their ``slow(seconds=...)``
    (longest first), so none of them starts last and runs alone."""
    items = request.session.items
    ranks = [
        0 if item.get_closest_marker("flower") else 1 if item.get_closest_marker("slow") else 2
        for item in items
    ]
    if 1 not in ranks:
        pytest.skip("checked when the session collects slow tests (make test)")
    assert ranks == sorted(ranks), "a process or slow test comes after a quicker one"
    marks = [item.get_closest_marker("slow") for item in items]
    slow = [m for m, rank in zip(marks, ranks, strict=True) if rank == 1 and m is not None]
    seconds = [float(m.kwargs.get("seconds", 0)) for m in slow]
    assert seconds == sorted(seconds, reverse=True), seconds


@pytest.fixture(scope="module")
def computed_once() -> list[str]:
    return [os.environ.get("PYTEST_XDIST_WORKER", "")]


def test_tests_that_share_a_module_fixture_share_a_group(
    request: pytest.FixtureRequest, computed_once: list[str]
) -> None:
    """Under ``make test`` the tests of a module that use one of its module-scoped fixtures
    carry the module as their group, so one worker runs them and computes it once."""
    grouped = getattr(request.config.option, "loadgroup", False)
    if not os.environ.get("PYTEST_XDIST_WORKER") or not grouped:
        pytest.skip("checked under `make test` (pytest-xdist, --dist loadgroup)")
    assert request.node.nodeid.endswith("@tests/test_suite_groups.py"), request.node.nodeid
    assert computed_once == [os.environ["PYTEST_XDIST_WORKER"]]
