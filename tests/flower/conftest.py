"""Fixtures for the Flower tests: process management lives in ``harness.py``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("flwr", reason="needs the 'flower' extra: pip install -e '.[flower]'")

from flwr.supercore.task_identity import TaskIdentity

SERVER_NODE = 1  # Flower's SUPERLINK_NODE_ID: the node id of the ServerApp side


@pytest.fixture
def task_identity() -> Iterator[None]:
    """Flower's ``Message`` constructor reads the process's task identity (set by Flower's
    runtimes); in-process tests set it as a ServerApp process would and restore it."""
    saved = (TaskIdentity._task_id, TaskIdentity._run_id, TaskIdentity._node_id)
    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, 7, SERVER_NODE
    yield
    TaskIdentity._task_id, TaskIdentity._run_id, TaskIdentity._node_id = saved
