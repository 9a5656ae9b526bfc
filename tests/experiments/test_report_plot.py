"""What ``plot.png`` shows a person, read from the matplotlib figure ``plot_run`` returns:
privacy's cost against plain (accuracy, time and bytes per round, bytes by phase in words a
person uses), rounds numbered 1..N as the progress numbers them, and the guarantee."""

from __future__ import annotations

from ssddl.experiments.report import PHASES, caption, phase_of, plot_run
from ssddl.protocol.messages import MessageKind


def _rows(n: int, *, total: int, seconds: float) -> list[dict[str, object]]:
    return [
        {
            "round": r,
            "accuracy": 0.1 * r,
            "loss": 2.0 - 0.1 * r,
            "round_seconds": seconds,
            "total_bytes": total,
            "group_size": 3,
        }
        for r in range(n)
    ]


BYTES = {
    "key_advert": {"up": 300},
    "key_directory": {"down": 900},
    "masked_upload": {"up": 3000},
    "round_start": {"down": 3000},
    "unmask_request": {"down": 40},
    "unmask_response": {"up": 40},
}


def _labels(ax) -> list[str]:
    return [line.get_label() for line in ax.get_lines()]


def test_every_panel_is_against_plain_and_counts_rounds_from_one(tmp_path):
    fig = plot_run(
        _rows(4, total=7000, seconds=0.5),
        tmp_path / "plot.png",
        title="ssddl prg",
        bytes_by_kind=BYTES,
        reference=_rows(4, total=6000, seconds=0.1),
        caption="Guarantee: up to 1 of the 3 members may collude. validated.",
    )
    assert (tmp_path / "plot.png").stat().st_size > 0
    axes = {ax.get_title(): ax for ax in fig.axes}
    per_round = ["test accuracy per round", "test loss per round", "time per round",
                 "bytes per round"]  # fmt: skip
    assert set(axes) == {*per_round, "bytes by phase"}
    for title in per_round:
        ax = axes[title]
        assert ax.get_xlabel() == "round"
        assert _labels(ax) == ["ssddl prg", "plain (reference run)"], title
        for line in ax.get_lines():
            assert list(line.get_xdata()) == [1, 2, 3, 4], title  # as the progress: 1/4 ... 4/4
    assert list(axes["time per round"].get_lines()[1].get_ydata()) == [0.1] * 4
    assert list(axes["bytes per round"].get_lines()[1].get_ydata()) == [6.0] * 4  # kB
    assert axes["bytes per round"].get_ylim()[0] == 0
    phases = axes["bytes by phase"]
    ticks = [t.get_text() for t in phases.get_xticklabels()]
    assert ticks == ["key setup", "model updates", "new model and round control", "unmasking",
                     "this run: all", "plain: all"]  # fmt: skip
    assert not any("_" in t for t in ticks)  # no protocol-internal message names
    legend = [t.get_text() for t in phases.get_legend().get_texts()]
    assert "plain (reference run), all messages" in legend
    plain_bar = phases.patches[-1]
    assert plain_bar.get_height() == 4 * 6000 / 1e3
    assert any("Guarantee: up to 1 of the 3" in t.get_text() for t in fig.texts)


def test_without_a_reference_plain_bytes_are_estimated(tmp_path):
    fig = plot_run(
        _rows(2, total=7000, seconds=0.5),
        tmp_path / "plot.png",
        title="ssddl prg",
        bytes_by_kind=BYTES,
        plain_upload_bytes=1000,
    )
    axes = {ax.get_title(): ax for ax in fig.axes}
    bytes_ax = axes["bytes per round"]
    assert _labels(bytes_ax) == ["ssddl prg", "plain (estimate: model up and down)"]
    assert list(bytes_ax.get_lines()[1].get_ydata()) == [6.0, 6.0]  # 3 members x 2 x 1 kB
    assert _labels(axes["test accuracy per round"]) == ["ssddl prg"]
    assert "plain: all" not in [t.get_text() for t in axes["bytes by phase"].get_xticklabels()]
    assert not any("Guarantee" in t.get_text() for t in fig.texts)


def test_every_built_in_kind_has_a_phase():
    named = {k for kinds in PHASES.values() for k in kinds}
    assert {k.name.lower() for k in MessageKind} <= named
    assert phase_of("my_scheme_hint") == "my scheme hint"


def test_the_caption_says_the_guarantee_and_the_validation():
    g = {"text": "up to 1 of the 3 members may collude"}
    ran = caption({"guarantee": g, "validation": {"ran": True, "passed": True}})
    assert ran.startswith("Guarantee: up to 1 of the 3") and "validated" in ran
    failed = caption({"guarantee": g, "validation": {"ran": True, "passed": False}})
    assert "VALIDATION FAILED" in failed
    assert "pass --validate" in caption({"guarantee": g, "validation": {"ran": False}})
