"""docs/howto/tracking.md: its MLflow callback runs against the command line's run loop (with
a stand-in ``mlflow`` module that records the calls, when mlflow is not installed)."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "howto" / "tracking.md"


def _fake_mlflow(calls: list) -> types.ModuleType:
    module = types.ModuleType("mlflow")
    for name in ("set_tracking_uri", "set_experiment", "start_run", "log_params", "log_dict",
                 "log_metrics", "log_text", "end_run"):  # fmt: skip

        def record(*args, _name=name, **kwargs):
            calls.append((_name, args, kwargs))

        setattr(module, name, record)
    return module


def test_the_mlflow_example_logs_every_round_and_the_participants(tmp_path, monkeypatch):
    calls: list = []
    monkeypatch.setitem(sys.modules, "mlflow", _fake_mlflow(calls))
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    callback, usage = blocks[-2], blocks[-1]
    assert "class MLflowCallback" in callback and "run_in_directory" in usage
    namespace: dict = {}
    exec(compile(callback + usage, str(DOC), "exec"), namespace)
    names = [c[0] for c in calls]
    assert names[:4] == ["set_tracking_uri", "set_experiment", "start_run", "log_params"]
    assert calls[0][1][0].startswith("file://") and calls[0][1][0].endswith("/mlruns")
    params = calls[3][1][0]
    assert params["participants"] == 4 and params["protocol.mode"] == "prg"
    rounds = [c for c in calls if c[0] == "log_metrics" and "accuracy" in c[1][0]]
    assert [c[2]["step"] for c in rounds] == [0, 1, 2]
    per_participant = [c for c in calls if c[0] == "log_metrics" and "accuracy" not in c[1][0]]
    assert {c[2]["step"] for c in per_participant} == {1}
    assert len(per_participant) == 4
    assert names[-2:] == ["log_text", "end_run"]
    assert (tmp_path / "runs" / "mlflow" / "participants.csv").is_file()
