"""The ``ssddl`` command: a thin layer over :mod:`ssddl.experiments`.

``ssddl simulate`` runs the SSDDL protocol in one process and writes a run directory.
Options given on the command line override those of ``--config FILE.toml``. Every option is
described once, in :data:`ssddl.experiments.options.OPTIONS`; this module builds the parser
from it and imports torch only once a run starts, so ``--help`` and ``--version`` are quick.

Exit status: 0 done; 1 the run finished but applied no round, or a file could not be written
(a full disk: one line naming the file and what was kept); 2 a bad option, file or
directory (one line on stderr naming it and the fix); 130 interrupted (Ctrl-C) and 143
terminated (SIGTERM, as ``timeout``, ``docker stop`` and Slurm send), both with what finished
written and the command that continues the run; 141 the reader of stdout went away
(``--json | head -c 1``), with the run directory written and no traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import re
import shlex
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from ssddl import __version__
from ssddl.exceptions import SecurityWarning, SSDDLError
from ssddl.experiments.options import OPTIONS, Option, cli_words
from ssddl.validators import did_you_mean

if TYPE_CHECKING:
    from ssddl.experiments.config import ExperimentConfig
    from ssddl.experiments.rundir import RunDirectory

__all__ = ["build_parser", "main", "reference_markdown"]

EXIT_OK = 0
EXIT_NOTHING_APPLIED = 1
EXIT_NOT_WRITTEN = 1  # a file could not be written (a full disk); what was kept is said
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM, what a shell reports for a process SIGTERM ended
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: the reader of stdout went away (``| head``)

#: A setup expected to take longer (measured: ssddl.runtime.setupcost) is announced.
_WARN_SETUP_SECONDS = 10.0

#: run options that are not part of the configuration: (flags, keywords for add_argument)
RUN_FLAGS: tuple[tuple[str, dict[str, Any]], ...] = (
    (
        "--config",
        {
            "metavar": "FILE.toml",
            "help": "read options from a TOML file (a run's config.toml repeats that run); "
            "options given on the command line override it",
        },
    ),
    (
        "--resume",
        {
            "metavar": "DIR",
            "help": "continue the interrupted run in DIR from its last checkpoint, with the "
            "options in DIR/config.toml; ends with the same model as an uninterrupted run. "
            "With --rounds N (the only option it takes), extend a run to N rounds: its files "
            "continue and it ends as an N-round run would",
        },
    ),
    (
        "--out",
        {
            "metavar": "DIR",
            "help": "run directory to write (created if missing; checked before training; "
            "one that holds a run is refused without --resume or --force; an earlier run in "
            "the default is moved aside) (default: runs/latest)",
        },
    ),
    (
        "--force",
        {
            "action": "store_true",
            "help": "start a new run even if --out holds one: the earlier run's files are "
            "moved to <out>.replaced-<time> (nothing is deleted)",
        },
    ),
    (
        "--json",
        {
            "action": "store_true",
            "help": "write only one JSON summary object to stdout; the table and progress "
            "go to stderr",
        },
    ),
    (
        "--no-progress",
        {"action": "store_true", "help": "do not show setup and round progress"},
    ),
    (
        "--tensorboard",
        {
            "metavar": "DIR",
            "nargs": "?",
            "const": "",
            "help": "also write TensorBoard event files: every metric per round, the "
            "participants' evaluations, the configuration and guarantee as text (default "
            "DIR: <run directory>/tensorboard; needs pip install 'ssddl[tensorboard]')",
        },
    ),
)


def _help(spec: Option) -> str:
    return f"{spec.help_text()} (default: {spec.default_text()})"


def _add_option(group: argparse._ArgumentGroup, spec: Option) -> None:
    kwargs: dict[str, Any] = {"dest": spec.dest, "default": None, "help": _help(spec)}
    if spec.type is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    else:
        kwargs["type"] = spec.type
        kwargs["metavar"] = spec.metavar
        choices = spec.choice_names()
        if choices is not None and spec.import_path:
            kwargs["type"] = _name_or_import_path(choices)
            kwargs["metavar"] = "{" + ",".join(choices) + ",MODULE:FACTORY}"
        elif choices is not None:
            kwargs["choices"] = [spec.type(c) for c in choices]
            kwargs["metavar"] = "{" + ",".join(choices) + "}"
    group.add_argument(spec.flag, *spec.alias_flags, **kwargs)


def _name_or_import_path(choices: Sequence[str]) -> Callable[[str], str]:
    """One of ``choices``, or ``package.module:name`` (resolved when the run starts)."""

    def check(value: str) -> str:
        if ":" in value or value in choices:
            return value
        quoted = ", ".join(repr(c) for c in choices)
        raise argparse.ArgumentTypeError(
            f"invalid choice: {value!r} (choose from {quoted}, or package.module:factory)"
        )

    return check


_GROUPS = (
    (None, "data, model and run"),
    ("protocol", "protocol (TOML section [protocol])"),
    ("train", "local training (TOML section [train])"),
)


class _Parser(argparse.ArgumentParser):
    """argparse, with "did you mean …?" after a mistyped flag, command or choice."""

    def error(self, message: str) -> NoReturn:
        super().error(message + _hint(message, self))


def _flags(parser: argparse.ArgumentParser) -> list[str]:
    """Every long flag of ``parser`` and of its subcommands."""
    found = [o for a in parser._actions for o in a.option_strings if o.startswith("--")]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += _flags(sub)
    return found


def _hint(message: str, parser: argparse.ArgumentParser) -> str:
    """The suggestion for one of argparse's refusals (``""`` when nothing is close)."""
    choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
    if choice:
        return did_you_mean(choice.group(1), re.findall(r"'([^']*)'", choice.group(2)))
    unknown = re.search(r"unrecognized arguments: (\S+)", message)
    if unknown:
        word = unknown.group(1).split("=")[0]
        return did_you_mean(word, _flags(parser)) if word.startswith("-") else ""
    return ""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ssddl",
        description="Privacy-preserving distributed deep learning based on secret sharing.",
    )
    parser.add_argument("--version", action="version", version=f"ssddl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sim = sub.add_parser(
        "simulate",
        help="run participants and server in one process and write a run directory",
        description="Run the SSDDL protocol in one process and write a run directory "
        "(config.toml, metrics.csv, traffic.csv, summary.json, plot.png, report.md, model.pt, "
        "model.safetensors, checkpoint/; participants.csv with --eval-participants, "
        "tensorboard/ with --tensorboard). Exit status: 0 done, 1 no round applied, 2 bad "
        "input, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM).",
    )
    run = sim.add_argument_group("run")
    for flag, kwargs in RUN_FLAGS:
        run.add_argument(flag, **kwargs)
    for section, title in _GROUPS:
        group = sim.add_argument_group(title)
        for spec in OPTIONS:
            if spec.section == section:
                _add_option(group, spec)
    _add_audit_parser(sub)
    _add_keys_parser(sub)
    _add_supernode_parser(sub)
    rep = sub.add_parser(
        "reproduce",
        help="run SSDDL against its baselines and write DIR/REPORT.md with tables and figures",
        description="Run the paper's comparison (accuracy, bytes, seconds, scaling, "
        "properties of SSDDL and its baselines) and write DIR/REPORT.md, a PNG figure and "
        "the CSV behind each figure, and results.json (every row's seeds, mean and spread). The "
        "full run takes up to 40 minutes on 2 cores.",
    )
    rep.add_argument("--quick", action="store_true", help="small sizes: up to 5 minutes")
    rep.add_argument("--out", metavar="DIR", default="runs/reproduce", help="output directory")
    rep.add_argument(
        "--data-dir", metavar="DIR", help="directory with the MNIST IDX files: adds MNIST to E1"
    )
    rep.add_argument("--no-progress", action="store_true", help="do not show progress")
    rep.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object last: the seeds, E1's DSSGD variant, the cost ratios, "
        "the SecAgg+ and DP entries, the paths of REPORT.md and results.json",
    )
    rep.add_argument(
        "--no-secaggplus",
        action="store_true",
        help="do not measure Flower's SecAgg+ reference row (it starts Ray simulations)",
    )
    _add_bench_parser(sub)
    return parser


