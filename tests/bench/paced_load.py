"""The paced-streams load generator: N clients, each streaming back to back, in a process of its own.

``python -m tests.bench.paced_load`` reads one JSON spec on stdin. Client i of the run starts at
``start_at + ramp_s * i / clients`` (``time.monotonic``, shared by every process of the run), so stream starts
are spread evenly over one ideal stream and the run settles into a steady state of ``clients`` concurrent
streams. The measuring window opens when the ramp ends and closes ``window_s`` later (or when every client
has run ``rounds`` streams, when given). At the close the process prints ``closed`` (the orchestrator reads
the processes' CPU time then), cancels the streams in flight (counted as cut, not failed) and prints one JSON
summary; the time to first token and the inter-token gaps it measured go to ``samples`` + ``.ttft`` /
``.gaps`` as raw float64, so that several processes' samples can be merged into exact percentiles.

What counts, all inside the window: a token when it is read off the socket; a gap as the time since the
stream's previous token (tokens read together give gaps of 0: that is what the client saw); a time to
first token for each stream whose request was sent inside the window. A stream completes when its final
event (TGI's last event / OpenAI's ``[DONE]``) arrives with every token and the text the upstream sent;
anything else (HTTP error, error event, bad frame, short or altered text) fails it.

Kinds: ``eventstream`` reads SageMaker's response stream directly (AWS event-stream frames decoded and
CRC-checked by botocore through service.transport.eventstream, one TGI ``data:`` line per token);
``sse`` reads the gateway's OpenAI chat completion chunks (one per token).

``connect`` (optional, ``http://host:port``): where the connections go when that is not ``url``'s address. The
"floor" path sends the direct load to a byte-forwarding proxy (tests/bench/floor_proxy.py) this way: the request
line, the Host header and the SigV4 signature stay those of ``url``, the upstream's.
"""

from __future__ import annotations

import array
import asyncio
import json
import resource
import sys
import time
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urlsplit

import httptools
import orjson

from service.errors import UpstreamStreamError
from service.transport.eventstream import PayloadPartDecoder
from tests.bench.load import LOOPBACK, SigV4Headers, percentiles
from tests.bench.paced_upstream import runner

MAX_ERRORS_KEPT = 3
LAG_TICK_S = 0.010  # the event-loop lag probe: how late a 10 ms sleep wakes up shows a saturated client


class StreamFailed(Exception):
    """The stream ended without its final event, with the wrong tokens, or with an error event."""


@dataclass
class Tally:
    """What one process measured; `ttft_s` and `gaps_s` are written raw, the rest goes into the summary."""

    started: int = 0
    completed: int = 0
    failed: int = 0
    cut: int = 0
    cut_before_first_token: int = 0
    tokens: int = 0  # tokens read inside the window
    ttft_s: array.array[float] = field(default_factory=lambda: array.array("d"))
    gaps_s: array.array[float] = field(default_factory=lambda: array.array("d"))
    lags_s: list[float] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)

    def error(self, text: str) -> None:
        self.failed += 1
        if len(self.error_samples) < MAX_ERRORS_KEPT:
            self.error_samples.append(text[:300])


@dataclass
class Window:
    opens: float  # perf_counter time; the same clock as time.monotonic on Linux, converted anyway
    closes: float

    def holds(self, t: float) -> bool:
        return self.opens <= t < self.closes


class Reader:
    """Per stream: counts tokens and gaps as they are read; `feed` returns True once the final event came."""

    def __init__(self, tally: Tally, window: Window, sent: float, expected: str) -> None:
        self.tally, self.window, self.sent, self.expected = tally, window, sent, expected
        self.last: float | None = None
        self.texts: list[str] = []

    def token(self, now: float, text: str) -> None:
        self.texts.append(text)
        if self.window.holds(now):
            self.tally.tokens += 1
            if self.last is None:
                if self.sent >= self.window.opens:
                    self.tally.ttft_s.append(now - self.sent)
            else:
                self.tally.gaps_s.append(now - self.last)
        self.last = now

    def finish(self) -> None:
        text = "".join(self.texts)
        if text != self.expected:
            raise StreamFailed(f"{len(self.texts)} tokens, text differs from the upstream's at character "
                               f"{_first_difference(text, self.expected)}")


def _first_difference(a: str, b: str) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


