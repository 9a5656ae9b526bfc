"""What a run directory says about a run: the mode's guarantee, the decoding error bound,
the summary figures, ``report.md`` and ``plot.png``."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ssddl.protocol.config import Aggregation, Rounding, SessionParams
from ssddl.protocol.schemes import get_scheme
from ssddl.protocol.schemes._common import Guarantee

__all__ = [
    "decoding_error_bound",
    "guarantee",
    "markdown_report",
    "plot_run",
    "stated",
    "summarize",
]


def guarantee(protocol: SessionParams) -> dict[str, Any]:
    """What the resolved session protects, as its scheme computes it (:func:`stated`)."""
    stated_by_scheme = get_scheme(protocol.mode).guarantee(protocol)
    return stated(
        stated_by_scheme,
        protocol.group_size,
        recovery=protocol.recovery.value,
        consistency=protocol.consistency,
        max_colluders=protocol.max_colluders,
        min_contributors=protocol.min_contributors,
    )


def stated(
    g: Guarantee,
    group_size: int,
    *,
    recovery: str,
    consistency: bool,
    max_colluders: int | None = None,
    min_contributors: int | None = None,
) -> dict[str, Any]:
    """A guarantee as ``summary.json`` holds it: against an honest-but-curious server,
    ``collusion_bound`` members may collude with it and learn nothing beyond the sum of at
    least two honest changes and ``dropout_bound`` may vanish; ``lying_collusion_bound`` and
    ``lying_dropout_bound`` the same against a server that lies (None: no protection);
    ``max_colluders`` and ``min_contributors`` what the participants enforce; ``round_trips``
    a round takes after Init."""
    return {
        "collusion_bound": g.collusion_bound,
        "dropout_bound": g.dropout_bound,
        "lying_collusion_bound": None if g.lying is None else g.lying[0],
        "lying_dropout_bound": None if g.lying is None else g.lying[1],
        "max_colluders": max_colluders,
        "min_contributors": min_contributors,
        "round_trips": g.round_trips,
        "recovery": recovery,
        "consistency_check": consistency,
        "text": g.describe(group_size),
    }


def decoding_error_bound(protocol: SessionParams, sizes: Sequence[int]) -> float | None:
    """Largest per-coordinate difference between the update a secure mode applies and the
    plain one, from fixed-point rounding: ``n·2^-(f+1)·max_samples/Σn_i`` for the weighted
    mean of a group of ``n`` (the smallest ``n`` local datasets give the worst ``Σn_i``);
    stochastic rounding doubles it; 0 in mode plain. None with distributed DP: its encoding
    is not fixed point, and its noise has no largest value (the summary's
    ``dp_decoding_error``, :func:`ssddl.protocol.dp.decoding_error`, describes it)."""
    if protocol.dp:
        return None
    if not get_scheme(protocol.mode).secure or protocol.frac_bits is None:
        return 0.0
    n = protocol.group_size or len(sizes)
    per_value = 2.0 ** -(
        protocol.frac_bits + (0 if protocol.rounding is Rounding.STOCHASTIC else 1)
    )
    if protocol.weighted and protocol.max_samples is not None:
        smallest_total = sum(sorted(sizes)[:n])
        bound = n * per_value * protocol.max_samples / smallest_total
    else:
        bound = per_value
    if protocol.aggregation is Aggregation.SUM:
        bound *= n
    return bound * protocol.server_lr


def _decoding_lines(s: Mapping[str, Any]) -> list[str]:
    """The report's rows on how far the applied update is from the plain one."""
    error = s.get("dp_decoding_error")
    if error is None:
        return [f"| decoding error bound per coordinate | {s['decoding_error_bound']:.3g} |"]
    return [
        f"| DP noise std per coordinate (whole group) | {error['noise_std']:.3g} |",
        f"| DP rounding error: RMS bound / std per coordinate | "
        f"{error['rounding_rms_bound']:.3g} / {error['rounding_std']:.3g} |",
        f"| DP wrap-around probability bound per round | "
        f"{error['wrap_probability_bound_per_round']:.3g} |",
    ]


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def summarize(
    rows: Sequence[dict[str, Any]],
    *,
    protocol: SessionParams,
    participants: int,
    model_size: int,
    plain_upload_bytes: int,
    total_bytes: int,
    rejections: int,
) -> dict[str, Any]:
    """The figures of a run from its per-round rows (as in ``metrics.csv``)."""
    applied = [r for r in rows if r["status"] == "applied"]
    up = [r["upload_bytes_mean"] for r in applied]
    last = rows[-1] if rows else {}
    return {
        "mode": protocol.mode,
        "participants": participants,
        "group_size": protocol.group_size,
        "threshold": protocol.threshold or None,
        "rounds": len(rows),
        "rounds_planned": protocol.rounds,
        "rounds_applied": len(applied),
        "final_accuracy": _finite(last.get("accuracy")),
        "final_loss": _finite(last.get("loss")),
        "model_size": model_size,
        "upload_bytes_per_participant_round": statistics.fmean(up) if up else 0.0,
        "plain_upload_bytes_per_participant_round": plain_upload_bytes,
        "round_seconds_median": statistics.median(r["round_seconds"] for r in rows)
        if rows
        else None,
        "rejections": rejections,
        "total_bytes": total_bytes,
    }


