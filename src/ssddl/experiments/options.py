"""Every option of an experiment, in one table: the command-line flags, the TOML keys, their
help text and defaults, and which options apply to which mode, dataset and partition.

The CLI parser, the option checks and ``docs/reference/options.md`` are all built from
:data:`OPTIONS`, so they cannot drift apart. This module imports no torch: ``ssddl --help``
answers at once. Choices come from the enums of the protocol and runtime layers; the learning
layer's names (datasets, models, partitions, optimizers) are repeated here because importing
them loads torch — a test checks that both lists agree.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ssddl import modes
from ssddl.exceptions import ConfigurationError
from ssddl.hazmat.aead import AeadAlgorithm
from ssddl.hazmat.prg import StreamCipher
from ssddl.protocol.config import Aggregation, Mode, PairKeys, Recovery, Rounding
from ssddl.protocol.pairing import (
    DEFAULT_CORRUPT_FRACTION,
    DEFAULT_DROPOUT_FRACTION,
    DEFAULT_SPARSE_FROM,
)

__all__ = [
    "DATASET_CHOICES",
    "DEVICE_CHOICES",
    "DROPOUT_PHASES",
    "MODEL_CHOICES",
    "OPTIMIZER_CHOICES",
    "OPTIONS",
    "PARTITION_CHOICES",
    "Option",
    "canonical",
    "check_applicable",
    "cli_words",
    "config_fields",
    "known_keys",
    "option",
]

#: The same names as ssddl.learning.data.DATASETS etc. (tests/cli checks they agree).
DATASET_CHOICES = ("digits", "mnist1d", "mnist", "fashion-mnist")
MODEL_CHOICES = ("mlp", "cnn")
PARTITION_CHOICES = ("iid", "dirichlet", "shards")
OPTIMIZER_CHOICES = ("sgd", "adam")
#: The values of ssddl.runtime.inmemory.VanishPhase.
DROPOUT_PHASES = ("round_start", "after_share")
DEVICE_CHOICES = ("cpu", "cuda", "auto")
IDX_DATASETS = ("mnist", "fashion-mnist")

#: The embedded default (digits, 10 participants, prg) reaches test accuracy >= 0.95 with these.
DEFAULT_ROUNDS = 40
DEFAULT_EPOCHS = 5


def _values(enum: type[Enum]) -> tuple[str, ...]:
    return tuple(str(member.value) for member in enum)


#: (effective values by key) -> why the option does not apply, or None when it does
Rule = Callable[[Mapping[str, Any]], "str | None"]


def _only(key: str, allowed: tuple[Any, ...], what: str) -> Rule:
    def rule(values: Mapping[str, Any]) -> str | None:
        if values[key] in allowed:
            return None
        return f"it is only used {what}, not with {_flag(key)} {values[key]}"

    return rule


def _threshold_applies(values: Mapping[str, Any]) -> str | None:
    mode = values["protocol.mode"]
    if mode == Mode.SHAMIR.value:
        return None
    if mode == Mode.PRG.value and values.get("protocol.recovery") in (None, "double-mask"):
        return None
    return (
        f"it is only used with --mode shamir, or --mode prg with --recovery double-mask, "
        f"not with --mode {mode}"
    )


def _only_modes(key: str) -> Rule:
    """``key`` applies only to the modes whose catalogue entry lists it."""

    def rule(values: Mapping[str, Any]) -> str | None:
        allowed = modes.modes_using(key)
        return _only("protocol.mode", allowed, f"with --mode {' or '.join(allowed)}")(values)

    return rule


def _in_clear(mode: str) -> bool:
    """The mode sends changes in the clear (plain, FedAvg, FedSGD, DSSGD): no fixed point."""
    try:
        entry = modes.entry(mode)
    except ConfigurationError:  # not a mode: refused by the configuration
        return False
    return entry.engine is modes.Engine.SIMULATOR and not entry.secure


def _in_protocol(mode: str) -> bool:
    """The mode runs in the simulator (not in a baseline runner of its own)."""
    try:
        return modes.entry(mode).engine is modes.Engine.SIMULATOR
    except ConfigurationError:  # not a mode: refused by the configuration
        return True


def _not_plain(values: Mapping[str, Any]) -> str | None:
    mode = values["protocol.mode"]
    if not _in_clear(mode):
        return None
    return f"mode {mode} sends float32 changes in the clear, with no fixed-point encoding"


def _dp_on(values: Mapping[str, Any]) -> str | None:
    if values["protocol.dp"] is not None:
        return None
    return "it is only used with --dp ddg or --dp skellam"


@dataclass(frozen=True)
class Option:
    """One option: ``key`` is its TOML path (``section.name`` or ``name``). ``help`` and
    ``choices`` may be functions, read when a parser is built (``--mode``'s come from the
    catalogue of modes, which can grow after import): :meth:`help_text`, :meth:`choice_names`."""

    key: str
    help: str | Callable[[], str]
    type: type
    default: Any = None
    choices: tuple[str, ...] | Callable[[], tuple[str, ...]] | None = None
    metavar: str | None = None
    #: why the option does not apply to the other values of a run (None: it always applies)
    applies: Rule | None = None
    #: besides ``choices``, a value with ``:`` names ``package.module:name`` (your own)
    import_path: bool = False
    #: the config dataclass's field, when its name differs from the option's (None: the same)
    field: str | None = None
    #: deprecated names of the option, still accepted as a flag and a TOML key
    aliases: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.key.rpartition(".")[2]

    @property
    def section(self) -> str | None:
        return self.key.partition(".")[0] if "." in self.key else None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def dest(self) -> str:
        return self.name

    @property
    def field_name(self) -> str:
        """The name of the option in its config dataclass (``ProtocolConfig`` ...)."""
        return self.field or self.name

    @property
    def alias_flags(self) -> tuple[str, ...]:
        return tuple("--" + a.replace("_", "-") for a in self.aliases)

    @property
    def alias_keys(self) -> tuple[str, ...]:
        prefix = f"{self.section}." if self.section else ""
        return tuple(prefix + a for a in self.aliases)

    def help_text(self) -> str:
        return self.help() if callable(self.help) else self.help

    def choice_names(self) -> tuple[str, ...] | None:
        return self.choices() if callable(self.choices) else self.choices

    def default_text(self) -> str:
        if self.default is None:
            return "unset"
        if isinstance(self.default, bool):
            return "on" if self.default else "off"
        return str(self.default)


OPTIONS: tuple[Option, ...] = (
    # -- data, model, participants ----------------------------------------------------------
    Option(
        "dataset",
        "the data the participants hold: a built-in name, or package.module:factory, "
        "factory(seed) -> DatasetSplit (docs/howto/own-model-and-data.md)",
        str,
        "digits",
        DATASET_CHOICES,
        import_path=True,
    ),
    Option(
        "data_dir",
        "directory of the four MNIST/Fashion-MNIST IDX files (raw or .gz)",
        str,
        None,
        metavar="DIR",
        applies=_only("dataset", IDX_DATASETS, "with --dataset mnist or fashion-mnist"),
    ),
    Option(
        "download",
        "fetch missing IDX files into --data-dir (needs the network)",
        bool,
        False,
        applies=_only("dataset", IDX_DATASETS, "with --dataset mnist or fashion-mnist"),
    ),
    Option("participants", "how many participants take part", int, 10, metavar="N"),
    Option(
        "partition",
        "how the training set is split among participants: iid, label-skewed "
        "Dirichlet(--alpha), or label shards",
        str,
        "iid",
        PARTITION_CHOICES,
    ),
    Option(
        "alpha",
        "Dirichlet concentration: small values give each participant few classes",
        float,
        0.5,
        metavar="A",
        applies=_only("partition", ("dirichlet",), "with --partition dirichlet"),
    ),
    Option(
        "shards_per_participant",
        "label shards each participant gets",
        int,
        2,
        metavar="K",
        applies=_only("partition", ("shards",), "with --partition shards"),
    ),
    Option(
        "model",
        "the network every participant trains: a built-in name, or package.module:factory, "
        "factory(input_shape, num_classes) -> torch.nn.Module",
        str,
        "mlp",
        MODEL_CHOICES,
        import_path=True,
    ),
    Option(
        "init",
        "start from saved weights instead of the model's random ones: a model.pt or "
        "model.safetensors of a run (or your own), checked against the model's tensors and "
        "shapes (unset: the model's seeded initialisation)",
        str,
        None,
        metavar="FILE",
    ),
    Option(
        "train_step",
        "a custom loss for local training: package.module:function, "
        "function(model, x, y) -> the minibatch's scalar loss tensor (unset: cross-entropy)",
        str,
        None,
        metavar="MODULE:FUNCTION",
        applies=lambda v: (
            None
            if _in_protocol(v["protocol.mode"])
            else f"mode {v['protocol.mode']} trains in its own baseline runner"
        ),
    ),
    Option(
        "eval_participants",
        "every K rounds each participant evaluates the global model on its own held-out "
        "split (a fifth of its data, kept out of training) and reports only accuracy and "
        "loss, to participants.csv (unset: never)",
        int,
        None,
        metavar="K",
        applies=lambda v: (
            None
            if _in_protocol(v["protocol.mode"])
            else f"mode {v['protocol.mode']} trains in its own baseline runner"
        ),
    ),
    Option(
        "seed",
        "seed of the data split, model, training and group selection (never of keys)",
        int,
        0,
        metavar="S",
    ),
    Option(
        "validate",
        "check every round's secure sum against the plaintext sum, bit for bit",
        bool,
        False,
        applies=lambda v: (
            None
            if not _in_clear(v["protocol.mode"])
            else f"mode {v['protocol.mode']} has no secure sum to check"
        ),
    ),
    Option(
        "dropout",
        "fraction of participants that vanish for good, each at a random round",
        float,
        0.0,
        metavar="RATE",
    ),
    Option(
        "dropout_at",
        "when a vanishing participant stops answering: at the round's start, or after its "
        "first reply (its shares or upload)",
        str,
        "round_start",
        DROPOUT_PHASES,
        applies=lambda v: None if v["dropout"] > 0 else "no participant vanishes: give --dropout",
    ),
    Option(
        "compare",
        "also run the plain reference with the same seeds and report the accuracy difference",
        str,
        None,
        ("plain",),
        applies=lambda v: (
            None
            if v["protocol.mode"] != Mode.PLAIN.value
            else "the run already is the plain reference"
        ),
    ),
    Option(
        "threads",
        "CPU threads for local training (1 is fastest for small models; at most 4 per CPU)",
        int,
        1,
        metavar="N",
    ),
    Option(
        "device",
        "where local training runs (the protocol stays on the CPU); auto picks cuda if present",
        str,
        "cpu",
        DEVICE_CHOICES,
    ),
    # -- baselines --------------------------------------------------------------------------
    Option(
        "theta_u",
        "DSSGD: fraction of the parameters each upload carries (largest changes)",
        float,
        0.1,
        metavar="F",
        applies=_only_modes("theta_u"),
    ),
    Option(
        "theta_d",
        "DSSGD: fraction of the parameters downloaded (1 in dssgd-parallel; below 1: dssgd-rr)",
        float,
        1.0,
        metavar="F",
        applies=_only_modes("theta_d"),
    ),
    Option(
        "gamma",
        "DSSGD: clip every uploaded value to [-gamma, gamma] (unset: no clipping)",
        float,
        None,
        metavar="G",
        applies=_only_modes("gamma"),
    ),
    Option(
        "laplace_scale",
        "DSSGD: scale b of Laplace noise added to every uploaded value; not calibrated to "
        "any epsilon, so no differential-privacy guarantee (unset: none)",
        float,
        None,
        metavar="B",
        applies=_only_modes("laplace_scale"),
    ),
    Option(
        "he_key_bits",
        "Phong with Paillier: key size (2048: ~112-bit security; 3072: 128-bit)",
        int,
        2048,
        ("2048", "3072", "4096"),
        applies=_only_modes("he_key_bits"),
    ),
    Option(
        "he_poly_degree",
        "Phong with BFV: ring dimension N (128-bit security with SEAL's default moduli)",
        int,
        4096,
        ("4096", "8192", "16384"),
        applies=_only_modes("he_poly_degree"),
    ),
    Option(
        "he_real_rounds",
        "Phong: rounds run on real ciphertexts; the rest run the same fixed-point sums in the "
        "clear (unset: all)",
        int,
        None,
        metavar="K",
        applies=_only_modes("he_real_rounds"),
    ),
    # -- protocol ---------------------------------------------------------------------------
    Option(
        "protocol.mode",
        modes.mode_help,
        str,
        Mode.PRG.value,
        modes.mode_names,
    ),
    Option("protocol.rounds", "training rounds", int, DEFAULT_ROUNDS, metavar="R"),
    Option(
        "protocol.group_size",
        "members selected per round (unset: every participant)",
        int,
        None,
        metavar="N",
    ),
    Option(
        "protocol.min_group_size",
        "fewest members a round may aggregate (at least 2 in modes prg and explicit)",
        int,
        2,
        metavar="N",
    ),
    Option(
        "protocol.threshold",
        "threshold t: in shamir any t uploads give the sum; in prg with double masking t "
        "survivors unmask a self-mask (unset: 2n/3 + 1, raised to survive --max-colluders "
        "against a server that lies)",
        int,
        None,
        metavar="T",
        applies=_threshold_applies,
    ),
    Option(
        "protocol.max_colluders",
        "the largest coalition of members (with the server) every participant must survive: "
        "it shares in no round with fewer than max_colluders + 2 contributors and refuses a "
        "threshold a lying server could split (unset: the most the configuration survives)",
        int,
        None,
        metavar="C",
        applies=_not_plain,
    ),
    Option(
        "protocol.recovery",
        "prg only: what a missing upload does — double-mask (late uploads stay masked), none "
        "(the round aborts, as in the paper), unsafe-reveal-keys (a late upload is unmasked)",
        str,
        None,
        _values(Recovery),
        applies=_only_modes("protocol.recovery"),
    ),
    Option(
        "protocol.consistency",
        "against a server that lies: members reveal nothing for a round until t of them have "
        "signed the same survivor set (one more round trip; needs 2t > group size + "
        "max_colluders)",
        bool,
        False,
        applies=_not_plain,
    ),
    Option(
        "protocol.sparse_from",
        "prg: groups of at least this many pair with k random neighbours instead of everyone "
        "(SecAgg+; a graph per round when groups are smaller than the registered set); k and "
        "t follow from the two fractions",
        int,
        DEFAULT_SPARSE_FROM,
        applies=_only_modes("protocol.sparse_from"),
    ),
    Option(
        "protocol.corrupt_fraction",
        "sparse pairing: fraction of members that may collude with the server (security "
        "2^-40 over the pairing graph)",
        float,
        DEFAULT_CORRUPT_FRACTION,
        applies=_only_modes("protocol.corrupt_fraction"),
    ),
    Option(
        "protocol.dropout_fraction",
        "sparse pairing: fraction of members that may vanish in a round (failure "
        "probability below 2^-20)",
        float,
        DEFAULT_DROPOUT_FRACTION,
        applies=_only_modes("protocol.dropout_fraction"),
    ),
    Option(
        "protocol.pair_keys",
        "when members agree pair keys: eager (all at Init, forward secure) or lazy (on a "
        "pair's first round: Init O(N), but a member compromised during the session reveals "
        "earlier rounds)",
        str,
        PairKeys.EAGER.value,
        _values(PairKeys),
        applies=_not_plain,
    ),
    Option(
        "protocol.dp",
        "distributed differential privacy (docs/privacy.md): every member clips, rotates, "
        "rounds and adds its share of discrete Gaussian (ddg) or Skellam noise before masking; "
        "needs --no-weighted",
        str,
        None,
        ("ddg", "skellam"),
        applies=_not_plain,
    ),
    Option(
        "protocol.noise_multiplier",
        "dp: the honest contributors' total noise has standard deviation noise_multiplier x "
        "l2_clip",
        float,
        1.0,
        applies=_dp_on,
    ),
    Option(
        "protocol.l2_clip",
        "dp: each member's change is clipped to this L2 norm",
        float,
        1.0,
        applies=_dp_on,
    ),
    Option(
        "protocol.delta",
        "dp: the delta of the (epsilon, delta) guarantee; --dp-delta (TOML key dp_delta) is a "
        "deprecated alias",
        float,
        1e-5,
        applies=_dp_on,
        field="dp_delta",  # ProtocolConfig's (published) name
        aliases=("dp_delta",),
    ),
    Option(
        "protocol.target_epsilon",
        "dp: choose --noise-multiplier so that epsilon(delta) after --rounds rounds is at "
        "most this, for the model's size and the honest contributor floor",
        float,
        None,
        applies=_dp_on,
    ),
    Option(
        "protocol.max_epsilon",
        "dp: stop the run, everything saved, before the round that would take epsilon above this",
        float,
        None,
        applies=_dp_on,
    ),
    Option(
        "protocol.ring_bits",
        "bits of the ring Z_Q the changes are encoded in",
        int,
        32,
        ("32", "64"),
        applies=_not_plain,
    ),
    Option(
        "protocol.bits",
        "compression: the secure sum lives in Z_(2^bits) and each ring word travels in this "
        "many bits (8 to 32, at most ring_bits; unset: whole words, with --dp 20)",
        int,
        None,
        metavar="B",
        applies=_not_plain,
    ),
    Option(
        "protocol.frac_bits",
        "fractional bits of the fixed-point encoding (unset: the most that cannot overflow)",
        int,
        None,
        metavar="F",
        applies=_not_plain,
    ),
    Option(
        "protocol.clip",
        "each change is clipped to [-C, C] per coordinate before it is encoded",
        float,
        4.0,
        metavar="C",
    ),
    Option(
        "protocol.rounding",
        "how a change is rounded to fixed point",
        str,
        Rounding.NEAREST.value,
        _values(Rounding),
        applies=_not_plain,
    ),
    Option(
        "protocol.weighted",
        "weight each change by its participant's sample count (the server learns only the total)",
        bool,
        True,
    ),
    Option(
        "protocol.max_samples",
        "public bound on one participant's sample count (unset: the next power of two above "
        "the largest local dataset)",
        int,
        None,
        metavar="N",
        applies=lambda v: None if v["protocol.weighted"] else "it is only used with --weighted",
    ),
    Option(
        "protocol.aggregation",
        "the server applies the mean or the sum of the changes",
        str,
        Aggregation.MEAN.value,
        _values(Aggregation),
    ),
    Option(
        "protocol.server_lr",
        "the server's step: w += server_lr x the aggregate change",
        float,
        1.0,
        metavar="LR",
    ),
    Option(
        "protocol.cipher",
        "stream cipher that expands the pairwise masks",
        str,
        StreamCipher.AES_CTR.value,
        _values(StreamCipher),
        applies=_only_modes("protocol.cipher"),
    ),
    Option(
        "protocol.aead",
        "authenticated cipher that encrypts shares relayed by the server",
        str,
        AeadAlgorithm.CHACHA20_POLY1305.value,
        _values(AeadAlgorithm),
        applies=_not_plain,
    ),
    # -- local training ---------------------------------------------------------------------
    Option("train.optimizer", "local optimizer", str, "sgd", OPTIMIZER_CHOICES),
    Option("train.lr", "local learning rate", float, 0.05, metavar="LR"),
    Option(
        "train.momentum",
        "SGD momentum, or Adam's beta1 (in [0, 1))",
        float,
        0.9,
        metavar="M",
    ),
    Option("train.weight_decay", "L2 regularisation of local training", float, 0.0, metavar="WD"),
    Option(
        "train.epochs", "local passes over the data per round", int, DEFAULT_EPOCHS, metavar="E"
    ),
    Option(
        "train.steps",
        "local minibatch steps per round, instead of --epochs",
        int,
        None,
        metavar="K",
    ),
    Option("train.batch_size", "local minibatch size", int, 32, metavar="B"),
)

_BY_KEY = {o.key: o for o in OPTIONS}
#: every option under its key and its deprecated keys
_BY_ANY_KEY = _BY_KEY | {alias: o for o in OPTIONS for alias in o.alias_keys}


def option(key: str) -> Option:
    """The option of a key, or of one of its deprecated keys."""
    return _BY_ANY_KEY[key]


def known_keys() -> frozenset[str]:
    """Every key a config file may hold: the options' and their deprecated aliases."""
    return frozenset(_BY_ANY_KEY)