class EventStreamBody:
    """SageMaker's response stream read directly: frames decoded and CRC-checked (botocore, through the gateway's
    own PayloadPartDecoder, which keeps header parses), each PayloadPart's TGI ``data:`` line parsed."""

    def __init__(self, reader: Reader) -> None:
        self.reader, self.decoder, self.final = reader, PayloadPartDecoder("paced-bench"), False

    def feed(self, data: bytes, now: float) -> None:
        for part in self.decoder.feed(data):
            for line in part.split(b"\n"):
                if not line.startswith(b"data:"):
                    continue
                event = orjson.loads(line[5:])
                if event.get("error") is not None:
                    raise StreamFailed(f"error event: {str(event['error'])[:200]}")
                token = event.get("token") or {}
                if token.get("text") and not token.get("special"):
                    self.reader.token(now, token["text"])
                self.final = self.final or event.get("generated_text") is not None

    def end(self) -> None:
        self.decoder.close()
        if not self.final:
            raise StreamFailed("the stream ended without TGI's final event")


class SseBody:
    """The gateway's OpenAI chat completion chunks: one ``data:`` event per token, then ``data: [DONE]``."""

    def __init__(self, reader: Reader) -> None:
        self.reader, self.pending, self.done = reader, b"", False

    def feed(self, data: bytes, now: float) -> None:
        *events, self.pending = (self.pending + data).split(b"\n\n")
        for event in events:
            if event == b"data: [DONE]":
                self.done = True
            elif event.startswith(b"data: "):
                chunk = orjson.loads(event[6:])
                if "error" in chunk:
                    raise StreamFailed(f"error event: {str(chunk['error'])[:200]}")
                choices = chunk.get("choices") or [{}]
                content = choices[0].get("delta", {}).get("content")
                if content:
                    self.reader.token(now, content)

    def end(self) -> None:
        if not self.done:
            raise StreamFailed("the stream ended without data: [DONE]")


