"""What secure aggregation does not hide: the aggregate the server decodes in a real prg
session is a batch gradient, and batch DLG / iDLG / the first-layer attack read inputs
from it; the same attacks on uniform words read nothing."""

from __future__ import annotations

import copy
import hashlib
import math

import numpy as np
import pytest
import torch

from ssddl.attacks.aggregate import (
    AGGREGATE_ATTACKS,
    aggregate_view,
    attack_aggregate,
    matched_psnr,
    record_aggregate,
    uniform_aggregate,
)
from ssddl.attacks.dlg import gradient_inversion, label_counts
from ssddl.attacks.inversion import first_layer_candidates, words_as_update
from ssddl.attacks.target import batch_trainer
from ssddl.exceptions import ConfigurationError
from ssddl.hazmat.codec import ring_sum
from ssddl.protocol.config import Rounding

SEED = hashlib.sha256(b"tests/attacks/aggregate").digest()
SETTINGS = [(2, 1), (2, 2), (4, 1)]  # (n, B): 2, 4 and 4 inputs


@pytest.fixture(scope="module")
def sessions(victims, audit_config):
    """One real prg session per (n, B); member p holds samples (p−1)·B … p·B−1."""
    out = {}
    for n, batch in SETTINGS:
        xs, ys = victims.pool_x[: n * batch], victims.pool_y[: n * batch]
        run = record_aggregate(
            victims.model, xs, ys, 10, members=n, lr=audit_config.lr, crypto_seed=SEED
        )
        out[n, batch] = (run, xs, ys)
    return out


def _attack(view, attack, victims, lr, batch, xs, ys):
    return attack_aggregate(
        view,
        attack,
        model=victims.model,
        layer=victims.layer,
        lr=lr,
        batch=batch,
        num_classes=10,
        truths=xs,
        labels=[int(c) for c in ys],
        iterations=100,
        seed=1,
    )


@pytest.mark.parametrize(("n", "batch"), SETTINGS)
def test_the_decoded_aggregate_is_the_plaintext_sum_and_one_batch_step(
    sessions, victims, audit_config, n, batch
):
    run, xs, ys = sessions[n, batch]
    view = aggregate_view(run)
    assert view.contributors == n
    # bit for bit in the ring: the server decoded exactly the sum of the encoded updates
    assert np.array_equal(view.words, ring_sum([run.truth[p][0] for p in run.participants]))
    assert np.array_equal(view.mean, words_as_update(view.words, run.params) / n)
    # to the decoding bound: the mean of the members' plaintext changes
    changes = [
        batch_trainer(
            victims.model,
            xs[(p - 1) * batch : p * batch],
            ys[(p - 1) * batch : p * batch],
            10,
            lr=audit_config.lr,
        )(victims.initial, 0).delta.astype(np.float64)
        for p in range(1, n + 1)
    ]
    codec = run.params.codec()
    stochastic = run.params.rounding == Rounding.STOCHASTIC
    bound = codec.decode_error_bound(n, stochastic=stochastic) / n
    assert np.max(np.abs(view.mean - np.mean(changes, axis=0))) <= bound
    # and that mean is one SGD step on the batch-mean loss of all n·B samples
    net = copy.deepcopy(victims.model).double()
    loss = torch.nn.functional.cross_entropy(
        net(torch.as_tensor(xs, dtype=torch.float64)), torch.as_tensor(ys)
    )
    grads = torch.autograd.grad(loss, list(net.parameters()))
    step = -audit_config.lr * np.concatenate([g.numpy().ravel() for g in grads])
    np.testing.assert_allclose(view.mean, step, atol=1e-6)


@pytest.mark.parametrize(
    ("attack", "n", "batch"),
    [("iDLG", 2, 1), ("iDLG", 2, 2), ("iDLG", 4, 1), ("DLG", 2, 1), ("DLG", 2, 2)],
)
def test_batch_gradient_inversion_recovers_every_input_from_the_prg_aggregate(
    sessions, victims, audit_config, attack, n, batch
):
    run, xs, ys = sessions[n, batch]
    row, matched = _attack(aggregate_view(run), attack, victims, audit_config.lr, batch, xs, ys)
    assert row.inputs == n * batch
    assert row.recovered == n * batch, row  # measured: every PSNR above 80 dB
    assert row.labels_correct and row.match_loss is not None and row.match_loss < 1e-6
    assert np.max(np.abs(matched - xs)) < 1e-2


