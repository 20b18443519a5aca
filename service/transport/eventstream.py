"""Incremental decoding of SageMaker's `invocations-response-stream` body (AWS event-stream framing).

Two stages, each fed whatever byte chunks the socket produced (frames may be split anywhere):

    FrameDecoder        bytes -> whole event-stream messages (botocore's EventStreamBuffer does the
                        parsing and CRC checks; this stage turns its errors into UpstreamStreamError)
    PayloadPartDecoder  messages -> the raw bytes of each PayloadPart; ModelStreamError /
                        InternalStreamFailure / error frames -> UpstreamStreamError
"""

from __future__ import annotations

from typing import Any, cast

import orjson
from botocore.eventstream import EventStreamBuffer, EventStreamMessage, MessagePrelude, ParserError

from service.errors import UpstreamStreamError, redact

# In-stream exception types after which a fresh attempt may succeed (the service says "try again").
RETRYABLE_STREAM_EXCEPTIONS = frozenset({"InternalStreamFailure"})

PRELUDE_LENGTH = 12  # event-stream prelude: total length, headers length, prelude CRC (4 bytes each)
_HEADER_MEMO_SIZE = 64


def json_object(raw: bytes | str) -> dict[str, Any]:
    """Parse an error body or exception payload; anything that is not a JSON object yields {}."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


# botocore-stubs declare EventStreamMessage.prelude and .headers as int; botocore sets a MessagePrelude and a
# dict of the parsed headers (botocore/eventstream.py, EventStreamBuffer._parse_message).
def _prelude(message: EventStreamMessage) -> MessagePrelude:
    return cast(MessagePrelude, message.prelude)


def _headers(message: EventStreamMessage) -> dict[str, Any]:
    return cast(dict[str, Any], message.headers)


class _MemoHeadersBuffer(EventStreamBuffer):
    """botocore's EventStreamBuffer, with the parsing of each distinct header block done once.

    Every PayloadPart frame of every stream carries the same three headers, byte for byte, and botocore
    parses them in pure Python: about half its per-frame cost, paid 64 times for a 64-token answer. The
    parse is a pure function of those bytes (checked by the frame's CRC before this runs), so its result is
    kept, for at most _HEADER_MEMO_SIZE distinct blocks (exception frames vary; they are parsed, not kept).
    """

    _memo: dict[bytes, dict[str, Any]] = {}  # shared by all streams: one event loop, same header blocks

    def _parse_headers(self) -> dict[str, Any]:
        # botocore's private buffer state and parser: tests/transport/test_eventstream.py checks this class
        # decodes exactly as plain botocore does, so a botocore change that breaks it fails loudly there.
        raw = self._data[PRELUDE_LENGTH:self._prelude.headers_end]  # type: ignore[attr-defined]
        parsed = self._memo.get(raw)
        if parsed is None:
            parsed = super()._parse_headers()  # type: ignore[misc]
            if len(self._memo) < _HEADER_MEMO_SIZE and parsed.get(":message-type") == "event":
                self._memo[raw] = parsed
        return dict(parsed)  # each message gets its own dict, as from botocore


class FrameDecoder:
    """Bytes in, complete event-stream messages out. Raises UpstreamStreamError on a corrupt frame."""

    def __init__(self, endpoint: str) -> None:
        self._endpoint = endpoint
        self._buffer = _MemoHeadersBuffer()
        # Counted here rather than read from the buffer's private state, to detect a stream cut mid-frame.
        self._fed = 0
        self._consumed = 0
        self._failure: UpstreamStreamError | None = None

    def feed(self, chunk: bytes) -> list[EventStreamMessage]:
        """Messages completed by `chunk`. A corrupt frame raises, after the good messages before it were returned."""
        if self._failure is not None:
            raise self._failure
        self._fed += len(chunk)
        self._buffer.add_data(chunk)
        messages: list[EventStreamMessage] = []
        try:
            for message in self._buffer:
                self._consumed += _prelude(message).total_length
                messages.append(message)
        except ParserError as exc:
            # After a bad CRC or length no later frame boundary can be trusted: the decoder stays failed.
            self._failure = UpstreamStreamError(self._corrupt(str(exc)))
            self._failure.__cause__ = exc
            if not messages:
                raise self._failure from exc
        return messages

    @property
    def pending(self) -> int:
        """Bytes received that do not yet form a complete message."""
        return self._fed - self._consumed

    def close(self) -> None:
        """Call at end of body: raises a failure not raised yet, or for a partial frame left over (a cut stream)."""
        if self._failure is not None:
            raise self._failure
        if self.pending:
            raise UpstreamStreamError(self._corrupt(f"the stream ended inside a frame ({self.pending} bytes left)"),
                                      retryable=True)

    def _corrupt(self, detail: str) -> str:
        return f"SageMaker endpoint {self._endpoint!r} sent a malformed event stream: {detail}"


class PayloadPartDecoder:
    """Bytes in, the payload bytes of each PayloadPart event out (no JSON wrapper: `PayloadPart.Bytes`)."""

    def __init__(self, endpoint: str) -> None:
        self._endpoint = endpoint
        self._frames = FrameDecoder(endpoint)
        self._failure: UpstreamStreamError | None = None

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

    def _payload_of(self, message: EventStreamMessage) -> bytes | None:
        headers = _headers(message)
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
