"""Ready-made models, and :func:`build_model`, which initialises one reproducibly from a seed.

Any ``torch.nn.Module`` with float32 parameters works with the rest of ``ssddl.learning``;
these are the defaults the experiments use.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ssddl.exceptions import ConfigurationError

__all__ = ["MLP", "MODELS", "Conv1DNet", "SmallCNN", "build_model"]

MODELS = ("mlp", "cnn")


def _positive_int(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ConfigurationError(f"{field} must be an integer >= 1, got {value!r}")
    return int(value)


class MLP(nn.Module):
    """Flatten, then fully connected layers with ReLU between them:
    ``in_features -> hidden[0] -> … -> hidden[-1] -> num_classes`` (logits)."""

    def __init__(
        self, in_features: int, num_classes: int, hidden: Sequence[int] = (256, 256)
    ) -> None:
        super().__init__()
        widths = [_positive_int(in_features, "in_features")]
        widths += [_positive_int(h, f"hidden[{i}]") for i, h in enumerate(hidden)]
        widths.append(_positive_int(num_classes, "num_classes"))
        layers: list[nn.Module] = [nn.Flatten()]
        for i, (fan_in, fan_out) in enumerate(itertools.pairwise(widths)):
            if i:
                layers.append(nn.ReLU())
            layers.append(nn.Linear(fan_in, fan_out))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x)
        return out


class SmallCNN(nn.Module):
    """For square 2-D images ``(N, in_channels, image_size, image_size)``: two blocks of
    3x3 convolution (16, then 32 channels), ReLU and 2x2 max-pooling, then one linear layer."""

    def __init__(self, in_channels: int, num_classes: int, image_size: int) -> None:
        super().__init__()
        in_channels = _positive_int(in_channels, "in_channels")
        num_classes = _positive_int(num_classes, "num_classes")
        image_size = _positive_int(image_size, "image_size")
        if image_size < 4:
            raise ConfigurationError(
                f"image_size must be >= 4 (two 2x2 poolings), got {image_size}"
            )
        side = image_size // 4
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 16, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        self.classifier = nn.Linear(32 * side * side, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.classifier(self.features(x))
        return out


class Conv1DNet(nn.Module):
    """For 1-D sequences ``(N, length)`` such as MNIST-1D (``(N, 1, length)`` also accepted):
    three stride-2 convolutions (kernel 5, 3, 3) with ReLU, then one linear layer — the
    shape of the MNIST-1D reference CNN."""

    def __init__(self, length: int, num_classes: int, channels: int = 32) -> None:
        super().__init__()
        length = _positive_int(length, "length")
        num_classes = _positive_int(num_classes, "num_classes")
        channels = _positive_int(channels, "channels")
        self.features = nn.Sequential(
            nn.Conv1d(1, channels, kernel_size=5, stride=2, padding=2),
            nn.ReLU(),
            nn.Conv1d(channels, channels, kernel_size=3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv1d(channels, channels, kernel_size=3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        out_len = length
        for _ in range(3):
            out_len = (out_len - 1) // 2 + 1  # stride 2, "same" padding
        self.classifier = nn.Linear(channels * out_len, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(1)
        out: torch.Tensor = self.classifier(self.features(x))
        return out


def _check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= seed < 2**63:
        raise ConfigurationError(f"seed must be an integer in [0, 2**63), got {seed!r}")
    return int(seed)


def build_model(
    name: str, input_shape: tuple[int, ...], num_classes: int, *, seed: int
) -> nn.Module:
    """A freshly initialised model; the same arguments give bit-identical weights.

    ``"mlp"``: :class:`MLP` with hidden (256, 256) over the flattened input, any shape.
    ``"cnn"``: :class:`SmallCNN` for ``(C, H, H)`` images, :class:`Conv1DNet` for ``(L,)``
    sequences. Weights are drawn under ``torch.random.fork_rng`` seeded with ``seed``, so the
    global torch RNG state is left as it was.
    """
    seed = _check_seed(seed)
    num_classes = _positive_int(num_classes, "num_classes")
    if not isinstance(input_shape, tuple | list) or not input_shape:
        raise ConfigurationError(f"input_shape must be a non-empty tuple, got {input_shape!r}")
    shape = tuple(_positive_int(d, "input_shape entries") for d in input_shape)
    if name not in MODELS:
        raise ConfigurationError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    model: nn.Module
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if name == "mlp":
            model = MLP(math.prod(shape), num_classes)
        elif len(shape) == 3 and shape[1] == shape[2]:
            model = SmallCNN(shape[0], num_classes, shape[1])
        elif len(shape) == 1:
            model = Conv1DNet(shape[0], num_classes)
        else:
            raise ConfigurationError(
                f"model 'cnn' needs input_shape (C, H, H) (square images) or (L,) (sequences), "
                f"got {shape}; use 'mlp' for other shapes"
            )
    return model
