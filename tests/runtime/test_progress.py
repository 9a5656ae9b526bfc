"""simulate() called from Python shows its progress: a bar of key setup and the rounds on
stderr, fed by the same reports as the caller's own ``on_setup`` / ``on_round``, drawn on a
terminal by default and switched off with ``progress=False``."""

from __future__ import annotations

import io
from typing import ClassVar

import numpy as np
import pytest

from ssddl.learning import LocalTrainConfig, build_model, load_digits, partition
from ssddl.protocol import ProtocolConfig
from ssddl.runtime import SimulationConfig, simulate
from ssddl.runtime.progress import ProgressBar


@pytest.fixture(scope="module")
def data():
    split = load_digits(seed=0)
    parts = partition(split.train.y, 3, "iid", rng=np.random.default_rng(0))
    return [split.train.subset(p) for p in parts], split.test


CONFIG = SimulationConfig(
    protocol=ProtocolConfig(mode="prg", rounds=3),
    train=LocalTrainConfig(steps=1, lr=0.05),
    mask_worker="thread",
)


class _Kept(ProgressBar):
    """The bar, kept for the test to read what it showed."""

    made: ClassVar[list[_Kept]] = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, stream=io.StringIO(), **{k: v for k, v in kwargs.items()
                                                          if k != "stream"})  # fmt: skip
        _Kept.made.append(self)

    def __exit__(self, *exc):
        self.shown = self.completed()
        super().__exit__(*exc)


def _run(data, monkeypatch, **kwargs):
    import ssddl.runtime.simulator as simulator

    _Kept.made = []
    monkeypatch.setattr(simulator, "ProgressBar", _Kept)
    train, test = data
    rounds: list[int] = []
    stages: list[str] = []
    simulate(
        build_model("mlp", (64,), 10, seed=0),
        train,
        CONFIG,
        test=test,
        on_round=lambda m: rounds.append(m.round),
        on_setup=lambda stage, done, total: stages.append(stage),
        **kwargs,
    )
    return rounds, stages


def test_the_bar_shows_setup_and_every_round_and_the_callbacks_still_hear(data, monkeypatch):
    rounds, stages = _run(data, monkeypatch, progress=True)
    assert rounds == [0, 1, 2] and "key agreement" in stages  # the caller's callbacks
    (bar,) = _Kept.made
    assert bar.shown["rounds"] == (3, 3)  # rounds 1/3 ... 3/3
    assert bar.shown["key agreement"][0] == bar.shown["key agreement"][1] > 0


def test_progress_false_draws_nothing(data, monkeypatch):
    rounds, _ = _run(data, monkeypatch, progress=False)
    assert rounds == [0, 1, 2] and _Kept.made == []


def test_by_default_the_bar_is_drawn_on_a_terminal_only(data, monkeypatch):
    import sys

    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    _run(data, monkeypatch)
    assert _Kept.made == []
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    _run(data, monkeypatch)
    assert len(_Kept.made) == 1


def test_the_bar_writes_to_its_stream():
    stream = io.StringIO()
    with ProgressBar(2, stream=stream) as bar:
        bar.setup("key agreement", 6, 6)
    assert "key agreement" in stream.getvalue() and "6/6" in stream.getvalue()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_cli_reporter_draws_the_same_bars_on_a_terminal_and_lines_elsewhere():
    from types import SimpleNamespace

    from ssddl.cli import _Reporter

    for stream in (_Terminal(), io.StringIO()):
        with _Reporter(stream, enabled=True, rounds=2, label="prg") as reporter:
            reporter.before_setup = "setting up"
            reporter.setup("key agreement", 3, 3)
            reporter.round(SimpleNamespace(round=1, accuracy=0.5))
            reporter.note("a note [not markup]")
        text = stream.getvalue()
        assert "setting up" in text and "a note [not markup]" in text
        assert "key agreement" in text and "3/3" in text
        assert "prg rounds" in text and "2/2" in text and "acc 0.500" in text
        assert reporter.live is isinstance(stream, _Terminal)
    quiet = io.StringIO()
    with _Reporter(quiet, enabled=False, rounds=2, label="prg") as reporter:
        reporter.setup("key agreement", 3, 3)
    assert quiet.getvalue() == ""