def test_the_first_layer_attack_recovers_from_an_aggregate_of_two(sessions, victims, audit_config):
    run, xs, ys = sessions[2, 1]
    row, _ = _attack(aggregate_view(run), "first-layer", victims, audit_config.lr, 1, xs, ys)
    assert row.recovered >= 1 and row.best_psnr >= 30.0, row  # measured: 2/2 at 38-39 dB


@pytest.mark.parametrize("attack", AGGREGATE_ATTACKS)
def test_the_same_attacks_on_uniform_words_recover_nothing(sessions, victims, audit_config, attack):
    run, xs, ys = sessions[2, 2]
    view = aggregate_view(run)
    control = uniform_aggregate(view.params, view.mean.size, 2, np.random.default_rng(0))
    row, _ = _attack(control, attack, victims, audit_config.lr, 2, xs, ys)
    assert row.recovered == 0 and row.best_psnr < 15.0, row


def test_label_counts_read_a_batch_with_repeated_labels(victims, audit_config):
    xs, ys = victims.pool_x[:12], victims.pool_y[:12]  # 10 distinct digits, then repeats
    assert len(set(ys.tolist())) < 12
    update = batch_trainer(victims.model, xs, ys, 10, lr=audit_config.lr)(victims.initial, 0)
    counted = label_counts(
        update.delta, victims.model, lr=audit_config.lr, batch=12, input_shape=(64,)
    )
    assert counted == tuple(sorted(int(c) for c in ys))


def test_matching_is_one_to_one_and_in_the_truths_order():
    truths = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]])
    recs = np.array([[0.5, 0.5], [0.9, 0.0], [0.0, 1.0], [0.5, 0.5]])
    psnr, matched = matched_psnr(recs, truths)
    np.testing.assert_array_equal(matched, [[0.0, 1.0], [0.9, 0.0], [0.5, 0.5]])
    assert psnr[0] == math.inf and psnr[2] == math.inf
    assert psnr[1] == pytest.approx(-10 * math.log10(0.005))
    with pytest.raises(ConfigurationError, match="cannot be matched"):
        matched_psnr(recs[:2], truths)


def test_first_layer_candidates_read_every_neuron():
    x1, x2 = np.array([0.0, 0.5, 1.0]), np.array([1.0, 0.25, 0.0])
    delta = np.array([[2.0, 0.0], [0.0, -1.0], [1.0, 1.0]])  # neuron k: (δ_1k, δ_2k)
    weights = delta[:, :1] * x1 + delta[:, 1:] * x2
    update = np.concatenate([weights.ravel(), delta.sum(1), [0.0]])
    rows = first_layer_candidates(update, weight=slice(0, 9), bias=slice(9, 12), in_features=3)
    np.testing.assert_array_equal(rows[0], x1)  # only sample 1 moves neuron 0
    np.testing.assert_array_equal(rows[1], x2)  # only sample 2 moves neuron 1
    np.testing.assert_allclose(rows[2], (x1 + x2) / 2)  # both: a mixture


def test_bad_input_is_refused_by_name(sessions, victims, audit_config, runs):
    run, xs, ys = sessions[2, 1]
    view = aggregate_view(run)
    with pytest.raises(ConfigurationError, match="attack must be one of"):
        _attack(view, "nope", victims, audit_config.lr, 1, xs, ys)
    with pytest.raises(ConfigurationError, match="evenly"):
        record_aggregate(
            victims.model, victims.pool_x[:3], victims.pool_y[:3], 10, members=2, lr=0.1
        )
    with pytest.raises(ConfigurationError, match="one input per label"):
        record_aggregate(victims.model, xs, victims.pool_y[:4], 10, members=2, lr=0.1)
    with pytest.raises(ConfigurationError, match="true inputs"):
        _attack(view, "iDLG", victims, audit_config.lr, 2, xs, ys)
    with pytest.raises(ConfigurationError, match="members"):
        record_aggregate(victims.model, xs, ys, 10, members=1, lr=0.1)
    with pytest.raises(ConfigurationError, match="no round 3"):
        aggregate_view(run, 3)
    with pytest.raises(ConfigurationError, match="no secure aggregate"):
        aggregate_view(runs["plain"])
    with pytest.raises(ConfigurationError, match="batch"):
        gradient_inversion(
            victims.model,
            view.mean,
            lr=0.1,
            input_shape=(64,),
            num_classes=10,
            label_trick=True,
            batch=0,
        )
