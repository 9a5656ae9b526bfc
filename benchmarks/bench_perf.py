"""The performance report of issue 12: ``BENCHMARKS.md`` with tables and PNG plots.

    ssddl bench [--quick] [--json] [--out DIR]
    python -m benchmarks.bench_perf [--quick] [--json] [--out DIR]

1. Round time of prg (every recovery option, the consistency round) as a ratio to plain FedAvg
   in the same simulator, same model and seeds, sessions interleaved (``benchmarks.rounds``).
2. Mask throughput: building a member's combined mask of n streams (n - 1 pair masks and the
   self-mask) as a ratio to the raw AES-256-CTR ceiling measured in the same run.
3. Scaling: round time, bytes and peak memory (the process's and the server's own) against
   the number of registered participants N (10 to 1000, groups of min(N, 100)), the group
   size and the model size M, each point in a fresh process (``benchmarks.scale``).
4. HE baselines: the Phong et al. back ends (Paillier, BFV) per participant and round — time
   to encrypt an update and bytes uploaded — as ratios to SSDDL prg's member cost (encode,
   combined mask of n = 10 streams, add; its masked upload) at the same M, in the same run.

``--json`` prints one JSON object as the last line of stdout with at least
``prg_over_plain_round`` (default run), ``prg_over_plain_step`` (one SGD step per round),
``prg_over_plain_n100``, ``mask_over_ceiling`` (n = 10, M = 10**6), ``dp_upload_over_plain``
and ``dp_noise_over_mask`` (``benchmarks.bench_noise.dp_section``). Numbers depend on the
machine's load: the report records the load average before and after the run.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import base_parser, environment, markdown_table
from benchmarks.bench_flower import perf_section, target_headline
from benchmarks.bench_noise import dp_section
from benchmarks.rounds import CASES, ratio
from benchmarks.scale import scale_points
from ssddl.hazmat.prg import keystream_engine

NAME = "BENCHMARKS"
KEY = bytes(range(32))

#: (label, options) measured on the one-step case besides the default prg
OPTIONS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("prg (double-mask, default)", {"mode": "prg"}),
    ("prg + consistency round", {"mode": "prg", "consistency": True}),
    ("prg, recovery none", {"mode": "prg", "recovery": "none"}),
    ("prg, unsafe-reveal-keys", {"mode": "prg", "recovery": "unsafe-reveal-keys"}),
)


def _plan(quick: bool) -> dict[str, Any]:
    if quick:
        return {
            "rounds": 3,
            "pairs": 1,
            "cases": ("default", "step"),
            "n100_rounds": 2,
            "n100_pairs": 1,
            "mask_sizes": (10**5, 10**6),
            "mask_groups": (10,),
            "mask_repeats": 3,
            "scaling": _scaling_specs(quick=True),
            "he": (("paillier-2048", (1_000,)), ("bfv-4096", (10_000,))),
            "options": OPTIONS[:2],
        }
    return {
        "rounds": 8,
        "pairs": 5,
        "cases": ("default", "wide", "step", "cnn"),
        "n100_rounds": 4,
        "n100_pairs": 3,
        "mask_sizes": (10**5, 10**6, 10**7),
        "mask_groups": (10, 100),
        "mask_repeats": 7,
        "scaling": _scaling_specs(quick=False),
        "he": (
            ("paillier-2048", (1_000, 10_000, 100_000)),
            ("bfv-4096", (10_000, 100_000, 1_000_000)),
        ),
        "options": OPTIONS,
    }


# -- masks -------------------------------------------------------------------------------


def _raw_aes(nbytes: int, streams: int = 1) -> float:
    """Seconds of raw AES-256-CTR keystream, ``streams`` streams of ``nbytes`` each (one
    thread, one fresh encryptor per stream, a reused 1 MiB buffer): the ceiling."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    size = 1 << 20
    zeros, out = memoryview(bytes(size)), memoryview(bytearray(size))
    full, rest = divmod(nbytes, size)
    started = time.perf_counter()
    for index in range(streams):
        counter = index.to_bytes(12, "big") + bytes(4)
        update_into = Cipher(algorithms.AES(KEY), modes.CTR(counter)).encryptor().update_into
        for _ in range(full):
            update_into(zeros, out)
        if rest:
            update_into(zeros[:rest], out[:rest])
    return time.perf_counter() - started


