"""Coalitions: the server plus c colluding members, against one honest member's update.

:func:`unmask_target` is the coalition's best unmasking of the target's upload from its
combined view — everything the protocol let it see and hold:

``prg``
    the target's upload, minus the pair masks it shares with each colluder (their round keys)
    and minus its self-mask, rebuilt from the seed shares in the view (the unmask responses
    the server received, and the sealed shares the colluders can open);
``explicit``
    the target's upload (the sum of the shares it received) plus, for each colluder j, the
    share the target sent j minus the share j sent the target (both open with the pair's
    share key): ``x_v − u_v = Σ_j (r_{v→j} − r_{j→v})``;
``shamir``
    Lagrange interpolation at 0 of the target's shares the colluders hold (all of them when
    fewer than t; the first t otherwise); with none, the target's upload.

It is exact when the coalition holds every mask (c = n − 1; c ≥ t for shamir). Below that it
is one uniform word per coordinate whatever the target's input, which
:func:`coalition_experiment` tests: two runs in which the target's input differs but the
honest members' sum is the same (nothing else is revealed by design), a Kolmogorov–Smirnov
test that the estimate is uniform over the ring, and a two-sample test that its
distribution is the same in both runs. At c = n − 1 the two runs differ, as they must: the
coalition also subtracts its own updates from the aggregate.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ssddl.attacks.attack import SSDDL_MODES, AttackContext, AttackOutcome
from ssddl.attacks.views import CoalitionView, RecordedRun, record_run
from ssddl.exceptions import ConfigurationError, SSDDLError
from ssddl.hazmat.aead import open_sealed
from ssddl.hazmat.codec import decode, ring_sub, ring_sum
from ssddl.hazmat.keys import derive_key
from ssddl.hazmat.sharing import field_to_ring, shamir_reconstruct
from ssddl.protocol import LocalUpdate, ProtocolConfig, Trainer, get_scheme
from ssddl.protocol.masks import remove_pair_mask
from ssddl.protocol.schemes._common import SHARE_AEAD_PURPOSE
from ssddl.protocol.schemes.prg import apply_self_mask, pair_binding, seed_from_field

__all__ = [
    "ALPHA",
    "CoalitionAttack",
    "CoalitionRow",
    "coalition_experiment",
    "same_distribution_pvalue",
    "uniform_pvalue",
    "unmask_target",
]

#: significance level of every distribution test (each p-value is uniform when the claim
#: holds, so an audit of ~20 tests raises a false alarm with probability ~0.2%)
ALPHA = 1e-4


def _open_pair(
    view: CoalitionView, holder: int, round_number: int, sender: int, receiver: int, blob: bytes
) -> bytes:
    """Open a ciphertext between ``sender`` and ``receiver`` with colluder ``holder``'s share
    key of the pair (``holder`` is one of the two)."""
    peer = receiver if holder == sender else sender
    state = view.member(holder, round_number)
    params = view.server.params
    key = derive_key(state.share_keys[peer], SHARE_AEAD_PURPOSE, view.server.session_id)
    return open_sealed(
        key,
        blob,
        session_id=view.server.session_id,
        round_number=round_number,
        sender=sender,
        receiver=receiver,
        algorithm=params.aead,
        context=state.model_digest,
    )


def _sealed_from(view: CoalitionView, round_number: int, sender: int) -> dict[int, bytes]:
    """The ciphertexts ``sender`` addressed to each receiver in a round (its bundle, or the
    seed shares attached to its masked upload)."""
    for kind, attr in (("share_bundle", "ciphertexts"), ("masked_upload", "seed_shares")):
        for msg in view.server.received(round_number, kind):
            if msg.sender == sender:
                return dict(zip(msg.receivers, getattr(msg, attr), strict=True))
    return {}


def _seed_shares(view: CoalitionView, round_number: int, target: int) -> dict[int, np.ndarray]:
    """Every share of the target's self-mask seed the coalition holds: opened by survivors
    in their unmask responses, or sealed to a colluder."""
    shares: dict[int, np.ndarray] = {}
    for msg in view.server.received(round_number, "unmask_response"):
        for owner, share in zip(msg.share_owners, msg.seed_shares, strict=True):
            if owner == target:
                shares[msg.sender] = np.frombuffer(share, dtype="<u8").astype(np.uint64)
    sealed = _sealed_from(view, round_number, target)
    for colluder in view.colluders:
        if colluder not in shares and colluder in sealed:
            opened = _open_pair(view, colluder, round_number, target, colluder, sealed[colluder])
            shares[colluder] = np.frombuffer(opened, dtype="<u8").astype(np.uint64)
    return shares


def _unmask_prg(view: CoalitionView, round_number: int, target: int) -> np.ndarray:
    params = view.server.params
    upload = view.server.uploads(round_number)[target]
    estimate = np.array(upload.payload, copy=True)
    for colluder in view.colluders:
        state = view.member(colluder, round_number)
        key = state.round_keys[target]
        remove_pair_mask(
            estimate,
            key,
            owner=target,
            peer=colluder,
            session_id=view.server.session_id,
            round_number=round_number,
            cipher=params.cipher,
            binding=pair_binding(params, state.model_digest),
        )
    if upload.KIND.name == "MASKED_UPLOAD":
        shares = _seed_shares(view, round_number, target)
        if len(shares) >= params.threshold:
            points = tuple(shares)[: params.threshold]
            words = shamir_reconstruct(
                [shares[p] for p in points], points, threshold=params.threshold
            )
            apply_self_mask(
                estimate,
                seed_from_field(words),
                session_id=view.server.session_id,
                round_number=round_number,
                owner=target,
                params=params,
                sign=-1,
            )
    return estimate


def _ring_share(data: bytes, dtype: np.dtype) -> np.ndarray:
    return np.frombuffer(data, dtype=dtype.newbyteorder("<")).astype(dtype)


def _unmask_explicit(view: CoalitionView, round_number: int, target: int) -> np.ndarray:
    dtype = view.server.params.codec().dtype
    estimate = np.array(view.server.uploads(round_number)[target].payload, copy=True)
    from_target = _sealed_from(view, round_number, target)
    for colluder in view.colluders:
        sent = _open_pair(view, colluder, round_number, target, colluder, from_target[colluder])
        received = _sealed_from(view, round_number, colluder)[target]
        back = _open_pair(view, colluder, round_number, colluder, target, received)
        estimate = ring_sub(
            ring_sum([estimate, _ring_share(sent, dtype)]), _ring_share(back, dtype)
        )
    return estimate


def _unmask_shamir(view: CoalitionView, round_number: int, target: int) -> np.ndarray:
    params = view.server.params
    from_target = _sealed_from(view, round_number, target)
    shares = {
        c: _ring_share(
            _open_pair(view, c, round_number, target, c, from_target[c]), np.dtype(np.uint64)
        )
        for c in view.colluders
    }
    if not shares:
        return field_to_ring(view.server.uploads(round_number)[target].payload, params.ring_bits)
    points = tuple(shares)[: params.threshold]
    value = shamir_reconstruct([shares[p] for p in points], points, threshold=len(points))
    return field_to_ring(value, params.ring_bits)


_UNMASK = {"prg": _unmask_prg, "explicit": _unmask_explicit, "shamir": _unmask_shamir}


def unmask_target(view: CoalitionView, target: int, round_number: int = 0) -> np.ndarray:
    """The coalition's best unmasking of ``target``'s upload (ring words, count word last)."""
    mode = view.server.params.mode
    if target in view.colluders:
        raise ConfigurationError(f"the target {target} is one of the colluders")
    if mode not in _UNMASK:
        raise ConfigurationError(f"no coalition unmasking for mode {mode!r}")
    return _UNMASK[mode](view, round_number, target)


def sum_attack(view: CoalitionView, round_number: int = 0) -> np.ndarray | None:
    """The aggregate minus the colluders' own updates: the honest members' sum (the target's
    update when it is the only honest member)."""
    aggregate = view.server.aggregate(round_number)
    if aggregate is None:
        return None
    own = [view.member(c, round_number).update for c in view.colluders]
    known = [u for u in own if u is not None]
    if len(known) != len(own):
        return None
    return ring_sub(aggregate, ring_sum(known)) if known else aggregate.copy()


def uniform_pvalue(words: np.ndarray, ring_bits: int) -> float:
    """Kolmogorov–Smirnov p-value of "the words are uniform over Z_Q"."""
    from scipy import stats

    u = (np.asarray(words, dtype=np.float64) + 0.5) / float(1 << ring_bits)
    return float(stats.kstest(u, "uniform").pvalue)


def same_distribution_pvalue(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov–Smirnov p-value of "a and b come from one distribution"."""
    from scipy import stats

    return float(stats.ks_2samp(np.asarray(a, np.float64), np.asarray(b, np.float64)).pvalue)


