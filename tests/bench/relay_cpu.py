"""``python -m tests.bench.relay_cpu [--streams S] [--rounds R]``: the CPU the relay's Python costs per token, in
process, with no sockets.

The app (the demo config) serves S streamed chat requests at once from a fake transport whose response streams
push 256 TGI token frames (event-stream encoded, decoded by the transport's own `PayloadPartDecoder.push`, as
`ResponseStream.deliver` does) into the pipeline, token by token and stream by stream in turn, as the paced
benchmark's upstream does; the body goes to a fake socket (the `SocketBody` extension). It prints process CPU
per relayed token, stream opening included. Compare it with the paced benchmark's gateway-minus-floor figure
(tests/bench/PROFILE.md): the difference is what the running server adds around the same Python.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from typing import Any

import orjson

from service.api.stream_response import BODY_SOCKET
from service.app import create_app
from service.config.demo import demo_config_data
from service.config.model import parse_config
from service.simulator.eventstream import payload_part
from service.transport.base import Payload, RawResponse, Target
from service.transport.eventstream import PayloadPartDecoder

TOKENS = 256


def _tgi(index: int) -> bytes:
    final = index == TOKENS
    event = {"index": index, "token": {"id": 1000 + index, "text": f" w{index}", "logprob": -0.25, "special": False},
             "generated_text": "x" if final else None,
             "details": {"finish_reason": "length", "generated_tokens": TOKENS, "seed": None, "input_length": 5}
             if final else None}
    return b"data:" + orjson.dumps(event) + b"\n\n"


FRAMES = [payload_part(_tgi(k + 1)) for k in range(TOKENS)]


class _Parts:
    """A pushed part stream whose reads the driver makes (`sinks`): one frame per read."""

    def __init__(self, sinks: list[Callable[[int], None]]) -> None:
        self._sinks = sinks
        self._decoder = PayloadPartDecoder("relay-cpu")

    def __aiter__(self) -> _Parts:
        return self

    async def __anext__(self) -> bytes:
        return self._decoder.joined(FRAMES[0])

    async def deliver(self, on_parts: Callable[[bytes], bool]) -> bool:
        done = asyncio.get_running_loop().create_future()
        push = self._decoder.push

        def read(k: int) -> None:
            push(on_parts, FRAMES[k])  # as the transport's body callback calls it (ResponseStream.deliver)
            if k == TOKENS - 1:
                done.set_result(None)

        self._sinks.append(read)
        await done
        return False

    async def aclose(self) -> None:
        return None


class _Transport:
    def __init__(self) -> None:
        self.sinks: list[Callable[[int], None]] = []

    async def invoke(self, target: Target, payload: Payload) -> RawResponse:
        raise AssertionError("streams only")

    def invoke_stream(self, target: Target, payload: Payload) -> _Parts:
        return _Parts(self.sinks)

    async def aclose(self) -> None:
        return None


class _Socket:
    def __init__(self) -> None:
        self.written = 0

    def ready(self) -> bool:
        return True

    def write(self, data: bytes) -> bool:
        self.written += len(data)
        return True

    async def drain(self) -> None:
        return None


async def _request(app: Any, body: bytes) -> int:
    socket = _Socket()
    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/v1/chat/completions",
             "raw_path": b"/v1/chat/completions", "query_string": b"", "root_path": "", "state": {},
             "headers": [(b"host", b"localhost"), (b"content-type", b"application/json"),
                         (b"content-length", b"%d" % len(body))],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 8080), "extensions": {BODY_SOCKET: socket}}
    ended = asyncio.Event()
    started: list[int] = []

    async def receive() -> dict[str, Any]:
        if not started:
            started.append(1)
            return {"type": "http.request", "body": body, "more_body": False}
        await ended.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and not message.get("more_body"):
            ended.set()

    await app(scope, receive, send)
    return socket.written


async def _round(app: Any, transport: _Transport, streams: int, body: bytes) -> None:
    transport.sinks.clear()
    requests = [asyncio.ensure_future(_request(app, body)) for _ in range(streams)]
    for _ in range(100_000):  # loop turns until every stream is open and delivering (bounded: a refused one fails)
        if len(transport.sinks) == streams:
            break
        if any(r.done() for r in requests):
            await asyncio.gather(*requests)  # a request that ended before delivering: its error, or the check below
            raise RuntimeError("a stream ended before its upstream delivered")
        await asyncio.sleep(0)
    else:
        raise RuntimeError(f"only {len(transport.sinks)} of {streams} streams opened")
    for k in range(1, TOKENS):
        for read in transport.sinks:
            read(k)
    written = await asyncio.gather(*requests)
    if min(written) < TOKENS * 100:
        raise RuntimeError(f"a stream wrote only {min(written)} bytes")


async def measure(streams: int, rounds: int) -> float:
    """Process CPU µs per relayed token over `rounds` rounds of `streams` interleaved streams (after one warm-up)."""
    data = demo_config_data("http://relay-cpu.invalid")
    for endpoint in data["endpoints"].values():
        endpoint["max_concurrency"] = max(streams, 1)
    transport = _Transport()
    app = create_app(parse_config(data, source="relay_cpu"), transport=transport)
    body = orjson.dumps({"model": "llama3-8b", "messages": [{"role": "user", "content": "Hello there"}],
                         "max_tokens": TOKENS, "stream": True})
    async with app.router.lifespan_context(app):
        await _round(app, transport, streams, body)
        start = time.process_time()
        for _ in range(rounds):
            await _round(app, transport, streams, body)
        return (time.process_time() - start) / (rounds * streams * (TOKENS - 1)) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.relay_cpu", description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=32, help="streams at once (default 32)")
    parser.add_argument("--rounds", type=int, default=10, help="measured rounds (default 10)")
    args = parser.parse_args()
    print(f"relay in process: {asyncio.run(measure(args.streams, args.rounds)):.2f} µs per token "
          f"({args.streams} interleaved streams x {args.rounds} rounds, {TOKENS} tokens each)")


if __name__ == "__main__":
    main()
