"""Incremental decoding of SageMaker's `invocations-response-stream` body (AWS event-stream framing).

Two stages, each fed whatever byte chunks the socket produced (frames may be split anywhere):

    FrameDecoder        bytes -> whole event-stream frames, both CRCs checked (zlib's C crc32), lengths bounded
                        as botocore bounds them; header blocks parsed by botocore's EventStreamHeaderParser
    PayloadPartDecoder  frames -> the raw bytes of each PayloadPart; ModelStreamError /
                        InternalStreamFailure / error frames -> UpstreamStreamError

Why not botocore's EventStreamBuffer for the frames: it spends about ten Python calls and three objects per
frame, and a relayed token is one frame (issue 18: ~5 µs of the gateway's CPU per token, a fifth of that here).
The framing is the table of wire-formats.md 1.6; the AWS shared test vectors (tests/transport/test_eventstream.py)
and a comparison with botocore's own decoding over mixed frames check it.
"""

from __future__ import annotations

import struct
from binascii import crc32
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

import orjson
from botocore.eventstream import EventStreamHeaderParser

from service.errors import UpstreamStreamError, redact

# In-stream exception types after which a fresh attempt may succeed (the service says "try again").
RETRYABLE_STREAM_EXCEPTIONS = frozenset({"InternalStreamFailure"})

PRELUDE_LENGTH = 12  # event-stream prelude: total length, headers length, prelude CRC (4 bytes each)
_FRAME_OVERHEAD = PRELUDE_LENGTH + 4  # the prelude and the message CRC
_MAX_HEADERS_LENGTH = 128 * 1024  # botocore's bounds (botocore/eventstream.py)
_MAX_PAYLOAD_LENGTH = 24 * 1024 * 1024
_HEADER_MEMO_SIZE = 64
_PRELUDE = struct.Struct(">III")
_CRC = struct.Struct(">I")