def _fmt(value: Any, spec: str = "") -> str:
    return "—" if value is None else format(value, spec)


def markdown_report(summary: dict[str, Any], aborted: Sequence[dict[str, Any]]) -> str:
    s = summary
    c = s["resolved_config"]
    validation = s["validation"]
    if not validation["ran"]:
        checked = "not run (pass --validate to check every round)"
    else:
        checked = "passed in every applied round" if validation["passed"] else "FAILED"
    g = s["guarantee"]
    lines = [
        f"# ssddl run — mode `{s['mode']}`",
        "",
        f"{s['participants']} participants on `{c['dataset']}` ({c['partition']} partition), "
        f"model `{c['model']}` with {s['model_size']:,} parameters, group size "
        f"{s['group_size']}, {s['rounds']} of {s['rounds_planned']} rounds run "
        f"({s['rounds_applied']} applied), seed {c['seed']}.",
        "",
        f"**Guarantee.** {g['text']}.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| final test accuracy | {_fmt(s['final_accuracy'], '.4f')} |",
    ]
    if "compare" in s:
        cmp = s["compare"]
        lines += [
            "| plain reference accuracy (same seeds) | "
            f"{_fmt(cmp['plain_final_accuracy'], '.4f')} |",
            f"| accuracy difference (this − plain) | {_fmt(cmp['accuracy_difference'], '+.4f')} |",
        ]
    lines += _decoding_lines(s)
    lines += [
        f"| validation against the plaintext sum | {checked} |",
        f"| upload bytes / participant / round | {s['upload_bytes_per_participant_round']:,.0f} |",
        "| plain float32 upload of the same model | "
        f"{s['plain_upload_bytes_per_participant_round']:,} |",
        f"| median round seconds | {_fmt(s['round_seconds_median'], '.3f')} |",
        f"| total bytes on the wire | {s['total_bytes']:,} |",
        f"| rejected messages | {s['rejections']} |",
        f"| vanished participants (simulated) | {len(s['dropouts'])} |",
        f"| ssddl version | {s['version']} |",
        f"| started | {s['started']} |",
        f"| wall time | {s['wall_seconds']:.1f} s |",
        "",
        f"Command: `{s['command']}`",
        "",
        "![accuracy, loss and bytes](plot.png)",
        "",
        "Per-round figures are in `metrics.csv`, every message's size in `traffic.csv`, the "
        "options you chose in `config.toml` (pass it back with `--config` to repeat the run), "
        "the resolved values in `summary.json`, the trained model in `model.pt` / "
        "`model.safetensors`.",
    ]
    if s.get("interrupted"):
        lines += [
            "",
            f"**Interrupted** after round {s['rounds'] - 1}: continue with "
            f"`ssddl simulate --resume {s['out']}`.",
        ]
    if s.get("resumed"):
        lines += ["", f"Resumed from the checkpoint of round {s['resumed']['from_round']}."]
    if aborted:
        lines += ["", "## Aborted rounds", ""]
        lines += [f"- round {o['round']}: {o['reason']}" for o in aborted]
    return "\n".join(lines) + "\n"


