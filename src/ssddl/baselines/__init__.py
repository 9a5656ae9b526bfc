"""Baselines that SSDDL is compared against, as pure building blocks.

* :mod:`ssddl.baselines.reference` — centralized training (all data pooled) and standalone
  training (each participant alone).
* :mod:`ssddl.baselines.dssgd` — DSSGD (Shokri & Shmatikov, CCS 2015): selective sparse
  upload of the largest parameter changes, partial download, optional clipping and Laplace
  noise.
* :mod:`ssddl.baselines.phong` — Phong et al. (IEEE TIFS 2018): one key pair shared by all
  participants, encrypted updates added by the server onto encrypted global weights.
* :mod:`ssddl.baselines.he` — the additively homomorphic back ends behind it: Paillier
  (``phe`` + ``gmpy2``) and BFV (TenSEAL), from the ``he`` extra.

The building blocks above import nothing of the SSDDL protocol. :mod:`ssddl.baselines.schemes`
plugs FedAvg, FedSGD and DSSGD into the protocol's scheme slot (so it imports the protocol's
messages and registry), and :mod:`ssddl.baselines.runners` runs the others beside it.
"""
