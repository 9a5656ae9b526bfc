"""The callbacks of simulate(): start, every round, the participants' own evaluations every
K rounds (vanished participants answer no more), the end; a custom train step."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ssddl.exceptions import ConfigurationError
from ssddl.learning import LocalTrainConfig, build_model, load_digits, partition
from ssddl.learning.train import evaluate
from ssddl.protocol import ProtocolConfig
from ssddl.runtime import SimulationConfig, Vanish, simulate
from ssddl.runtime.callbacks import CallbackList, ParticipantEval, RunCallback


class Recorder(RunCallback):
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def on_start(self, config, guarantee):
        self.calls.append(("start", dict(config), dict(guarantee)))

    def on_round(self, metrics):
        self.calls.append(("round", metrics.round, metrics.accuracy))

    def on_participants(self, round, results):
        self.calls.append(("participants", round, list(results)))

    def on_end(self, summary):
        self.calls.append(("end", dict(summary)))


@pytest.fixture(scope="module")
def data():
    split = load_digits(seed=0)
    parts = partition(split.train.y, 4, "iid", rng=np.random.default_rng(0))
    train = [split.train.subset(p[: len(p) // 2]) for p in parts]
    held = [split.train.subset(p[len(p) // 2 :]) for p in parts]
    return train, held, split.test


def config(**kw):
    return SimulationConfig(
        protocol=ProtocolConfig(mode="prg", rounds=4),
        train=LocalTrainConfig(steps=2, lr=0.05),
        mask_worker="thread",
        **kw,
    )


def test_callbacks_see_start_rounds_participants_end(data):
    train, held, test = data
    rec, other = Recorder(), Recorder()
    result = simulate(
        build_model("mlp", (64,), 10, seed=0),
        train,
        config(eval_participants=2, vanish=(Vanish(3, 2),)),
        test=test,
        holdout=held,
        callbacks=[rec, other],
    )
    assert rec.calls == other.calls
    kinds = [c[0] for c in rec.calls]
    assert kinds == ["start", "round", "round", "participants", "round", "round", "participants",
                     "end"]  # fmt: skip
    start = rec.calls[0]
    assert start[1]["protocol"]["mode"] == "prg" and start[1]["seed"] == 0
    assert start[2]["collusion_bound"] >= 1 and "honest-but-curious" in start[2]["text"]
    assert [c[2] for c in rec.calls if c[0] == "round"] == [h.accuracy for h in result.history]
    first, last = [c for c in rec.calls if c[0] == "participants"]
    assert first[1] == 1 and last[1] == 3
    assert [r.participant for r in first[2]] == [1, 2, 3, 4]
    assert [r.participant for r in last[2]] == [1, 2, 4]  # 3 vanished at round 2
    # each figure is the global model's on that participant's own held-out split
    final = last[2][0]
    assert isinstance(final, ParticipantEval) and final.samples == len(held[0])
    reference = evaluate(result.model, held[0])
    assert final.accuracy == reference.accuracy
    assert final.loss == pytest.approx(reference.loss)
    assert rec.calls[-1][1]["final_accuracy"] == result.final_accuracy


def test_eval_participants_needs_one_holdout_per_participant(data):
    train, held, test = data
    model = build_model("mlp", (64,), 10, seed=0)
    with pytest.raises(ConfigurationError, match="holdout"):
        simulate(model, train, config(eval_participants=1), test=test)
    with pytest.raises(ConfigurationError, match="holdout"):
        simulate(model, train, config(eval_participants=1), test=test, holdout=held[:2])
    with pytest.raises(ConfigurationError, match="eval_participants"):
        config(eval_participants=0)
    with pytest.raises(ConfigurationError, match="RunCallback"):
        CallbackList([object()])  # type: ignore[list-item]


def test_train_step_is_the_loss_of_local_training(data):
    train, _, test = data
    calls = []

    def step(model, x, y):
        calls.append(len(y))
        return F.cross_entropy(model(x), y, label_smoothing=0.2)

    model = build_model("mlp", (64,), 10, seed=0)
    plain = simulate(model, train, config(), test=test)
    custom = simulate(model, train, config(train_step=step), test=test)
    assert len(calls) == 4 * 4 * 2  # rounds x participants x steps
    assert not torch.equal(
        torch.nn.utils.parameters_to_vector(plain.model.parameters()),
        torch.nn.utils.parameters_to_vector(custom.model.parameters()),
    )

    def bad(model, x, y):
        return 1.0

    # a participant whose training fails sends nothing: the rounds abort, saying why
    failed = simulate(model, train, config(train_step=bad), test=test)
    assert all(h.status != "applied" for h in failed.history)
    assert any("scalar loss" in r.detail for r in failed.rejections)
