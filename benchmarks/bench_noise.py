"""Noise sampling for distributed DP against the mask it hides under.

For M words (default 10**6): the time to draw M discrete Gaussian words (exact inversion,
:mod:`ssddl.hazmat.noise`: 32-bit keystream words through a compiled table lookup) at several
σ², M Skellam words, packing and unpacking M words at 20 bits (:mod:`ssddl.hazmat.packing`),
and the conditional rounding and rotation of an M-vector, each against the time to build one
M-word uint32 pair mask with the project's PRG (``keystream_into``, AES-256-CTR) and a
member's whole mask of ``n - 1 = 9`` streams (``combine_keystreams``), measured in the same
run, interleaved, best of ``repeat``.

Run: ``python -m benchmarks.bench_noise [--quick] [--out DIR] [--words M] [--repeat R]``;
prints JSON (and writes ``bench_noise.json``/``.md`` under ``--out``).

:func:`dp_section` is what ``ssddl bench`` (``benchmarks.bench_perf``) reports for
distributed DP: ``dp_upload_over_plain`` (a member's upload bytes per round with ``--dp ddg``
at ``bits = 20``, over plain float32 FedAvg's, on the default model) and
``dp_noise_over_mask`` (a member's noise draw plus packing of M = 10**6 words, over the
member's mask of ``n = 10`` streams, interleaved, best of several; both sides time the whole
call on the wall clock, and each may use the machine's cores: the mask's segments go to helper
threads from 8 MiB of keystream on, the noise's 2**18-word segments from 2**19 words on).
``noise_keystream_ms``
is the AES keystream alone that the draw reads, so ``noise_ms - noise_keystream_ms`` is the
table lookup. ``dp_encode_over_mask`` adds the rest of the member's encoding as
``encode_noised`` runs it (``clip_rotate_round_ms``: clip, ``rotate_fixed``, the scale in
place, ``conditional_round``); ``clip_ms``, ``rotate_fixed_ms`` and ``conditional_round_ms``
time the steps alone on kept inputs, in a loop of their own (their sum is below
``clip_rotate_round_ms`` by what the page faults of fresh 8 MB arrays cost). Measured at
load averages of 1.8 to 4.1: ``clip_rotate_round_ms`` 13 to 28 (61 to 109 with the numpy
rotation and rounding), the steps 1 to 7, 4.2 to 8.4 and 1.9 to 2.3 ms.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable

import numpy as np

from benchmarks import base_parser, environment, write_report
from ssddl.hazmat.dp import conditional_round, rotate, rotation_key, rounded_norm_bound
from ssddl.hazmat.noise import NoiseStream, discrete_gaussian, skellam
from ssddl.hazmat.packing import pack_words, unpack_words
from ssddl.hazmat.prg import combine_keystreams, keystream_into
from ssddl.hazmat.rand import OsRandom


def best_of(repeat: int, jobs: dict[str, Callable[[], object]]) -> dict[str, float]:
    """Seconds per job, the best of ``repeat`` rounds that run every job once in turn."""
    best = dict.fromkeys(jobs, float("inf"))
    for _ in range(repeat):
        for name, job in jobs.items():
            start = time.perf_counter()
            job()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def _dp_upload_over_plain() -> dict[str, float]:
    """One simulated round of the bench's default model (MLP 256-256 on digits, 10 members,
    one SGD step) with ``--dp ddg --no-weighted`` (so ``bits = 20``): the member's upload
    bytes over plain FedAvg's float32 upload. Bytes are deterministic: one round suffices."""
    from benchmarks.rounds import CASES, _prepare
    from ssddl.learning.train import LocalTrainConfig
    from ssddl.protocol.config import ProtocolConfig
    from ssddl.runtime.simulator import SimulationConfig, simulate

    model, datasets = _prepare(CASES["step"])
    protocol = ProtocolConfig(rounds=1, dp="ddg", weighted=False)
    config = SimulationConfig(protocol=protocol, train=LocalTrainConfig(steps=1))
    summary = simulate(model, datasets, config).summary()
    up = float(summary["upload_bytes_per_participant_round"])
    plain = float(summary["plain_upload_bytes_per_participant_round"])
    return {"dp_upload_bytes": up, "plain_upload_bytes": plain, "dp_upload_over_plain": up / plain}


