"""AWS event-stream (``application/vnd.amazon.eventstream``) frame encoder.

Written from the framing table in shared/reference/wire-formats.md section 1.6: a frame is
``total_length:u32 | headers_length:u32 | prelude_crc:u32 | headers | payload | message_crc:u32``,
big-endian, where the message CRC covers every byte before it. Only encoding lives here: the simulator
never decodes frames, and the tests decode with botocore so the two sides come from different code.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

# Header value type codes (section 1.6: types 0-9).
BOOL_TRUE, BOOL_FALSE, BYTE, INT16, INT32, INT64, BYTES, STRING, TIMESTAMP, UUID = range(10)

_FIXED = {BYTE: ">b", INT16: ">h", INT32: ">i", INT64: ">q", TIMESTAMP: ">q"}
_PRELUDE = struct.Struct(">II")
_U32 = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class Header:
    """One typed header; ``value`` is bool/int/bytes/str as the type code requires (uuid: 16 bytes)."""

    name: str
    type: int
    value: object


def _encode_value(header: Header) -> bytes:
    kind, value = header.type, header.value
    if kind in (BOOL_TRUE, BOOL_FALSE):
        return b""  # the type code itself carries the value
    if kind in _FIXED:
        return struct.pack(_FIXED[kind], value)
    if kind == UUID:
        assert isinstance(value, bytes) and len(value) == 16, "uuid header values are 16 raw bytes"
        return value
    raw = value.encode() if isinstance(value, str) else bytes(value)  # type: ignore[call-overload]
    return struct.pack(">H", len(raw)) + raw


def encode_headers(headers: Iterable[Header]) -> bytes:
    out = bytearray()
    for header in headers:
        name = header.name.encode()
        out += bytes((len(name),)) + name + bytes((header.type,)) + _encode_value(header)
    return bytes(out)


def string_headers(**pairs: str) -> bytes:
    """Encode string headers; keyword names use ``_`` for ``-`` and a leading ``_`` for ``:``."""
    return encode_headers(Header(_header_name(k), STRING, v) for k, v in pairs.items())


def _header_name(key: str) -> str:
    return (":" + key[1:] if key.startswith("_") else key).replace("_", "-")


def encode_message(headers: bytes, payload: bytes) -> bytes:
    """One complete frame from pre-encoded headers (see ``encode_headers``) and a raw payload."""
    total = 16 + len(headers) + len(payload)
    prelude = _PRELUDE.pack(total, len(headers))
    head = prelude + _U32.pack(zlib.crc32(prelude))
    body = head + headers + payload
    return body + _U32.pack(zlib.crc32(body))


# The headers of every PayloadPart are identical, so they are encoded once at import.
PAYLOAD_PART_HEADERS = string_headers(
    _message_type="event", _event_type="PayloadPart", _content_type="application/octet-stream")


def payload_part(data: bytes) -> bytes:
    """A ``PayloadPart`` event whose payload is the raw container bytes (botocore's ``Bytes`` member)."""
    return encode_message(PAYLOAD_PART_HEADERS, data)


def exception_frame(exception_type: str, payload: bytes) -> bytes:
    """An in-stream modeled exception (``ModelStreamError`` / ``InternalStreamFailure``) with a JSON payload."""
    headers = string_headers(
        _message_type="exception", _exception_type=exception_type, _content_type="application/json")
    return encode_message(headers, payload)