def _add_keys_parser(sub: Any) -> None:
    keys = sub.add_parser(
        "keys",
        help="key material for participants on separate machines (Flower)",
        description="Write identity keys and a roster (gen), throw-away TLS certificates "
        "and SuperNode keys for 127.0.0.1 (certs), an app-signing key with the "
        "trusted-entities file SuperNodes start with (app-key), or a signature of an app "
        "bundle (sign-app). Exit status: 0 done, 2 bad input.",
    )
    what = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    gen = what.add_parser(
        "gen",
        help="Ed25519 identity keys (participant-<id>.key, mode 0600) and roster.json",
    )
    gen.add_argument(
        "--participants",
        type=int,
        required=True,
        metavar="N",
        help="write keys for participants 1..N",
    )
    gen.add_argument(
        "--out", type=Path, required=True, metavar="DIR",
        help="directory for the keys (created 0700 if missing; existing keys are never "
        "overwritten)",
    )  # fmt: skip
    certs = what.add_parser(
        "certs",
        help="a CA, a server certificate for 127.0.0.1 and optional SuperNode auth keys",
    )
    certs.add_argument(
        "--out", type=Path, required=True, metavar="DIR",
        help="directory for the TLS material (created 0700 if missing; never overwritten)",
    )  # fmt: skip
    certs.add_argument(
        "--supernodes", type=int, default=0, metavar="N",
        help="also write N SuperNode authentication key pairs (supernode-<i>, .pub)",
    )  # fmt: skip
    app_key = what.add_parser(
        "app-key",
        help="an Ed25519 app-signing key (app-signing.key, 0600; .pub) and "
        "trusted-entities.yaml for flower-supernode --trusted-entities",
    )
    app_key.add_argument("--out", type=Path, required=True, metavar="DIR")
    sign = what.add_parser(
        "sign-app",
        help="sign the bundle 'flwr run' builds from an app directory (or a .fab file): "
        "writes DIR/<sha256>.sig for 'ssddl supernode --app-signatures DIR'",
    )
    sign.add_argument(
        "--app", type=Path, required=True, metavar="PATH",
        help="the Flower app directory given to 'flwr run' (or a .fab file)",
    )  # fmt: skip
    sign.add_argument(
        "--key", type=Path, required=True, metavar="FILE",
        help="the app-signing.key written by 'ssddl keys app-key'",
    )  # fmt: skip
    sign.add_argument(
        "--out", type=Path, required=True, metavar="DIR",
        help="where <sha256>.sig goes (the directory SuperNodes read with --app-signatures)",
    )  # fmt: skip


