"""An in-memory Transport for tests, in the style of httpx.MockTransport.

    def handler(target: Target, payload: Payload) -> RawResponse | list[bytes | Exception]:
        ...

`invoke` must get a RawResponse, `invoke_stream` a list whose bytes items are yielded in order and
whose exception items are raised at that point (a failure after some tokens). The handler may raise
an UpstreamError (a failure before any response) and may be async.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from service.transport.base import Payload, RawResponse, Target

HandlerResult = RawResponse | Sequence[bytes | Exception]
Handler = Callable[[Target, Payload], HandlerResult | Awaitable[HandlerResult]]


@dataclass(frozen=True, slots=True)
class Call:
    method: Literal["invoke", "invoke_stream"]
    target: Target
    payload: Payload


class FakeTransport:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.calls: list[Call] = []
        self.closed = False
        #: streams the consumer closed before the scripted items ran out (a client disconnect)
        self.streams_closed_early = 0

    async def invoke(self, target: Target, payload: Payload) -> RawResponse:
        result = await self._handle("invoke", target, payload)
        if not isinstance(result, RawResponse):
            raise TypeError(f"FakeTransport handler must return a RawResponse for invoke, got {type(result).__name__}")
        return result

    async def invoke_stream(self, target: Target, payload: Payload) -> AsyncGenerator[bytes, None]:
        result = await self._handle("invoke_stream", target, payload)
        if isinstance(result, RawResponse):
            raise TypeError("FakeTransport handler must return a list of bytes for invoke_stream, got a RawResponse")
        finished = False
        try:
            for item in result:
                if isinstance(item, Exception):
                    finished = True  # the stream ended by the scripted failure, not by the consumer
                    raise item
                yield item
            finished = True
        finally:
            if not finished:
                self.streams_closed_early += 1

    async def aclose(self) -> None:
        self.closed = True

    async def _handle(self, method: Literal["invoke", "invoke_stream"], target: Target,
                      payload: Payload) -> HandlerResult:
        self.calls.append(Call(method, target, payload))
        result = self.handler(target, payload)
        if inspect.isawaitable(result):
            result = await result
        return result