def _dp_member_times(m: int, repeat: int) -> dict[str, float]:
    """Seconds, best of ``repeat``, interleaved: the member's mask of 10 streams (written into
    an existing vector), its noise (the discrete Gaussian a 10-member DP session at M words
    asks of each member, added into its rounded vector as ``encode_noised`` does), the
    AES-256-CTR keystream alone that the noise reads (M uint32 words: the part of the noise
    no table lookup can save), packing its M words into 20 bits, and the rest of its DP
    encoding (clip, rotate, round: together as ``encode_noised`` runs them, and each step
    alone on a kept input, in a second loop; together they take longer than the sum of the
    steps, the more so when the allocator hands back fresh pages for their 8 MB arrays)."""
    from ssddl.hazmat.dp import clip_l2, rotate_fixed
    from ssddl.protocol.config import ProtocolConfig
    from ssddl.protocol.dp import noise_plan

    params = ProtocolConfig(dp="ddg", weighted=False).resolve(10)
    plan = noise_plan(params, m)
    out = np.empty(m, dtype=np.uint32)
    streams = [(os.urandom(32), os.urandom(12), 1 if i % 2 else -1) for i in range(10)]
    noise = NoiseStream(OsRandom())
    discrete_gaussian(noise, 1, plan.local_variance)  # the table, outside the timing
    words = np.random.default_rng(0).integers(0, 1 << 32, m, dtype=np.uint64).astype(np.uint32)
    x = np.random.default_rng(1).normal(0, 1e-3, m)
    z = np.zeros(m, dtype=np.int64)  # the member's rounded vector, which its noise is added to
    keystream = np.empty(m, dtype=np.uint32)  # the AES work of the noise alone, no allocation
    key = rotation_key(b"bench", 1)

    def encode() -> None:  # as encode_noised does it (the scale in place)
        y = rotate_fixed(clip_l2(x, params.l2_clip), key)
        y *= plan.scale
        conditional_round(y, plan.l2_sensitivity, noise)

    times = best_of(
        repeat,
        {
            "mask": lambda: combine_keystreams(out, streams),
            "noise": lambda: discrete_gaussian(noise, m, plan.local_variance, add_to=z),
            "noise_keystream": lambda: noise.fill32(keystream, noise.reserve(1)),
            "pack": lambda: pack_words(words, params.bits),
            "clip_rotate_round": encode,
        },
    )
    # the steps alone, on kept inputs, in a loop of their own: among the jobs above they
    # changed what the allocator handed the others (packing's fresh buffers then stopped
    # meeting page faults: 0.7 ms, not 3)
    clipped = clip_l2(x, params.l2_clip)
    scaled = rotate_fixed(clipped, key) * plan.scale
    times |= best_of(
        repeat,
        {
            "clip": lambda: clip_l2(x, params.l2_clip),
            "rotate_fixed": lambda: rotate_fixed(clipped, key),
            "conditional_round": lambda: conditional_round(scaled, plan.l2_sensitivity, noise),
        },
    )
    times["local_variance"] = plan.local_variance
    return times


def dp_section(quick: bool, log: Callable[[str], None] = print) -> dict[str, float]:
    """The distributed-DP keys of ``ssddl bench --json`` and the numbers behind them."""
    log("distributed DP: upload bytes at bits = 20 against plain")
    report = _dp_upload_over_plain()
    log("distributed DP: noise and packing against the member's mask, M = 10^6")
    t = _dp_member_times(10**6, 3 if quick else 10)
    report |= {f"{name}_ms": round(t[name] * 1e3, 3) for name in t if name != "local_variance"}
    report["noise_local_variance"] = t["local_variance"]
    report["dp_noise_over_mask"] = (t["noise"] + t["pack"]) / t["mask"]
    report["dp_encode_over_mask"] = (t["noise"] + t["pack"] + t["clip_rotate_round"]) / t["mask"]
    return report


