"""The response of a streaming request: a minimal ASGI response that writes each piece of the SSE relay with one
write, and notices a client that leaves.

Where the server offers it (`BODY_SOCKET`: jumpgate's uvicorn protocol, service/protocol.py), the body goes
straight to the client's socket once the head went through `send`: the relay writes from inside the upstream's
network read, so a relayed token wakes no task and builds no ASGI message (tests/bench/PROFILE.md, issue 18). The
app's middleware only touches response heads (request id, CORS), which still go through `send`. Any other server
gets every piece through `send`.

Why not starlette's StreamingResponse: for a server declaring ASGI spec < 2.4 (uvicorn's httptools protocol
declares 2.3, and its `send` silently drops writes after the client left) it runs every stream in an anyio task
group, with its body iterator and a disconnect listener as two tasks; per relayed token that is an
async-generator hop and the task group's machinery (tests/bench/PROFILE.md, issue 18). Here one task pulls the
relay and calls `send`, and one `receive()` waits alongside it: when it reports `http.disconnect` before the
response is complete, the relay task is cancelled (the upstream read is where it waits), and the relay closes
the upstream, releases the slot and records 499.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from service.api.sse import BodyOut, SseRelay

#: the ASGI scope extension under which a server offers the client's socket for the body (service/protocol.py)
BODY_SOCKET = "jumpgate.body_socket"


class EventStreamResponse(Response):
    media_type = "text/event-stream"

    def __init__(self, relay: SseRelay, headers: Mapping[str, str]) -> None:
        self.relay = relay
        self.status_code = 200
        self.background = None
        self._watch: _DisconnectWatch | None = None
        self.init_headers(headers)  # starlette's: content-type text/event-stream; charset=utf-8, no length

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The relay runs in a task of its own: a token wakes only the frames of the relay (not the ASGI call's
        # middleware stack above them), and a client that leaves cancels that task, nothing else.
        pump = asyncio.ensure_future(self._pump(scope, send))
        watch = self._watch = _DisconnectWatch(receive, pump)  # before the pump's first step
        try:
            await pump  # cancelling this task (server shutdown) cancels the pump too
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if not watch.left or (current is not None and current.cancelling()):
                raise  # not the client leaving: the cancellation goes on
        finally:
            watch.stop()

    async def _pump(self, scope: Scope, send: Send) -> None:
        relay = self.relay
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            socket = scope.get("extensions", {}).get(BODY_SOCKET)
            out: BodyOut = socket if socket is not None and socket.ready() else _SendBody(send)
            await relay.run(out)
            await out.drain()
            if self._watch is not None:
                self._watch.stop()  # the last write completes the response, and receive() then says disconnect
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await relay.close()


class _SendBody:
    """The body through the ASGI `send`: each piece goes out (awaited) before the relay reads on."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._pieces: list[bytes] = []

    def write(self, data: bytes) -> bool:
        self._pieces.append(data)
        return False  # after every piece: the relay stops and awaits drain(), which sends it

    async def drain(self) -> None:
        if self._pieces:
            body = b"".join(self._pieces)
            self._pieces.clear()
            await self._send({"type": "http.response.body", "body": body, "more_body": True})


class _DisconnectWatch:
    """One pending `receive()` beside the response; cancels the relay when the client disconnects first."""

    def __init__(self, receive: Receive, pump: asyncio.Future[None]) -> None:
        self._receive = receive
        self._pump = pump
        self.left = False
        self._stopped = False
        self._pending: asyncio.Future[Message] = self._arm()

    def _arm(self) -> asyncio.Future[Message]:
        pending = asyncio.ensure_future(self._receive())
        pending.add_done_callback(self._received)
        return pending

    def _received(self, pending: asyncio.Future[Message]) -> None:
        if self._stopped or pending.cancelled() or pending.exception() is not None or self._pump.done():
            return
        if pending.result()["type"] != "http.disconnect":
            self._pending = self._arm()  # not for us (nothing more is expected on a request already read)
            return
        self.left = True
        self._pump.cancel()

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._pending.cancel()
