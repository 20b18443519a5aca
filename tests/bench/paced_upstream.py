"""``python -m tests.bench.paced_upstream --port P``: a paced SageMaker TGI endpoint for the paced-streams benchmark.

It answers InvokeEndpointWithResponseStream (``POST /endpoints/{name}/invocations-response-stream``) as a TGI
container behind SageMaker does: HTTP/1.1 chunked transfer encoding (wire-formats.md 1.4) of AWS event-stream
frames (1.6), one ``PayloadPart`` per generated token, each carrying one TGI ``data:`` event (2.5). The first
token comes ``--ttft-ms`` after the request, then one every ``--gap-ms``, on an absolute schedule (a late tick
does not push later tokens back), ``parameters.max_new_tokens`` tokens in all, finish reason ``length``.
Every request's SigV4 signature is checked with botocore against the bench's static credentials: a badly
signed direct request gets the 403 AWS would give.

Why not the simulator (service/simulator/): at 500 streams it must send 25,000 frames a second on two cores it
shares with the gateway and the load generator, and the baseline subtracts whatever it costs. So every frame
is encoded once at start-up (with the simulator's encoder: zlib CRCs, not hand-rolled) and a token costs one
timer and one socket write; requests are parsed by httptools (uvicorn's parser), not by hand.

``GET /_paced/stats`` reports the streams started, completed, dropped by their client and still active;
``GET /_paced/last`` the last stream request as received (path, headers, base64 body), which the
benchmark re-sends directly. ``GET /ping`` answers 200.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import re
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass
from typing import Any, TypeVar, cast

import httptools
import orjson

from service.config.demo import SIMULATOR_CREDENTIALS
from service.simulator.eventstream import payload_part
from tests import sigv4

STREAM_PATH = re.compile(r"^/endpoints/(?P<name>[a-zA-Z0-9](?:-*[a-zA-Z0-9]){0,62})/invocations-response-stream$")
MAX_BODY = 6 * 1024 * 1024  # BodyBlob max (wire-formats.md 1.1)
MAX_HEADERS = 100
MAX_TOKENS = 65536  # the back-pressure test (tests/e2e/test_backpressure.py) streams more than socket buffers hold
# Token texts, cycled: JSON escapes (quote, backslash, newline) and multi-byte UTF-8 included, so a relay that
# rebuilds chunks must escape and encode them right; the load generator compares every stream's text.
WORDS = (" The", " gateway", " relays", " one", " token", " per", " frame", ",", " \"quoted\"", " back\\slash",
         " café", " 東京", " 🙂", "\n", " and", " then", " the", " next", ".", " tab\there")
EVENTSTREAM = "application/vnd.amazon.eventstream"
CLOCK_RESOLUTION_S = 0.001  # uvloop's loop clock
T = TypeVar("T")


def token_texts(n: int) -> list[str]:
    """The text of tokens 1..n of every stream (the load generator checks streams against their join)."""
    return [WORDS[k % len(WORDS)] for k in range(n)]


@dataclass(frozen=True)
class Pacing:
    ttft_s: float
    gap_s: float

    def due(self, t0: float, k: int) -> float:
        """When token k (0-based) of a stream whose request completed at t0 is generated."""
        return t0 + self.ttft_s + k * self.gap_s


@dataclass
class Stats:
    requests: int = 0
    rejected: int = 0
    streams_started: int = 0
    streams_completed: int = 0
    streams_dropped: int = 0  # the client went away mid-stream
    active: int = 0


def _chunk(data: bytes) -> bytes:
    """One HTTP/1.1 chunk (RFC 9112 7.1) holding one event-stream frame."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def _tgi_event(index: int, text: str, final: tuple[str, int, int] | None) -> bytes:
    """A TGI stream event (wire-formats.md 2.5); `final` = (generated_text, generated_tokens, input_length)."""
    generated, details = None, None
    if final is not None:
        generated = final[0]
        details = {"finish_reason": "length", "generated_tokens": final[1], "seed": None, "input_length": final[2]}
    event = {"index": index, "token": {"id": 1000 + index % len(WORDS), "text": text, "logprob": -0.25,
                                       "special": False}, "generated_text": generated, "details": details}
    return b"data:" + orjson.dumps(event) + b"\n\n"


