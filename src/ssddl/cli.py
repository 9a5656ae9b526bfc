"""The ``ssddl`` command: a thin layer over :mod:`ssddl.experiments`.

``ssddl simulate`` runs the SSDDL protocol in one process and writes a run directory.
Options given on the command line override those of ``--config FILE.toml``. Every option is
described once, in :data:`ssddl.experiments.options.OPTIONS`; this module builds the parser
from it and imports torch only once a run starts, so ``--help`` and ``--version`` are quick.

Exit status: 0 done; 1 the run finished but applied no round; 2 a bad option, file or
directory (one line on stderr naming it and the fix); 130 interrupted (Ctrl-C), with what
finished written.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from ssddl import __version__
from ssddl.exceptions import SecurityWarning, SSDDLError
from ssddl.experiments.options import OPTIONS, Option, cli_words
from ssddl.validators import did_you_mean

__all__ = ["build_parser", "main", "reference_markdown"]

EXIT_OK = 0
EXIT_NOTHING_APPLIED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

#: Setup seconds per pair of participants (X25519 + HKDF + signature checks), measured on a
#: 2-core machine; used only to warn before a long setup.
_SETUP_SECONDS_PER_PAIR = 1.9e-4
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
            "options in DIR/config.toml; ends with the same model as an uninterrupted run",
        },
    ),
    (
        "--out",
        {
            "metavar": "DIR",
            "help": "run directory to write (created if missing; checked before training) "
            "(default: runs/latest)",
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
        if choices is not None:
            kwargs["choices"] = [spec.type(c) for c in choices]
            kwargs["metavar"] = "{" + ",".join(choices) + "}"
    group.add_argument(spec.flag, **kwargs)


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
        "model.safetensors, checkpoint/). Exit status: 0 done, 1 no round applied, 2 bad "
        "input, 130 interrupted.",
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
        "the CSV behind each figure. The full run takes up to 30 minutes on 2 cores.",
    )
    rep.add_argument("--quick", action="store_true", help="small sizes: about 2 minutes")
    rep.add_argument("--out", metavar="DIR", default="runs/reproduce", help="output directory")
    rep.add_argument(
        "--data-dir", metavar="DIR", help="directory with the MNIST IDX files: adds MNIST to E1"
    )
    rep.add_argument("--no-progress", action="store_true", help="do not show progress")
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
    gen.add_argument("--participants", type=int, required=True, metavar="N")
    gen.add_argument("--out", type=Path, required=True, metavar="DIR")
    certs = what.add_parser(
        "certs",
        help="a CA, a server certificate for 127.0.0.1 and optional SuperNode auth keys",
    )
    certs.add_argument("--out", type=Path, required=True, metavar="DIR")
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
    node.add_argument("flower_args", nargs=argparse.REMAINDER, metavar="-- FLOWER_ARGS")


def _keys(args: argparse.Namespace) -> int:
    """``ssddl keys gen|certs``: files only, printed one per line (never key material)."""
    from ssddl.exceptions import ConfigurationError
    from ssddl.runtime.keyfiles import write_identities

    out = Path(args.out)
    if args.keys_command == "gen":
        written = write_identities(out, args.participants)
        for path in (*written.keys.values(), written.roster):
            print(path)
        return EXIT_OK
    if args.keys_command in ("app-key", "sign-app"):
        return _app_signing(args)
    from ssddl.runtime.flower.certs import make_node_key, make_tls_material

    if args.supernodes < 0:
        raise ConfigurationError("--supernodes must be >= 0")
    if not out.is_dir():
        raise ConfigurationError(f"--out {str(out)!r} is not a directory; create it first")
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
    run_supernode(args.app_signatures, flower_args)
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
    bench.add_argument("--out", type=Path, default=Path("."), help="where BENCHMARKS.md goes")


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
            chosen[spec.key] = value
    return chosen


def _resume_choices(args: argparse.Namespace) -> dict[str, Any]:
    from ssddl.experiments.config import flatten, load_toml

    given = [spec.flag for spec in OPTIONS if getattr(args, spec.dest) is not None]
    if args.config is not None:
        given.append("--config")
    if args.out is not None:
        given.append("--out")
    if given:
        raise SSDDLError(
            f"--resume continues a run with its own options; drop {', '.join(given)} "
            f"(or start a new run with --config DIR/config.toml)"
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
        self._bar: Any = None
        self._tasks: dict[str, Any] = {}
        self._last: dict[str, int] = {}
        self.before_setup: str | None = None  #: printed once, when setup starts

    def __enter__(self) -> _Reporter:
        if self.live:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._bar = Progress(
                TextColumn("[bold]{task.fields[stage]}[/bold]"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=Console(file=self.stream),
            )
            self._bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)

    def _update(self, stage: str, done: int, total: int, text: str = "") -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            task = self._tasks.get(stage)
            if task is None:
                task = self._bar.add_task(text, total=total, stage=stage)
                self._tasks[stage] = task
            self._bar.update(task, completed=done, description=text)
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

    def note(self, text: str) -> None:
        if self._bar is not None:
            self._bar.console.print(text, highlight=False, markup=False)
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
        ("run directory", summary["out"]),
    ]
    for name, value in rows:
        table.add_row(name, value)
    Console(file=stream, highlight=False).print(table)


def _setup_warning(config: Any) -> str | None:
    if not config.protocol.secure:
        return None
    n = config.participants
    seconds = _SETUP_SECONDS_PER_PAIR * n * (n - 1)
    if seconds < _WARN_SETUP_SECONDS:
        return None
    return (
        f"note: key setup for {n} participants takes roughly {seconds:,.0f} s before the first "
        f"round (it grows with the square of --participants); progress is shown as it goes"
    )


def _no_round_applied(summary: dict[str, Any]) -> str:
    reasons = sorted({o["reason"] for o in summary["aborted"] if o.get("reason")})
    errors = sorted({f"{r['error']}: {r['detail']}" for r in summary.get("rejections_detail", [])})
    why = "; ".join(reasons + errors[:3]) or "every round aborted"
    return (
        f"no round was applied ({summary['rounds']} run): {cli_words(why)}. "
        f"The model is unchanged; see {summary['out']}/report.md"
    )


def _simulate(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from ssddl.experiments.config import ExperimentConfig
    from ssddl.experiments.run import json_safe, prepare_out_dir, run_in_directory

    resume = args.resume is not None
    chosen = _resume_choices(args) if resume else _chosen(args)
    config = ExperimentConfig.from_choices(chosen)
    out = prepare_out_dir(
        args.resume if resume else (args.out if args.out is not None else "runs/latest")
    )
    err = sys.stderr
    table_stream = err if args.json else sys.stdout
    command = "ssddl " + shlex.join(argv)
    with _Reporter(
        err,
        enabled=not args.no_progress,
        rounds=config.protocol.rounds,
        label=config.protocol.mode,
    ) as reporter:
        reporter.before_setup = _setup_warning(config)
        compare: Callable[[], None] = lambda: reporter.note(  # noqa: E731
            "running the plain reference with the same seeds (--compare plain)"
        )
        outcome = run_in_directory(
            config,
            out,
            chosen=chosen,
            command=command,
            resume=resume,
            on_round=reporter.round,
            on_setup=reporter.setup,
            on_compare=compare,
        )
    summary = outcome.summary
    _print_table(summary, table_stream)
    if args.json:
        line = json_safe(_json_line(summary))
        print(json.dumps(line, sort_keys=True, allow_nan=False), flush=True)
    if outcome.interrupted:
        print(
            f"ssddl: interrupted after {summary['rounds']} of {summary['rounds_planned']} "
            f"rounds; what finished is written to {out}. Continue with: "
            f"ssddl simulate --resume {shlex.quote(str(out))}",
            file=err,
        )
        return EXIT_INTERRUPTED
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

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        print(f"ssddl: error: --out {out} is a file; give a directory", file=sys.stderr)
        return EXIT_USAGE
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
        path = reproduce(
            out,
            quick=args.quick,
            data_dir=args.data_dir,
            command="ssddl " + shlex.join(argv),
            progress=lambda stage, done, total: reporter._update(
                stage.split(" ")[0], done, total, stage
            ),
        )
    print(f"report: {path}")
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
    argv = list(sys.argv[1:] if argv is None else argv)
    warnings.showwarning = _say_warning
    args = build_parser().parse_args(argv)
    try:
        if args.command == "simulate":
            return _simulate(args, argv)
        if args.command == "audit":
            return _audit(args)
        if args.command == "keys":
            return _keys(args)
        if args.command == "supernode":
            return _supernode(args)
        if args.command == "reproduce":
            return _reproduce(args, argv)
        if args.command == "bench":
            return _bench(args)
    except SSDDLError as exc:
        print(f"ssddl: error: {cli_words(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("ssddl: interrupted before training started; nothing was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_USAGE  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
