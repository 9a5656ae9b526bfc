"""An empirical lower bound on ε: a canary on the distributed-DP aggregate.

The adversary is the server (with the coalition the session survives): it knows every other
member's change (here: zero, the worst case for the canary member — nothing else moves the
sum) and subtracts its colluders' own encodings, so what is left is the sum of the honest
members' noised encodings, as in the accountant's neighbouring rounds (one member's change
replaced by zero, its noise share still added). In each trial the canary member's change is
either the *canary* — a fixed vector at the clip norm, ``l2_clip · e_0`` — or zero, by a coin
the adversary does not see. It decodes the round as the server does and guesses "in" when the
projection of the decoded sum on the canary's direction exceeds half the canary's norm (a
threshold fixed before any trial, so the counts are honest binomials).

From its false positives and false negatives over the trials, Clopper–Pearson upper bounds
``FPR_u`` and ``FNR_u`` (each one-sided at level ``α/2``, so both hold together with
confidence ``1 − α``) give, for any (ε, δ)-DP mechanism (Kairouz, Oh, Viswanath 2015;
Jagielski, Ullman, Oprea, NeurIPS 2020; Nasr et al., S&P 2021)::

    ε_lb = max(log((1 − δ − FNR_u) / FPR_u), log((1 − δ − FPR_u) / FNR_u), 0)

— with confidence ``1 − α``, the mechanism is not (ε, δ)-DP for any ε below ε_lb. So ε_lb must
sit at or below the accountant's ε in every honest setting; a control that runs far less
noise than it claims (or none) must exceed its claim, which shows the test has power.

Two ways to run the trials, which must agree:

* :func:`aggregate_trials` — the mechanism at the aggregate level, for the many trials: each
  member's encoding is :func:`ssddl.protocol.dp.encode_noised` (the exact code a
  participant runs, from a cryptographic source), summed in the ring as the server unmasks it
  (the masks cancel: ``tests/protocol/test_dp.py`` checks the unmasked aggregate equals this
  sum bit for bit; the colluders' encodings, which they subtract, cancel exactly and are not
  drawn), and
  :func:`ssddl.protocol.dp.decode_noised` as the server decodes it; one trial is one round
  (its own rotation key);
* :func:`protocol_trials` — fewer trials through the real protocol
  (:func:`ssddl.attacks.views.record_run`: real keys, masks, participants and server), one
  round per trial, the colluders' own updates taken from their recorded states.

Without DP (the control ``dp off``), the encodings are the fixed-point words of the plain
secure sum (:func:`ssddl.hazmat.codec.encode`): the sum is exact, and the canary shows.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from ssddl.attacks.attack import AttackContext, AttackOutcome
from ssddl.exceptions import ConfigurationError
from ssddl.hazmat.codec import decode, encode, ring_sub, ring_sum
from ssddl.hazmat.rand import InsecureSeededRandom, OsRandom, RandomSource
from ssddl.protocol import LocalUpdate, ProtocolConfig, SessionParams

__all__ = [
    "CANARY_DIM",
    "CANARY_MEMBERS",
    "CONFIDENCE",
    "CanarySetting",
    "EmpiricalEpsilon",
    "EpsilonEstimate",
    "aggregate_trials",
    "canary_config",
    "clopper_pearson_upper",
    "epsilon_lower_bound",
    "estimate",
    "protocol_trials",
]

CANARY_DIM = 64  #: coordinates of the audited update (the accountant's ε is for this size)
CANARY_MEMBERS = 4  #: the group; every member contributes
CANARY_BITS = 16  #: the sum read modulo 2**16 (smaller noise tables than 20 bits: a faster audit)
CANARY_COLLUDERS = 2  #: members colluding with the server (they subtract their own words)
CONFIDENCE = 0.95  #: of the lower bound (both Clopper–Pearson bounds together)
TARGET = 1  #: the canary member


@dataclass(frozen=True)
class CanarySetting:
    """One audited setting: ``mechanism`` (``"ddg"``, ``"skellam"`` or None: DP off), the ε
    the session *claims* (its noise is calibrated to it), and ``noise_fraction`` of that noise
    actually run (1: honest; below 1: a fake claim, the control)."""

    mechanism: str | None
    claimed_epsilon: float
    noise_fraction: float = 1.0

    @property
    def label(self) -> str:
        if self.mechanism is None:
            return f"dp off, claimed eps={self.claimed_epsilon:g}"
        fake = "" if self.noise_fraction == 1.0 else f" at {self.noise_fraction:g}x its noise"
        return f"{self.mechanism} eps={self.claimed_epsilon:g}{fake}"

    @property
    def honest(self) -> bool:
        return self.mechanism is not None and self.noise_fraction == 1.0


@dataclass(frozen=True)
class EpsilonEstimate:
    """The canary test of one setting: how often the adversary was wrong, and the ε it
    proves (``empirical_epsilon``) against the accountant's (``accountant_epsilon``: the ε of
    the noise actually run; ``claimed_epsilon``: the ε the session claimed)."""

    setting: str
    mechanism: str | None
    via: str  #: "aggregate" (the mechanism's own code, summed) or "protocol" (real sessions)
    claimed_epsilon: float
    accountant_epsilon: float  #: inf without DP
    noise_multiplier: float | None
    delta: float
    empirical_epsilon: float
    confidence: float
    trials: int  #: in total (half with the canary in, half without)
    false_positives: int
    false_negatives: int
    fpr_upper: float
    fnr_upper: float
    dim: int
    members: int
    colluders: int

    def as_dict(self) -> dict[str, Any]:
        row = dataclasses.asdict(self)
        if not math.isfinite(self.accountant_epsilon):
            row["accountant_epsilon"] = None
        return row


# -- the statistics ---------------------------------------------------------------------------


def clopper_pearson_upper(failures: int, trials: int, alpha: float) -> float:
    """The one-sided Clopper–Pearson upper bound, at level ``alpha``, on a binomial rate
    with ``failures`` of ``trials``: the ``1 − alpha`` quantile of Beta(k + 1, n − k)."""
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ConfigurationError(f"trials must be an int >= 1, got {trials!r}")
    if not 0 <= failures <= trials:
        raise ConfigurationError(f"failures must be in [0, {trials}], got {failures!r}")
    if not 0 < alpha < 1:
        raise ConfigurationError(f"alpha must be in (0, 1), got {alpha!r}")
    if failures == trials:
        return 1.0
    from scipy.stats import beta

    return float(beta.ppf(1 - alpha, failures + 1, trials - failures))


def epsilon_lower_bound(
    false_positives: int,
    negatives: int,
    false_negatives: int,
    positives: int,
    *,
    delta: float,
    confidence: float = CONFIDENCE,
) -> tuple[float, float, float]:
    """(ε_lb, FPR_u, FNR_u): the module docstring's bound, both rates bounded one-sided at
    ``(1 − confidence) / 2`` so that ε_lb holds with ``confidence``."""
    alpha = (1 - confidence) / 2
    fpr = clopper_pearson_upper(false_positives, negatives, alpha)
    fnr = clopper_pearson_upper(false_negatives, positives, alpha)
    best = 0.0
    for numerator, denominator in ((1 - delta - fnr, fpr), (1 - delta - fpr, fnr)):
        if numerator > 0 and denominator > 0:
            best = max(best, math.log(numerator / denominator))
    return best, fpr, fnr


# -- the setting --------------------------------------------------------------------------------


def canary_config(setting: CanarySetting, *, rounds: int = 1) -> tuple[ProtocolConfig, float]:
    """The session of a setting, and the accountant's ε of one round of the noise it runs.
    The noise multiplier is calibrated to the claimed ε for one round (the trials are rounds),
    then scaled by ``noise_fraction``; the contributor floor is the whole group, with
    :data:`CANARY_COLLUDERS` colluders, so the accountant counts exactly the honest members'
    noise the adversary cannot subtract."""
    from ssddl.protocol.dp import calibrated_noise, epsilon_after

    base = ProtocolConfig(
        mode="prg",
        rounds=rounds,
        weighted=False,
        max_colluders=CANARY_COLLUDERS,
        min_group_size=CANARY_MEMBERS,
        threshold=CANARY_MEMBERS,
        bits=CANARY_BITS,
    )
    if setting.mechanism is None:
        return base, math.inf
    claimed = dataclasses.replace(base, dp=setting.mechanism, rounds=1)
    z = calibrated_noise(claimed.resolve(CANARY_MEMBERS), CANARY_DIM, setting.claimed_epsilon)
    run = dataclasses.replace(claimed, noise_multiplier=z * setting.noise_fraction)
    spent = epsilon_after(run.resolve(CANARY_MEMBERS), CANARY_DIM, 1)
    return dataclasses.replace(run, rounds=rounds), spent


def canary(dim: int, l2_clip: float) -> np.ndarray:
    """The canary member's change: ``l2_clip`` on the first coordinate, zero elsewhere."""
    vector = np.zeros(dim, dtype=np.float32)
    vector[0] = l2_clip
    return vector


