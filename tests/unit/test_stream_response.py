"""EventStreamResponse against a scripted ASGI server: a finished stream is never taken for a disconnect, a client
that leaves cancels the relay (which still closes), and a cancellation from the server goes on."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any, cast

import pytest

from service.api.sse import BodyOut, SseRelay
from service.api.stream_response import BODY_SOCKET, EventStreamResponse


class FakeRelay:
    def __init__(self, pieces: list[bytes], stall: bool = False) -> None:
        self.pieces = pieces
        self.stall = stall
        self.closed = asyncio.Event()
        self.close_steps = 0

    async def run(self, out: BodyOut) -> None:
        for piece in self.pieces:
            if not out.write(piece):
                await out.drain()
        if self.stall:
            await asyncio.Event().wait()  # an upstream that never sends again

    async def close(self) -> None:
        for _ in range(5):  # closing takes several loop turns (upstream close, limiter, logs)
            await asyncio.sleep(0)
            self.close_steps += 1
        self.closed.set()


class Server:
    """Like uvicorn's cycle: receive() says http.disconnect once the response completed or the client left."""

    def __init__(self) -> None:
        self.sent: list[MutableMapping[str, Any]] = []
        self.gone = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: MutableMapping[str, Any]) -> None:
        self.sent.append(message)
        if message["type"] == "http.response.body" and not message["more_body"]:
            self.gone.set()


def response(relay: FakeRelay) -> EventStreamResponse:
    return EventStreamResponse(cast(SseRelay, relay), {"x-jumpgate-endpoint": "ep"})


async def test_a_finished_stream_closes_whole() -> None:
    relay, server = FakeRelay([b"a", b"b"]), Server()
    await response(relay)({"type": "http"}, server.receive, server.send)
    assert [m.get("body") for m in server.sent] == [None, b"a", b"b", b""]
    assert server.sent[0]["headers"] == [(b"x-jumpgate-endpoint", b"ep"),
                                         (b"content-type", b"text/event-stream; charset=utf-8")]
    assert relay.close_steps == 5, "the completion's http.disconnect must not cut the relay's close short"


async def test_a_client_that_leaves_cancels_the_relay() -> None:
    relay, server = FakeRelay([b"a"], stall=True), Server()
    call = asyncio.ensure_future(response(relay)({"type": "http"}, server.receive, server.send))
    while len(server.sent) < 2:
        await asyncio.sleep(0)
    server.gone.set()  # the client disconnects while the relay waits for the upstream
    await asyncio.wait_for(call, 5)  # returns normally: nothing left to answer
    assert relay.closed.is_set() and relay.close_steps == 5
    assert all(m.get("more_body", True) for m in server.sent), "no end of body after the client left"


async def test_a_server_cancellation_goes_on_and_the_relay_still_closes() -> None:
    relay, server = FakeRelay([], stall=True), Server()
    call = asyncio.ensure_future(response(relay)({"type": "http"}, server.receive, server.send))
    while not server.sent:
        await asyncio.sleep(0)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await asyncio.wait_for(relay.closed.wait(), 5)


class Socket:
    """Like service/protocol.py's SocketBody: the body's pieces straight to the client's socket when ready."""

    def __init__(self, ready: bool, paused_every: int = 0) -> None:
        self._ready, self.paused_every = ready, paused_every
        self.written: list[bytes] = []
        self.drains = 0

    def ready(self) -> bool:
        return self._ready

    def write(self, data: bytes) -> bool:
        self.written.append(data)
        return not (self.paused_every and len(self.written) % self.paused_every == 0)

    async def drain(self) -> None:
        self.drains += 1


@pytest.mark.parametrize("paused_every", [0, 2])
async def test_a_server_socket_takes_the_body_between_head_and_end(paused_every: int) -> None:
    relay, server, socket = FakeRelay([b"a", b"b", b"c", b"d"]), Server(), Socket(True, paused_every)
    await response(relay)({"type": "http", "extensions": {BODY_SOCKET: socket}}, server.receive, server.send)
    assert [m.get("body") for m in server.sent] == [None, b""], "only the head and the end go through send"
    assert socket.written == [b"a", b"b", b"c", b"d"]
    assert socket.drains >= (2 if paused_every else 0)


async def test_a_socket_that_is_not_ready_leaves_the_body_to_send() -> None:
    relay, server, socket = FakeRelay([b"a", b"b"]), Server(), Socket(False)
    await response(relay)({"type": "http", "extensions": {BODY_SOCKET: socket}}, server.receive, server.send)
    assert [m.get("body") for m in server.sent] == [None, b"a", b"b", b""] and not socket.written


def test_the_server_offers_the_socket_under_the_name_the_response_reads() -> None:
    from service.protocol import BODY_SOCKET as offered  # same layer as the api: neither imports the other

    assert offered == BODY_SOCKET