def _add_supernode_parser(sub: Any) -> None:
    node = sub.add_parser(
        "supernode",
        help="Flower's flower-supernode that runs only app bundles signed by a trusted key",
        description="Run Flower's SuperNode (every argument after '--' is flower-supernode's, "
        "and --trusted-entities FILE is required); each app bundle it fetches gets the "
        "signature from DIR/<sha256>.sig, which Flower checks against --trusted-entities; "
        "an app without a signature by a trusted key is refused. Exit status: Flower's; "
        "2 bad input.",
    )
    node.add_argument(
        "--app-signatures", type=Path, required=True, metavar="DIR",
        help="directory of <sha256>.sig files written by 'ssddl keys sign-app'",
    )  # fmt: skip
    node.add_argument(
        "--heartbeat-interval", type=float, default=None, metavar="S",
        help="seconds between this node's heartbeats, 10 to 1800 (Flower's default 30): the "
        "SuperLink declares a silent node dead after two intervals, so a round goes on sooner "
        "after a node vanishes",
    )  # fmt: skip
    node.add_argument("flower_args", nargs=argparse.REMAINDER, metavar="-- FLOWER_ARGS")


def _key_dir(out: Path) -> Path:
    """``keys --out``: created if missing, readable by its owner only (0700)."""
    from ssddl.exceptions import ConfigurationError

    if out.exists() and not out.is_dir():
        raise ConfigurationError(f"--out {str(out)!r} is an existing file; give a directory")
    try:
        out.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(
            f"--out {str(out)!r} cannot be created ({exc.strerror}); give another directory"
        ) from None
    return out


def _keys(args: argparse.Namespace) -> int:
    """``ssddl keys gen|certs``: files only, printed one per line (never key material)."""
    from ssddl.exceptions import ConfigurationError
    from ssddl.runtime.keyfiles import write_identities

    if args.keys_command in ("app-key", "sign-app"):
        return _app_signing(args)
    out = _key_dir(Path(args.out))
    if args.keys_command == "gen":
        written = write_identities(out, args.participants)
        for path in (*written.keys.values(), written.roster):
            print(path)
        return EXIT_OK
    from ssddl.runtime.flower.certs import make_node_key, make_tls_material

    if args.supernodes < 0:
        raise ConfigurationError("--supernodes must be >= 0")
    existing = [p for p in ("ca.crt", "server.pem", "server.key") if (out / p).exists()]
    if existing:
        raise ConfigurationError(f"{out / existing[0]} already exists: use an empty directory")
    tls = make_tls_material(out)
    print(f"{tls.ca_cert}\n{tls.server_cert}\n{tls.server_key}")
    for i in range(1, args.supernodes + 1):
        node = make_node_key(out, f"supernode-{i}")
        print(f"{node.private_key}\n{node.public_key}")
    return EXIT_OK


def _app_signing(args: argparse.Namespace) -> int:
    """``ssddl keys app-key|sign-app``: paths only, one per line."""
    from ssddl.runtime.appsign import sign_app, write_app_key

    if args.keys_command == "app-key":
        key = write_app_key(Path(args.out))
        print(f"{key.private_key}\n{key.public_key}\n{key.trusted_entities}")
        return EXIT_OK
    print(sign_app(args.app, args.key, args.out))
    return EXIT_OK