def _coins(trials: int, seed: int) -> np.ndarray:
    """Which trials hold the canary: exactly half, in a seeded order (a public coin: it
    decides the experiment, not a key, a mask or noise)."""
    included = np.arange(trials) < trials // 2 + trials % 2
    return np.random.default_rng(seed).permutation(included)


def _source(crypto_seed: bytes | None, label: str) -> RandomSource:
    """The members' noise source: the OS's, or (tests) one derived from ``crypto_seed``."""
    if crypto_seed is None:
        return OsRandom()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return InsecureSeededRandom(hashlib.sha256(crypto_seed + label.encode()).digest())


def _statistic(summed: np.ndarray) -> float:
    """The adversary's score: the decoded sum's projection on the canary's direction
    (``e_0``: its first coordinate)."""
    return float(summed[0])


# -- the trials ---------------------------------------------------------------------------------


def _encodings(
    params: SessionParams, session_id: bytes, trial: int, deltas: list[np.ndarray], source: Any
) -> list[np.ndarray]:
    """Each member's x_i (without the count word) in the ring, as a participant writes it."""
    from ssddl.protocol.dp import encode_noised

    codec = params.codec()
    if not params.dp:
        return [encode(np.asarray(d, dtype=np.float64), codec) for d in deltas]
    return [
        encode_noised(params, session_id, trial, d, source).view(np.uint64).astype(codec.dtype)
        for d in deltas
    ]


