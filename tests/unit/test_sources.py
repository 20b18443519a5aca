"""The decoded upstream stream (`pipeline.sources.Decoding`): every part through the adapter's decoder, in order,
the receiver's pause honoured, and the bytes the endpoint sent counted for cost however the stream ends."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from service import adapters
from service.adapters.base import streams
from service.canonical import StreamEnd, StreamEvent, TokenDelta
from service.pipeline.sources import Decoding


def _event(text: str, last: bool = False) -> bytes:
    obj = {"token": {"text": text, "special": False}, "generated_text": "done" if last else None,
           "details": {"finish_reason": "length", "generated_tokens": 3, "input_length": 2} if last else None}
    return b"data:" + orjson.dumps(obj) + b"\n\n"


@dataclass
class _Meter:
    bytes_out: int = 0


class _Pushed:
    """A pushed part stream whose network reads the test makes (`read`), as the transport's body callback does."""

    def __init__(self) -> None:
        self.on_parts: Callable[[bytes], bool] | None = None
        self.ended = asyncio.Event()
        self.answers: list[bool] = []

    def __aiter__(self) -> _Pushed:
        return self

    async def __anext__(self) -> bytes:
        raise StopAsyncIteration

    async def deliver(self, on_parts: Callable[[bytes], bool]) -> bool:
        self.on_parts = on_parts
        await self.ended.wait()
        return False

    def read(self, part: bytes) -> None:
        assert self.on_parts is not None
        self.answers.append(self.on_parts(part))

    async def aclose(self) -> None:
        self.ended.set()


def _decoding(first: bytes, parts: _Pushed, meter: _Meter) -> Decoding:
    adapter = adapters.get("tgi")
    assert streams(adapter)
    return Decoding(adapter.stream_decoder(), first, parts, meter)


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(1000):  # loop turns, not time: the delivery task only needs to reach its await
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the delivery never started")


async def test_every_part_is_decoded_in_order_and_its_bytes_counted() -> None:
    first, parts, meter = _event("a"), _Pushed(), _Meter()
    source, seen = _decoding(first, parts, meter), []

    def on_events(events: list[StreamEvent]) -> bool:
        seen.extend(events)
        return True

    delivery = asyncio.ensure_future(source.deliver(on_events))
    await _until(lambda: parts.on_parts is not None)
    cut = _event("b")
    rest = [cut[:9], cut[9:], _event("c", last=True)]  # an event cut in two reads, as SageMaker may cut it
    for part in rest:
        parts.read(part)
    parts.ended.set()
    assert await delivery is False
    assert seen == [TokenDelta("a"), TokenDelta("b"), TokenDelta("c"), StreamEnd(seen[-1].finish_reason, 2, 3)]
    assert parts.answers == [True] * len(rest)  # including the read that completed no event
    assert meter.bytes_out == len(first) + sum(map(len, rest))


async def test_a_pause_comes_back_to_the_read_and_a_stream_abandoned_midway_is_charged_its_bytes() -> None:
    first, parts, meter = _event("a"), _Pushed(), _Meter()
    source = _decoding(first, parts, meter)
    delivery = asyncio.ensure_future(source.deliver(lambda events: False))  # the client is slow: pause each batch
    assert await delivery is True  # the first part paused the delivery before the transport was asked
    assert meter.bytes_out == len(first)
    delivery = asyncio.ensure_future(source.deliver(lambda events: False))
    await _until(lambda: parts.on_parts is not None)
    parts.read(_event("b"))
    assert parts.answers == [False]
    await source.aclose()  # the client left while the delivery waited: what came so far is charged
    assert meter.bytes_out == len(first) + len(_event("b"))
    await delivery