def _supernode(args: argparse.Namespace) -> int:
    from ssddl.runtime.appsign import run_supernode

    flower_args = list(args.flower_args)
    if flower_args[:1] == ["--"]:
        flower_args = flower_args[1:]
    run_supernode(args.app_signatures, flower_args, args.heartbeat_interval)
    return EXIT_OK


def _add_bench_parser(sub: Any) -> None:
    bench = sub.add_parser(
        "bench",
        help="measure prg against plain FedAvg and write BENCHMARKS.md (source checkout)",
        description="Run the performance benchmarks (round time of every mode as a ratio to "
        "plain FedAvg, mask throughput against raw AES-CTR, scaling with N) and write "
        "BENCHMARKS.md with PNG plots. Needs the benchmarks/ directory of a source checkout.",
    )
    bench.add_argument("--quick", action="store_true", help="small sizes (under 3 minutes)")
    bench.add_argument("--json", action="store_true", help="print one JSON object last")
    where = bench.add_mutually_exclusive_group()
    where.add_argument(
        "--out", type=Path, default=Path("runs/bench"),
        help="where BENCHMARKS.md, bench_perf.json and the plots go (default: runs/bench)",
    )  # fmt: skip
    where.add_argument(
        "--publish", action="store_true",
        help="write them over the published copy at the root of the source checkout instead",
    )  # fmt: skip


def reference_markdown() -> str:
    """``docs/reference/options.md``: every flag of ``ssddl simulate`` and its TOML key,
    generated from the parser and :data:`OPTIONS` (a test fails when the file drifts)."""
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    sim = commands.choices["simulate"]
    by_dest = {spec.dest: spec for spec in OPTIONS}
    lines = [
        "# `ssddl simulate` options",
        "",
        "<!-- generated from src/ssddl/cli.py and src/ssddl/experiments/options.py; regenerate "
        "with: python -c 'from ssddl.cli import reference_markdown as r; "
        'print(r(), end="")\' > docs/reference/options.md -->',
        "",
        "Every option can be given on the command line or as a key of a `--config` TOML file "
        "(top-level keys, or in the `[protocol]` / `[train]` section); the command line wins. "
        "An option that does not apply to the chosen mode, dataset or partition is refused "
        "with exit status 2.",
    ]
    for group in sim._action_groups:
        actions = [a for a in group._group_actions if a.option_strings and a.dest != "help"]
        if not actions:
            continue
        lines += ["", f"## {group.title}", "", "| flag | TOML key | choices | meaning |"]
        lines.append("|---|---|---|---|")
        for action in actions:
            flags = ", ".join(f"`{f}`" for f in action.option_strings)
            spec = by_dest.get(action.dest)
            key = f"`{spec.key}`" if spec is not None else "—"
            names = spec.choice_names() if spec is not None else None
            choices = ", ".join(names) if names else ""
            text = (action.help or "").replace("|", "\\|")
            lines.append(f"| {flags} | {key} | {choices} | {text} |")
    return "\n".join(lines) + "\n"


def _chosen(args: argparse.Namespace) -> dict[str, Any]:
    """The options the user chose: the config file's, overridden by the command line."""
    from ssddl.experiments.config import flatten, load_toml

    chosen: dict[str, Any] = {}
    if args.config is not None:
        chosen = flatten(load_toml(args.config), args.config)
    for spec in OPTIONS:
        value = getattr(args, spec.dest)
        if value is not None:
            for alias in spec.alias_keys:  # the command line wins over the file's old name
                chosen.pop(alias, None)
            chosen[spec.key] = value
    return chosen


def _resume_choices(args: argparse.Namespace) -> dict[str, Any]:
    from ssddl.experiments.config import flatten, load_toml

    given = [
        spec.flag
        for spec in OPTIONS
        if getattr(args, spec.dest) is not None and spec.key != "protocol.rounds"
    ]
    if args.config is not None:
        given.append("--config")
    if args.out is not None:
        given.append("--out")
    if args.force:
        given.append("--force")
    if given:
        raise SSDDLError(
            f"--resume continues a run with its own options (only --rounds may change, to "
            f"extend it); drop {', '.join(given)} (or start a new run with --config "
            f"DIR/config.toml)"
        )
    directory = Path(args.resume)
    if not directory.is_dir():
        raise SSDDLError(f"--resume {args.resume} is not a run directory; give one")
    path = directory / "config.toml"
    if not path.is_file():
        raise SSDDLError(f"--resume {args.resume} holds no config.toml: not a run directory")
    return flatten(load_toml(path), str(path))


