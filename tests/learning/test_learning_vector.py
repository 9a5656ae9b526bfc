"""model ⇄ flat float32 vector: exact round trip, order, and named errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from torch import nn

from ssddl.exceptions import ConfigurationError, NonFiniteError
from ssddl.learning.models import build_model
from ssddl.learning.vector import model_to_vector, parameter_count, vector_to_model


def tiny() -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))


def test_order_is_parameters_order_row_major() -> None:
    model = tiny()
    vec = model_to_vector(model)
    assert vec.dtype == np.float32 and vec.shape == (parameter_count(model),) == (11,)
    expected = np.concatenate([p.detach().numpy().ravel() for p in model.parameters()])
    np.testing.assert_array_equal(vec, expected)


def test_vector_is_a_copy() -> None:
    model = tiny()
    vec = model_to_vector(model)
    vec[:] = 0.0
    assert model_to_vector(model).any()
    vec2 = np.arange(11, dtype=np.float32)
    vector_to_model(vec2, model)
    vec2[:] = -1.0
    np.testing.assert_array_equal(model_to_vector(model), np.arange(11, dtype=np.float32))


@settings(max_examples=40, deadline=None)
@given(arrays(np.float32, 11, elements=st.floats(width=32, allow_nan=False, allow_infinity=False)))
def test_round_trip_exact_for_any_finite_vector(vec: np.ndarray) -> None:
    model = tiny()
    vector_to_model(vec, model)
    assert model_to_vector(model).tobytes() == vec.tobytes()  # bit-exact, signed zeros too


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_round_trip_default_models(name: str) -> None:
    shape = (1, 28, 28) if name == "cnn" else (64,)
    src = build_model(name, shape, 10, seed=1)
    dst = build_model(name, shape, 10, seed=2)
    vector_to_model(model_to_vector(src), dst)
    x = torch.rand(3, *shape)
    assert torch.equal(src(x), dst(x))
    for a, b in zip(src.state_dict().values(), dst.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_read_only_vector_accepted() -> None:
    vec = np.ones(11, dtype=np.float32)
    vec.flags.writeable = False
    model = tiny()
    vector_to_model(vec, model)
    assert model_to_vector(model).sum() == 11.0


def test_shared_parameters_counted_once() -> None:
    shared = nn.Linear(2, 2)
    model = nn.Sequential(shared, shared)
    assert parameter_count(model) == 6
    vector_to_model(np.arange(6, dtype=np.float32), model)
    np.testing.assert_array_equal(model_to_vector(model), np.arange(6))


def test_model_without_parameters() -> None:
    model = nn.ReLU()
    assert parameter_count(model) == 0
    assert model_to_vector(model).shape == (0,)
    vector_to_model(np.empty(0, np.float32), model)


@pytest.mark.parametrize("length", [0, 10, 12])
def test_wrong_length_names_expected_length(length: int) -> None:
    model = tiny()
    before = model_to_vector(model)
    with pytest.raises(ConfigurationError, match="expected a 1-D vector of length 11"):
        vector_to_model(np.zeros(length, np.float32), model)
    np.testing.assert_array_equal(model_to_vector(model), before)


def test_wrong_shape_dtype_and_type() -> None:
    model = tiny()
    with pytest.raises(ConfigurationError, match="length 11"):
        vector_to_model(np.zeros((11, 1), np.float32), model)
    with pytest.raises(ConfigurationError, match=r"float32 \(length 11\), got float64"):
        vector_to_model(np.zeros(11), model)
    with pytest.raises(ConfigurationError, match="numpy float32 array of length 11"):
        vector_to_model([0.0] * 11, model)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"torch\.nn\.Module"):
        model_to_vector("model")  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_rejected_model_unchanged(bad: float) -> None:
    model = tiny()
    before = model_to_vector(model)
    vec = np.zeros(11, np.float32)
    vec[[2, 7]] = bad
    with pytest.raises(NonFiniteError, match=r"length 11\) holds 2 NaN or infinite") as info:
        vector_to_model(vec, model)
    assert "was not changed" in str(info.value)
    np.testing.assert_array_equal(model_to_vector(model), before)


def test_non_float32_model_rejected() -> None:
    model = tiny().double()
    with pytest.raises(ConfigurationError, match="only float32"):
        model_to_vector(model)
