"""Pieces several schemes share: the upload check and round-data records."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ssddl.exceptions import MalformedMessage
from ssddl.hazmat.sharing import SHAMIR_PRIME
from ssddl.protocol.messages import Upload

if TYPE_CHECKING:
    from ssddl.protocol.server import Server

__all__ = ["check_upload"]


def check_upload(server: Server, msg: Upload, *, field: bool) -> None:
    """An upload is one word per parameter plus the count word: ring words, or field words
    below the Shamir prime when ``field``."""
    dtype = np.dtype(np.uint64) if field else server.config.codec().dtype
    if msg.payload.dtype != dtype or msg.payload.shape != (server.model_size + 1,):
        raise MalformedMessage(
            f"upload from participant {msg.sender}: {msg.payload.size} words of "
            f"{msg.payload.dtype}; expected {server.model_size + 1} words of {dtype}"
        )
    if field and (msg.payload >= SHAMIR_PRIME).any():
        raise MalformedMessage(f"upload from participant {msg.sender} is not in the field")
