"""The example ClientApp imports torch and the data only in the handlers that train or
evaluate: Flower's deployment engine starts a fresh ClientApp process for every message, and
the key, share and unmask messages need neither (about 2 s of CPU each)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

APP = Path(__file__).resolve().parents[2] / "examples" / "flower-app"
CHECK = """
import sys
import ssddl_flower_app.client_app as client_app
heavy = sorted(m for m in ("torch", "sklearn", "ssddl_flower_app.task") if m in sys.modules)
assert not heavy, heavy
assert callable(client_app.train) and callable(client_app.evaluate)
"""


def test_the_client_app_imports_no_torch_until_a_handler_trains() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHECK],
        env={"PYTHONPATH": str(APP), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
