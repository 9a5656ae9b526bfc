"""Noise sampling for distributed DP against the mask it hides under.

For M words (default 10**6): the time to draw M discrete Gaussian words (exact inversion,
:mod:`ssddl.hazmat.noise`) at several σ², M Skellam words, and the conditional rounding and
rotation of an M-vector, each against the time to build one M-word uint32 pair mask with the
project's PRG (``keystream_into``, AES-256-CTR) and a member's whole mask of ``n - 1 = 9``
streams (``combine_keystreams``), measured in the same run, interleaved, best of ``repeat``.

Run: ``python -m benchmarks.bench_noise [--words M] [--repeat R]``; prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable

import numpy as np

from ssddl.hazmat.dp import conditional_round, rotate, rotation_key, rounded_norm_bound
from ssddl.hazmat.noise import NoiseStream, discrete_gaussian, skellam
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


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, default=10**6)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args(argv)
    m = args.words
    out = np.empty(m, dtype=np.uint32)
    streams = [(os.urandom(32), os.urandom(12), 1 if i % 2 else -1) for i in range(9)]
    noise = NoiseStream(OsRandom())
    for variance in (4.0, 1e4, 1e6):
        discrete_gaussian(noise, 1, variance)  # build the table outside the timing
    skellam(noise, 1, 5e3)
    x = np.linspace(-1, 1, m) * 50
    bound = rounded_norm_bound(float(np.linalg.norm(x)) + 1, m, float(np.exp(-0.5)))
    key = rotation_key(b"bench", 1)
    times = best_of(
        args.repeat,
        {
            "pair_mask": lambda: keystream_into(out, *streams[1][:2]),
            "member_mask_9_streams": lambda: combine_keystreams(out, streams),
            "ddg_var_4": lambda: discrete_gaussian(noise, m, 4.0),
            "ddg_var_1e4": lambda: discrete_gaussian(noise, m, 1e4),
            "ddg_var_1e6": lambda: discrete_gaussian(noise, m, 1e6),
            "skellam_mu_5e3": lambda: skellam(noise, m, 5e3),
            "conditional_round": lambda: conditional_round(x, bound, noise),
            "rotate": lambda: rotate(x, key),
        },
    )
    report = {f"{name}_ms": round(seconds * 1e3, 3) for name, seconds in times.items()}
    for name in ("ddg_var_4", "ddg_var_1e4", "ddg_var_1e6", "skellam_mu_5e3"):
        report[f"{name}_over_pair_mask"] = round(times[name] / times["pair_mask"], 2)
        report[f"{name}_over_member_mask"] = round(times[name] / times["member_mask_9_streams"], 2)
    report["words"] = m
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
