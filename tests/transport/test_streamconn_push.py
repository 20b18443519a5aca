"""Pushed response streams (`ResponseStream.deliver`: the parts handed over from the network read itself) against
the raw socket server of rawserver.py: split anywhere, paused and resumed, mixed with pulling, failing in
the consumer, cut, stalled, kept alive."""

from __future__ import annotations

import asyncio
import functools

import pytest

from service.errors import UpstreamStreamError, UpstreamTimeout
from service.transport.base import PushedParts, Target
from service.transport.sagemaker import ResponseStream, SageMakerTransport
from tests.transport.rawserver import OK_HEAD, PARTS, STREAM_PAYLOAD, RawServer, chunked, one_part_until_closed, send_in
from tests.transport.upstream import exception_frame, payload_part

MANY = [b"part %d " % i * (i % 7 + 1) for i in range(40)]


def stream(raw_transport: SageMakerTransport, target: Target | None = None) -> ResponseStream:
    parts = raw_transport.invoke_stream(target or Target("ep"), STREAM_PAYLOAD)
    assert isinstance(parts, PushedParts)
    return parts


async def deliver_all(parts: ResponseStream, got: list[bytes], pause_every: int = 0) -> int:
    """Deliver until the end, pausing after every `pause_every`-th part; how many times deliver() was called."""
    calls = 0

    def take(part: bytes) -> bool:
        got.append(part)
        return not pause_every or len(got) % pause_every != 0

    while True:
        calls += 1
        if not await asyncio.wait_for(parts.deliver(take), 10):
            return calls


async def test_bytes_split_anywhere_are_delivered_whole_and_in_order(server: RawServer,
                                                                     raw_transport: SageMakerTransport) -> None:
    body = OK_HEAD + chunked(*(payload_part(p) for p in PARTS))
    server.scripts.append(send_in(*(body[i:i + 1] for i in range(len(body)))))  # one byte per write
    parts, got = stream(raw_transport), []
    assert await deliver_all(parts, got) == 1
    assert b"".join(got) == b"".join(PARTS)
    assert not await parts.deliver(got.append)  # over: nothing more, and no error
    with pytest.raises(StopAsyncIteration):
        await anext(parts)


async def test_a_paused_delivery_goes_on_where_it_stopped(server: RawServer, raw_transport: SageMakerTransport) -> None:
    go = asyncio.Event()

    async def two_halves(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(OK_HEAD + b"%x\r\n%s\r\n" % (len(payload_part(b"a")), payload_part(b"a")))
        await go.wait()  # the second half only once the first delivery paused
        writer.write(chunked(payload_part(b"b")))

    server.scripts.append(two_halves)
    parts, got = stream(raw_transport), []
    assert await asyncio.wait_for(parts.deliver(lambda part: got.append(part) is not None), 10) is True
    assert got == [b"a"]
    go.set()
    assert await asyncio.wait_for(parts.deliver(lambda part: got.append(part) is None), 10) is False
    assert got == [b"a", b"b"]


async def test_pulling_and_pushing_mix(server: RawServer, raw_transport: SageMakerTransport) -> None:
    body = OK_HEAD + chunked(*(payload_part(p) for p in MANY))
    server.scripts.append(send_in(*(body[i:i + 50] for i in range(0, len(body), 50))))
    parts, got = stream(raw_transport), []
    got.append(await anext(parts))  # opens the stream, as the gateway does before it relays
    await deliver_all(parts, got, pause_every=5)
    assert b"".join(got) == b"".join(MANY)


async def test_what_the_consumer_raises_is_raised_and_closes_the_connection(server: RawServer,
                                                                          raw_transport: SageMakerTransport) -> None:
    gone = asyncio.Event()
    server.scripts.append(one_part_until_closed(gone))

    def refuse(_: bytes) -> bool:
        raise LookupError("the consumer's own failure")

    with pytest.raises(LookupError, match="consumer's own"):
        await stream(raw_transport).deliver(refuse)
    await asyncio.wait_for(gone.wait(), 5)


async def test_an_exception_frame_after_parts_is_raised_after_them(server: RawServer,
                                                                   raw_transport: SageMakerTransport) -> None:
    frames = payload_part(b"x") + exception_frame("ModelStreamError", {"Message": "boom"})
    server.scripts.append(send_in(OK_HEAD + chunked(frames)))
    got: list[bytes] = []
    with pytest.raises(UpstreamStreamError, match="boom"):
        await deliver_all(stream(raw_transport), got)
    assert got == [b"x"]


async def test_a_cut_mid_body_is_a_retryable_stream_error(server: RawServer, raw_transport: SageMakerTransport) -> None:
    frame = payload_part(b"xyz")
    server.scripts.append(send_in(OK_HEAD + b"%x\r\n%s" % (len(frame), frame[:10]), close=True))
    with pytest.raises(UpstreamStreamError, match="broke mid-stream") as info:
        await deliver_all(stream(raw_transport), [])
    assert info.value.retryable


async def test_silence_while_pushing_is_a_timeout(server: RawServer, raw_transport: SageMakerTransport) -> None:
    server.scripts.append(send_in(OK_HEAD + b"%x\r\n%s\r\n" % (len(payload_part(b"x")), payload_part(b"x"))))
    server.scripts.append(send_in())  # never reached: the connection is the first one's, now silent
    got: list[bytes] = []
    with pytest.raises(UpstreamTimeout, match=r"'ep' did not answer within 0\.2s"):
        await deliver_all(stream(raw_transport, Target("ep", timeout_s=0.2)), got)
    assert got == [b"x"]


def keep(got: list[bytes], pause: bool, part: bytes) -> bool:
    got.append(part)
    return not pause


@pytest.mark.parametrize("pause", [False, True], ids=["read-on", "paused-at-the-end"])
async def test_a_delivered_stream_leaves_its_connection_to_the_next(server: RawServer,
                                                                    raw_transport: SageMakerTransport,
                                                                    pause: bool) -> None:
    go = asyncio.Event()

    async def head_then_rest(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        go.clear()
        writer.write(OK_HEAD + b"%x\r\n%s\r\n" % (len(payload_part(b"x")), payload_part(b"x")))
        await go.wait()  # the rest arrives while the delivery is under way: in data_received, to the consumer
        writer.write(chunked(payload_part(b"y")))

    for _ in range(3):
        server.scripts.append(head_then_rest)
    for _ in range(3):  # a connection its last consumer left paused would never read the next answer
        parts = stream(raw_transport)
        got = [await asyncio.wait_for(anext(parts), 10)]
        go.set()
        assert await asyncio.wait_for(parts.deliver(functools.partial(keep, got, pause)), 10) is False
        assert got == [b"x", b"y"]
    assert server.connections == 1 and len(server.requests) == 3


async def test_a_large_body_paused_by_the_consumer_arrives_whole(server: RawServer,
                                                                 raw_transport: SageMakerTransport) -> None:
    big = [bytes([65 + i % 26]) * 30_000 for i in range(20)]  # ~600 KB: the socket fills while delivery pauses
    server.scripts.append(send_in(OK_HEAD + chunked(*(payload_part(p) for p in big))))
    got: list[bytes] = []
    await deliver_all(stream(raw_transport), got, pause_every=1)
    assert b"".join(got) == b"".join(big)
