"""Where a stream's events come from, one batch per call: the decoded upstream stream or a whole answer replayed;
and how a batch is read for tool calls.

Plain objects with one `next()` coroutine rather than async generators: a relayed token passes through each
layer once, and an awaited method costs a fraction of an async-generator hop (tests/bench/PROFILE.md, issue 18).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Protocol

from service.adapters.base import StreamDecoder
from service.canonical import Decoded, StreamEnd, StreamEvent, TokenDelta, ToolCallEvent
from service.pipeline.outputs import StreamReader


class Meter(Protocol):
    bytes_out: int


class EventSource(Protocol):
    async def next(self) -> list[StreamEvent] | None:
        """The events of the next upstream read that carried any; None once the source is exhausted."""
        ...

    async def aclose(self) -> None: ...


class Decoding:
    """The upstream's PayloadPart bytes through the adapter's stream decoder, starting with the first part (read
    while the stream was being opened)."""

    def __init__(self, decoder: StreamDecoder, first: bytes, parts: AsyncGenerator[bytes, None],
                 meter: Meter) -> None:
        self._decoder = decoder
        self._first: bytes | None = first
        self._parts = parts
        self._meter = meter
        self._done = False

    async def next(self) -> list[StreamEvent] | None:
        while not self._done:
            part = self._first
            if part is not None:
                self._first = None
            else:
                try:
                    part = await self._parts.__anext__()
                except StopAsyncIteration:
                    self._done = True
                    return self._decoder.close() or None
            self._meter.bytes_out += len(part)
            events = self._decoder.feed(part)
            if events:
                return events
        return None

    async def aclose(self) -> None:
        self._done = True
        await self._parts.aclose()


class Replay:
    """A whole answer (an endpoint that cannot stream) as one batch: its text, then the end."""

    def __init__(self, decoded: Decoded) -> None:
        self._decoded: Decoded | None = decoded

    async def next(self) -> list[StreamEvent] | None:
        decoded, self._decoded = self._decoded, None
        if decoded is None:
            return None
        choice = decoded.choices[0]
        head: list[StreamEvent] = [TokenDelta(choice.text, logprobs=choice.logprobs or ())] if choice.text else []
        return [*head, StreamEnd(choice.finish_reason, decoded.prompt_tokens, decoded.completion_tokens)]

    async def aclose(self) -> None:
        self._decoded = None


def read_calls(batch: list[StreamEvent], reader: StreamReader) -> list[StreamEvent]:
    """One batch read for tool calls: text while it is text, whole calls when they are complete."""
    out: list[StreamEvent] = []
    for event in batch:
        if isinstance(event, TokenDelta):
            out.extend(reader.push(event))
        elif isinstance(event, ToolCallEvent):
            out.append(reader.native(event))
        else:
            out.extend(reader.finish())
            out.append(event)
    return out
