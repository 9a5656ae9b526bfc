"""DLG and iDLG: low error on a plain single-sample update, nothing on the SSDDL view."""

from __future__ import annotations

import pytest

from ssddl.attacks import score, update_as_seen
from ssddl.attacks.dlg import gradient_inversion, idlg_label
from ssddl.exceptions import ConfigurationError


def _invert(run, victims, pid, trick, lr):
    update = update_as_seen(run.server.uploads(0)[pid], run.params)
    return update, gradient_inversion(
        victims.model,
        update,
        lr=lr,
        input_shape=(64,),
        num_classes=10,
        label_trick=trick,
        iterations=100,
        seed=pid,
    )


@pytest.mark.parametrize("trick", [True, False], ids=["iDLG", "DLG"])
def test_gradient_inversion_reaches_low_error_on_the_plain_view(runs, victims, audit_config, trick):
    update, result = _invert(runs["plain"], victims, 1, trick, audit_config.lr)
    assert score(result.x, victims.xs[0]).max_abs_error < 1e-3
    assert result.label == int(victims.ys[0])
    assert idlg_label(update, victims.model) == int(victims.ys[0])


def test_gradient_inversion_fails_on_the_prg_view(runs, victims, audit_config):
    _, result = _invert(runs["prg"], victims, 1, True, audit_config.lr)
    s = score(result.x, victims.xs[0])
    assert s.psnr < 15 and s.max_abs_error > 0.5
    assert result.match_loss > 0.5  # no input explains a masked upload


def test_bad_arguments_are_refused(victims):
    with pytest.raises(ConfigurationError, match="lr"):
        gradient_inversion(
            victims.model,
            victims.initial,
            lr=0,
            input_shape=(64,),
            num_classes=10,
            label_trick=True,
        )
    with pytest.raises(ConfigurationError, match="parameters"):
        gradient_inversion(
            victims.model,
            victims.initial[:-1],
            lr=0.1,
            input_shape=(64,),
            num_classes=10,
            label_trick=True,
        )