@dataclass(frozen=True)
class CoalitionRow:
    """One coalition size against the target in one mode."""

    mode: str
    c: int
    colluders: tuple[int, ...]
    recovered: bool  #: the coalition's estimate equals the target's update, in both runs
    max_abs_error: float  #: of the decoded estimate against the true update (run A)
    upload_uniform_p: float  #: the target's upload alone, uniform over the ring?
    estimate_uniform_p: float  #: the coalition's estimate, uniform over the ring?
    same_p: float  #: the estimate's distribution is the same whatever the target's input?
    bound: int = field(default=-1)  #: the mode's stated collusion bound

    @property
    def indistinguishable(self) -> bool:
        return self.estimate_uniform_p >= ALPHA and self.same_p >= ALPHA

    def outcome(self, n: int) -> AttackOutcome:
        """This row as an :class:`AttackOutcome`: within the bound the coalition *succeeds*
        when it learns anything about the target (its estimate is the target's update, or is
        told apart from uniform) and must not; the control, all n − 1 others, succeeds only by
        recovering the target's update exactly, and must."""
        learned = self.recovered or not self.indistinguishable
        if self.c == n - 1:
            learned = self.recovered
        return AttackOutcome(
            "coalition",
            self.mode,
            learned,
            False if self.c <= self.bound else (True if self.c == n - 1 else None),
            target="member 1",
            colluders=self.c,
            bound=self.bound,
            detail=f"recovered: {self.recovered}; indistinguishable: {self.indistinguishable}",
            measured=dataclasses.asdict(self),
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "mode": self.mode,
            "c": self.c,
            "colluders": list(self.colluders),
            "recovered": self.recovered,
            "max_abs_error": self.max_abs_error,
            "upload_uniform_p": self.upload_uniform_p,
            "estimate_uniform_p": self.estimate_uniform_p,
            "same_p": self.same_p,
            "indistinguishable": self.indistinguishable,
            "bound": self.bound,
        }


