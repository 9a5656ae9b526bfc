"""Session-wide: the simulator's mask worker process is stopped when the tests end."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


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
