"""The faces over the library: what ``ssddl`` runs and writes.

* :mod:`ssddl.experiments.config` — the experiment configuration (TOML and flags in one shape).
* :mod:`ssddl.experiments.options` — every option once: flag, TOML key, type, default, when
  it applies.
* :mod:`ssddl.experiments.run` — one run into a run directory (CSV metrics, checkpoint,
  ``summary.json``, ``report.md``, plot, model), resumable.
* :mod:`ssddl.experiments.rundir` — the run directory on disk: its files, the checkpoint,
  how each is written and read back for ``--resume``.
* :mod:`ssddl.experiments.report` — what a run directory says: guarantee, error bound, plot.
* :mod:`ssddl.experiments.reproduce` — the paper's comparison (``ssddl reproduce``).
"""