def _mask_build(m: int, n: int) -> float:
    from ssddl.hazmat.prg import StreamCipher, derive_nonce
    from ssddl.protocol.masks import combined_mask

    streams = [(KEY, derive_nonce(b"bench", 0, 0, j, "mask"), 1 if j % 2 else -1) for j in range(n)]
    started = time.perf_counter()
    combined_mask(m, np.dtype(np.uint32), streams, StreamCipher.AES_CTR)
    return time.perf_counter() - started


def mask_throughput(sizes: tuple[int, ...], groups: tuple[int, ...], repeats: int) -> list[dict]:
    """Combined-mask build of n streams of M words vs n raw keystreams, interleaved; best
    of ``repeats`` each, and of proportionally more below M = 10^6 (a build of 10 streams of
    10^5 words takes half a millisecond, so one busy moment of the machine moves the best of
    a few)."""
    rows = []
    for n in groups:
        for m in sizes:
            # n = 100, M = 10**7 would be 4 GB of keystream: fewer streams are measured
            n_used = max(2, 2 * 10**8 // m) if n * m > 2 * 10**8 else n
            raw, built = [], []
            for _ in range(repeats * max(1, 10**6 // m)):
                raw.append(_raw_aes(4 * m, n_used))
                built.append(_mask_build(m, n_used))
            rows.append(
                {
                    "n": n,
                    "streams_measured": n_used,
                    "M": m,
                    "raw_GB_per_s": 4 * m * n_used / min(raw) / 1e9,
                    "mask_GB_per_s": 4 * m * n_used / min(built) / 1e9,
                    "ratio": min(raw) / min(built),
                }
            )
    return rows


# -- scaling ----------------------------------------------------------------------------


def _scaling_specs(quick: bool) -> list[dict[str, Any]]:
    """The points of the three scaling curves: against N (groups of min(N, 100), M = 10^5),
    against the group size (N = 300) and against M (N = 20, everyone in every group)."""

    def spec(curve: str, n: int, group: int, m: int, mode: str = "prg") -> dict[str, Any]:
        return {"curve": curve, "N": n, "group": group, "M": m, "mode": mode, "rounds": 3}

    if quick:
        return [
            spec("N", 10, 10, 10**5),
            spec("N", 200, 100, 10**5),
            spec("N", 200, 100, 10**5, "plain"),
            spec("M", 20, 20, 10**4),
        ]
    specs = [
        spec("N", n, min(n, 100), 10**5, mode)
        for n in (10, 100, 300, 1000)
        for mode in ("plain", "prg")
    ]
    # the default, forward-secure pair keys at N = 1000: every member agrees with all 999
    specs.append(dict(spec("N", 1000, 100, 10**5), keys="eager"))
    specs += [spec("group", 300, g, 10**5) for g in (30, 100, 200)]
    specs += [spec("M", 20, 20, m, mode) for m in (10**4, 10**6) for mode in ("plain", "prg")]
    return specs


def scaling(specs: list[dict[str, Any]], log: Callable[[str], None]) -> list[dict[str, Any]]:
    """Every scaling point, each in its own process (``benchmarks.scale``)."""
    return scale_points(specs, log)


# -- HE baselines ------------------------------------------------------------------------


def _ssddl_member(m: int, n: int = 10, repeats: int = 3) -> tuple[float, int]:
    """SSDDL prg's work per member and round at M = ``m`` in groups of ``n`` — encode, build
    the combined mask (n - 1 pair masks and the self-mask), add — best of ``repeats``; and
    the bytes of its masked upload (ring vector and n - 1 sealed seed shares)."""
    from ssddl.hazmat.codec import FixedPoint, encode
    from ssddl.hazmat.prg import StreamCipher, derive_nonce
    from ssddl.protocol.masks import combined_mask
    from ssddl.protocol.messages import MaskedUpload

    codec = FixedPoint(ring_bits=32, frac_bits=16, clip=4.0)
    values = np.random.default_rng(0).normal(0, 0.05, m)
    streams = [(KEY, derive_nonce(b"bench", 0, 1, j, "mask"), 1 if j % 2 else -1) for j in range(n)]
    best = float("inf")
    x = np.empty(m + 1, dtype=np.uint32)
    for _ in range(repeats):
        started = time.perf_counter()
        x = np.empty(m + 1, dtype=np.uint32)
        encode(values, codec, out=x[:-1])
        x[-1] = 1
        x += combined_mask(m + 1, np.dtype(np.uint32), streams, StreamCipher.AES_CTR)
        best = min(best, time.perf_counter() - started)
    sealed = bytes(40 + 12 + 16)  # a five-word seed share, its nonce and its tag
    upload = MaskedUpload(bytes(16), 0, 1, x, tuple(range(2, n + 1)), (sealed,) * (n - 1))
    return best, len(upload.encode())


def he_baselines(
    cases: tuple[tuple[str, tuple[int, ...]], ...], log: Callable[[str], None]
) -> list[dict[str, Any]]:
    """Per participant and round: HE encryption time and ciphertext bytes (the Phong et al.
    upload), against SSDDL prg's member cost at the same M, measured here."""
    from benchmarks.bench_he import measure

    rows = []
    for name, sizes in cases:
        for m in sizes:
            he = measure(name, m, 10)
            seconds, nbytes = _ssddl_member(m)
            log(f"  HE {name} M={m}: encrypt {he['encrypt_seconds']:.3f} s vs {seconds:.4f} s")
            rows.append(
                {
                    "backend": name,
                    "M": m,
                    "he_seconds": he["encrypt_seconds"],
                    "he_bytes": he["ciphertext_bytes"],
                    "he_decrypt_seconds": he["decrypt_seconds"],
                    "he_add_seconds": he["add_seconds"],
                    "prg_seconds": seconds,
                    "prg_bytes": nbytes,
                    "time_ratio": he["encrypt_seconds"] / seconds,
                    "bytes_ratio": he["ciphertext_bytes"] / nbytes,
                }
            )
    return rows


# -- report ------------------------------------------------------------------------------


def _plots(out: Path, payload: dict[str, Any]) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - matplotlib is a dependency
        return []
    names = []
    fig, ax = plt.subplots(figsize=(7, 3.5))
    rows = payload["rounds"]
    ax.barh([r["case"] for r in rows], [r["ratio_median"] for r in rows])
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel("round time / plain FedAvg")
    fig.tight_layout()
    fig.savefig(out / "bench_rounds.png")
    names.append("bench_rounds.png")
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for n in sorted({r["n"] for r in payload["masks"]}):
        sel = [r for r in payload["masks"] if r["n"] == n]
        ax.semilogx([r["M"] for r in sel], [r["ratio"] for r in sel], marker="o", label=f"n={n}")
    ax.axhline(0.8, color="red", linewidth=0.8, linestyle="--", label="target 0.8")
    ax.set_xlabel("M (words)")
    ax.set_ylabel("mask build / raw AES-CTR")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "bench_masks.png")
    names.append("bench_masks.png")
    plt.close(fig)
    names.append(_plot_scaling(plt, out, payload["scaling"]))
    return names


def _plot_scaling(plt: Any, out: Path, rows: list[dict[str, Any]]) -> str:
    """Round time, server peak and process peak against N, group size and M."""
    curves = (
        ("N", "N", "registered participants N"),
        ("group", "group", "group size n"),
        ("M", "model_size", "M (words)"),
    )
    fields = (
        ("round_seconds", "round s"),
        ("server_peak_mb", "server peak MB"),
        ("process_peak_mb", "process peak MB"),
    )
    fig, axes = plt.subplots(3, 3, figsize=(12, 9))
    for col, (curve, key, label) in enumerate(curves):
        for mode in ("plain", "prg"):
            sel = sorted(
                (r for r in rows if r["curve"] == curve and r["mode"] == mode),
                key=lambda r: r[key],
            )
            for row_index, (field, unit) in enumerate(fields):
                axis = axes[row_index][col]
                if sel:
                    axis.plot([r[key] for r in sel], [r[field] for r in sel], "o-", label=mode)
                    axis.legend()
                axis.set_xscale("log")
                axis.set_xlabel(label)
                axis.set_ylabel(unit)
    fig.tight_layout()
    fig.savefig(out / "bench_scaling.png")
    plt.close(fig)
    return "bench_scaling.png"


def _render_scaling(rows: list[dict[str, Any]]) -> list[str]:
    big = [r for r in rows if r["curve"] == "N" and r["mode"] == "prg"]
    tops = [r for r in big if r["N"] == max(r["N"] for r in big)]
    lines = [
        "## Scaling against N, group size and M (one SGD step per round)",
        "",
        "Each point is one simulated session of 3 rounds in a fresh process (round time: the "
        "median of rounds 2 and 3). Server peak: `tracemalloc` from a round's first upload to "
        "its end (summing, unmasking, updating; uploads are added to one running sum as they "
        "arrive; the members' answers during unmasking are traced too, so this bounds the "
        "server's peak from above). Process peak: peak resident memory (VmHWM) of the whole "
        "simulation — all N participants, the transport's frames and the model live in that "
        "one process. "
        "Groups smaller than N pair along a graph per round, with pair keys agreed lazily "
        "(on a pair's first round) or, where the row says eager, all at Init (the default, "
        "forward-secure).",
    ]
    for top in tops:
        upload_mb = 4 * (top["model_size"] + 1) / 2**20
        lines += [
            "",
            f"**N = {top['N']}, groups of {top['group']}, M = {top['model_size']:,}** (prg, "
            f"k = {top['degree']}, pair keys {top['pair_keys']}): Init "
            f"{top['init_seconds']:.1f} s, round {top['round_seconds']:.2f} s, server peak "
            f"{top['server_peak_mb']:.1f} MB (one upload: {upload_mb:.2f} MB), process peak "
            f"{top['process_peak_mb']:.0f} MB.",
        ]
    headers = ["curve", "N", "group", "M", "mode", "k", "Init s", "round s"]
    headers += ["upload B/member", "session MB", "server peak MB", "process peak MB"]
    table = [
        [
            r["curve"],
            r["N"],
            r["group"],
            f"{r['model_size']:,}",
            r["mode"]
            + (f", {r['pair_keys']} keys" if r["mode"] == "prg" and r["group"] < r["N"] else ""),
            r["degree"] or "—",
            f"{r['init_seconds']:.2f}",
            f"{r['round_seconds']:.3f}",
            f"{r['upload_bytes']:,.0f}",
            f"{r['total_bytes'] / 1e6:.1f}",
            f"{r['server_peak_mb']:.1f}",
            f"{r['process_peak_mb']:.0f}",
        ]
        for r in rows
    ]
    return [*lines, "", markdown_table(headers, table)]


def _render_he(rows: list[dict[str, Any]]) -> list[str]:
    headers = ["backend", "M", "HE encrypt s", "prg member s", "× time", "HE bytes"]
    headers += ["prg bytes", "× bytes", "HE add s", "HE decrypt s"]
    table = [
        [
            r["backend"],
            f"{r['M']:,}",
            f"{r['he_seconds']:.4f}",
            f"{r['prg_seconds']:.5f}",
            f"{r['time_ratio']:.1f}",
            f"{r['he_bytes']:,}",
            f"{r['prg_bytes']:,}",
            f"{r['bytes_ratio']:.2f}",
            f"{r['he_add_seconds']:.4f}",
            f"{r['he_decrypt_seconds']:.4f}",
        ]
        for r in rows
    ]
    return [
        "## HE baselines (Phong et al.) against SSDDL prg",
        "",
        "Per participant and round at the same M: the time to encrypt one update (Paillier "
        "packs several fixed-point words per plaintext; BFV, N = 4096, batches 4096 slots) "
        "and the bytes of its ciphertext upload, against SSDDL prg's member work (encode, "
        "combined mask of n = 10 streams, add) and its masked upload. Back ends sized for "
        "sums of 10 uploads; every HE sum is checked against the plaintext ring sum.",
        "",
        markdown_table(headers, table),
    ]


def _spread(ratios: list[float] | None) -> str:
    return f"{min(ratios):.2f}–{max(ratios):.2f}" if ratios else ""


def render(payload: dict[str, Any], plots: list[str]) -> str:
    env = payload["environment"]
    lines = [
        "# Benchmarks",
        "",
        f"Command: `{payload['command']}` ({'quick' if payload['quick'] else 'full'} run, "
        f"{payload['seconds']:.0f} s). Machine: {env['platform']}, {env['cpus']} CPUs, Python "
        f"{env['python']}, numpy {env['numpy']}, cryptography {env['cryptography']}, "
        f"{env['time_utc']}. Load average (1 min) before / after: {payload['load_before']:.2f}"
        f" / {payload['load_after']:.2f} — the machine is shared, so ratios (measured with "
        "plain and prg sessions interleaved) are the numbers to read, not absolute times.",
        "",
        "## Round time against plain FedAvg",
        "",
        "Median over interleaved session pairs of median(round time, prg) / median(round time, "
        "plain); the first round of every session is left out. *Pairs range*: the lowest and "
        "highest of the pairs' ratios (how much the shared machine moved them); *× plain CPU*: "
        "the same median of CPU time per round, the mask worker process's included.",
        "",
        markdown_table(
            [
                "case",
                "mode",
                "n",
                "M",
                "× plain",
                "pairs range",
                "× plain CPU",
                "plain ms",
                "mode ms",
                "share ms",
                "pairs",
            ],
            [
                [
                    r["case"],
                    r["mode_label"],
                    r["participants"],
                    f"{r['model_size']:,}",
                    f"{r['ratio_median']:.3f}",
                    _spread(r.get("ratios")),
                    f"{r['cpu_ratio_median']:.3f}" if "cpu_ratio_median" in r else "",
                    f"{1e3 * r['plain_round_seconds']:.1f}",
                    f"{1e3 * r['mode_round_seconds']:.1f}",
                    f"{1e3 * r['share_seconds']:.2f}",
                    r["pairs"],
                ]
                for r in payload["rounds"]
            ],
        ),
        "",
        "## Mask build against the raw AES-256-CTR ceiling",
        "",
        "A member's combined mask of n streams of M uint32 words (`combined_mask`: every "
        "stream folded into one vector, split over the CPUs), against the raw ceiling: the "
        "same n keystreams of M words from `cryptography`, one thread, into a reused buffer, "
        "measured in the same loop; best of the repeats. For n = 100, M = 10^7 fewer "
        "streams are measured (4 GB otherwise). The mask's AES streams of 256 KiB or more "
        "are written by `cryptography`'s AES-GCM encryptor where it is the faster on the "
        "machine (the same bytes: GCM encrypts with this CTR stream from its third block; "
        "`ssddl.hazmat.prg.keystream_engine()`, this run: "
        f"`{payload.get('keystream_engine', 'aes-ctr')}`); the ceiling stays raw AES-CTR.",
        "",
        markdown_table(
            ["n", "streams", "M", "raw GB/s", "mask GB/s", "ratio"],
            [
                [
                    r["n"],
                    r["streams_measured"],
                    f"{r['M']:.0e}",
                    f"{r['raw_GB_per_s']:.2f}",
                    f"{r['mask_GB_per_s']:.2f}",
                    f"{r['ratio']:.2f}",
                ]
                for r in payload["masks"]
            ],
        ),
        "",
        *_render_scaling(payload["scaling"]),
        "",
        *_render_he(payload["he"]),
        "",
        *payload.get("flower", {}).get("lines", []),
        "## Headline",
        "",
        "```json",
        json.dumps(payload["headline"], indent=2, sort_keys=True),
        "```",
    ]
    lines += ["", *(f"![{name}]({name})" for name in plots)]
    return "\n".join(lines) + "\n"


def run(quick: bool, log: Callable[[str], None]) -> dict[str, Any]:
    plan = _plan(quick)
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    rounds = []
    for name in plan["cases"]:
        log(f"round time: {name}")
        row = ratio(
            CASES[name], {"mode": "prg"}, rounds=plan["rounds"], pairs=plan["pairs"], log=log
        )
        rows_key = dict(row, key=name, mode_label="prg (double-mask, default)")
        rounds.append(rows_key)
    for label, options in plan["options"][1:]:
        log(f"round time: step, {label}")
        row = ratio(CASES["step"], options, rounds=plan["rounds"], pairs=plan["pairs"], log=log)
        rounds.append(dict(row, key=f"step:{label}", mode_label=label))
    log("round time: n = 100")
    n100 = {"rounds": plan["n100_rounds"], "pairs": plan["n100_pairs"], "log": log}
    row = ratio(CASES["n100"], {"mode": "prg"}, **n100)
    k = row["degree"]
    rounds.append(dict(row, key="n100", mode_label=f"prg, sparse pairing (default, k = {k})"))
    if not quick:
        complete = {"mode": "prg", "sparse_from": 101}
        row = ratio(CASES["n100"], complete, **n100)
        rounds.append(dict(row, key="n100-complete", mode_label="prg, complete graph"))
    log("mask throughput")
    masks = mask_throughput(plan["mask_sizes"], plan["mask_groups"], plan["mask_repeats"])
    log("scaling")
    scale = scaling(plan["scaling"], log)
    log("HE baselines")
    he = he_baselines(plan["he"], log)
    log("Flower: FedAvg, SecAgg+ and SSDDL")
    flower = perf_section(quick, log)  # Flower's SecAgg+ and FedAvg against SSDDL
    dp = dp_section(quick, log)  # distributed DP: bytes at bits = 20, noise + packing time
    by_key = {r["key"]: r for r in rounds}
    mask_10 = next(r for r in masks if r["n"] == 10 and r["M"] == 10**6)
    headline = {
        "prg_over_plain_round": by_key["default"]["ratio_median"],
        "prg_over_plain_step": by_key["step"]["ratio_median"],
        "prg_over_plain_n100": by_key["n100"]["ratio_median"],
        "mask_over_ceiling": mask_10["ratio"],
        "mask_over_ceiling_min": min(r["ratio"] for r in masks),
        **target_headline(flower["rows"]),
        "dp_upload_over_plain": dp["dp_upload_over_plain"],
        "dp_noise_over_mask": dp["dp_noise_over_mask"],
    }
    return {
        "quick": quick,
        "environment": environment(),
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "seconds": time.perf_counter() - started,
        "rounds": rounds,
        "masks": masks,
        "keystream_engine": keystream_engine(),
        "scaling": scale,
        "he": he,
        "flower": flower,
        "dp": dp,
        "headline": headline,
    }


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0] if __doc__ else "bench")
    parser.add_argument("--json", action="store_true", help="last stdout line: one JSON object")
    args = parser.parse_args(argv)
    out: Path = args.out if args.out is not None else Path(".")
    log: Callable[[str], None] = (lambda m: print(m, file=sys.stderr)) if args.json else print
    payload = run(args.quick, log)
    payload["command"] = "ssddl bench" + (" --quick" if args.quick else "")
    out.mkdir(parents=True, exist_ok=True)
    plots = _plots(out, payload)
    (out / f"{NAME}.md").write_text(render(payload, plots))
    (out / "bench_perf.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    log(f"wrote {out / (NAME + '.md')}")
    if args.json:
        print(json.dumps(payload["headline"], sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
