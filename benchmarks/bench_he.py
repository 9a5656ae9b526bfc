"""Cost of the homomorphic-encryption back ends of the Phong et al. baseline.

    python -m benchmarks.bench_he [--quick] [--out DIR] [--summands N]

For each back end and model size M: seconds to encrypt one update vector, to add two
encrypted vectors (the server's work per upload), to decrypt the sum, and the bytes of one
encrypted vector on the wire — with its ratio to the plaintext float32 vector (4·M bytes).
Values are fixed-point words of FixedPoint(ring_bits=32, frac_bits=16, clip=4), the back ends
sized for ``--summands`` uploads (10 by default). Every sum is checked against the plaintext
ring sum. Paillier-2048 and -3072 run M = 10^3 and 10^4 (only 2048 at 10^3 with --quick),
BFV (N = 4096, 128-bit) up to 10^5.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

CASES_FULL = (
    ("paillier-2048", (1_000, 10_000)),
    ("paillier-3072", (1_000, 10_000)),
    ("bfv-4096", (1_000, 10_000, 100_000)),
)
CASES_QUICK = (("paillier-2048", (1_000,)), ("bfv-4096", (1_000, 10_000)))


def make_backend(name: str, summands: int) -> Any:
    from ssddl.baselines.he import BFVBackend, PaillierBackend
    from ssddl.hazmat.codec import FixedPoint

    codec = FixedPoint(ring_bits=32, frac_bits=16, clip=4.0)
    if name.startswith("paillier-"):
        bits = int(name.split("-")[1])
        return PaillierBackend(codec, max_summands=summands, key_bits=bits)
    if name == "bfv-4096":
        return BFVBackend(codec, max_summands=summands, poly_modulus_degree=4096)
    raise ValueError(f"unknown backend {name}")


def measure(name: str, size: int, summands: int) -> dict[str, Any]:
    from ssddl.hazmat.codec import encode, ring_sum

    backend = make_backend(name, summands)
    started = time.perf_counter()
    keys = backend.keygen()
    keygen_s = time.perf_counter() - started
    rng = np.random.default_rng(0)
    words = [encode(rng.normal(0, 0.05, size), backend.codec) for _ in range(2)]
    started = time.perf_counter()
    encrypted = [backend.encrypt(keys.public, w) for w in words]
    encrypt_s = (time.perf_counter() - started) / len(words)
    blob = backend.ciphertext_to_bytes(encrypted[0])
    started = time.perf_counter()
    total = backend.add(encrypted[0], encrypted[1])
    add_s = time.perf_counter() - started
    started = time.perf_counter()
    decrypted = backend.decrypt(keys.secret, total)
    decrypt_s = time.perf_counter() - started
    if not np.array_equal(decrypted, ring_sum(words)):
        raise AssertionError(f"{name}: decrypted sum differs from the plaintext ring sum")
    return {
        "backend": name,
        "model_size": size,
        "slots_per_ciphertext": backend.slots,
        "ciphertexts": len(encrypted[0].parts),
        "keygen_seconds": keygen_s,
        "encrypt_seconds": encrypt_s,
        "add_seconds": add_s,
        "decrypt_seconds": decrypt_s,
        "ciphertext_bytes": len(blob),
        "public_key_bytes": len(backend.public_to_bytes(keys.public)),
        "plaintext_bytes": 4 * size,
        "bytes_ratio_vs_float32": len(blob) / (4 * size),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_he", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller model sizes")
    parser.add_argument("--summands", type=int, default=10, help="uploads one sum may hold")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    cases = CASES_QUICK if args.quick else CASES_FULL
    rows = [measure(name, size, args.summands) for name, sizes in cases for size in sizes]
    lines = [
        f"## HE back ends (fixed point 32/16/4, sums of up to {args.summands} uploads)",
        "",
        "| backend | M | ciphertexts | encrypt s | add s | decrypt s | bytes | × float32 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['backend']} | {r['model_size']:,} | {r['ciphertexts']:,} "
            f"| {r['encrypt_seconds']:.4f} | {r['add_seconds']:.5f} | {r['decrypt_seconds']:.4f} "
            f"| {r['ciphertext_bytes']:,} | {r['bytes_ratio_vs_float32']:.2f} |"
        )
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        result = {"benchmark": "he", "summands": args.summands, "rows": rows}
        (args.out / "bench_he.json").write_text(json.dumps(result, indent=2) + "\n")
        (args.out / "bench_he.md").write_text(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
