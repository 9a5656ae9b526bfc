"""A progress bar for :func:`ssddl.runtime.simulator.simulate` called from Python: key setup
and rounds on stderr (``rich``), fed by the same ``on_setup`` and ``on_round`` reports a
caller's own callbacks get. ``simulate(..., progress=False)`` switches it off."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from ssddl.runtime.simulator import RoundMetrics

SetupReport = Callable[[str, int, int], None]
RoundReport = Callable[["RoundMetrics"], None]


class StageBars:
    """The project's live bar (:func:`rich_bar`) on ``stream`` with one task per stage: the
    first :meth:`update` of a stage adds its task. A context manager; outside it, updates do
    nothing and :meth:`print` writes plain lines."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._bar: Any = None
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> StageBars:
        self._bar = rich_bar(self.stream)
        self._bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None

    def update(self, stage: str, done: int, total: int, text: str = "") -> None:
        if self._bar is None:
            return
        task = self._tasks.get(stage)
        if task is None:
            task = self._tasks[stage] = self._bar.add_task(text, total=total, stage=stage)
        self._bar.update(task, completed=done, total=total, description=text)

    def print(self, text: str) -> None:
        """``text`` above the bars (as it is: no markup), or a plain line without them."""
        if self._bar is None:
            print(text, file=self.stream, flush=True)
        else:
            self._bar.console.print(text, highlight=False, markup=False)

    def completed(self) -> dict[str, tuple[float, float | None]]:
        """Each stage: (completed, total), what its bar shows (empty outside the context)."""
        if self._bar is None:
            return {}
        tasks = {t.id: t for t in self._bar.tasks}
        return {s: (tasks[i].completed, tasks[i].total) for s, i in self._tasks.items()}


class ProgressBar:
    """Setup stages and rounds as bars on ``stream`` (stderr by default); use it as a
    context manager and pass :meth:`setup` and :meth:`round` as the callbacks."""

    def __init__(self, rounds: int, *, label: str = "rounds", stream: TextIO | None = None):
        self.rounds = rounds
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self._bars = StageBars(self.stream)

    def __enter__(self) -> ProgressBar:
        self._bars.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bars.__exit__()

    def _update(self, stage: str, done: int, total: int, text: str = "") -> None:
        self._bars.update(stage, done, total, text)

    def setup(self, stage: str, done: int, total: int) -> None:
        self._update(stage, done, total)

    def round(self, metrics: RoundMetrics) -> None:
        self._update(self.label, metrics.round + 1, self.rounds, f"acc {metrics.accuracy:.3f}")

    def completed(self) -> dict[str, tuple[float, float | None]]:
        """Each bar's stage: (completed, total) — what the bar shows, for tests."""
        return self._bars.completed()

    def chain(
        self, on_setup: SetupReport | None, on_round: RoundReport | None
    ) -> tuple[SetupReport, RoundReport]:
        """The callbacks to pass on: this bar's, then the caller's own (if any)."""

        def setup(stage: str, done: int, total: int) -> None:
            self.setup(stage, done, total)
            if on_setup is not None:
                on_setup(stage, done, total)

        def round_done(metrics: RoundMetrics) -> None:
            self.round(metrics)
            if on_round is not None:
                on_round(metrics)

        return setup, round_done


def rich_bar(stream: TextIO) -> Any:
    """The project's one progress bar (stage, bar, done/total, text, elapsed) on ``stream``;
    the caller enters and exits it."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("[bold]{task.fields[stage]}[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=Console(file=stream),
    )
