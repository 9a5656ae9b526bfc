"""Your own model, dataset and loss, named by an import path ``package.module:name``.

``--model``, ``--dataset`` and ``--train-step`` (and the same TOML keys) take a built-in
name or ``package.module:name``; a value with ``:`` is an import path. The module is
imported like any other (from ``sys.path``: put its directory on ``PYTHONPATH``), the name
is looked up in it and what it returns is checked, so a mistake is one line naming the key
and the fix:

- model factory: ``factory(input_shape: tuple[int, ...], num_classes: int) -> nn.Module``,
  called under ``torch.random.fork_rng`` seeded with the run's seed (so weights are
  reproducible and the global RNG is left alone); its float32 parameters and a forward
  pass of two zero inputs to logits of shape ``(2, num_classes)`` are checked;
- dataset factory: ``factory(seed: int) -> DatasetSplit`` (or a ``(train, test)`` pair of
  :class:`~ssddl.learning.data.ArrayDataset`);
- train step: :data:`~ssddl.learning.train.TrainStep`, ``step(model, x, y) -> loss``.

Importing a module runs its code: name only modules you trust, as with any import.
"""

from __future__ import annotations

import copy
import importlib
import re
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ssddl.exceptions import ConfigurationError
from ssddl.learning.data import ArrayDataset, DatasetSplit
from ssddl.learning.train import TrainStep
from ssddl.validators import did_you_mean

__all__ = [
    "is_import_path",
    "load_dataset_factory",
    "load_function",
    "load_model_factory",
    "load_train_step",
]

_DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


def is_import_path(value: object) -> bool:
    """A value with ``:`` names ``package.module:name`` (built-in names have none)."""
    return isinstance(value, str) and ":" in value


def _split(key: str, path: str, what: str) -> tuple[str, str]:
    module, _, name = path.partition(":")
    if not _DOTTED.fullmatch(module) or not _DOTTED.fullmatch(name):
        raise ConfigurationError(
            f"{key}={path!r} is not an import path: write package.module:{what}"
        )
    return module, name


def _import(key: str, path: str, module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        missing = exc.name or module
        if module == missing or module.startswith(missing + "."):
            raise ConfigurationError(
                f"{key}={path!r}: no module named {missing!r}; put the directory that holds "
                f"it on PYTHONPATH (or install it)"
            ) from None
        raise ConfigurationError(
            f"{key}={path!r}: importing {module} failed: it needs the module {missing!r}; "
            f"install it"
        ) from None
    except Exception as exc:  # the user's module raised while it was imported
        raise ConfigurationError(
            f"{key}={path!r}: importing {module} raised {type(exc).__name__}: {exc}"
        ) from None


def load_function(key: str, path: str, what: str) -> Callable[..., Any]:
    """The callable that ``path`` (``package.module:name``, dotted names allowed after the
    colon) names; ``key`` is the option in messages (``model``, ``dataset``,
    ``train_step``), ``what`` the kind of callable (``factory``, ``function``)."""
    if not is_import_path(path):
        raise ConfigurationError(f"{key}={path!r} is not an import path package.module:{what}")
    module_name, name = _split(key, path, what)
    target: Any = _import(key, path, module_name)
    where = module_name
    for part in name.split("."):
        if not hasattr(target, part):
            public = [
                n
                for n in dir(target)
                if not n.startswith("_") and callable(getattr(target, n, None))
            ]
            raise ConfigurationError(
                f"{key}={path!r}: {where} has no attribute {part!r}{did_you_mean(part, public)}"
            )
        target, where = getattr(target, part), f"{where}.{part}"
    if not callable(target):
        raise ConfigurationError(
            f"{key}={path!r}: {where} is not callable (its type is "
            f"{type(target).__name__}); name a {what}"
        )
    return target


def _call(key: str, path: str, factory: Callable[..., Any], *args: Any) -> Any:
    try:
        return factory(*args)
    except ConfigurationError:
        raise
    except Exception as exc:
        raise ConfigurationError(
            f"{key}={path!r}: calling it raised {type(exc).__name__}: {exc}"
        ) from None


def load_model_factory(
    path: str, input_shape: tuple[int, ...], num_classes: int, *, seed: int
) -> nn.Module:
    """The model ``path``'s factory builds for the data, its weights drawn from ``seed``."""
    factory = load_function("model", path, "factory")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _call("model", path, factory, tuple(input_shape), num_classes)
    if not isinstance(model, nn.Module):
        raise ConfigurationError(
            f"model={path!r} returned a {type(model).__name__}, not a torch.nn.Module; "
            f"return the network"
        )
    params = list(model.parameters())
    if not params or any(p.dtype != torch.float32 for p in params):
        raise ConfigurationError(
            f"model={path!r}: the model needs float32 parameters (it has "
            f"{sorted({str(p.dtype) for p in params}) or 'none'}); call .float() on it"
        )
    _check_logits(path, model, tuple(input_shape), num_classes)
    return model


def _check_logits(
    path: str, model: nn.Module, input_shape: tuple[int, ...], num_classes: int
) -> None:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros((2, *input_shape)))
    except Exception as exc:
        raise ConfigurationError(
            f"model={path!r}: a batch of inputs of shape {(2, *input_shape)} fails in it "
            f"({type(exc).__name__}: {exc}); build it for inputs of shape {input_shape}"
        ) from None
    finally:
        model.train(was_training)
    shape = tuple(out.shape) if isinstance(out, torch.Tensor) else None
    if shape != (2, num_classes):
        raise ConfigurationError(
            f"model={path!r}: a batch of 2 inputs gives "
            f"{'output of shape ' + str(shape) if shape else type(out).__name__}; it must "
            f"give logits of shape (2, {num_classes}), one per class"
        )


def load_dataset_factory(path: str, *, seed: int) -> DatasetSplit:
    """The train and test sets ``path``'s factory returns for ``seed``."""
    factory = load_function("dataset", path, "factory")
    got = _call("dataset", path, factory, seed)
    if isinstance(got, DatasetSplit):
        return got
    if isinstance(got, tuple) and len(got) == 2 and all(isinstance(d, ArrayDataset) for d in got):
        return DatasetSplit(got[0], got[1])
    raise ConfigurationError(
        f"dataset={path!r} returned a {type(got).__name__}; return a DatasetSplit(train, "
        f"test) or a (train, test) pair of ArrayDataset"
    )


def load_train_step(path: str, model: nn.Module, data: ArrayDataset) -> TrainStep:
    """The custom loss ``path`` names, tried once before training on a copy of ``model``
    and two samples of ``data`` (under a forked torch RNG): it must return a scalar loss
    tensor with a gradient."""
    step = load_function("train_step", path, "function")
    probe = copy.deepcopy(model)
    probe.train()
    x, y = data.to_tensors()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        loss = _call("train_step", path, step, probe, x[:2], y[:2])
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1 or not loss.requires_grad:
        got = (
            f"a tensor of shape {tuple(loss.shape)}"
            + ("" if loss.requires_grad else " without a gradient")
            if isinstance(loss, torch.Tensor)
            else f"a {type(loss).__name__}"
        )
        raise ConfigurationError(
            f"train_step={path!r} returned {got}; it must return the minibatch's scalar loss "
            f"as a tensor with a gradient, e.g. F.cross_entropy(model(x), y)"
        )
    return step