def canonical(chosen: Mapping[str, Any]) -> dict[str, Any]:
    """``chosen`` (flat keys) with deprecated keys under the option's key; an option given
    under two of its names is refused."""
    out: dict[str, Any] = {}
    for key, value in chosen.items():
        spec = _BY_ANY_KEY.get(key)
        target = spec.key if spec is not None else key
        if target in out:
            names = " and ".join(
                f"`{k.rpartition('.')[2]}`" for k in chosen if _BY_ANY_KEY.get(k) is spec
            )
            raise ConfigurationError(
                f"{names} are the same option ({spec.flag if spec else key}); give only "
                f"`{target.rpartition('.')[2]}`"
            )
        out[target] = value
    return out


def config_fields(section: Mapping[str, Any], name: str | None) -> dict[str, Any]:
    """One nested section of a config (``name`` None: the top level) with each option's
    name (or deprecated name) replaced by its config dataclass's field name."""
    prefix = f"{name}." if name else ""
    flat = canonical({prefix + k: v for k, v in section.items()})
    out: dict[str, Any] = {}
    for key, value in flat.items():
        spec = _BY_KEY.get(key)
        out[spec.field_name if spec is not None else key.rpartition(".")[2]] = value
    return out


def _flag(key: str) -> str:
    return _BY_KEY[key].flag if key in _BY_KEY else key