def json_object(raw: bytes | str) -> dict[str, Any]:
    """Parse an error body or exception payload; anything that is not a JSON object yields {}."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


class Frame(NamedTuple):
    """One event-stream message, its CRCs checked. `headers` is read-only: equal header blocks share it. (A named
    tuple: immutable, and built in a fraction of a frozen dataclass's time, once per relayed token.)"""

    total_length: int
    headers_length: int
    prelude_crc: int
    message_crc: int
    headers: Mapping[str, Any]
    payload: bytes


class FrameDecoder:
    """Bytes in, complete event-stream frames out. Raises UpstreamStreamError on a corrupt frame."""

    def __init__(self, endpoint: str) -> None:
        self._endpoint = endpoint
        self._data = b""
        self._failure: UpstreamStreamError | None = None
        # No bytes of an incomplete frame held, no failure: the next chunk starts a frame. Kept, not derived per call:
        # `PayloadPartDecoder.joined` reads it once per relayed token.
        self.idle = True
        # Every PayloadPart frame of a stream carries the same header block, byte for byte: it is parsed once (for
        # at most _HEADER_MEMO_SIZE distinct event blocks; exception frames vary and are parsed each time).
        self._memo: dict[bytes, Mapping[str, Any]] = {}

    def feed(self, chunk: bytes) -> list[Frame]:
        """Frames completed by `chunk`. A corrupt frame raises, after the good frames before it were returned."""
        if self._failure is not None:
            raise self._failure
        data = self._data + chunk if self._data else chunk
        frames: list[Frame] = []
        pos, size = 0, len(data)
        try:
            while size - pos >= PRELUDE_LENGTH:
                total, headers_length, prelude_crc = _PRELUDE.unpack_from(data, pos)
                self._check_prelude(data, pos, total, headers_length, prelude_crc)
                if size - pos < total:
                    break
                end = pos + total
                message_crc = _CRC.unpack_from(data, end - 4)[0]
                if crc32(data[pos + 8:end - 4], prelude_crc) != message_crc:
                    raise self._corrupt("Checksum mismatch: the message CRC does not match its bytes")
                headers_end = pos + PRELUDE_LENGTH + headers_length
                frames.append(Frame(total, headers_length, prelude_crc, message_crc,
                                    self.parsed_headers(data[pos + PRELUDE_LENGTH:headers_end]),
                                    data[headers_end:end - 4]))
                pos = end
        except UpstreamStreamError as exc:
            # After a bad CRC or length no later frame boundary can be trusted: the decoder stays failed.
            self._failure = exc
            self.idle = False
            if not frames:
                raise
        self._data = data[pos:] if pos < size else b""
        self.idle = not self._data and self._failure is None
        return frames

    @property
    def pending(self) -> int:
        """Bytes received that do not yet form a complete frame."""
        return len(self._data)

    def close(self) -> None:
        """Call at end of body: raises a failure not raised yet, or for a partial frame left over (a cut stream)."""
        if self._failure is not None:
            raise self._failure
        if self.pending:
            raise UpstreamStreamError(self._message(f"the stream ended inside a frame ({self.pending} bytes left)"),
                                      retryable=True)

    def _check_prelude(self, data: bytes, pos: int, total: int, headers_length: int, prelude_crc: int) -> None:
        if crc32(data[pos:pos + 8]) != prelude_crc:
            raise self._corrupt("Checksum mismatch: the prelude CRC does not match its bytes")
        if headers_length > _MAX_HEADERS_LENGTH:
            raise self._corrupt(f"a header block of {headers_length} bytes (at most {_MAX_HEADERS_LENGTH})")
        payload_length = total - headers_length - _FRAME_OVERHEAD
        if not 0 <= payload_length <= _MAX_PAYLOAD_LENGTH:
            raise self._corrupt(f"a frame of {total} bytes with a header block of {headers_length} bytes")

    def parsed_headers(self, raw: bytes) -> Mapping[str, Any]:
        """A header block's headers, parsed once per distinct event block. Raises UpstreamStreamError if unreadable."""
        found = self._memo.get(raw)
        if found is None:
            try:
                found = MappingProxyType(EventStreamHeaderParser().parse(raw))
            except Exception as exc:  # botocore's parser raises whatever a short or bad block makes it raise
                raise self._corrupt(f"an unreadable header block ({type(exc).__name__})") from exc
            if len(self._memo) < _HEADER_MEMO_SIZE and found.get(":message-type") == "event":
                self._memo[raw] = found
        return found

    def _corrupt(self, detail: str) -> UpstreamStreamError:
        return UpstreamStreamError(self._message(detail))

    def _message(self, detail: str) -> str:
        return f"SageMaker endpoint {self._endpoint!r} sent a malformed event stream: {detail}"


class PayloadPartDecoder:
    """Bytes in, the payload bytes of each PayloadPart event out (no JSON wrapper: `PayloadPart.Bytes`)."""

    def __init__(self, endpoint: str) -> None:
        self._endpoint = endpoint
        self._frames = FrameDecoder(endpoint)
        self._failure: UpstreamStreamError | None = None
        self._part_block: bytes | None = None  # the header block of this stream's PayloadPart frames, once seen

    def joined(self, data: bytes) -> bytes:
        """`b"".join(self.feed(data))`: the payloads `data` completes, as one piece (their boundaries carry no
        meaning), read as `push` reads them."""
        got: list[bytes] = []

        def keep(part: bytes) -> bool:
            got.append(part)
            return True

        self.push(keep, data)
        return got[0] if got else b""

    def push(self, on_parts: Callable[[bytes], bool], data: bytes) -> bool:
        """The payloads `data` completes, joined as one piece (`joined`), handed to `on_parts`: its answer, or True
        when `data` completed none. The usual read, whole PayloadPart frames (one per relayed token), takes a
        shorter path that makes the same checks; anything else goes through `feed`, which raises what it finds."""
        # The shorter path takes a chunk of nothing but intact PayloadPart frames ending at its end. Both CRCs and
        # the length bounds are checked as `FrameDecoder` checks them; the header block is compared byte for byte
        # with the stream's PayloadPart block (parsed once, by the frame decoder's memo). One function from the
        # socket's read to the next layer: a relayed token's Python calls are what its CPU goes to
        # (tests/bench/PROFILE.md).
        parts: list[bytes] = []
        pos, size, block = 0, len(data), self._part_block
        whole = self._failure is None and self._frames.idle  # False: the general path reads `data`
        while whole and pos < size:
            if size - pos < _FRAME_OVERHEAD:
                whole = False
                break
            total, headers_length, prelude_crc = _PRELUDE.unpack_from(data, pos)
            end = pos + total
            if (end > size or not 0 <= total - headers_length - _FRAME_OVERHEAD <= _MAX_PAYLOAD_LENGTH
                    or crc32(data[pos:pos + 8]) != prelude_crc
                    or crc32(data[pos + 8:end - 4], prelude_crc) != _CRC.unpack_from(data, end - 4)[0]):
                whole = False
                break
            headers_end = pos + PRELUDE_LENGTH + headers_length
            if block is None or data[pos + PRELUDE_LENGTH:headers_end] != block:
                block = self._learn_block(data[pos + PRELUDE_LENGTH:headers_end])
                if block is None:
                    whole = False
                    break
            if headers_end < end - 4:  # an empty PayloadPart carries nothing
                parts.append(data[headers_end:end - 4])
            pos = end
        if not whole:
            parts = self.feed(data)
        if not parts:
            return True
        return on_parts(parts[0] if len(parts) == 1 else b"".join(parts))

    def _learn_block(self, raw: bytes) -> bytes | None:
        """`raw` if it is a PayloadPart event's header block (then the stream's block from now on), else None."""
        if len(raw) > _MAX_HEADERS_LENGTH:
            return None
        try:
            headers = self._frames.parsed_headers(raw)
        except UpstreamStreamError:
            return None  # `feed` raises it
        if headers.get(":message-type") != "event" or headers.get(":event-type") != "PayloadPart":
            return None
        self._part_block = raw
        return raw

    def feed(self, chunk: bytes) -> list[bytes]:
        """PayloadPart payloads completed by `chunk`, in order.

        An exception frame raises UpstreamStreamError; when parts precede it in the same chunk they are
        returned first and the error is raised by the next `feed` or `close`, so no output is lost.
        """
        if self._failure is not None:
            raise self._failure
        parts: list[bytes] = []
        for message in self._frames.feed(chunk):
            try:
                part = self._payload_of(message)
            except UpstreamStreamError as exc:
                if not parts:
                    raise
                self._failure = exc
                break
            # An empty PayloadPart carries nothing for the layers above; dropping it keeps them simpler.
            if part:
                parts.append(part)
        return parts

    def close(self) -> None:
        if self._failure is not None:
            raise self._failure
        self._frames.close()

    def _payload_of(self, message: Frame) -> bytes | None:
        headers = message.headers
        message_type = headers.get(":message-type")
        if message_type == "event":
            # Other event types may be added to the union later; they carry no model output.
            return message.payload if headers.get(":event-type") == "PayloadPart" else None
        if message_type == "exception":
            raise self._exception_frame(str(headers.get(":exception-type", "UnknownException")), message.payload)
        if message_type == "error":
            code = str(headers.get(":error-code", "UnknownError"))
            text = str(headers.get(":error-message", ""))
            raise UpstreamStreamError(self._failed(code, None, text))
        return None

    def _exception_frame(self, exception_type: str, payload: bytes) -> UpstreamStreamError:
        fields = json_object(payload)
        text = str(fields.get("Message") or fields.get("message") or "")
        error_code = fields.get("ErrorCode")
        return UpstreamStreamError(self._failed(exception_type, error_code, text),
                                   retryable=exception_type in RETRYABLE_STREAM_EXCEPTIONS)

    def _failed(self, code: str, error_code: object, text: str) -> str:
        detail = f"{code} ({error_code})" if error_code else code
        if text:
            detail = f"{detail}: {text}"
        return f"SageMaker endpoint {self._endpoint!r} failed mid-stream: {redact(detail)}"