NAME = "bench_noise"


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.bench_noise [--quick] [--out DIR] [--words M] [--repeat R]``:
    prints the JSON; with ``--out``, also writes ``bench_noise.json`` and ``.md`` there.
    ``--quick`` (what ``python -m benchmarks --quick`` passes) takes 5 repeats unless
    ``--repeat`` says otherwise."""
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, default=10**6, help="M, the words per draw")
    parser.add_argument("--repeat", type=int, default=None, help="best of R (15; quick 5)")
    args = parser.parse_args(argv)
    if args.words < 1 or (args.repeat is not None and args.repeat < 1):
        parser.error("--words and --repeat must be at least 1")
    report = measure(args.words, args.repeat or (5 if args.quick else 15))
    text = json.dumps(report, indent=2)
    print(text)
    if args.out is not None:
        payload = {"benchmark": NAME, "quick": args.quick, "environment": environment(),
                   "summary": report}  # fmt: skip
        title = f"# {NAME}: noise sampling against the mask, M = {args.words}"
        markdown = f"{title}\n\n```json\n{text}\n```"
        for path in write_report(args.out, NAME, payload, markdown):
            print(f"wrote {path}")
    return 0


def measure(m: int, repeat: int) -> dict[str, float]:
    """Milliseconds per job at M = ``m`` words, best of ``repeat``, and their ratios to one
    pair mask and to a member's mask of 9 streams."""
    out = np.empty(m, dtype=np.uint32)
    streams = [(os.urandom(32), os.urandom(12), 1 if i % 2 else -1) for i in range(9)]
    noise = NoiseStream(OsRandom())
    for variance in (4.0, 1e4, 1e6):
        discrete_gaussian(noise, 1, variance)  # build the table outside the timing
    skellam(noise, 1, 5e3)
    x = np.linspace(-1, 1, m) * 50
    bound = rounded_norm_bound(float(np.linalg.norm(x)) + 1, m, float(np.exp(-0.5)))
    key = rotation_key(b"bench", 1)
    words = np.random.default_rng(0).integers(0, 1 << 32, m, dtype=np.uint64).astype(np.uint32)
    packed = pack_words(words, 20)
    times = best_of(
        repeat,
        {
            "pair_mask": lambda: keystream_into(out, *streams[1][:2]),
            "member_mask_9_streams": lambda: combine_keystreams(out, streams),
            "ddg_var_4": lambda: discrete_gaussian(noise, m, 4.0),
            "ddg_var_1e4": lambda: discrete_gaussian(noise, m, 1e4),
            "ddg_var_1e6": lambda: discrete_gaussian(noise, m, 1e6),
            "skellam_mu_5e3": lambda: skellam(noise, m, 5e3),
            "pack_20": lambda: pack_words(words, 20),
            "unpack_20": lambda: unpack_words(packed, m, 20),
            "conditional_round": lambda: conditional_round(x, bound, noise),
            "rotate": lambda: rotate(x, key),
        },
    )
    report = {f"{name}_ms": round(seconds * 1e3, 3) for name, seconds in times.items()}
    for name in ("ddg_var_4", "ddg_var_1e4", "ddg_var_1e6", "skellam_mu_5e3"):
        report[f"{name}_over_pair_mask"] = round(times[name] / times["pair_mask"], 2)
        report[f"{name}_over_member_mask"] = round(times[name] / times["member_mask_9_streams"], 2)
    report["words"] = m
    return report


if __name__ == "__main__":
    sys.exit(main())