def _decoded(params: SessionParams, session_id: bytes, trial: int, words: np.ndarray) -> Any:
    from ssddl.protocol.dp import decode_noised

    if not params.dp:
        return decode(words, params.codec())
    return decode_noised(params, session_id, trial, words)


def aggregate_trials(
    config: ProtocolConfig, included: np.ndarray, *, crypto_seed: bytes | None = None
) -> np.ndarray:
    """The adversary's score in each trial, the mechanism run at the aggregate level (module
    docstring): trial t is round t of one session; the canary member's change is the canary
    where ``included[t]``, zero otherwise, every other member's zero. What the adversary holds
    is the ring sum of the honest members' encodings: the colluders' own words, added by the
    protocol and subtracted by the adversary, cancel exactly in the ring, so they are not
    drawn here (:func:`protocol_trials` does add and subtract them)."""
    params = config.resolve(CANARY_MEMBERS)
    session_id = hashlib.sha256(b"ssddl/audit/canary" + (crypto_seed or b"")).digest()
    source = _source(crypto_seed, "canary/members")
    spike, zero = canary(CANARY_DIM, config.l2_clip), np.zeros(CANARY_DIM, dtype=np.float32)
    honest = CANARY_MEMBERS - CANARY_COLLUDERS
    scores = np.empty(included.size)
    for trial, holds in enumerate(included):
        deltas = [spike if holds else zero] + [zero] * (honest - 1)
        seen = ring_sum(_encodings(params, session_id, trial, deltas, source))
        scores[trial] = _statistic(_decoded(params, session_id, trial, seen))
    return scores


