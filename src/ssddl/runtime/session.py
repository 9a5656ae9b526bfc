"""Session assembly for every runtime: identities, the roster, and node-id mapping.

The simulator, the tests and the Flower runtime build a session the same way: each
participant has a long-term Ed25519 identity key; the roster maps protocol ids (1…N, also
the Shamir evaluation points) to identity public keys; a runtime whose nodes have their own
ids (Flower's are 64-bit) maps them to protocol ids with a :class:`NodeMap`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from ssddl.exceptions import ConfigurationError, UnknownSender
from ssddl.hazmat.keys import IdentityKey
from ssddl.hazmat.rand import RandomSource
from ssddl.protocol.messages import MAX_ID, SERVER

__all__ = ["Members", "NodeMap", "make_members"]


@dataclass(frozen=True)
class Members:
    """The participants of a session: their identity keys (secret) and the public roster."""

    identities: Mapping[int, IdentityKey] = field(repr=False)
    roster: Mapping[int, bytes]

    @property
    def ids(self) -> tuple[int, ...]:
        return tuple(self.roster)


def make_members(
    ids: Iterable[int],
    source_for: Callable[[int], RandomSource],
    *,
    progress: Callable[[int, int], None] | None = None,
) -> Members:
    """Fresh identity keys for ``ids``; ``source_for(id)`` gives each one's randomness.
    ``progress(done, total)`` is called as keys are made (large sessions are not silent)."""
    wanted = sorted(set(ids))
    if not wanted or wanted[0] < 1 or wanted[-1] > MAX_ID:
        raise ConfigurationError(f"participant ids must be in [1, {MAX_ID}]")
    identities: dict[int, IdentityKey] = {}
    for done, pid in enumerate(wanted, start=1):
        identities[pid] = IdentityKey.generate(source_for(pid))
        if progress is not None:
            progress(done, len(wanted))
    roster = {p: key.public_bytes for p, key in identities.items()}
    return Members(identities, roster)


class NodeMap:
    """A fixed one-to-one map between a runtime's node ids and protocol ids 1…N.

    Node ids are taken in sorted order, so every party that sees the same set of node ids
    builds the same map. The server's address 0 is never a participant.
    """

    def __init__(self, node_ids: Iterable[int]) -> None:
        nodes = sorted(set(node_ids))
        if not nodes:
            raise ConfigurationError("a session needs at least one node")
        if len(nodes) > MAX_ID:
            raise ConfigurationError(f"at most {MAX_ID} nodes fit the protocol's ids")
        if any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in nodes):
            raise ConfigurationError("node ids must be non-negative integers")
        self._to_protocol = {node: pid for pid, node in enumerate(nodes, start=1)}
        self._to_node = {pid: node for node, pid in self._to_protocol.items()}

    def protocol_id(self, node_id: int) -> int:
        pid = self._to_protocol.get(node_id)
        if pid is None:
            raise UnknownSender(f"node {node_id} is not part of this session")
        return pid

    def node_id(self, protocol_id: int) -> int:
        if protocol_id == SERVER:
            raise ConfigurationError("protocol id 0 is the server, not a node")
        node = self._to_node.get(protocol_id)
        if node is None:
            raise UnknownSender(f"participant {protocol_id} is not part of this session")
        return node

    @property
    def protocol_ids(self) -> tuple[int, ...]:
        return tuple(self._to_node)

    def __len__(self) -> int:
        return len(self._to_node)

    def __repr__(self) -> str:
        return f"NodeMap({len(self)} nodes)"
