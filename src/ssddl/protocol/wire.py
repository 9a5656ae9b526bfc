"""The versioned, explicit wire format of protocol messages (no object serialisation).

A frame is::

    magic b"SSDL" | version u8 | kind u8 | field … field

and each field is encoded by its declared type, in declaration order, little-endian:

========== =====================================================================
``U64``    8 bytes, unsigned
``BYTES``  u32 length, then the bytes
``STR``    u32 length, then UTF-8
``IDS``    u32 count, then count × u64
``BLOBS``  u32 count, then count × (u32 length, bytes)
``ARRAY``  u8 dtype code (1 uint32, 2 uint64, 3 float32), u64 count, raw words
========== =====================================================================

A frame encoded with ``bits`` (compression, ``ProtocolConfig.bits``: 8 to 32) writes each of
its unsigned ``ARRAY`` fields as u8 code 4 (packed), u8 dtype code (1 or 2), u8 bits, u64
count, then ``ceil(count * bits / 8)`` bytes: each word's low ``bits`` bits
(:mod:`ssddl.hazmat.packing`). A frame without ``bits`` is byte for byte what it was.

Decoding never trusts a length: every count is checked against the bytes that remain, unknown
versions, kinds and dtype codes are refused, and trailing bytes are an error. Arrays are read
with ``np.frombuffer`` (never an object dtype) and copied so they own their memory.
"""

from __future__ import annotations

import struct
from enum import Enum
from typing import Any

import numpy as np

from ssddl.exceptions import MalformedMessage
from ssddl.hazmat.packing import pack_words, packed_size, unpack_words

__all__ = [
    "ARRAY",
    "BLOBS",
    "BYTES",
    "IDS",
    "MAGIC",
    "STR",
    "U64",
    "VERSION",
    "FieldType",
    "decode_fields",
    "decode_frame",
    "encode_fields",
]

MAGIC = b"SSDL"
VERSION = 3
HEADER = struct.Struct("<4sBB")

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_CODE_DTYPES: dict[int, np.dtype] = {1: np.dtype("<u4"), 2: np.dtype("<u8"), 3: np.dtype("<f4")}
_DTYPE_CODES = {dtype: code for code, dtype in _CODE_DTYPES.items()}
_PACKED = 4  #: the array code of packed words (``bits`` set)
_PACKED_DTYPES = (1, 2)  #: the word dtypes that pack: uint32, uint64


class FieldType(Enum):
    U64 = "u64"
    BYTES = "bytes"
    STR = "str"
    IDS = "ids"
    BLOBS = "blobs"
    ARRAY = "array"


U64, BYTES, STR, IDS, BLOBS, ARRAY = (
    FieldType.U64,
    FieldType.BYTES,
    FieldType.STR,
    FieldType.IDS,
    FieldType.BLOBS,
    FieldType.ARRAY,
)


def _encode_value(kind: FieldType, value: Any, out: list[bytes | memoryview]) -> None:
    if kind is FieldType.U64:
        out.append(_U64.pack(value))
    elif kind is FieldType.BYTES:
        out += [_U32.pack(len(value)), bytes(value)]
    elif kind is FieldType.STR:
        data = value.encode("utf-8")
        out += [_U32.pack(len(data)), data]
    elif kind is FieldType.IDS:
        out.append(_U32.pack(len(value)))
        out.append(np.asarray(value, dtype="<u8").tobytes())
    elif kind is FieldType.BLOBS:
        out.append(_U32.pack(len(value)))
        for blob in value:
            out += [_U32.pack(len(blob)), bytes(blob)]
    else:
        array = np.ascontiguousarray(value)
        dtype = array.dtype.newbyteorder("<")
        out += [bytes([_DTYPE_CODES[dtype]]), _U64.pack(array.size)]
        # the array's own buffer: ``b"".join`` copies it once into the frame
        out.append(array.astype(dtype, copy=False).data)


def _encode_packed(value: Any, bits: int, out: list[bytes | memoryview]) -> bool:
    """Append ``value`` as packed words if it is an unsigned array; False if it is not."""
    array = np.ascontiguousarray(value)
    code = _DTYPE_CODES.get(array.dtype.newbyteorder("<"))
    if code not in _PACKED_DTYPES:
        return False
    out += [bytes([_PACKED, code, bits]), _U64.pack(array.size), pack_words(array, bits)]
    return True