def _inputs(n: int, size: int, rng: np.random.Generator) -> tuple[dict[int, np.ndarray], ...]:
    """Two worlds: the target's (1) input differs, member 2 compensates so the honest sum
    is the same. Values on a 2^-8 grid, well inside the clip."""
    grid = 1.0 / 256
    others = {p: rng.integers(-256, 257, size) * grid for p in range(2, n + 1)}
    a = np.zeros(size)
    a_prime = np.linspace(-1.0, 1.0, size)
    a_prime = np.round(a_prime / grid) * grid
    world_a = {1: a, **others}
    world_b = {1: a_prime, **others, 2: others[2] + a - a_prime}
    return world_a, world_b


def _trainers(values: dict[int, np.ndarray]) -> dict[int, Trainer]:
    def make(v: np.ndarray) -> Trainer:
        delta = v.astype(np.float32)
        return lambda weights, round_number: LocalUpdate(delta.copy(), 1)

    return {p: make(v) for p, v in values.items()}


def coalition_experiment(
    mode: str,
    *,
    n: int = 5,
    size: int = 2000,
    threshold: int | None = None,
    crypto_seed: bytes | None = None,
    sizes: Sequence[int] | None = None,
) -> list[CoalitionRow]:
    """Run two sessions of ``mode`` (target 1; its input differs between them, the honest
    sum does not) and score every coalition size c in ``sizes`` (default 0..n−1)."""
    if n < 3:
        raise ConfigurationError("a coalition experiment needs n >= 3 members")
    config = ProtocolConfig(mode=mode, rounds=1, weighted=False, threshold=threshold)
    rng = np.random.default_rng(12345)
    worlds = _inputs(n, size, rng)
    runs: list[RecordedRun] = []
    for index, values in enumerate(worlds):
        seed = None if crypto_seed is None else bytes(a ^ index for a in crypto_seed)
        runs.append(
            record_run(config, _trainers(values), np.zeros(size, np.float32), crypto_seed=seed)
        )
    params = runs[0].params
    bound = get_scheme(mode).guarantee(params).collusion_bound
    order = list(range(n, 1, -1))  # colluders join from the highest id; member 2 joins last
    rows = []
    for c in sizes if sizes is not None else range(n):
        colluders = tuple(sorted(order[:c]))
        estimates = []
        exact = []
        for run in runs:
            view = run.coalition(colluders)
            estimate = unmask_target(view, 1)
            by_sum = sum_attack(view) if c == n - 1 else None
            truth = run.truth[1][0]
            exact.append(
                bool(np.array_equal(estimate, truth))
                or (by_sum is not None and bool(np.array_equal(by_sum, truth)))
            )
            estimates.append(estimate)
        truth_a = runs[0].truth[1][0]
        codec = params.codec()
        try:
            error = float(
                np.max(np.abs(decode(estimates[0][:-1], codec) - decode(truth_a[:-1], codec)))
            )
        except SSDDLError:
            error = float("inf")
        upload = runs[0].server.uploads(0)[1].payload
        if mode == "shamir":
            upload = field_to_ring(upload, params.ring_bits)
        rows.append(
            CoalitionRow(
                mode=mode,
                c=c,
                colluders=colluders,
                recovered=all(exact),
                max_abs_error=error,
                upload_uniform_p=uniform_pvalue(upload, params.ring_bits),
                estimate_uniform_p=uniform_pvalue(estimates[0], params.ring_bits),
                same_p=same_distribution_pvalue(estimates[0], estimates[1]),
                bound=bound,
            )
        )
    return rows


class CoalitionAttack:
    """:func:`coalition_experiment` in every secure mode, n = ``coalition_n``."""

    name = "coalition"
    guarantee = (
        "with every member contributing, a coalition at or within the mode's stated bound "
        "learns nothing of one honest member's update; all n − 1 others recover it"
    )
    adversary = "an honest-but-curious server plus c colluders' keys, shares and updates"

    def run(self, context: AttackContext) -> list[AttackOutcome]:
        config = context.config
        outcomes = []
        for mode in SSDDL_MODES:
            context.say(f"coalitions: server + c colluders in {mode} (n={config.coalition_n})")
            rows = coalition_experiment(
                mode,
                n=config.coalition_n,
                size=config.coalition_size,
                crypto_seed=config.crypto_seed,
            )
            outcomes += [row.outcome(config.coalition_n) for row in rows]
        return outcomes
