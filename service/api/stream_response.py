"""The response of a streaming request: a minimal ASGI response that writes each piece of the SSE relay with one
`send`, and notices a client that leaves.

Why not starlette's StreamingResponse: for a server declaring ASGI spec < 2.4 (uvicorn's httptools protocol
declares 2.3, and its `send` silently drops writes after the client left) it runs every stream in an anyio task
group, with its body iterator and a disconnect listener as two tasks; per relayed token that is an
async-generator hop and the task group's machinery (tests/bench/PROFILE.md, issue 18). Here the body is pulled by
the request's own task, and one `receive()` waits alongside it: when it reports `http.disconnect` before the
response is complete, the task is cancelled (the upstream read is where it waits), the cancellation is
absorbed, and the relay closes the upstream, releases the slot and records 499.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from service.api.sse import SseRelay


class EventStreamResponse(Response):
    media_type = "text/event-stream"

    def __init__(self, relay: SseRelay, headers: Mapping[str, str]) -> None:
        self.relay = relay
        self.status_code = 200
        self.background = None
        self.init_headers(headers)  # starlette's: content-type text/event-stream; charset=utf-8, no length

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        watch = _DisconnectWatch(receive)
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            while (body := await self.relay.next()) is not None:
                await send({"type": "http.response.body", "body": body, "more_body": True})
            watch.stop()  # the last write completes the response, and uvicorn's receive() then says disconnect
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not watch.left:
                raise  # a cancellation from elsewhere (server shutdown) goes on
            watch.absorb()
        finally:
            watch.stop()
            await self.relay.close()


class _DisconnectWatch:
    """One pending `receive()` beside the response; cancels the response's task when the client disconnects."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._task = asyncio.current_task()
        self.left = False
        self._stopped = False
        self._pending: asyncio.Future[Message] = self._arm()

    def _arm(self) -> asyncio.Future[Message]:
        pending = asyncio.ensure_future(self._receive())
        pending.add_done_callback(self._received)
        return pending

    def _received(self, pending: asyncio.Future[Message]) -> None:
        if self._stopped or pending.cancelled() or pending.exception() is not None:
            return
        if pending.result()["type"] != "http.disconnect":
            self._pending = self._arm()  # not for us (nothing more is expected on a request already read)
            return
        self.left = True
        if self._task is not None:
            self._task.cancel()

    def absorb(self) -> None:
        """The cancellation this watch caused is handled: the task is not cancelled any more."""
        if self._task is not None:
            self._task.uncancel()

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._pending.cancel()