class _Reporter:
    """Setup and round progress on stderr: a live bar on a terminal, lines otherwise."""

    def __init__(self, stream: TextIO, *, enabled: bool, rounds: int, label: str) -> None:
        self.stream = stream
        self.enabled = enabled
        self.rounds = rounds
        self.label = label
        self.live = enabled and stream.isatty()
        self._bars: Any = None  # a StageBars while live
        self._last: dict[str, int] = {}
        self.before_setup: str | None = None  #: printed once, when setup starts

    def __enter__(self) -> _Reporter:
        if self.live:
            from ssddl.runtime.progress import StageBars

            self._bars = StageBars(self.stream).__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bars is not None:
            self._bars.__exit__()

    def _update(self, stage: str, done: int, total: int, text: str = "") -> None:
        if not self.enabled:
            return
        if self._bars is not None:
            self._bars.update(stage, done, total, text)
            return
        step = max(1, total // 10)
        if done == total or done - self._last.get(stage, -step) >= step:
            self._last[stage] = done
            print(f"{stage}: {done}/{total} {text}".rstrip(), file=self.stream, flush=True)

    def setup(self, stage: str, done: int, total: int) -> None:
        if self.before_setup is not None:
            self.note(self.before_setup)
            self.before_setup = None
        self._update(stage, done, total)

    def round(self, metrics: Any) -> None:
        done = metrics.round + 1
        self._update(f"{self.label} rounds", done, self.rounds, f"acc {metrics.accuracy:.3f}")

    def plain_round(self, metrics: Any) -> None:
        """A round of the ``--compare plain`` reference run."""
        done = metrics.round + 1
        self._update("plain reference rounds", done, self.rounds, f"acc {metrics.accuracy:.3f}")

    def note(self, text: str) -> None:
        if self._bars is not None:
            self._bars.print(text)
        else:
            print(text, file=self.stream, flush=True)


def _print_table(summary: dict[str, Any], stream: TextIO) -> None:
    from rich.console import Console
    from rich.table import Table

    def fmt(value: Any, spec: str) -> str:
        return "—" if value is None else format(value, spec)

    table = Table(title=f"ssddl simulate — {summary['mode']}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows = [
        ("participants / group", f"{summary['participants']} / {summary['group_size']}"),
        (
            "rounds run (applied) / planned",
            f"{summary['rounds']} ({summary['rounds_applied']}) / {summary['rounds_planned']}",
        ),
        ("model parameters", f"{summary['model_size']:,}"),
        ("final test accuracy", fmt(summary["final_accuracy"], ".4f")),
    ]
    g = summary.get("guarantee") or {}
    if "collusion_bound" in g:
        lying = g.get("lying_collusion_bound")
        rows += [
            (
                "colluders / vanished tolerated (honest server)",
                f"{g['collusion_bound']} / {g['dropout_bound']}",
            ),
            (
                "colluders / vanished tolerated (lying server)",
                "none" if lying is None else f"{lying} / {g['lying_dropout_bound']}",
            ),
        ]
    if "compare" in summary:
        rows.append(
            ("accuracy − plain reference", fmt(summary["compare"]["accuracy_difference"], "+.4f"))
        )
    rows += [
        ("upload B / participant / round", f"{summary['upload_bytes_per_participant_round']:,.0f}"),
        ("plain float32 upload B", f"{summary['plain_upload_bytes_per_participant_round']:,}"),
        ("median round s", fmt(summary["round_seconds_median"], ".3f")),
        ("wall time s", f"{summary['wall_seconds']:.1f}"),
        ("rejected messages", str(summary["rejections"])),
        ("sums validated (--validate)", _validation_cell(summary)),
        ("run directory", summary["out"]),
    ]
    for name, value in rows:
        table.add_row(name, value)
    if "text" in g:
        table.caption = f"Guarantee: {g['text']}."
        table.caption_justify = "left"
    Console(file=stream, highlight=False).print(table)


def _validation_cell(summary: dict[str, Any]) -> str:
    """What ``--validate`` found: every applied round's sum against the plaintext sum."""
    validation = summary.get("validation") or {}
    if not validation.get("ran"):
        return "not run"
    return "passed, every round" if validation.get("passed") else "FAILED"


def _setup_warning(config: Any, costs: Any = None) -> str | None:
    """A note before a long key setup: its work counted from the configuration, its cost per
    step measured on this machine now (``costs``: given by tests)."""
    if not config.protocol.secure:
        return None
    from ssddl.runtime.setupcost import estimate_init

    estimate = estimate_init(config.protocol, config.participants, costs)
    if estimate is None or estimate.seconds < _WARN_SETUP_SECONDS:
        return None
    work, per = estimate.work, estimate.costs.agreement
    return (
        f"note: key setup for {config.participants} participants will take about "
        f"{estimate.seconds:,.0f} s before the first round ({work.agreements:,} pair key "
        f"agreements at {per * 1e6:,.0f} µs each, as measured on this machine now; longer while "
        f"other work shares it); progress is shown as it goes"
    )


def _no_round_applied(summary: dict[str, Any]) -> str:
    reasons = sorted({o["reason"] for o in summary["aborted"] if o.get("reason")})
    errors = sorted({f"{r['error']}: {r['detail']}" for r in summary.get("rejections_detail", [])})
    why = "; ".join(reasons + errors[:3]) or "every round aborted"
    return (
        f"no round was applied ({summary['rounds']} run): {cli_words(why)}. "
        f"The model is unchanged; see {summary['out']}/report.md"
    )


def _trackers(args: argparse.Namespace, out: Path) -> list[Any]:
    """The trackers the flags ask for (``--tensorboard [DIR]``), checked before training. A
    resumed run whose ``tensorboard/`` holds event files continues them, flag or not."""
    continued = args.resume is not None and any((out / "tensorboard").glob("events.*"))
    if args.tensorboard is None and not continued:
        return []
    from ssddl.experiments.tracking import TensorBoardCallback

    if args.tensorboard:
        return [TensorBoardCallback(args.tensorboard)]
    logdir = out / "tensorboard"
    if args.resume is None:  # a new run in an old directory: not mixed with the old run's
        for old in logdir.glob("events.out.tfevents.*"):
            old.unlink()
    return [TensorBoardCallback(logdir)]


def _simulate(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from ssddl.experiments.config import ExperimentConfig
    from ssddl.experiments.rundir import claim

    resume = args.resume is not None
    chosen = _resume_choices(args) if resume else _chosen(args)
    config = ExperimentConfig.from_choices(chosen)
    # the default directory is the latest run: an earlier one there is moved aside, not lost
    directory = claim(
        args.resume if resume else (args.out if args.out is not None else "runs/latest"),
        resume=resume,
        force=args.force or (args.out is None and not resume),
    )
    with directory:
        if directory.moved_aside is not None:
            print(
                f"ssddl: the earlier run in {directory.path} was moved to {directory.moved_aside}",
                file=sys.stderr,
            )
        return _simulate_in(args, argv, config, chosen, directory)


def _simulate_in(
    args: argparse.Namespace,
    argv: Sequence[str],
    config: ExperimentConfig,
    chosen: dict[str, Any],
    directory: RunDirectory,
) -> int:
    command = "ssddl " + shlex.join(argv)
    try:
        return _simulate_run(args, command, config, chosen, directory)
    except KeyboardInterrupt:
        line = _late_interrupt_line(directory)
        if line is None:
            raise  # before anything of the run was kept: main says so
        print(f"ssddl: {line}", file=sys.stderr)
        return _interrupted_status()


def _late_interrupt_line(directory: RunDirectory) -> str | None:
    """What a Ctrl-C or SIGTERM that escaped the run (while its end was reported or the
    table printed) leaves: the finished run, or the checkpoint to resume; None if nothing."""
    kept = directory.rounds_kept()
    if kept == 0:
        return None
    how = "terminated (SIGTERM)" if _terminated else "interrupted"
    state = directory.saved_state()
    if state is not None and state.finished:
        return f"{how} after the run finished; its files are complete in {directory.path}"
    return (
        f"{how}; the checkpoint after {kept} rounds is kept in {directory.path}. Continue "
        f"with: ssddl simulate --resume {shlex.quote(str(directory.path))}"
    )


def _simulate_run(
    args: argparse.Namespace,
    command: str,
    config: ExperimentConfig,
    chosen: dict[str, Any],
    directory: RunDirectory,
) -> int:
    from ssddl.experiments.run import json_safe, run_in_directory

    resume = args.resume is not None
    out = directory.path
    err = sys.stderr
    table_stream = err if args.json else sys.stdout
    callbacks = _trackers(args, out)
    with _Reporter(
        err,
        enabled=not args.no_progress,
        rounds=config.protocol.rounds if args.rounds is None else args.rounds,
        label=config.protocol.mode,
    ) as reporter:
        reporter.before_setup = _setup_warning(config)
        compare: Callable[[], None] = lambda: reporter.note(  # noqa: E731
            "running the plain reference with the same seeds (--compare plain)"
        )
        outcome = run_in_directory(
            config,
            directory,
            chosen=chosen,
            command=command,
            resume=resume,
            rounds=args.rounds if resume else None,
            on_round=reporter.round,
            on_setup=reporter.setup,
            on_compare=compare,
            callbacks=callbacks,
            on_compare_round=reporter.plain_round,
        )
    summary = outcome.summary
    _print_table(summary, table_stream)
    if args.json:
        line = json_safe(_json_line(summary))
        print(json.dumps(line, sort_keys=True, allow_nan=False), flush=True)
    if outcome.completed:
        print(
            f"ssddl: the run had finished all {summary['rounds_planned']} rounds; wrote the "
            f"final outputs an interruption left out ({', '.join(outcome.completed)})",
            file=err,
        )
    if outcome.interrupted:
        print(f"ssddl: {_interrupted_line(summary['rounds'], summary['rounds_planned'], out)}",
              file=err)  # fmt: skip
        return _interrupted_status()
    if summary["rounds_applied"] == 0:
        print(f"ssddl: error: {_no_round_applied(summary)}", file=err)
        return EXIT_NOTHING_APPLIED
    if summary["rounds_applied"] < summary["rounds"]:
        print(
            f"ssddl: warning: {summary['rounds'] - summary['rounds_applied']} of "
            f"{summary['rounds']} rounds were aborted; reasons in {out}/report.md",
            file=err,
        )
    return EXIT_OK


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is, so that it ends like Ctrl-C."""


_terminated = False


def _on_sigterm(signum: int, frame: object) -> None:
    global _terminated
    _terminated = True
    raise _Terminated


def _interrupted_status() -> int:
    return EXIT_TERMINATED if _terminated else EXIT_INTERRUPTED


def _interrupted_line(rounds: int, planned: int, out: Path) -> str:
    how = "terminated (SIGTERM)" if _terminated else "interrupted"
    again = f"ssddl simulate --resume {shlex.quote(str(out))}"
    if rounds == 0:
        return f"{how} before the first round finished; continue with: {again}"
    return (
        f"{how} after {rounds} of {planned} rounds; what finished is written to {out}. "
        f"Continue with: {again}"
    )


def _add_audit_parser(sub: Any) -> None:
    audit = sub.add_parser(
        "audit",
        help="run the published attacks against what the server and its colluders see",
        description="Run first-layer input recovery, DLG/iDLG (on each member's upload and on "
        "the aggregate the server decodes), coalitions of the server with c participants, "
        "lying-server strategies and Phong's shared-key attack on real runs; the same attacks "
        "and a same-model imprint on distributed DP's noised aggregate at several epsilon, and "
        "a canary test's empirical lower bound on epsilon against the accountant's; "
        "write report.md, audit.json and reconstructions.png. Exit status: 0 every claim "
        "held, 1 a claim failed (listed on stderr), 2 bad input.",
    )
    audit.add_argument(
        "--quick",
        action="store_true",
        help="a smaller audit (about a minute on 2 busy cores; the default several minutes)",
    )
    audit.add_argument(
        "--out",
        metavar="DIR",
        default="runs/audit",
        help="directory to write (default: runs/audit)",
    )
    audit.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object as the last line of stdout; tables go to stderr",
    )


def _audit(args: argparse.Namespace) -> int:
    from ssddl.attacks.audit import run_audit
    from ssddl.experiments.rundir import prepare_out_dir

    out = prepare_out_dir(args.out)  # before the work: a bad --out is refused at once
    report = run_audit(quick=args.quick, progress=lambda line: print(line, file=sys.stderr))
    report.write(out)
    table = sys.stderr if args.json else sys.stdout
    print(report.markdown(), file=table)
    print(f"ssddl: audit written to {out}", file=sys.stderr)
    failed = report.failed_claims()
    for claim in failed:
        print(f"ssddl: claim failed: {claim}", file=sys.stderr)
    if args.json:
        print(json.dumps(report.json_summary(), sort_keys=True, allow_nan=False), flush=True)
    return EXIT_NOTHING_APPLIED if failed else EXIT_OK


def _bench(args: argparse.Namespace) -> int:
    """``ssddl bench``: a thin layer over ``benchmarks.bench_perf.main``."""
    from ssddl.experiments.rundir import prepare_out_dir

    if args.publish:  # only on request: a quick check never replaces the published figures
        args.out = Path(__file__).resolve().parents[2]
    prepare_out_dir(str(args.out))  # before the work: a bad --out is refused at once
    try:
        from benchmarks import bench_perf
    except ImportError:
        checkout = Path(__file__).resolve().parents[2]
        if not (checkout / "benchmarks" / "bench_perf.py").is_file():
            print(
                "ssddl: error: the benchmarks/ directory was not found; run `ssddl bench` "
                "from a source checkout of ssddl",
                file=sys.stderr,
            )
            return EXIT_USAGE
        sys.path.insert(0, str(checkout))
        from benchmarks import bench_perf
    argv = ["--out", str(args.out)] + ["--quick"] * args.quick + ["--json"] * args.json
    return int(bench_perf.main(argv))


def _json_line(summary: dict[str, Any]) -> dict[str, Any]:
    drop = {"rejections_detail"}
    return {k: v for k, v in summary.items() if k not in drop}


def _reproduce(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from ssddl.experiments.reproduce import reproduce
    from ssddl.experiments.run import prepare_out_dir

    out = prepare_out_dir(args.out)
    with _Reporter(sys.stderr, enabled=not args.no_progress, rounds=0, label="") as reporter:
        summary = reproduce(
            out,
            quick=args.quick,
            data_dir=args.data_dir,
            command="ssddl " + shlex.join(argv),
            progress=lambda stage, done, total: reporter._update(
                stage.split(" ")[0], done, total, stage
            ),
            secaggplus=not args.no_secaggplus,
        )
    if args.json:
        print(json.dumps(summary, sort_keys=True, allow_nan=False), flush=True)
    else:
        print(f"report: {summary['report']}")
    return EXIT_OK


_show_warning = warnings.showwarning
_said: set[str] = set()


def _say_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """A SecurityWarning is one line in the CLI's words, once (the configuration is resolved
    in several places); any other warning as Python shows it."""
    if issubclass(category, SecurityWarning):
        text = f"ssddl: warning: {cli_words(str(message))}"
        if text not in _said:
            _said.add(text)
            print(text, file=sys.stderr)
    else:
        _show_warning(message, category, filename, lineno, file, line)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``ssddl`` command; SIGTERM ends it the way Ctrl-C does (status 143)."""
    global _terminated
    argv = list(sys.argv[1:] if argv is None else argv)
    warnings.showwarning = _say_warning
    args = build_parser().parse_args(argv)
    _terminated = False
    if threading.current_thread() is not threading.main_thread():
        return _run(args, argv)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return _run(args, argv)
    finally:
        signal.signal(signal.SIGTERM, previous)


#: errors of a write that the user fixes by freeing space or choosing another place
_WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO}


