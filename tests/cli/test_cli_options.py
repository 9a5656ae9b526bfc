"""The option registry agrees with the code it describes, every flag has help text and a
default, and the generated reference in docs/ is up to date."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest

from ssddl.cli import RUN_FLAGS, build_parser, reference_markdown
from ssddl.experiments import options as opt
from ssddl.experiments.config import ExperimentConfig
from ssddl.learning.data import DATASETS
from ssddl.learning.models import MODELS
from ssddl.learning.partition import PARTITIONS
from ssddl.learning.train import OPTIMIZERS, LocalTrainConfig
from ssddl.protocol.config import ProtocolConfig
from ssddl.runtime.inmemory import VanishPhase

ROOT = Path(__file__).resolve().parents[2]


def _simulate_parser() -> argparse.ArgumentParser:
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return commands.choices["simulate"]


def test_learning_names_agree_with_the_learning_layer():
    assert opt.DATASET_CHOICES == DATASETS
    assert opt.MODEL_CHOICES == MODELS
    assert opt.PARTITION_CHOICES == PARTITIONS
    assert opt.OPTIMIZER_CHOICES == OPTIMIZERS
    assert tuple(p.value for p in VanishPhase) == opt.DROPOUT_PHASES


def test_every_config_field_has_exactly_one_option_with_its_default():
    fields = (
        {f.name: f for f in dataclasses.fields(ExperimentConfig)}
        | {f"protocol.{f.name}": f for f in dataclasses.fields(ProtocolConfig)}
        | {f"train.{f.name}": f for f in dataclasses.fields(LocalTrainConfig)}
    )
    fields.pop("protocol")
    fields.pop("train")
    fields.pop("runner")  # set by --mode (a baseline that runs outside the protocol)

    # an option's key names its field, unless it says which (--delta: ProtocolConfig.dp_delta)
    def field_key(spec):
        return f"{spec.section}.{spec.field_name}" if spec.section else spec.field_name

    assert {field_key(o) for o in opt.OPTIONS} == set(fields)
    default = ExperimentConfig()
    for spec in opt.OPTIONS:
        section, _, name = field_key(spec).rpartition(".")
        holder = getattr(default, section) if section else default
        value = getattr(holder, name)
        value = getattr(value, "value", value)  # enums
        assert value == spec.default, spec.key


def test_every_flag_has_help_and_a_default():
    parser = _simulate_parser()
    flags = [a for a in parser._actions if a.option_strings and a.dest != "help"]
    assert len(flags) == len(opt.OPTIONS) + len(RUN_FLAGS)
    for action in flags:
        assert action.help and len(action.help) > 15, action.option_strings
        if action.dest in {o.dest for o in opt.OPTIONS} or action.dest == "out":
            assert "(default: " in action.help, action.option_strings


def test_the_reference_is_generated_from_the_code():
    path = ROOT / "docs" / "reference" / "options.md"
    assert path.read_text() == reference_markdown(), (
        "docs/reference/options.md is stale; regenerate it (command at the top of the file)"
    )
    text = path.read_text()
    for action in _simulate_parser()._actions:
        for flag in action.option_strings:
            if flag not in ("-h", "--help"):
                assert f"`{flag}`" in text, flag


def test_every_key_in_docs_and_flags_in_readme():
    readme = (ROOT / "README.md").read_text()
    for spec in opt.OPTIONS:
        assert spec.flag in readme, f"README's CLI section does not mention {spec.flag}"


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("LocalTrainConfig.lr must be a finite number > 0", "--lr must be a finite number > 0"),
        ("frac_bits=29 is out of range", "--frac-bits=29 is out of range"),
        ("lower group_size or add participants", "lower --group-size or add participants"),
        ("load with download=True to fetch them", "pass --download to fetch them"),
        ("dp_delta=2.0 must be below 1, e.g. 1e-5", "--delta=2.0 must be below 1, e.g. 1e-5"),
        ("config file x.toml: unknown 'max_samples'", "config file x.toml: unknown 'max_samples'"),
    ],
)
def test_library_words_become_flags(message, expected):
    assert opt.cli_words(message) == expected