#: What a person calls the messages of each kind: the bytes panel of ``plot.png`` groups
#: the traffic by these phases (a kind a scheme of its own adds shows under its own name).
PHASES: dict[str, tuple[str, ...]] = {
    "key setup": ("session_announce", "key_advert", "key_directory"),
    "model updates": (
        "upload",
        "plain_upload",
        "masked_upload",
        "sparse_upload",
        "share_bundle",
        "share_delivery",
    ),
    "unmasking": ("reveal_request", "reveal_response", "unmask_request", "unmask_response"),
    "new model and round control": ("round_start", "round_end", "session_end"),
    "consistency check": ("consistency_request", "consistency_signature"),
}


def phase_of(kind: str) -> str:
    """The phase (a key of :data:`PHASES`) of message ``kind``; else the kind's own words."""
    for phase, kinds in PHASES.items():
        if kind in kinds:
            return phase
    return kind.replace("_", " ")


def caption(summary: dict[str, Any]) -> str:
    """The guarantee and the validation result in one line, for the plot and the terminal."""
    text = summary["guarantee"]["text"]
    validation = summary.get("validation") or {}
    if not validation.get("ran"):
        checked = "sums not validated (pass --validate)"
    elif validation.get("passed"):
        checked = "validated: every applied round's sum equals the plaintext sum"
    else:
        checked = "VALIDATION FAILED: a round's sum differs from the plaintext sum"
    return f"Guarantee: {text}. {checked}."


def _plot_spread(ax: Any, participants: Sequence[dict[str, Any]], key: str) -> None:
    """The participants' held-out ``key`` per evaluated round: min-max band and median."""
    from ssddl.experiments.participants import spread

    points = spread(participants, key)
    rounds = [p[0] + 1 for p in points]
    ax.fill_between(
        rounds,
        [p[1] for p in points],
        [p[3] for p in points],
        alpha=0.25,
        label="participants (min-max, own held-out data)",
    )
    ax.plot(rounds, [p[2] for p in points], linestyle=":", marker="s", markersize=3,
            label="participants (median)")  # fmt: skip


def _numbered(rows: Sequence[dict[str, Any]]) -> list[int]:
    """Rounds as the progress numbers them: 1 to N (the files count from 0)."""
    return [int(r["round"]) + 1 for r in rows]


def _against_plain(
    ax: Any,
    rows: Sequence[dict[str, Any]],
    reference: Sequence[dict[str, Any]],
    key: str,
    *,
    title: str,
    scale: float = 1.0,
) -> None:
    """``key`` of each round of this run (labelled ``title``) and of the plain reference."""
    ax.plot(_numbered(rows), [r[key] * scale for r in rows], marker="o", markersize=3,
            label=title)  # fmt: skip
    if reference:
        ax.plot(_numbered(reference), [r[key] * scale for r in reference], linestyle="--",
                label="plain (reference run)")  # fmt: skip


def _plot_learning(axes: dict[str, Any], rows: Sequence[dict[str, Any]], title: str,
                   reference: Sequence[dict[str, Any]],
                   participants: Sequence[dict[str, Any]]) -> None:  # fmt: skip
    for name, key, label in (("accuracy", "accuracy", "test accuracy"),
                             ("loss", "loss", "test loss")):  # fmt: skip
        ax = axes[name]
        _against_plain(ax, rows, reference, key, title=title)
        if participants:
            _plot_spread(ax, participants, key)
        ax.set_ylabel(label)
        ax.set_title(f"{label} per round")
    axes["accuracy"].set_ylim(0, 1)
    _against_plain(axes["time"], rows, reference, "round_seconds", title=title)
    axes["time"].set_ylabel("seconds")
    axes["time"].set_title("time per round")


