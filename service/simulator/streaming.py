"""The response-stream API body: container output → PayloadPart frames, paced by the latency model.

Frames produced without a delay between them go out in one write, so in zero-latency mode a whole stream
is a single send (cheap for benchmarks) while the frame boundaries inside it stay as configured.
Splitting: ``line`` puts one logical container line (an SSE event, a JSON line) in each PayloadPart;
``random`` cuts the byte stream at PRNG-chosen positions, so parts split JSON and UTF-8 characters.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

from service.simulator import eventstream, sagemaker
from service.simulator.containers import Output
from service.simulator.faults import Decision
from service.simulator.latency import LatencyModel
from service.simulator.state import EndpointRuntime

MAX_RANDOM_PART = 24  # bytes; small so most parts cut something


class LineSplitter:
    def feed(self, data: bytes) -> list[bytes]:
        return [eventstream.payload_part(data)]

    def flush(self) -> list[bytes]:
        return []


class RandomSplitter:
    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._buffer = b""
        self._next = rng.randint(1, MAX_RANDOM_PART)

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        frames = []
        while len(self._buffer) >= self._next:
            part, self._buffer = self._buffer[: self._next], self._buffer[self._next :]
            frames.append(eventstream.payload_part(part))
            self._next = self._rng.randint(1, MAX_RANDOM_PART)
        return frames

    def flush(self) -> list[bytes]:
        frames = [eventstream.payload_part(self._buffer)] if self._buffer else []
        self._buffer = b""
        return frames


def _delays(output: Output, latency: LatencyModel, accelerator: str) -> list[float]:
    """Delay before each chunk: first token after TTFT, later tokens after a decode step, trailers at once."""
    if not latency.enabled:
        return [0.0] * len(output.chunks)
    if not output.streamed:
        return [latency.total(accelerator, output.prompt_tokens, output.tokens)]
    decode = latency.decode(accelerator)
    first = latency.ttft(accelerator, output.prompt_tokens)
    return [first if i == 0 else (decode if i < output.tokens else 0.0) for i in range(len(output.chunks))]


def _error_frames(output: Output, kind: str, splitter: LineSplitter | RandomSplitter) -> list[bytes]:
    if kind == "container" and output.error_line is not None:
        return [*splitter.feed(output.error_line("Simulated container failure during generation")),
                *splitter.flush()]
    frame_kind = "ModelStreamError" if kind == "container" else kind
    return [*splitter.flush(), eventstream.exception_frame(frame_kind, sagemaker.stream_exception_payload(frame_kind))]


async def frames(output: Output, runtime: EndpointRuntime, latency: LatencyModel, decision: Decision,
                 split_rng: random.Random | None) -> AsyncIterator[bytes]:
    """Hold a concurrency slot while "generating"; yield encoded frames, batched between delays."""
    splitter = RandomSplitter(split_rng) if split_rng is not None else LineSplitter()
    delays = _delays(output, latency, runtime.endpoint.accelerator)
    async with runtime:
        if decision.delay_s:
            await asyncio.sleep(decision.delay_s)
        pending: list[bytes] = []
        for i, chunk in enumerate(output.chunks):
            if delays[i]:
                if pending:
                    yield b"".join(pending)
                    pending = []
                await asyncio.sleep(delays[i])
            if decision.stream_error_after is not None and i >= decision.stream_error_after:
                pending += _error_frames(output, decision.stream_error_kind, splitter)
                break
            pending += splitter.feed(chunk)
        else:
            pending += splitter.flush()
        if pending:
            yield b"".join(pending)


class EventStreamResponse:
    """An ASGI response that streams frames and counts how the stream ended.

    When the stream is paced (sleeps), a watcher task listens for ``http.disconnect`` and cancels the
    producer at once, so a client that goes away frees its slot like a real container would.
    """

    def __init__(self, body: AsyncIterator[bytes], headers: dict[str, str], runtime: EndpointRuntime,
                 watch: bool) -> None:
        self._body = body
        self._headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        self._stats = runtime.stats
        self._watch = watch

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            if self._watch:
                await self._run_watched(receive, send)
            else:
                await self._send_all(send)
        except OSError:  # the server reports a gone client by failing the send
            self._stats.streams_disconnected += 1
        finally:
            await self._body.aclose()  # type: ignore[attr-defined]

    async def _send_all(self, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self._headers})
        async for data in self._body:
            await send({"type": "http.response.body", "body": data, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        self._stats.streams_completed += 1

    async def _run_watched(self, receive: Any, send: Any) -> None:
        producer = asyncio.ensure_future(self._send_all(send))
        watcher = asyncio.ensure_future(_wait_for_disconnect(receive))
        try:
            await asyncio.wait((producer, watcher), return_when=asyncio.FIRST_COMPLETED)
        finally:
            watcher.cancel()
            if not producer.done():
                producer.cancel()
                self._stats.streams_disconnected += 1
                await asyncio.wait((producer,))  # let the generator unwind and release its slot
        if not producer.cancelled():
            producer.result()  # re-raise what the producer raised (e.g. OSError)


async def _wait_for_disconnect(receive: Any) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
