"""ssddl on Flower (``pip install 'ssddl[flower]'``): the transport half.

* :class:`FlowerExchange` — the server's Grid-shaped seam over ``flwr.serverapp.Grid``.
* :func:`frame_query` / :func:`frame_mod` — the ClientApp side: a :data:`FrameHandler`
  answers frame batches, its state bytes kept in ``context.state``.
* :func:`make_tls_material` / :func:`make_node_key` — throw-away TLS certificates and
  SuperNode authentication keys (``ssddl.runtime.flower.certs``).

Importing this package does not import ``flwr``; the functions that need it import it.
"""

from __future__ import annotations

from ssddl.runtime.exchange import Exchange, Frame, Rejection
from ssddl.runtime.flower.certs import NodeKey, TLSMaterial, make_node_key, make_tls_material
from ssddl.runtime.flower.client import FrameHandler, answer, frame_mod, frame_query
from ssddl.runtime.flower.exchange import BatchReport, ErrorReply, FlowerExchange

__all__ = [
    "BatchReport",
    "ErrorReply",
    "Exchange",
    "FlowerExchange",
    "Frame",
    "FrameHandler",
    "NodeKey",
    "Rejection",
    "TLSMaterial",
    "answer",
    "frame_mod",
    "frame_query",
    "make_node_key",
    "make_tls_material",
]