def encode_fields(
    kind_code: int, schema: tuple[tuple[str, FieldType], ...], values: Any, *, bits: int = 0
) -> bytes:
    """Encode the fields of ``values`` (an object with the schema's attributes) as a frame;
    with ``bits``, its unsigned arrays packed (module docstring)."""
    out: list[bytes | memoryview] = [HEADER.pack(MAGIC, VERSION, kind_code)]
    for name, kind in schema:
        value = getattr(values, name)
        if not (bits and kind is FieldType.ARRAY and _encode_packed(value, bits, out)):
            _encode_value(kind, value, out)
    return b"".join(out)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.view = memoryview(data)
        self.pos = 0
        self.bits = 0  #: the width of the frame's packed arrays (0: none)

    def take(self, n: int, what: str) -> memoryview:
        if n < 0 or self.pos + n > len(self.view):
            raise MalformedMessage(
                f"truncated message: field {what!r} needs {n} bytes at offset {self.pos}, "
                f"{len(self.view) - self.pos} remain"
            )
        chunk = self.view[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def _blobs(self, count: int, name: str) -> tuple[bytes, ...]:
        """``count`` length-prefixed byte strings (a round's sealed shares: dozens a message),
        read in one loop; a short frame raises as :meth:`take` does."""
        view, pos, end = self.view, self.pos, len(self.view)
        out = []
        for _ in range(count):
            if pos + 4 <= end:
                size = _U32.unpack_from(view, pos)[0]
                if pos + 4 + size <= end:
                    out.append(bytes(view[pos + 4 : pos + 4 + size]))
                    pos += 4 + size
                    continue
            self.pos = pos  # then the same error as one field at a time
            self.take(self.u32(name), name)
        self.pos = pos
        return tuple(out)

    def u32(self, what: str) -> int:
        return int(_U32.unpack(self.take(4, what))[0])

    def u64(self, what: str) -> int:
        return int(_U64.unpack(self.take(8, what))[0])

    def value(self, kind: FieldType, name: str) -> Any:
        if kind is FieldType.U64:
            return self.u64(name)
        if kind is FieldType.BYTES:
            return bytes(self.take(self.u32(name), name))
        if kind is FieldType.STR:
            try:
                return bytes(self.take(self.u32(name), name)).decode("utf-8")
            except UnicodeDecodeError:
                raise MalformedMessage(f"field {name!r} is not valid UTF-8") from None
        if kind is FieldType.IDS:
            count = self.u32(name)
            raw = self.take(8 * count, name)
            return tuple(np.frombuffer(raw, dtype="<u8").tolist())  # Python ints
        if kind is FieldType.BLOBS:
            count = self.u32(name)
            if count > len(self.view) - self.pos:
                raise MalformedMessage(f"field {name!r} claims {count} entries; too few bytes")
            return self._blobs(count, name)
        code = self.take(1, name)[0]
        if code == _PACKED:
            return self._packed(name)
        dtype = _CODE_DTYPES.get(code)
        if dtype is None:
            raise MalformedMessage(f"field {name!r} has unknown array dtype code {code}")
        count = self.u64(name)
        if count > (len(self.view) - self.pos) // dtype.itemsize:
            raise MalformedMessage(f"field {name!r} claims {count} words; too few bytes")
        raw = self.take(count * dtype.itemsize, name)
        return np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="), copy=True)

    def _packed(self, name: str) -> np.ndarray:
        code, bits = self.take(2, name)
        if code not in _PACKED_DTYPES or not 8 <= bits <= 32 or self.bits not in (0, bits):
            raise MalformedMessage(f"field {name!r} has a bad packed-array header")
        self.bits = bits
        count = self.u64(name)
        if count > 8 * (len(self.view) - self.pos) // bits:
            raise MalformedMessage(f"field {name!r} claims {count} words; too few bytes")
        raw = self.take(packed_size(count, bits), name)
        return unpack_words(raw, count, bits, _CODE_DTYPES[code].newbyteorder("="))


def read_header(data: bytes) -> int:
    """Check magic and version; return the kind code."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise MalformedMessage(f"a message must be bytes, got {type(data).__name__}")
    if len(data) < HEADER.size:
        raise MalformedMessage(f"message of {len(data)} bytes is shorter than its header")
    magic, version, kind = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise MalformedMessage("not an ssddl message (bad magic bytes)")
    if version != VERSION:
        raise MalformedMessage(
            f"wire version {version} is not supported (this build speaks {VERSION}): run "
            f"the same ssddl version on every machine, and start a new session (a saved "
            f"participant or server state of another version cannot be resumed)"
        )
    return int(kind)


def decode_fields(data: bytes, schema: tuple[tuple[str, FieldType], ...]) -> dict[str, Any]:
    """Decode the body of a frame whose header was checked by :func:`read_header`."""
    return decode_frame(data, schema)[0]


def decode_frame(
    data: bytes, schema: tuple[tuple[str, FieldType], ...]
) -> tuple[dict[str, Any], int]:
    """:func:`decode_fields` and the width of the frame's packed arrays (0: none)."""
    reader = _Reader(bytes(data))
    reader.take(HEADER.size, "header")
    values = {name: reader.value(kind, name) for name, kind in schema}
    if reader.pos != len(reader.view):
        raise MalformedMessage(f"{len(reader.view) - reader.pos} trailing bytes after the message")
    return values, reader.bits