class Frames:
    """Every frame a stream sends, encoded once: token k as an HTTP chunk; the last token's frame (it carries
    generated_text and details) per (length, prompt length), kept for a few distinct values."""

    def __init__(self, max_tokens: int) -> None:
        self.texts = token_texts(max_tokens)
        self.tokens = [_chunk(payload_part(_tgi_event(k + 1, text, None))) for k, text in enumerate(self.texts)]
        self._last: dict[tuple[int, int], bytes] = {}

    def last(self, n: int, input_length: int) -> bytes:
        key = (n, input_length)
        frame = self._last.get(key)
        if frame is None:
            final = ("".join(self.texts[:n]), n, input_length)
            frame = _chunk(payload_part(_tgi_event(n, self.texts[n - 1], final))) + b"0\r\n\r\n"
            if len(self._last) < 64:
                self._last[key] = frame
        return frame


def response_head(status: int, reason: str, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    return "\r\n".join(lines).encode("latin-1")


def plain_response(status: int, reason: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    return response_head(status, reason, {"Content-Type": "application/json", "Content-Length": str(len(body)),
                                          "x-amzn-RequestId": str(uuid.uuid4()), **(headers or {})}) + body


def aws_error(status: int, reason: str, error_type: str, message: str) -> bytes:
    """A SageMaker runtime error in its rest-json shape (wire-formats.md 1.5)."""
    return plain_response(status, reason, orjson.dumps({"message": message}), {"x-amzn-ErrorType": error_type})


class Stream:
    """One paced response: writes the frames that are due at each tick, then the end of the chunked body."""

    def __init__(self, write: Callable[[bytes], None], frames: Frames, n: int, input_length: int,
                 pacing: Pacing, done: Callable[[], None]) -> None:
        self._write, self._frames, self._n, self._input_length = write, frames, n, input_length
        self._pacing, self._done = pacing, done
        self._loop = asyncio.get_running_loop()
        self._t0 = self._loop.time()
        self._k = 0
        self._timer: asyncio.TimerHandle | None = self._loop.call_at(pacing.due(self._t0, 0), self._tick)

    def _tick(self) -> None:
        # uvloop's clock and timers have millisecond resolution: a timer fires up to half a millisecond before its
        # instant, and re-arming it for that instant would spin (thousands of wake-ups a second per stream, CPU
        # taken from the gateway on the same cores) until the clock ticks. A token due within the clock's
        # resolution is sent now.
        now, out = self._loop.time() + CLOCK_RESOLUTION_S, []
        while self._k < self._n and self._pacing.due(self._t0, self._k) <= now:
            last = self._k == self._n - 1
            out.append(self._frames.last(self._n, self._input_length) if last else self._frames.tokens[self._k])
            self._k += 1
        if out:
            self._write(out[0] if len(out) == 1 else b"".join(out))
        if self._k < self._n:
            self._timer = self._loop.call_at(self._pacing.due(self._t0, self._k), self._tick)
        else:
            self._timer = None
            self._done()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class Server:
    """What every connection shares: the pacing, the encoded frames, the counters, the last stream request."""

    def __init__(self, pacing: Pacing, max_tokens: int) -> None:
        self.pacing, self.frames, self.stats = pacing, Frames(max_tokens), Stats()
        self.max_tokens = max_tokens
        self.last: dict[str, Any] = {}

    def answer(self, conn: Connection, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        self.stats.requests += 1
        if method == "GET" and path in self._gets:
            conn.send(plain_response(200, "OK", orjson.dumps(self._gets[path](self))))
            return
        match = STREAM_PATH.match(path)
        if method != "POST" or match is None:
            self.stats.rejected += 1
            conn.send(aws_error(404, "Not Found", "UnknownOperationException", f"no such operation: {method} "
                                f"{path[:100]}"))
            return
        self.last = {"path": path, "headers": headers, "body_b64": base64.b64encode(body).decode()}
        trouble = sigv4.problem("POST", path, headers, body, SIMULATOR_CREDENTIALS["access_key_id"],
                                SIMULATOR_CREDENTIALS["secret_access_key"])
        if trouble is not None:
            self.stats.rejected += 1
            conn.send(aws_error(403, "Forbidden", "InvalidSignatureException", trouble))
            return
        self._stream(conn, match["name"], body)

    def _stream(self, conn: Connection, name: str, body: bytes) -> None:
        request = _tgi_request(body, self.max_tokens)
        if isinstance(request, str):
            self.stats.rejected += 1
            conn.send(aws_error(400, "Bad Request", "ValidationError", f"endpoint {name}: {request}"))
            return
        n, input_length = request
        self.stats.streams_started += 1
        self.stats.active += 1
        conn.send(response_head(200, "OK", {
            "Content-Type": EVENTSTREAM, "X-Amzn-SageMaker-Content-Type": "text/event-stream",
            "x-Amzn-Invoked-Production-Variant": "AllTraffic", "x-amzn-RequestId": str(uuid.uuid4()),
            "Transfer-Encoding": "chunked"}))
        conn.stream = Stream(conn.send, self.frames, n, input_length, self.pacing, conn.stream_done)

    def stream_ended(self, *, completed: bool) -> None:
        self.stats.active -= 1
        if completed:
            self.stats.streams_completed += 1
        else:
            self.stats.streams_dropped += 1

    _gets: dict[str, Callable[[Server], Any]] = {
        "/ping": lambda s: {"status": "ok"},
        "/_paced/stats": lambda s: asdict(s.stats),
        "/_paced/last": lambda s: s.last,
    }


def _tgi_request(body: bytes, max_tokens: int) -> tuple[int, int] | str:
    """(tokens to generate, prompt length stand-in) of a streaming TGI request, or what is wrong with it."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "the body is not JSON"
    if not isinstance(data, dict) or not isinstance(data.get("inputs"), str) or data.get("stream") is not True:
        return 'expected a TGI streaming request {"inputs": str, "parameters": {...}, "stream": true}'
    parameters = data.get("parameters") or {}
    n = parameters.get("max_new_tokens") if isinstance(parameters, dict) else None
    if not isinstance(n, int) or not 1 <= n <= max_tokens:
        return f"parameters.max_new_tokens must be an integer from 1 to {max_tokens}, got {str(n)[:20]}"
    # No tokenizer here: about four bytes per token, as the gateway's own estimate assumes for English text.
    return n, max(1, len(data["inputs"].encode()) // 4)


class Connection(asyncio.Protocol):
    """One client connection: httptools parses requests (keep-alive: one after another), the server answers."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.stream: Stream | None = None
        self._url, self._headers, self._body, self._size = b"", {}, [], 0  # type: ignore[var-annotated]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, ValueError) as exc:
            self.send(aws_error(400, "Bad Request", "ValidationError", f"bad HTTP request: {str(exc)[:100]}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.stream is not None:
            self.stream.cancel()
            self.stream = None
            self.server.stream_ended(completed=False)
        self.transport = None

    def send(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def stream_done(self) -> None:
        self.stream = None
        self.server.stream_ended(completed=True)

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._url, self._headers, self._body, self._size = b"", {}, [], 0

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(self._headers) >= MAX_HEADERS:
            raise ValueError(f"more than {MAX_HEADERS} headers")
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > MAX_BODY:
            raise ValueError(f"body larger than {MAX_BODY} bytes")
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self.stream is not None:  # a request pipelined behind an unfinished stream: not something clients do
            self.close()
            return
        path = httptools.parse_url(self._url).path.decode("latin-1")
        self.server.answer(self, self.parser.get_method().decode("latin-1"), path, self._headers,
                           b"".join(self._body))


async def serve(host: str, port: int, pacing: Pacing, max_tokens: int) -> None:
    server = Server(pacing, max_tokens)
    loop = asyncio.get_running_loop()
    listener = await loop.create_server(lambda: Connection(server), host, port, backlog=4096)
    async with listener:
        await listener.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.paced_upstream", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ttft-ms", type=float, default=50.0, help="time to first token (default 50)")
    parser.add_argument("--gap-ms", type=float, default=20.0, help="time between tokens (default 20)")
    parser.add_argument("--max-tokens", type=int, default=256, help="longest stream a request may ask for")
    args = parser.parse_args(argv)
    if not 1 <= args.max_tokens <= MAX_TOKENS or args.ttft_ms < 0 or args.gap_ms < 0:
        parser.error(f"--max-tokens must be 1..{MAX_TOKENS}; --ttft-ms and --gap-ms must be >= 0")
    pacing = Pacing(args.ttft_ms / 1000, args.gap_ms / 1000)
    runner(serve(args.host, args.port, pacing, args.max_tokens))


def runner(main: Coroutine[Any, Any, T]) -> T:
    """uvloop's run when installed (with uvicorn[standard]); plain asyncio works, at a higher cost per event."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


if __name__ == "__main__":
    main()