def _plot_bytes(
    ax: Any,
    rows: Sequence[dict[str, Any]],
    title: str,
    reference: Sequence[dict[str, Any]],
    plain_upload_bytes: int | None,
) -> None:
    """Bytes of each round against plain: the reference run's, or without one plain's
    estimate (each member uploads the model and downloads the new one)."""
    _against_plain(ax, rows, reference, "total_bytes", title=title, scale=1e-3)
    if not reference and plain_upload_bytes:
        ax.plot(_numbered(rows), [2e-3 * plain_upload_bytes * r["group_size"] for r in rows],
                linestyle="--", label="plain (estimate: model up and down)")  # fmt: skip
    ax.set_ylim(0, ax.get_ylim()[1] * 1.15)  # from zero: the cost of privacy at its size
    ax.set_ylabel("kB per round, all participants")
    ax.set_title("bytes per round")


def _plot_phases(ax: Any, bytes_by_kind: dict[str, dict[str, int]],
                 reference: Sequence[dict[str, Any]]) -> None:  # fmt: skip
    """Bytes over the run by phase (user-facing names), each direction, and plain's total."""
    phases: dict[str, dict[str, int]] = {}
    for kind, by_direction in bytes_by_kind.items():
        bucket = phases.setdefault(phase_of(kind), {})
        for direction, n in by_direction.items():
            bucket[direction] = bucket.get(direction, 0) + n
    names = sorted(phases)
    positions = np.arange(len(names))
    # side by side on a log scale: a 300 kB upload and a 100-byte key advert both show
    ax.bar(positions - 0.2, [phases[k].get("up", 0) / 1e3 for k in names], width=0.4,
           label="to the server")  # fmt: skip
    ax.bar(positions + 0.2, [phases[k].get("down", 0) / 1e3 for k in names], width=0.4,
           label="from the server")  # fmt: skip
    labels = [*names, "this run: all"]
    ax.bar([len(names)], [sum(sum(d.values()) for d in phases.values()) / 1e3], width=0.6,
           color="tab:green", label="this run, all messages")  # fmt: skip
    if reference:
        ax.bar([len(labels)], [sum(r["total_bytes"] for r in reference) / 1e3], width=0.6,
               color="grey", label="plain (reference run), all messages")  # fmt: skip
        labels.append("plain: all")
    ax.set_yscale("log")
    ax.set_ylim(top=ax.get_ylim()[1] * 30)  # room for the legend above the bars
    ax.set_xticks(list(range(len(labels))), labels, rotation=20, ha="right")
    ax.set_ylabel("kB over the run (log scale)")
    ax.set_title("bytes by phase")
    ax.legend(fontsize="small", loc="upper left")


def plot_run(
    rows: Sequence[dict[str, Any]],
    path: Path,
    *,
    title: str,
    bytes_by_kind: dict[str, dict[str, int]],
    reference: Sequence[dict[str, Any]] = (),
    participants: Sequence[dict[str, Any]] = (),
    plain_upload_bytes: int | None = None,
    caption: str = "",
) -> Any:
    """Draw ``plot.png`` and return its matplotlib figure: test accuracy, test loss, time
    per round and bytes per round against rounds 1..N (each against the plain reference,
    if given; with the participants' own evaluations, their spread: min to max and the
    median), the bytes over the run by phase (with plain's total), and ``caption`` (the
    guarantee and the validation result) under it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplot_mosaic(
        [["accuracy", "loss", "time"], ["bytes", "phases", "phases"]], figsize=(15, 8.5)
    )
    _plot_learning(axes, rows, title, reference, participants)
    _plot_bytes(axes["bytes"], rows, title, reference, plain_upload_bytes)
    for name in ("accuracy", "loss", "time", "bytes"):
        ax = axes[name]
        ax.set_xlabel("round")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    _plot_phases(axes["phases"], bytes_by_kind, reference)
    fig.suptitle(title)
    if caption:
        import textwrap

        fig.text(0.5, 0.01, textwrap.fill(caption, 180), ha="center", va="bottom",
                 fontsize=9)  # fmt: skip
        fig.tight_layout(rect=(0, 0.06, 1, 1))
    else:
        fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return fig
