"""Incremental, split-safe decoding of container streams: PayloadPart bytes → lines → JSON events.

SageMaker cuts the container's byte stream into PayloadParts anywhere: inside a JSON line and inside a
multi-byte UTF-8 character (wire-formats.md 1.6). So bytes are buffered as bytes and split on b"\\n";
only complete lines are decoded (a newline byte never occurs inside a UTF-8 sequence). Each line is
then one of: blank, an SSE comment (`:` keep-alive), `data:` with or without a space, `[DONE]`, or a
bare JSON line (LMI jsonlines); `JsonLineDecoder` hands the JSON objects to a schema's event function.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

import orjson

from service.adapters.plain import PlainOut, PlainToken
from service.canonical import StreamEvent
from service.errors import UpstreamStreamError

MAX_LINE_BYTES = 1 << 20  # a line longer than 1 MiB is not a token event: fail instead of buffering forever


class LineBuffer:
    def __init__(self) -> None:
        self.pending = bytearray()  # the bytes of a line not complete yet

    def feed(self, data: bytes) -> list[bytes]:
        if not self.pending and data.endswith(b"\n"):
            return data.split(b"\n")[:-1]  # the usual part (whole lines, e.g. one token's event): no copy
        self.pending += data
        if b"\n" not in data:
            if len(self.pending) > MAX_LINE_BYTES:
                raise UpstreamStreamError("the endpoint streamed a line longer than 1 MiB")
            return []
        *lines, rest = bytes(self.pending).split(b"\n")
        self.pending = bytearray(rest)
        return lines

    def flush(self) -> list[bytes]:
        rest, self.pending = bytes(self.pending), bytearray()
        return [rest] if rest.strip() else []


class JsonLineDecoder(ABC):
    """Lines of SSE (`data:` JSON) or JSON lines → the schema's events. Subclasses say what an object means."""

    schema = "container"
    #: where this schema's objects carry a plain text token (`push_plain`); None: every object takes `events`
    plain: ClassVar[PlainToken | None] = None

    def __init__(self) -> None:
        self.with_logprobs = False  # set by the pipeline when the request wants token log-probabilities
        self._lines = LineBuffer()
        self.done = False  # saw `data: [DONE]`
        self._failure: UpstreamStreamError | None = None  # an error line met after events of the same feed
        self.received = 0  # PayloadPart bytes taken (what the endpoint sent out: part of a request's cost)

    @abstractmethod
    def events(self, obj: dict[str, Any]) -> list[StreamEvent]:
        """The events one JSON object of the stream stands for; raise UpstreamStreamError for error objects."""

    def end(self) -> list[StreamEvent]:
        """Events owed when the upstream bytes end (e.g. a finish held until the usage chunk)."""
        return []

    def feed(self, data: bytes) -> list[StreamEvent]:
        """The events completed by `data`. When an error line follows events in the same data, the events
        are returned and the error raised by the next `feed` or `close`: no token is lost to a later error."""
        out: list[StreamEvent] = []

        def keep(events: list[StreamEvent]) -> bool:
            out.extend(events)
            return True

        self.push(keep, data)
        return out

    def push(self, on_events: Callable[[list[StreamEvent]], bool], data: bytes) -> bool:
        """`feed(data)`, its events (when there are any) handed to `on_events`: its answer, or True. Called from the
        transport's read of each part: one function per token between the event-stream frame and the pipeline."""
        if self._failure is not None:
            raise self._failure
        self.received += len(data)
        events: list[StreamEvent] | None = None
        if data.startswith(b"data:") and data.endswith(b"\n\n") and data.find(b"\n") == len(data) - 2 \
                and not self._lines.pending:
            # One whole SSE event (a token's usual PayloadPart): its JSON read without splitting lines. Anything the
            # general path would treat differently ([DONE], not JSON, not an object) takes the general path.
            try:
                obj = orjson.loads(data[5:])
            except orjson.JSONDecodeError:
                pass
            else:
                if isinstance(obj, dict):
                    try:
                        events = self.events(obj)
                    except (AttributeError, TypeError):
                        raise self._unexpected() from None
        if events is None:
            events = self._decode(self._lines.feed(data))
        return not events or on_events(events)

    def push_plain(self, out: PlainOut, on_events: Callable[[list[StreamEvent]], bool], data: bytes) -> bool:
        """`push`, except that while `out.live` a part that is one whole event (`data:` JSON or a JSON line)
        carrying one plain token (the schema's `plain`) is written straight out: its text kept in `out`'s lists,
        counted and timed, its chunk (`out.head`, the text as a JSON string, `out.tail`) written with `out.write`,
        whose answer is returned. Anything else takes `push`. One function from the event-stream payload to the
        socket for the usual token (plain.py)."""
        shape = self.plain
        if not out.live or shape is None or self.with_logprobs or self._failure is not None or self._lines.pending:
            return self.push(on_events, data)
        if data.startswith(b"data:"):
            if not data.endswith(b"\n\n") or data.find(b"\n") != len(data) - 2:
                return self.push(on_events, data)
            body = data[5:]
        elif data.startswith(b"{") and data.find(b"\n") == len(data) - 1:
            body = data
        else:
            return self.push(on_events, data)
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError:
            return self.push(on_events, data)  # which says what is wrong with it
        token = obj.get(shape.item) if type(obj) is dict else None
        text = token.get(shape.text) if type(token) is dict else None
        if type(text) is not str or not text:
            return self.push(on_events, data)
        for key in shape.ends:
            if obj.get(key) is not None:
                return self.push(on_events, data)
        for flag in shape.flags:
            if token.get(flag):  # type: ignore[union-attr]  # a dict: checked above
                return self.push(on_events, data)
        self.received += len(data)
        out.texts.append(text)
        out.generated.append(text)
        out.tokens += 1
        out.last = out.clock()
        return out.write(out.head + orjson.dumps(text) + out.tail)

    def close(self) -> list[StreamEvent]:
        if self._failure is not None:
            raise self._failure
        out = self._decode(self._lines.flush())
        if self._failure is not None:  # flush holds at most one line, so no events came before it
            raise self._failure
        return out + self.end()

    def _decode(self, lines: list[bytes]) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        for line in lines:
            try:
                obj = self._parse(line.strip())
                if obj is not None:
                    try:
                        out.extend(self.events(obj))
                    except (AttributeError, TypeError):  # e.g. a `token` or `details` that is not an object
                        raise self._unexpected() from None
            except UpstreamStreamError as exc:
                if not out:
                    raise
                self._failure = exc
                break
        return out

    def _unexpected(self) -> UpstreamStreamError:
        return UpstreamStreamError(f"the {self.schema} endpoint streamed an event of an unexpected shape")

    def _parse(self, line: bytes) -> dict[str, Any] | None:
        if not line or line.startswith(b":"):
            return None  # blank separator or SSE comment (keep-alive)
        if line.startswith(b"data:"):
            line = line[5:].lstrip(b" ")
        elif line.startswith((b"event:", b"id:", b"retry:")):
            return None
        if line == b"[DONE]":
            self.done = True
            return None
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise UpstreamStreamError(f"the {self.schema} endpoint streamed a line that is not JSON") from None
        if not isinstance(obj, dict):
            raise UpstreamStreamError(f"the {self.schema} endpoint streamed an unexpected event")
        return obj
