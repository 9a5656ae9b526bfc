"""Resuming from any round's SimulationState gives the uninterrupted model bit for bit — also
with stochastic rounding and a group drawn at random each round (restored generators)."""

from __future__ import annotations

import numpy as np
import pytest

from ssddl.experiments.config import ExperimentConfig
from ssddl.experiments.run import prepare
from ssddl.learning.vector import model_to_vector
from ssddl.runtime.simulator import simulate


@pytest.mark.parametrize("mode", ["prg", "shamir"])
def test_resume_from_every_round_is_bit_identical(mode):
    config = ExperimentConfig.from_choices(
        {
            "participants": 4,
            "protocol.mode": mode,
            "protocol.rounds": 4,
            "protocol.rounding": "stochastic",
            "protocol.group_size": 3,
            "train.steps": 2,
        }
    )
    prep = prepare(config)
    states = []
    whole = simulate(prep.model, prep.datasets, prep.sim, on_state=states.append)
    assert [s.round for s in states] == [0, 1, 2, 3]
    expected = model_to_vector(whole.model)
    for state in states[:-1]:
        resumed = simulate(prep.model, prep.datasets, prep.sim, resume=state)
        assert np.array_equal(model_to_vector(resumed.model), expected), state.round
        assert [h.round for h in resumed.history] == list(range(state.round + 1, 4))