def protocol_trials(
    config: ProtocolConfig, included: np.ndarray, *, crypto_seed: bytes | None = None
) -> np.ndarray:
    """The same scores from a real session of ``len(included)`` rounds
    (:func:`~ssddl.attacks.views.record_run`): the canary member's trainer returns the canary
    in the rounds where ``included``; the colluders' own encoded updates come from their
    recorded states."""
    from ssddl.attacks.views import record_run

    rounds = int(included.size)
    spike = canary(CANARY_DIM, config.l2_clip)

    def trainer(pid: int) -> Any:
        def train(_weights: np.ndarray, round_number: int) -> LocalUpdate:
            hit = pid == TARGET and bool(included[round_number])
            return LocalUpdate(spike if hit else np.zeros(CANARY_DIM, dtype=np.float32), 1)

        return train

    session = dataclasses.replace(config, rounds=rounds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the synthetic trainers and the seeded keys
        run = record_run(
            session,
            {p: trainer(p) for p in range(1, CANARY_MEMBERS + 1)},
            np.zeros(CANARY_DIM, dtype=np.float32),
            crypto_seed=crypto_seed,
        )
    colluders = range(CANARY_MEMBERS - CANARY_COLLUDERS + 1, CANARY_MEMBERS + 1)
    view = run.coalition(colluders)
    params, session_id = run.server.params, run.server.session_id
    scores = np.empty(rounds)
    for r in range(rounds):
        aggregate = view.server.aggregate(r)
        if aggregate is None:
            raise ConfigurationError(f"round {r} of the canary session was not applied")
        own = ring_sum([_member_update(view.member(q, r).update) for q in colluders])
        seen = ring_sub(aggregate, own)[:-1]  # the count word is public
        scores[r] = _statistic(_decoded(params, session_id, r, seen))
    return scores


def _member_update(update: np.ndarray | None) -> np.ndarray:
    if update is None:
        raise ConfigurationError("a colluder's recorded state holds no encoded update")
    return update


def estimate(
    setting: CanarySetting,
    trials: int,
    *,
    via: str = "aggregate",
    seed: int = 0,
    crypto_seed: bytes | None = None,
    confidence: float = CONFIDENCE,
) -> tuple[EpsilonEstimate, np.ndarray, np.ndarray]:
    """Run ``trials`` trials of ``setting`` (half with the canary) ``via`` the aggregate or
    the real protocol; returns the estimate, the scores and which trials held the canary."""
    if via not in ("aggregate", "protocol"):
        raise ConfigurationError(f"via must be 'aggregate' or 'protocol', got {via!r}")
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 2:
        raise ConfigurationError(f"trials must be an int >= 2, got {trials!r}")
    config, spent = canary_config(setting)
    included = _coins(trials, seed)
    run = aggregate_trials if via == "aggregate" else protocol_trials
    scores = run(config, included, crypto_seed=crypto_seed)
    guessed = scores > config.l2_clip / 2  # fixed before any trial
    fp = int(np.count_nonzero(guessed & ~included))
    fn = int(np.count_nonzero(~guessed & included))
    delta = config.dp_delta
    lb, fpr, fnr = epsilon_lower_bound(
        fp,
        int(np.count_nonzero(~included)),
        fn,
        int(np.count_nonzero(included)),
        delta=delta,
        confidence=confidence,
    )
    found = EpsilonEstimate(
        setting=setting.label,
        mechanism=setting.mechanism,
        via=via,
        claimed_epsilon=setting.claimed_epsilon,
        accountant_epsilon=spent,
        noise_multiplier=config.noise_multiplier if setting.mechanism else None,
        delta=delta,
        empirical_epsilon=lb,
        confidence=confidence,
        trials=trials,
        false_positives=fp,
        false_negatives=fn,
        fpr_upper=fpr,
        fnr_upper=fnr,
        dim=CANARY_DIM,
        members=CANARY_MEMBERS,
        colluders=CANARY_COLLUDERS,
    )
    return found, scores, included


# -- the attack ---------------------------------------------------------------------------------


class EmpiricalEpsilon:
    """The canary test of every setting: honest distributed DP at each ε of
    ``dp_epsilons`` (ddg, and skellam at the middle one) must give ε_lb at or below the
    accountant's ε (the attack *succeeds* when it proves more); the controls — a claim of
    the smallest ε with 1/50 of its noise, and no DP at all — must exceed the claim. One
    setting (ddg at the middle ε) is also run through the real protocol, ``canary_rounds``
    rounds, and both ways' scores are compared (two-sample KS, measured)."""

    name = "empirical-epsilon"
    guarantee = (
        "distributed DP is (eps, delta)-DP as accounted: a canary test on the decoded "
        "aggregate proves no eps above the accountant's"
    )
    adversary = (
        "the server and two colluders, who know every other member's change and subtract "
        "their own words, guessing whether a canary at the clip norm was in the sum"
    )

    def settings(self, epsilons: tuple[float, ...]) -> list[CanarySetting]:
        middle = self.live(epsilons)
        low = min(epsilons)
        return [
            *(CanarySetting("ddg", e) for e in epsilons),
            CanarySetting("skellam", middle.claimed_epsilon),
            CanarySetting("ddg", low, noise_fraction=0.02),
            CanarySetting(None, low),
        ]

    def run(self, context: AttackContext) -> list[AttackOutcome]:
        config = context.config
        outcomes = []
        settings = self.settings(config.dp_epsilons)
        trials: dict[CanarySetting, tuple[np.ndarray, np.ndarray]] = {}
        for i, setting in enumerate(settings):
            context.say(f"empirical epsilon: {config.canary_trials} trials of {setting.label}")
            found, scores, included = estimate(
                setting, config.canary_trials, seed=config.seed + i, crypto_seed=config.crypto_seed
            )
            outcomes.append(_outcome(found, setting))
            trials[setting] = (scores, included)
        outcomes.append(self._protocol(context, *trials[self.live(config.dp_epsilons)]))
        return outcomes

    def live(self, epsilons: tuple[float, ...]) -> CanarySetting:
        """The setting also run through the real protocol: ddg at the middle ε."""
        return CanarySetting("ddg", epsilons[len(epsilons) // 2])

    def _protocol(
        self, context: AttackContext, ref_scores: np.ndarray, ref_in: np.ndarray
    ) -> AttackOutcome:
        """The live setting through the real protocol, beside the same setting's aggregate
        trials (a two-sample KS test of the scores on each side, measured)."""
        from scipy.stats import ks_2samp

        config = context.config
        setting = self.live(config.dp_epsilons)
        context.say(f"empirical epsilon: {config.canary_rounds} rounds of {setting.label}, live")
        found, scores, included = estimate(
            setting,
            config.canary_rounds,
            via="protocol",
            seed=config.seed,
            crypto_seed=config.crypto_seed,
        )
        same = [
            float(ks_2samp(scores[included == side], ref_scores[ref_in == side]).pvalue)
            for side in (True, False)
        ]
        outcome = _outcome(found, setting)
        return dataclasses.replace(
            outcome,
            detail=outcome.detail + f"; KS against the aggregate trials p = {min(same):.3g}",
            measured={**outcome.measured, "agrees_with_aggregate_p": min(same)},
        )


def _outcome(found: EpsilonEstimate, setting: CanarySetting) -> AttackOutcome:
    # honest: against the accountant's ε (at most the claim); a control: against its claim
    proved_more = found.empirical_epsilon > min(found.accountant_epsilon, found.claimed_epsilon)
    return AttackOutcome(
        EmpiricalEpsilon.name,
        f"{found.setting} ({found.via})",
        proved_more,
        not setting.honest,
        target=f"member {TARGET}",
        colluders=CANARY_COLLUDERS,
        detail=(
            f"eps_lb {found.empirical_epsilon:.3g} at {found.confidence:.0%} vs accountant "
            f"{found.accountant_epsilon:.3g} (claimed {found.claimed_epsilon:g}); "
            f"{found.false_positives} FP, {found.false_negatives} FN of {found.trials}"
        ),
        measured=found.as_dict(),
    )
