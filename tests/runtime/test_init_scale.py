"""Init at scale: with sparse pairing the key work is O(N·k), the directory is decoded and
hashed once a process, and the setup estimate counts the same work Init does."""

from __future__ import annotations

import math

import pytest

from ssddl.exceptions import MalformedMessage
from ssddl.protocol import ProtocolConfig
from ssddl.protocol import init as init_module
from ssddl.protocol.config import PairKeys
from ssddl.protocol.messages import KeyDirectory, MessageKind
from ssddl.runtime import hosts as hosts_module
from ssddl.runtime.setupcost import (
    OVERHEAD,
    InitCosts,
    estimate_init,
    init_work,
    measure_costs,
)
from tests.protocol.helpers import make_session

#: groups of 20 or more pair sparsely (k = 10 at n = 20 with these fractions)
SPARSE = {"sparse_from": 20, "corrupt_fraction": 0.1, "dropout_fraction": 0.1}


def _count_init(monkeypatch, config: ProtocolConfig, n: int) -> dict[str, int]:
    """Run Init for ``n`` members and count its key agreements, directory decodes and
    directory encodings."""
    counts = {"agreements": 0, "directory_decodes": 0, "directory_encodes": 0}
    pair_secret, decode, encode = (
        init_module.pair_secret,
        hosts_module.decode_message,
        KeyDirectory.encode,
    )

    def counting_secret(*args, **kwargs):
        counts["agreements"] += 1
        return pair_secret(*args, **kwargs)

    def counting_decode(data):
        counts["directory_decodes"] += data[5] == MessageKind.KEY_DIRECTORY
        return decode(data)

    def counting_encode(self):
        counts["directory_encodes"] += 1
        return encode(self)

    monkeypatch.setattr(init_module, "pair_secret", counting_secret)
    monkeypatch.setattr(hosts_module, "decode_message", counting_decode)
    monkeypatch.setattr(KeyDirectory, "encode", counting_encode)
    session = make_session(config, n=n, size=7)
    session.driver.init()
    counts["degree"] = session.server.config.degree
    counts["keys"] = sum(len(session.participant(p).pair_rounds) for p in range(1, n + 1))
    monkeypatch.undo()
    return counts


@pytest.mark.parametrize("n", [20, 40])
def test_init_agrees_n_times_k_keys_and_handles_the_directory_once(monkeypatch, n):
    config = ProtocolConfig(rounds=1, max_samples=64, **SPARSE)
    counts = _count_init(monkeypatch, config, n)
    k = counts["degree"]
    assert 2 <= k < n - 1
    # each member agrees a key with its k neighbours only: N·k agreements, not N·(N−1)
    assert counts["agreements"] == counts["keys"] == n * k
    # one directory frame for every member: encoded once by the server (and once more for
    # its graph seed), decoded once in this process however many members receive it
    assert counts["directory_decodes"] == 1
    assert counts["directory_encodes"] <= 2
    # the estimate counts exactly the agreements Init made
    assert init_work(config.resolve(n), n).agreements == counts["agreements"]


def test_the_complete_graph_agrees_every_pair_and_lazy_keys_none_at_init(monkeypatch):
    n = 12
    dense = _count_init(monkeypatch, ProtocolConfig(rounds=1, max_samples=64), n)
    assert dense["degree"] == 0 and dense["agreements"] == n * (n - 1)
    assert init_work(ProtocolConfig(max_samples=64).resolve(n), n).agreements == n * (n - 1)
    lazy = ProtocolConfig(rounds=1, max_samples=64, pair_keys=PairKeys.LAZY, **SPARSE)
    assert _count_init(monkeypatch, lazy, 20)["agreements"] == 0
    assert init_work(lazy.resolve(20), 20).agreements == 0


def test_init_work_at_a_thousand_members_is_n_times_k():
    work = init_work(ProtocolConfig(max_samples=64).resolve(1000), 1000)
    k = ProtocolConfig(max_samples=64).resolve(1000).degree
    assert k == 78 and work.agreements == 1000 * 78 and work.members == 1000
    assert init_work(ProtocolConfig(mode="plain", max_samples=64).resolve(1000), 1000).members == 0


def test_the_estimate_is_measured_work_times_cost():
    costs = InitCosts(member=2e-4, agreement=5e-5)
    sparse = estimate_init(ProtocolConfig(), 1000, costs)
    assert sparse is not None and sparse.work.agreements == 78_000
    assert math.isclose(sparse.seconds, OVERHEAD * (1000 * 2e-4 + 78_000 * 5e-5))
    dense = estimate_init(ProtocolConfig(sparse_from=10_000), 1000, costs)
    assert dense is not None and dense.work.agreements == 999_000
    assert dense.seconds > 10 * sparse.seconds
    assert estimate_init(ProtocolConfig(mode="plain"), 1000, costs) is None
    assert estimate_init(ProtocolConfig(group_size=5), 3, costs) is None  # refused later


def test_costs_are_measured_here():
    costs = measure_costs(samples=3)
    assert 0 < costs.agreement < 1 and 0 < costs.member < 1


def test_only_an_identical_broadcast_frame_is_shared():
    session = make_session(ProtocolConfig(rounds=1, max_samples=64), n=3, size=5)
    frame = session.server.start()[0].message.encode()
    first = hosts_module.decode_broadcast(frame)
    assert hosts_module.decode_broadcast(frame) is first
    assert hosts_module.decode_broadcast(bytes(bytearray(frame))) is not first  # equal bytes
    with pytest.raises(MalformedMessage):
        hosts_module.decode_broadcast(frame + b"\0")