def effective(chosen: Mapping[str, Any]) -> dict[str, Any]:
    """Every option's value: the chosen ones (flat ``section.name`` keys), else the default."""
    values = {o.key: o.default for o in OPTIONS}
    values.update(chosen)
    return values


def check_applicable(chosen: Mapping[str, Any]) -> None:
    """Refuse a chosen option that does nothing with the other values (flat keys)."""
    chosen = canonical(chosen)
    values = effective(chosen)
    for key in chosen:
        spec = _BY_KEY.get(key)
        if spec is None or spec.applies is None:
            continue
        reason = spec.applies(values)
        if reason is not None:
            raise ConfigurationError(f"{spec.flag} does not apply: {reason}; drop it")
    if "train.steps" in chosen and "train.epochs" in chosen:
        raise ConfigurationError(
            "--steps and --epochs both set the length of local training; give one of them"
        )


#: API words in library messages -> the words of a command-line user
_PHRASES = (
    ("load with download=True", "pass --download"),
    ("load with download=False", "run without --download"),
    (
        "use a larger alpha, fewer parts or a smaller min_size",
        "use a larger --alpha or fewer --participants",
    ),
    ("use fewer parts or a smaller min_size", "use fewer --participants"),
    ("use fewer parts or fewer shards_per_part", "use fewer --participants or shards"),
    ("shards_per_part", "shards_per_participant"),
    ("dp needs weighted=false", "--dp needs --no-weighted"),
    ("raise bits (at most 32)", "raise --bits (at most 32)"),
    ("dp_delta=", "delta="),  # ProtocolConfig's field is the option --delta
    ("or set weighted=false", "or use --no-weighted"),
)


def cli_words(message: str) -> str:
    """Rewrite a library error message in the words of a command-line user: ``lr=5``,
    ``LocalTrainConfig.lr`` and ``group_size`` become ``--lr=5``, ``--lr``, ``--group-size``.
    Messages about a config file's keys (starting with "config file") are left alone."""
    if message.startswith("config file"):
        return message
    for old, new in _PHRASES:
        message = message.replace(old, new)
    message = re.sub(
        r"LocalTrainConfig\.(\w+)", lambda m: "--" + m.group(1).replace("_", "-"), message
    )
    for spec in sorted(OPTIONS, key=lambda o: len(o.name), reverse=True):
        if "_" in spec.name:
            message = re.sub(rf"(?<![\w-]){spec.name}\b", spec.flag, message)
        else:
            message = re.sub(rf"(?<![\w-]){spec.name}(?==)", spec.flag, message)
    return message
