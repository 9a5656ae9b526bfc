"""Attacks on what the server and its colluders see (issue 11): the evidence for the privacy
claims, run on the real transcript, not on a model of it.

* :mod:`ssddl.attacks.attack` — the one interface: an :class:`Attack` (name, the guarantee
  it tests, its adversary, ``run(context)``), its result :class:`AttackOutcome`, the
  :class:`AttackContext` every attack shares, and the registry the audit runs
  (:func:`register_attack`; docs/writing-an-attack.md).
* :mod:`ssddl.attacks.suite` — the audit's own attacks, registered in order.
* :mod:`ssddl.attacks.target` — the victims: a small network, one-step trainers, digits.
* :mod:`ssddl.attacks.views` — record a run: every frame the server receives and sends,
  decoded, per round; a coalition's states (round keys, share keys, own shares, updates).
* :mod:`ssddl.attacks.inversion` — first-layer input recovery ``x = ΔW_k / Δb_k`` and scores.
* :mod:`ssddl.attacks.dlg` — DLG and iDLG gradient inversion (one sample or a batch).
* :mod:`ssddl.attacks.uploads` — both, and Phong's shared key, on each member's upload.
* :mod:`ssddl.attacks.aggregate` — the same attacks on the aggregate the server decodes by
  design: secure aggregation hides each member's upload, not what the sum says.
* :mod:`ssddl.attacks.dp_aggregate` — those attacks, and a same-model imprint attack, on the
  aggregate of distributed-DP sessions at several ε.
* :mod:`ssddl.attacks.canary` — a canary test on the noised aggregate: an empirical lower
  bound on ε, with a confidence level, against the accountant's.
* :mod:`ssddl.attacks.coalition` — the server plus c colluders against one honest member.
* :mod:`ssddl.attacks.baseline_views` — what the baselines show the server: DSSGD's sparse
  uploads, and Phong et al.'s shared key (one colluder decrypts everyone).
* :mod:`ssddl.attacks.server` — a server that lies, played against the real participants.
* :mod:`ssddl.attacks.audit` — every registered attack as one report (``ssddl audit``).

Nothing in the protocol or the runtime imports this package.
"""

from ssddl.attacks.attack import (
    Attack,
    AttackContext,
    AttackOutcome,
    AuditConfig,
    attack_names,
    expected_at,
    get_attack,
    register_attack,
    unregister_attack,
)
from ssddl.attacks.inversion import (
    InputReconstruction,
    Score,
    first_layer_recovery,
    random_guess_pvalue,
    score,
    update_as_seen,
)
from ssddl.attacks.views import (
    CoalitionView,
    MemberState,
    RecordedRun,
    ServerFrame,
    ServerView,
    ViewRecorder,
    record_run,
)

__all__ = [
    "Attack",
    "AttackContext",
    "AttackOutcome",
    "AuditConfig",
    "CoalitionView",
    "InputReconstruction",
    "MemberState",
    "RecordedRun",
    "Score",
    "ServerFrame",
    "ServerView",
    "ViewRecorder",
    "attack_names",
    "expected_at",
    "first_layer_recovery",
    "get_attack",
    "random_guess_pvalue",
    "record_run",
    "register_attack",
    "score",
    "unregister_attack",
    "update_as_seen",
]
