"""The distributed-DP keys of ``ssddl bench --json`` come from their own measurements."""

from __future__ import annotations

import math

import pytest
from benchmarks.bench_noise import dp_section

from ssddl.hazmat.packing import packed_size


@pytest.mark.filterwarnings("ignore::ssddl.exceptions.SecurityWarning")
def test_dp_section_measures_bytes_and_times():
    report = dp_section(True, log=lambda _: None)
    # the default model (85 002 parameters): 20-bit words against float32, plus the masked
    # upload's seed shares; bytes are deterministic
    assert report["plain_upload_bytes"] == 6 + 20 + 8 + 8 + 8 + 9 + 4 * 85002
    assert report["dp_upload_bytes"] > packed_size(85003, 20)
    assert (
        report["dp_upload_over_plain"] == report["dp_upload_bytes"] / report["plain_upload_bytes"]
    )
    assert 0.625 < report["dp_upload_over_plain"] <= 0.65
    steps = ("clip_ms", "rotate_fixed_ms", "conditional_round_ms", "clip_rotate_round_ms")
    for key in ("dp_noise_over_mask", "mask_ms", "noise_ms", "pack_ms", *steps):
        assert math.isfinite(report[key]) and report[key] > 0
    assert report["dp_encode_over_mask"] == pytest.approx(
        (report["noise_ms"] + report["pack_ms"] + report["clip_rotate_round_ms"])
        / report["mask_ms"],
        rel=1e-3,
    )
    assert report["dp_noise_over_mask"] == pytest.approx(
        (report["noise_ms"] + report["pack_ms"]) / report["mask_ms"], rel=1e-3
    )
