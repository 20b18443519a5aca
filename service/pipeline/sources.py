"""Where a stream's events come from: the decoded upstream stream or a whole answer replayed; and how a batch is
read for tool calls.

A source delivers batches (the events of one upstream read) to a plain callback until the callback asks for a
pause or the source is exhausted. From a transport that can push (`PushedParts`), the callback runs inside the
network read itself: a relayed token wakes no task and passes no await between the socket it came from and the
socket it goes to (tests/bench/PROFILE.md, issue 18). Any other part stream is pulled, one await per read.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Protocol

from service.adapters.base import StreamDecoder
from service.adapters.plain import PlainOut
from service.canonical import Decoded, StreamEnd, StreamEvent, TokenDelta, ToolCallEvent
from service.pipeline.outputs import StreamReader
from service.transport.base import PartStream, PushedParts

#: takes one upstream read's events; returns False to pause the delivery
OnEvents = Callable[[list[StreamEvent]], bool]


class Meter(Protocol):
    bytes_out: int


class EventSource(Protocol):
    async def deliver(self, on_events: OnEvents, plain: PlainOut | None = None) -> bool:
        """Hand the events of each upstream read that carried any to `on_events` until it returns False (then
        True: call again to go on) or the source is exhausted (False, after its last events). With `plain`, a
        read that is one plain token may be written through it instead (adapters/plain.py)."""
        ...

    async def aclose(self) -> None: ...


class Decoding:
    """The upstream's PayloadPart bytes through the adapter's stream decoder, starting with the first part (read
    while the stream was being opened)."""

    def __init__(self, decoder: StreamDecoder, first: bytes, parts: PartStream, meter: Meter) -> None:
        self._decoder = decoder
        self._first: bytes | None = first
        self._parts = parts
        # checked once: an isinstance against a runtime Protocol costs ~6 µs (it lists the protocol's members)
        self._pushed: PushedParts | None = parts if isinstance(parts, PushedParts) else None
        self._meter = meter
        self._done = False

    async def deliver(self, on_events: OnEvents, plain: PlainOut | None = None) -> bool:
        if self._done:
            return False
        decoder = self._decoder
        try:
            first, self._first = self._first, None
            if first is not None and not decoder.push(on_events, first):
                return True
            if self._pushed is not None:
                # the decoder's `push` is what each network read calls: no frame of ours in between (positional: a
                # partial with keywords copies its keyword dict on every call, once per token)
                more = await self._pushed.deliver(partial(decoder.push, on_events) if plain is None
                                                  else partial(decoder.push_plain, plain, on_events))
            else:
                more = await self._pull(self._parts, on_events)
            if more:
                return True
            self._done = True
            last = decoder.close()
            if last:
                on_events(last)
            return False
        finally:
            self._meter.bytes_out = decoder.received

    async def _pull(self, parts: PartStream, on_events: OnEvents) -> bool:
        """The same contract from a stream that can only be pulled: one await per upstream read."""
        while True:
            try:
                part = await parts.__anext__()
            except StopAsyncIteration:
                return False
            if not self._decoder.push(on_events, part):
                return True

    async def aclose(self) -> None:
        self._done = True
        self._meter.bytes_out = self._decoder.received  # a stream abandoned while a delivery waits is charged too
        await self._parts.aclose()


class Replay:
    """A whole answer (an endpoint that cannot stream) as one batch: its text, then the end."""

    def __init__(self, decoded: Decoded) -> None:
        self._decoded: Decoded | None = decoded

    async def deliver(self, on_events: OnEvents, plain: PlainOut | None = None) -> bool:
        decoded, self._decoded = self._decoded, None
        if decoded is not None:
            choice = decoded.choices[0]
            head: list[StreamEvent] = [TokenDelta(choice.text, logprobs=choice.logprobs or ())] if choice.text else []
            on_events([*head, StreamEnd(choice.finish_reason, decoded.prompt_tokens, decoded.completion_tokens)])
        return False

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
