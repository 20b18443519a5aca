"""The response streams' own read path (service/transport/streamconn.py) against a raw socket server that answers
byte by byte as scripted: split anywhere, cut, stalled, kept alive or closed, malformed."""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest

from service.errors import UpstreamStreamError, UpstreamThrottled, UpstreamTimeout, UpstreamUnavailable
from service.transport.base import Target
from service.transport.sagemaker import SageMakerTransport
from service.transport.signing import Signer
from tests.transport.rawserver import (
    OK_HEAD,
    PARTS,
    STREAM_PAYLOAD,
    RawServer,
    chunked,
    one_part_until_closed,
    read_all,
    send_in,
)
from tests.transport.upstream import exception_frame, payload_part


async def test_bytes_split_anywhere_arrive_whole_and_in_order(server: RawServer,
                                                              raw_transport: SageMakerTransport) -> None:
    body = OK_HEAD + chunked(*(payload_part(p) for p in PARTS))
    server.scripts.append(send_in(*(body[i:i + 1] for i in range(len(body)))))  # one byte per write
    got = await read_all(raw_transport)
    assert b"".join(got) == b"".join(PARTS)


async def test_request_is_the_signed_head_and_the_body(server: RawServer, raw_transport: SageMakerTransport) -> None:
    server.scripts.append(send_in(OK_HEAD + chunked(payload_part(b"x"))))
    await read_all(raw_transport, Target("ep", custom_attributes="a=1"))
    head, _, body = server.requests[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /endpoints/ep/invocations-response-stream HTTP/1.1"
    names = {line.split(b":")[0].lower() for line in lines[1:]}
    assert {b"host", b"authorization", b"x-amz-date", b"x-amzn-sagemaker-accept", b"content-type",
            b"x-amzn-sagemaker-custom-attributes", b"content-length"} <= names
    assert b"accept" not in names and b"user-agent" not in names
    assert body == STREAM_PAYLOAD.body


async def test_connection_is_kept_alive_and_reused(server: RawServer, raw_transport: SageMakerTransport) -> None:
    for _ in range(3):
        server.scripts.append(send_in(OK_HEAD + chunked(payload_part(b"x"))))
    for _ in range(3):
        assert await read_all(raw_transport) == [b"x"]
    assert server.connections == 1 and len(server.requests) == 3


async def test_a_stale_kept_alive_connection_is_replaced(server: RawServer, raw_transport: SageMakerTransport) -> None:
    server.scripts.append(send_in(OK_HEAD + chunked(payload_part(b"x")), close=True))  # then the server leaves
    assert await read_all(raw_transport) == [b"x"]
    server.scripts.append(send_in(OK_HEAD + chunked(payload_part(b"y"))))
    assert await read_all(raw_transport) == [b"y"]
    assert server.connections == 2


async def test_a_stream_abandoned_midway_closes_its_connection(server: RawServer,
                                                               raw_transport: SageMakerTransport) -> None:
    gone = asyncio.Event()
    server.scripts.append(one_part_until_closed(gone))
    parts = raw_transport.invoke_stream(Target("ep"), STREAM_PAYLOAD)
    assert await anext(parts) == b"x"
    await parts.aclose()
    await asyncio.wait_for(gone.wait(), 5)


async def test_cut_mid_body_is_a_retryable_stream_error(server: RawServer, raw_transport: SageMakerTransport) -> None:
    frame = payload_part(b"xyz")
    server.scripts.append(send_in(OK_HEAD + b"%x\r\n%s" % (len(frame), frame[:10]), close=True))
    with pytest.raises(UpstreamStreamError, match="broke mid-stream") as info:
        await read_all(raw_transport)
    assert info.value.retryable


async def test_silence_is_a_timeout(server: RawServer, raw_transport: SageMakerTransport) -> None:
    server.scripts.append(send_in(OK_HEAD + b"%x\r\n%s\r\n" % (len(payload_part(b"x")), payload_part(b"x"))))
    server.scripts.append(send_in())  # never reached: the connection is the first one's, now silent
    with pytest.raises(UpstreamTimeout, match=r"'ep' did not answer within 0\.2s"):
        await read_all(raw_transport, Target("ep", timeout_s=0.2))


async def test_no_answer_head_is_a_timeout(server: RawServer, raw_transport: SageMakerTransport) -> None:
    async def stall(reader: asyncio.StreamReader, _: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up and closes

    server.scripts.append(stall)
    with pytest.raises(UpstreamTimeout):
        await read_all(raw_transport, Target("ep", timeout_s=0.2))


async def test_error_answer_is_mapped_with_its_headers(server: RawServer, raw_transport: SageMakerTransport) -> None:
    body = b'{"message": "Rate exceeded"}'
    server.scripts.append(send_in(b"HTTP/1.1 400 Bad Request\r\nx-amzn-ErrorType: ThrottlingException:http://x/\r\n"
                                  b"Retry-After: 3\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)))
    with pytest.raises(UpstreamThrottled, match="Rate exceeded") as info:
        await read_all(raw_transport)
    assert info.value.retry_after == 3.0


async def test_error_body_ending_with_the_connection(server: RawServer, raw_transport: SageMakerTransport) -> None:
    server.scripts.append(send_in(b"HTTP/1.1 503 Service Unavailable\r\n\r\n", b'{"message": "busy"}', close=True))
    with pytest.raises(UpstreamUnavailable, match="busy"):
        await read_all(raw_transport)


async def test_a_body_ending_with_a_reset_is_no_body(server: RawServer, raw_transport: SageMakerTransport) -> None:
    async def reset(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\nx-amzn-ErrorType: ValidationError:http://x/\r\n\r\n"
                     b'{"message": "cut sh')
        await writer.drain()
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # with SO_LINGER 0: a reset, not a clean end of the unframed body

    server.scripts.append(reset)
    with pytest.raises(UpstreamUnavailable, match="could not reach"):  # not the cut body read as the answer
        await read_all(raw_transport)


async def test_exception_frame_after_parts(server: RawServer, raw_transport: SageMakerTransport) -> None:
    frames = payload_part(b"x") + exception_frame("ModelStreamError", {"Message": "boom"})
    server.scripts.append(send_in(OK_HEAD + chunked(frames)))
    got: list[bytes] = []
    with pytest.raises(UpstreamStreamError, match="boom"):
        async for part in raw_transport.invoke_stream(Target("ep"), STREAM_PAYLOAD):
            got.append(part)
    assert got == [b"x"]


async def test_malformed_http_is_unavailable(server: RawServer, raw_transport: SageMakerTransport) -> None:
    server.scripts.append(send_in(b"NOT HTTP AT ALL\r\n\r\n"))
    with pytest.raises(UpstreamUnavailable, match="malformed HTTP response"):
        await read_all(raw_transport)


async def test_a_large_unread_body_pauses_the_socket_and_arrives_whole(server: RawServer,
                                                                       raw_transport: SageMakerTransport) -> None:
    parts = [bytes([65 + i % 26]) * 30_000 for i in range(20)]  # ~600 KB: well over the high-water mark
    server.scripts.append(send_in(OK_HEAD + chunked(*(payload_part(p) for p in parts))))
    stream = raw_transport.invoke_stream(Target("ep"), STREAM_PAYLOAD)
    got = [await anext(stream)]
    await asyncio.sleep(0.05)  # the consumer dawdles; the socket is paused rather than buffered without bound
    got.extend([part async for part in stream])
    assert b"".join(got) == b"".join(parts)


async def test_connection_refused_is_unavailable(signer: Signer) -> None:
    srv = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    srv.close()
    await srv.wait_closed()
    client = SageMakerTransport(f"http://127.0.0.1:{port}", signer)
    try:
        with pytest.raises(UpstreamUnavailable, match="could not reach the SageMaker runtime") as info:
            await read_all(client)
        assert info.value.retryable
    finally:
        await client.aclose()


async def test_the_first_https_connections_of_a_burst_share_one_load_of_the_trust_store(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import ssl

    from service.transport.streamconn import StreamPool

    loads: list[int] = []
    real = ssl.create_default_context

    def counted() -> ssl.SSLContext:
        loads.append(1)
        return real()

    monkeypatch.setattr(ssl, "create_default_context", counted)
    pool = StreamPool(30.0)
    contexts = await asyncio.gather(*(pool._trust() for _ in range(20)))
    assert loads == [1] and all(c is contexts[0] for c in contexts)
