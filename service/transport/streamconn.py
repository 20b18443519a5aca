"""The read path of response streams: HTTP/1.1 over an asyncio protocol, parsed by httptools, kept alive per host.

Why not aiohttp here (it still serves every non-streaming call): a relayed token arrives as one small read, and
aiohttp spends ~14 µs of Python per read around it (chunked decoding, its StreamReader, a timeout rescheduled per
chunk, a future per wait; tests/bench/PROFILE.md, issue 18). Here `data_received` hands the bytes to httptools'
C parser, whose body callback appends them to a list that `read()` drains: one wake-up per read, no per-chunk
timer. The limits are aiohttp's `connect` and `sock_read`: getting a connection, then silence while the caller
waits for a byte (the response head included). Silence is checked by one timer re-armed lazily from the time of
the last data, not per chunk. Failures are plain OSError / TimeoutError (a malformed response is a
ConnectionError); the transport maps them to UpstreamErrors.

A body is read in one of two ways, which may alternate: pulled (`read()`: one task wake-up per network read), or
pushed (`deliver(on_body)`: `data_received` calls `on_body` itself, so a relayed token wakes no task at all; the
caller's coroutine waits only for the end, a failure, or `on_body` asking for a pause).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httptools

# Bytes buffered and not yet read after which the socket stops being read (TCP back-pressure to the upstream).
HIGH_WATER = 1 << 16

#: called with body bytes as they arrive; returns False to pause reading (the caller's coroutine resumes)
BodySink = Callable[[bytes], bool]


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection; one response at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._new_response()

    def _new_response(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.head_done = self.complete = self.paused = self.got_bytes = self.until_close = self.keep_alive = False
        self.body: list[bytes] = []
        self.buffered = 0
        self.failure: OSError | None = None
        self.last_data = self.loop.time()
        self.waiter: asyncio.Future[None] | None = None
        self.sink: BodySink | None = None  # set while a body is pushed (`UpstreamResponse.deliver`)
        self.sink_error: Exception | None = None  # what the sink raised, for `deliver` to raise

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        self.last_data = self.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"malformed HTTP response from the upstream: {exc}"))
        if self.sink is None or self.complete or self.failure is not None:
            self._wake()  # a sink still taking the body needs nobody woken

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.until_close and self.head_done and self.failure is None and exc is None:
            self.complete = True  # a body without length or chunking ends where the connection does (cleanly)
        if not self.complete and self.failure is None:
            detail = f": {exc}" if exc else ""
            self.failure = ConnectionResetError(f"the upstream closed the connection{detail}")
        self._wake()

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()  # read here: llhttp resets it once the message ends
        self.head_done = True
        names = {name.lower() for name, _ in self.raw_headers}
        self.until_close = b"content-length" not in names and b"transfer-encoding" not in names

    def on_body(self, body: bytes) -> None:
        sink = self.sink
        if sink is not None:
            try:
                if sink(body):
                    return
            except Exception as exc:  # raised by `deliver`, in the caller's task, not into the event loop
                self.sink_error = exc
            self.sink = None  # the rest of this read (if any) is buffered for the next read or delivery
            self.pause()
            return
        self.body.append(body)
        self.buffered += len(body)
        if self.buffered > HIGH_WATER:
            self.pause()

    def on_message_complete(self) -> None:
        self.complete = True

    def pause(self) -> None:
        if not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()

    def _fail(self, exc: OSError) -> None:
        self.failure = exc
        if self.transport is not None:
            self.transport.close()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)


class Headers(dict[str, str]):
    """Response headers by lower-cased name, looked up in any case (HTTP header names are case-insensitive)."""

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return super().get(name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(name.lower())


@dataclass
class UpstreamResponse:
    """A response being received. `read()` until it returns b""; then, or on failure, `release()` (idempotent)."""

    conn: _Connection
    pool: StreamPool
    key: tuple[str, str, int]
    timeout_s: float
    headers: Headers = field(default_factory=lambda: Headers())
    _timer: asyncio.TimerHandle | None = None
    _released: bool = False

    @property
    def status(self) -> int:
        return self.conn.status

    async def read(self) -> bytes:
        """The body bytes received since the last read (b"" once the body is complete); raises on failure."""
        conn = self.conn
        while not conn.body:
            if conn.complete:
                return b""
            if conn.failure is not None:
                raise conn.failure
            conn.resume()  # paused by a sink that asked for a pause
            await self._wait()
        return self._buffered()

    async def deliver(self, on_body: BodySink) -> bool:
        """Hand the body to `on_body` as it arrives, from the connection's own `data_received` (bytes buffered
        before come first), until `on_body` returns False (then True: the rest waits, reading paused, for the next
        `deliver` or `read`) or the body is complete (False). Raises on failure, and whatever `on_body` raised."""
        conn = self.conn
        if conn.body and not on_body(self._buffered()):
            return True
        conn.sink = on_body
        try:
            while conn.sink is on_body and not conn.complete:
                if conn.failure is not None:
                    raise conn.failure
                conn.resume()
                await self._wait()
        finally:
            conn.sink = None
        if conn.sink_error is not None:
            exc, conn.sink_error = conn.sink_error, None
            raise exc
        return bool(conn.body) or not conn.complete

    def _buffered(self) -> bytes:
        conn = self.conn
        data = conn.body[0] if len(conn.body) == 1 else b"".join(conn.body)
        conn.body.clear()
        conn.buffered = 0
        conn.resume()
        return data

    async def read_all(self) -> bytes:
        chunks = []
        while chunk := await self.read():
            chunks.append(chunk)
        return b"".join(chunks)

    def _wait(self) -> asyncio.Future[None]:
        """What resolves when the connection has news, or `timeout_s` after its last data (then with a failure).
        A future, not a coroutine: awaited once per token."""
        conn = self.conn
        waiter = conn.waiter = conn.loop.create_future()
        if self._timer is None:
            self._timer = conn.loop.call_at(conn.last_data + self.timeout_s, self._check_silence)
        return waiter

    def _check_silence(self) -> None:
        conn = self.conn
        self._timer = None
        if conn.waiter is None or conn.waiter.done() or conn.paused:
            return  # nobody waits for the upstream (the next wait re-arms the timer)
        due = conn.last_data + self.timeout_s
        if conn.loop.time() < due:
            self._timer = conn.loop.call_at(due, self._check_silence)
            return
        if conn.failure is None:
            conn.failure = TimeoutError(f"no data from the upstream for {self.timeout_s:g}s")
            if conn.transport is not None:
                conn.transport.close()
        conn._wake()

    def release(self) -> None:
        """A complete response leaves its connection to the pool (when the server keeps it alive); anything else
        closes it, which is also how a stream abandoned midway tells the upstream to stop."""
        if self._released:
            return
        self._released = True
        if self._timer is not None:
            self._timer.cancel()
        conn = self.conn
        if conn.complete and not conn.closed and conn.failure is None and conn.keep_alive:
            conn.resume()  # a consumer may have paused it: an idle connection reads, to notice the server leave
            self.pool.put(self.key, conn)
        elif conn.transport is not None:
            conn.transport.close()


class StreamPool:
    """Kept-alive connections per (scheme, host, port), unbounded: every stream holds one of its endpoint's
    `max_concurrency` slots, which bound the connections (service/pipeline/attempts.py)."""

    def __init__(self, keepalive_s: float, ssl_context: ssl.SSLContext | None = None) -> None:
        self._keepalive_s = keepalive_s
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        # None: the system's trust store (ssl.create_default_context(), made on the first https connection)
        self._ssl: ssl.SSLContext | None = ssl_context
        self._ssl_loading: asyncio.Future[ssl.SSLContext] | None = None

    async def open(self, url: str, headers: dict[str, str], body: bytes, timeout_s: float) -> UpstreamResponse:
        """POST `body` with `headers` (Host included) and wait for the response head."""
        parts = urlsplit(url)
        scheme, host = parts.scheme, parts.hostname or ""
        key = (scheme, host, parts.port or (443 if scheme == "https" else 80))
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        request = _request_head(target, headers, len(body)) + body
        conn = self._idle_conn(key)
        if conn is not None:
            try:
                return await self._exchange(conn, key, request, timeout_s)
            except OSError:
                if conn.got_bytes:
                    raise  # the server answered something: not a stale keep-alive connection
        conn = await self._connect(key, timeout_s)
        return await self._exchange(conn, key, request, timeout_s)

    def put(self, key: tuple[str, str, int], conn: _Connection) -> None:
        conn.idle_since = conn.loop.time()
        self._idle.setdefault(key, []).append(conn)

    def close(self) -> None:
        for conns in self._idle.values():
            for conn in conns:
                if conn.transport is not None:
                    conn.transport.close()
        self._idle.clear()

    def _idle_conn(self, key: tuple[str, str, int]) -> _Connection | None:
        conns = self._idle.get(key)
        while conns:
            conn = conns.pop()
            if not conn.closed and conn.loop.time() - conn.idle_since < self._keepalive_s:
                return conn
            if conn.transport is not None:
                conn.transport.close()
        return None

    async def _connect(self, key: tuple[str, str, int], timeout_s: float) -> _Connection:
        scheme, host, port = key
        context: ssl.SSLContext | None = None
        if scheme == "https":
            context = self._ssl or await self._trust()
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout_s):
            _, conn = await loop.create_connection(lambda: _Connection(loop), host, port, ssl=context,
                                                   server_hostname=host if context else None)
        return conn

    async def _trust(self) -> ssl.SSLContext:
        """The system's trust store, loaded once: it takes tens of milliseconds, so not on the event loop, and the
        first connections of a burst wait for the one load instead of each starting their own."""
        if self._ssl_loading is None:
            self._ssl_loading = asyncio.ensure_future(asyncio.to_thread(ssl.create_default_context))
        self._ssl = await asyncio.shield(self._ssl_loading)  # a waiter that gives up does not cancel the load
        return self._ssl

    async def _exchange(self, conn: _Connection, key: tuple[str, str, int], request: bytes,
                        timeout_s: float) -> UpstreamResponse:
        conn._new_response()
        assert conn.transport is not None  # connected
        conn.transport.write(request)
        response = UpstreamResponse(conn, self, key, timeout_s)
        try:
            while not conn.head_done:
                if conn.failure is not None:
                    raise conn.failure
                await response._wait()
        except BaseException:
            response.release()
            raise
        response.headers = Headers((k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in conn.raw_headers)
        return response


def _request_head(target: str, headers: dict[str, str], length: int) -> bytes:
    lines = [f"POST {target} HTTP/1.1"]
    for name, value in headers.items():
        if any(c in value for c in "\r\n\0") or any(c in name for c in "\r\n\0: "):
            raise ValueError(f"header {name!r} has a character HTTP does not allow in it")
        lines.append(f"{name}: {value}")
    lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
