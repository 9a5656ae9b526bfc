"""Models: shapes, reproducible initialisation, global RNG untouched, argument checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ssddl.exceptions import ConfigurationError
from ssddl.learning.models import MLP, MODELS, Conv1DNet, SmallCNN, build_model
from ssddl.learning.vector import model_to_vector, parameter_count


def test_mlp_shapes_and_size() -> None:
    model = MLP(64, 10)
    assert model(torch.zeros(5, 64)).shape == (5, 10)
    assert model(torch.zeros(5, 8, 8)).shape == (5, 10)  # flattens
    assert parameter_count(model) == 64 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10
    assert parameter_count(MLP(3, 2, hidden=())) == 3 * 2 + 2  # logistic regression
    assert parameter_count(MLP(3, 2, hidden=(4,))) == 3 * 4 + 4 + 4 * 2 + 2


@pytest.mark.parametrize("size", [4, 8, 28, 31])
def test_small_cnn_shapes(size: int) -> None:
    model = SmallCNN(2, 7, size)
    assert model(torch.zeros(3, 2, size, size)).shape == (3, 7)


@pytest.mark.parametrize("length", [1, 7, 40, 41])
def test_conv1d_shapes(length: int) -> None:
    model = Conv1DNet(length, 10)
    assert model(torch.zeros(4, length)).shape == (4, 10)
    assert model(torch.zeros(4, 1, length)).shape == (4, 10)


@pytest.mark.parametrize(
    ("name", "shape", "cls"),
    [
        ("mlp", (64,), MLP),
        ("mlp", (1, 28, 28), MLP),
        ("cnn", (1, 28, 28), SmallCNN),
        ("cnn", (3, 8, 8), SmallCNN),
        ("cnn", (40,), Conv1DNet),
    ],
)
def test_build_model_kinds(name: str, shape: tuple[int, ...], cls: type) -> None:
    model = build_model(name, shape, 10, seed=0)
    assert isinstance(model, cls)
    assert model(torch.zeros(2, *shape)).shape == (2, 10)
    assert all(p.dtype == torch.float32 for p in model.parameters())


@pytest.mark.parametrize("name", MODELS)
def test_build_model_reproducible_and_leaves_global_rng(name: str) -> None:
    shape = (1, 8, 8) if name == "cnn" else (64,)
    with torch.random.fork_rng(devices=[]):  # this test sets the global seed; undo that after
        torch.manual_seed(1234)
        before = torch.get_rng_state()
        a = model_to_vector(build_model(name, shape, 10, seed=7))
        assert torch.equal(torch.get_rng_state(), before)
        b = model_to_vector(build_model(name, shape, 10, seed=7))
        c = model_to_vector(build_model(name, shape, 10, seed=8))
        assert a.tobytes() == b.tobytes()
        assert not np.array_equal(a, c)
        # and the global state does not influence the weights
        torch.manual_seed(99)
        assert model_to_vector(build_model(name, shape, 10, seed=7)).tobytes() == a.tobytes()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("resnet", (64,), 10), "unknown model 'resnet'"),
        (("cnn", (1, 8, 9), 10), "square"),
        (("cnn", (8, 8), 10), r"\(C, H, H\)"),
        (("mlp", (), 10), "input_shape"),
        (("mlp", (0,), 10), "input_shape"),
        (("mlp", (64,), 0), "num_classes"),
    ],
)
def test_build_model_rejects(args: tuple[object, ...], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        build_model(*args, seed=0)  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", [-1, 2**63, 1.0, True])
def test_build_model_rejects_bad_seed(seed: object) -> None:
    with pytest.raises(ConfigurationError, match="seed"):
        build_model("mlp", (4,), 2, seed=seed)  # type: ignore[arg-type]


def test_constructors_validate() -> None:
    with pytest.raises(ConfigurationError, match="hidden"):
        MLP(4, 2, hidden=(0,))
    with pytest.raises(ConfigurationError, match="image_size"):
        SmallCNN(1, 2, 3)
    with pytest.raises(ConfigurationError, match="length"):
        Conv1DNet(0, 2)
