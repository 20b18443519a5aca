"""uvicorn's httptools protocol with the timeouts and limits a public gateway needs, and refusals in the
documented error shape.

uvicorn closes idle keep-alive connections, but not a connection that never finishes its request head or body
(slowloris: 100 such connections held 100 file descriptors for as long as the clients liked), it has no cap on
open connections besides the process's fd limit, and it answers malformed HTTP in plain text. Here, per
connection: the request line and headers must arrive within `server.header_timeout_s` (counted from the
connection's start or the request's first byte), the body within `server.body_timeout_s` after them, and at most
`server.max_connections` connections are open per worker. Once a request is complete no timer runs, so a long
response stream to a client that reads is never cut. The settings come from the app's lifespan state, so a
SIGHUP reload applies to new connections.

Each request's scope also carries `SocketBody` (extension BODY_SOCKET): the streaming response writes its body
pieces straight to the client's transport with it (service/api/stream_response.py says why).
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from service.config.server import ServerConfig

#: lifespan state key under which create_app publishes a callable returning the current ServerConfig
SERVER_SETTINGS = "jumpgate.server_settings"
_DEFAULT = ServerConfig()
#: the ASGI scope extension offering the client's socket for a streamed body (read by service/api/stream_response.py)
BODY_SOCKET = "jumpgate.body_socket"
_REASONS = {400: b"Bad Request", 408: b"Request Timeout", 503: b"Service Unavailable"}


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    _timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        limits = self._limits()
        if len(self.connections) > limits.max_connections:
            self._refuse(503, "server_overloaded", f"this server holds its limit of {limits.max_connections} open "
                         "connections; retry shortly", retry_after=1)
            return
        self._arm(limits.header_timeout_s, "the request line and headers")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._timer is None:  # a further request on a kept-alive connection
            self._arm(self._limits().header_timeout_s, "the request line and headers")

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle.scope is self.scope:  # this request's cycle (not an upgrade's refusal)
            extensions = cast(dict[str, object], self.scope.setdefault("extensions", {}))
            extensions[BODY_SOCKET] = SocketBody(cycle)
        self._arm(self._limits().body_timeout_s, "the request body")

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        self._refuse(400, "invalid_http", "the request is not valid HTTP/1.1 (a malformed request line or header, "
                     "a control character in a header value, or conflicting Content-Length and Transfer-Encoding)")

    # --- helpers -----------------------------------------------------------------------------------------
    def _limits(self) -> ServerConfig:
        settings = self.app_state.get(SERVER_SETTINGS)
        found = settings() if callable(settings) else None
        return found if isinstance(found, ServerConfig) else _DEFAULT

    def _arm(self, seconds: float, what: str) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, self._expired, seconds, what)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self, seconds: float, what: str) -> None:
        self._timer = None
        cycle = self.cycle
        if cycle is not None and cycle.response_started and not cycle.response_complete:
            self.transport.close()  # the app is answering already: nothing more can be said in-band
            return
        self._refuse(408, "request_timeout", f"{what} did not arrive within {seconds:g}s")

    def _refuse(self, status: int, code: str, message: str, retry_after: int | None = None) -> None:
        if self.transport.is_closing():
            return
        error_type = "invalid_request_error" if status < 500 else "service_unavailable"
        body = orjson.dumps({"error": {"message": message, "type": error_type, "param": None, "code": code}})
        head = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status]), b"content-type: application/json\r\n",
                b"content-length: %d\r\n" % len(body), b"connection: close\r\n"]
        if retry_after is not None:
            head.append(b"retry-after: %d\r\n" % retry_after)
        self.transport.write(b"".join([*head, b"\r\n", body]))
        self.transport.close()


class SocketBody:
    """A streamed response body written straight to the client's transport in HTTP/1.1 chunks, between the head
    and the end of the body, both of which go through the cycle's `send` (so its state and keep-alive stay
    right). `write` says False while uvicorn's flow control holds: the client's socket buffer is above its
    high-water mark, and the relay awaits `drain()`."""

    __slots__ = ("_cycle",)

    def __init__(self, cycle: RequestResponseCycle) -> None:
        self._cycle = cycle

    def ready(self) -> bool:
        """The head went out through `send` announcing a chunked body, and the body is not complete."""
        cycle = self._cycle
        return (cycle.response_started and not cycle.response_complete and cycle.chunked_encoding is True
                and cycle.scope["method"] != "HEAD")

    def write(self, data: bytes) -> bool:
        cycle = self._cycle
        if data and not cycle.disconnected:  # after a disconnect, dropped as `send` drops it
            cycle.transport.write(b"%x\r\n%b\r\n" % (len(data), data))
        return not cycle.flow.write_paused

    async def drain(self) -> None:
        cycle = self._cycle
        if cycle.flow.write_paused and not cycle.disconnected:
            await cycle.flow.drain()


def protocol_settings(settings: Any) -> dict[str, Any]:
    """The lifespan state entry through which the protocol reads the current ServerConfig."""
    return {SERVER_SETTINGS: settings}