def _drop_stdout() -> None:
    """Point stdout at /dev/null so that the flush at exit does not fail a second time."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _not_written(exc: Any) -> str:
    """One line for a run stopped by a file it could not write."""
    kept = f"the checkpoint after {exc.rounds} rounds is kept" if exc.rounds else "no round is kept"
    again = f"ssddl simulate --resume {shlex.quote(str(exc.out))}"
    if not exc.resumable:
        return f"cannot write {exc.path}: {exc.reason}; nothing was kept: free space and run again"
    return f"cannot write {exc.path}: {exc.reason}; {kept}. Free space and continue with: {again}"


_COMMANDS: dict[str, Callable[[argparse.Namespace, Sequence[str]], int]] = {
    "simulate": lambda args, argv: _simulate(args, argv),
    "audit": lambda args, argv: _audit(args),
    "keys": lambda args, argv: _keys(args),
    "supernode": lambda args, argv: _supernode(args),
    "reproduce": lambda args, argv: _reproduce(args, argv),
    "bench": lambda args, argv: _bench(args),
}


def _run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """Run the command; every error a user can act on becomes one line on stderr."""
    from ssddl.experiments.rundir import OutputError, OutputsInterrupted, RunNotWritten

    try:
        return _COMMANDS[args.command](args, argv)
    except RunNotWritten as exc:
        print(f"ssddl: error: {_not_written(exc)}", file=sys.stderr)
        return EXIT_NOT_WRITTEN
    except OutputError as exc:
        print(f"ssddl: error: {exc}; free space and run again", file=sys.stderr)
        return EXIT_NOT_WRITTEN
    except SSDDLError as exc:
        print(f"ssddl: error: {cli_words(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        _drop_stdout()
        return EXIT_BROKEN_PIPE
    except OSError as exc:
        return _write_failed(exc)
    except OutputsInterrupted as exc:
        print(
            f"ssddl: {'terminated (SIGTERM)' if _terminated else 'interrupted'} while writing "
            f"the final outputs; the checkpoint after {exc.rounds} rounds is kept. Continue "
            f"with: ssddl simulate --resume {shlex.quote(str(exc.out))}",
            file=sys.stderr,
        )
        return _interrupted_status()
    except KeyboardInterrupt:
        what = "terminated (SIGTERM)" if _terminated else "interrupted"
        print(f"ssddl: {what} before training started; nothing new was written", file=sys.stderr)
        return _interrupted_status()


def _write_failed(exc: OSError) -> int:
    """A write that failed outside a run directory: stdout, or a file of reproduce, audit,
    bench or keys. Any other OSError is a bug, shown as one."""
    if exc.errno not in _WRITE_ERRORS:
        raise exc
    if exc.filename is None:  # the run's own files name themselves: this is stdout
        _drop_stdout()
        print(f"ssddl: error: cannot write to standard output: {exc.strerror}; the run "
              f"directory holds the results", file=sys.stderr)  # fmt: skip
        return EXIT_NOT_WRITTEN
    print(f"ssddl: error: cannot write {exc.filename}: {exc.strerror}; free space and "
          f"run again", file=sys.stderr)  # fmt: skip
    return EXIT_NOT_WRITTEN


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