BODIES: dict[str, type[EventStreamBody] | type[SseBody]] = {"eventstream": EventStreamBody, "sse": SseBody}


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection carrying one stream at a time.

    Not aiohttp: its per-read path (StreamReader, a task wake-up per chunk, the iterator) cost ~33 µs per token
    here, which at 500 streams x 50 tokens/s is more than the core the client has. httptools (uvicorn's C parser)
    undoes the chunked encoding and hands each body piece to the stream's decoder inside data_received."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.body: EventStreamBody | SseBody | None = None
        self.done: asyncio.Future[None] | None = None
        self.status, self.error_body, self.now = 0, b"", 0.0

    def request(self, data: bytes, body: EventStreamBody | SseBody) -> asyncio.Future[None]:
        assert self.transport is not None
        self.body, self.status, self.error_body = body, 0, b""
        self.done = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self.done

    @property
    def reusable(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's

    def data_received(self, data: bytes) -> None:
        self.now = time.perf_counter()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:  # what our callbacks raised (a bad stream), wrapped
            self._fail(exc.__context__ or exc)
        except httptools.HttpParserError as exc:
            self._fail(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._fail(ConnectionError(f"connection closed mid-response ({exc})"))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _fail(self, exc: BaseException) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_exception(exc)
        self.close()

    # httptools callbacks
    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()

    def on_body(self, data: bytes) -> None:
        if self.status != 200:
            self.error_body = (self.error_body + data)[:300]
        elif self.body is not None:
            self.body.feed(data, self.now)

    def on_message_complete(self) -> None:
        if self.status != 200:
            raise StreamFailed(f"HTTP {self.status}: {self.error_body[:200]!r}")
        if self.body is not None:
            self.body.end()
        if not self.parser.should_keep_alive():
            self.close()
        if self.done is not None and not self.done.done():
            self.done.set_result(None)


class Client:
    """The streams of one process: tally, window and request shared; one connection per client."""

    def __init__(self, spec: dict[str, Any], window: Window) -> None:
        self.spec, self.window, self.tally = spec, window, Tally()
        url, connect = urlsplit(spec["url"]), urlsplit(spec.get("connect") or spec["url"])
        self.host, self.port, self.path = connect.hostname or "", connect.port or 80, url.path
        self.body: bytes = spec["body"].encode()
        self.kind = BODIES[spec["kind"]]
        sign = spec.get("sign")
        self.signer = SigV4Headers(spec["url"], self.body, sign["headers"], sign["access_key"], sign["secret"],
                                   sign["region"]) if sign else None
        self.headers: dict[str, str] = {"Host": url.netloc, **spec.get("headers", {})}
        self.timeout_s = float(spec.get("timeout_s", 120))

    def request_bytes(self) -> bytes:
        headers = self.signer.get() if self.signer else self.headers  # the signer sets Host itself
        lines = [f"POST {self.path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items()),
                 f"Content-Length: {len(self.body)}", "", ""]
        return "\r\n".join(lines).encode("latin-1") + self.body

    async def run(self, start: float) -> None:
        """One client: wait for its start, then stream back to back until the window closes or rounds are done."""
        await asyncio.sleep(max(0.0, start - time.perf_counter()))
        conn: Connection | None = None
        try:
            for _ in range(self.spec.get("rounds") or 10**9):
                if time.perf_counter() >= self.window.closes:
                    return
                if conn is None or not conn.reusable:
                    _, conn = await asyncio.get_running_loop().create_connection(Connection, self.host, self.port)
                await self.stream(conn)
        finally:
            if conn is not None:
                conn.close()

    async def stream(self, conn: Connection) -> None:
        data = self.request_bytes()
        sent = time.perf_counter()
        reader = Reader(self.tally, self.window, sent, self.spec["expected_text"])
        self.tally.started += 1
        try:
            async with asyncio.timeout(self.timeout_s):
                await conn.request(data, self.kind(reader))
            reader.finish()
        except asyncio.CancelledError:
            self.tally.cut += 1
            self.tally.cut_before_first_token += reader.last is None
            raise
        except (OSError, TimeoutError, UpstreamStreamError, StreamFailed, ValueError,
                httptools.HttpParserError) as exc:
            conn.close()
            self.tally.error(f"{type(exc).__name__}: {exc}")
            return
        self.tally.completed += 1


async def _probe_lag(tally: Tally) -> None:
    while True:
        before = time.perf_counter()
        await asyncio.sleep(LAG_TICK_S)
        tally.lags_s.append(time.perf_counter() - before - LAG_TICK_S)


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    for address in (spec["url"], spec.get("connect") or spec["url"]):
        if (host := urlsplit(address).hostname) not in LOOPBACK:
            raise ValueError(f"the load generator only targets loopback addresses, not {host!r}")
    # time.monotonic() is the clock shared with the orchestrator; perf_counter() the one used per token.
    offset = time.perf_counter() - time.monotonic()
    late_s = max(0.0, time.monotonic() - spec["start_at"])  # started after the run's start: a ramp squeezed
    start = spec["start_at"] + offset
    opens = start + spec["ramp_s"]
    window = Window(opens, opens + spec["window_s"])
    first, clients, total = spec["first_client"], spec["clients"], spec["total_clients"]
    client = Client(spec, window)
    tasks = [asyncio.ensure_future(client.run(start + spec["ramp_s"] * (first + i) / total)) for i in range(clients)]
    lag = asyncio.ensure_future(_probe_lag(client.tally))
    await asyncio.sleep(max(0.0, opens - time.perf_counter()))
    cpu_opened = _cpu_s()
    await asyncio.wait(tasks, timeout=max(0.0, window.closes - time.perf_counter()))
    closed = time.perf_counter()
    window.closes = min(window.closes, closed)  # the rounds ran out first: the window ends with them
    cpu_window = _cpu_s() - cpu_opened
    print("closed", flush=True)
    for task in (*tasks, lag):
        task.cancel()
    await asyncio.gather(*tasks, lag, return_exceptions=True)
    return {**_summary(client.tally, spec), "window_s": closed - opens, "cpu_s": cpu_window, "late_s": late_s}


def _summary(tally: Tally, spec: dict[str, Any]) -> dict[str, Any]:
    with open(spec["samples"] + ".ttft", "wb") as out:
        tally.ttft_s.tofile(out)
    with open(spec["samples"] + ".gaps", "wb") as out:
        tally.gaps_s.tofile(out)
    lag = percentiles(tally.lags_s)
    return {"started": tally.started, "completed": tally.completed, "failed": tally.failed, "cut": tally.cut,
            "cut_before_first_token": tally.cut_before_first_token, "tokens": tally.tokens,
            "lag_p99_s": lag["p99"], "error_samples": tally.error_samples}


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    spec = json.load(sys.stdin)
    print(json.dumps(runner(run(spec))), flush=True)


if __name__ == "__main__":
    main()
