"""ssddl on Flower (``pip install 'ssddl[flower]'``): the transport half.

* :class:`FlowerExchange` — the server's Grid-shaped seam over ``flwr.serverapp.Grid``.
* :func:`frame_query` / :func:`frame_mod` — the ClientApp side: a :data:`FrameHandler`
  answers frame batches, its state bytes kept in ``context.state``.
* :mod:`~ssddl.runtime.flower.workflow` — the ServerApp side: :func:`start` (Message-API
  strategies), :class:`SSDDLFitWorkflow` (legacy ``DefaultWorkflow``), :class:`SSDDLSession`.
* :mod:`~ssddl.runtime.flower.mod` — the ClientApp side: :class:`SSDDLClient` and
  :func:`ssddl_mod`, a participant kept in ``context.state`` with its node's own keys and policy.
* :func:`make_tls_material` / :func:`make_node_key` — throw-away TLS certificates and
  SuperNode authentication keys (``ssddl.runtime.flower.certs``).

Importing this package does not import ``flwr``; the functions that need it import it.
"""

from __future__ import annotations

from ssddl.runtime.exchange import Exchange, Frame, Rejection
from ssddl.runtime.flower.certs import NodeKey, TLSMaterial, make_node_key, make_tls_material
from ssddl.runtime.flower.client import FrameHandler, answer, frame_mod, frame_query
from ssddl.runtime.flower.exchange import BatchReport, ErrorReply, FlowerExchange
from ssddl.runtime.flower.mod import NodeSettings, SSDDLClient, node_settings, ssddl_mod
from ssddl.runtime.flower.workflow import (
    SSDDLFitWorkflow,
    SSDDLSession,
    StrategySelection,
    WorkflowConfig,
    start,
)

__all__ = [
    "BatchReport",
    "ErrorReply",
    "Exchange",
    "FlowerExchange",
    "Frame",
    "FrameHandler",
    "NodeKey",
    "NodeSettings",
    "Rejection",
    "SSDDLClient",
    "SSDDLFitWorkflow",
    "SSDDLSession",
    "StrategySelection",
    "TLSMaterial",
    "WorkflowConfig",
    "answer",
    "frame_mod",
    "frame_query",
    "make_node_key",
    "make_tls_material",
    "node_settings",
    "ssddl_mod",
    "start",
]
