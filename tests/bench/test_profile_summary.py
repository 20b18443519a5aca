"""profile_summary's relay stages on hand-written py-spy stacks: the leaf-most known frame decides."""

from __future__ import annotations

from tests.bench.profile_summary import OPEN_STAGE, REST_STAGE, parse, relay_stage, relay_summary

ROOT = ("Runner.run (asyncio/runners.py:118)"
        ";RequestResponseCycle.run_asgi (uvicorn/protocols/http/httptools_impl.py:422)")
RELAY = (ROOT + ";StreamingResponse.stream_response (starlette/responses.py:250)"
         ";sse_frames (service/api/sse.py:128);GatewayStream.events (service/pipeline/streaming.py:90)")
LINES = [
    RELAY + ";PayloadPartDecoder.feed (service/transport/eventstream.py:120)"
            ";EventStreamBuffer._validate_checksum (botocore/eventstream.py:500) 7",
    RELAY + ";SageMakerTransport.invoke_stream (service/transport/sagemaker.py:92)"
            ";StreamReader._wait (aiohttp/streams.py:350) 5",
    ROOT + ";StreamingResponse.stream_response (starlette/responses.py:255)"
           ";RequestResponseCycle.send (uvicorn/protocols/http/httptools_impl.py:560) 11",
    RELAY + ";ChatShape.token (service/api/sse.py:70) 3",
    ROOT + ";chat_completions (service/api/routes.py:99);Gateway.open_stream (service/pipeline/gateway.py:164)"
           ";StreamReader._wait (aiohttp/streams.py:350) 2",
    "Runner.run (asyncio/runners.py:118) 4",
]


def test_each_sample_goes_to_the_stage_of_its_leaf_most_known_frame() -> None:
    stages = [relay_stage(frames) for frames, _ in parse(LINES)]
    assert stages == [
        "event-stream frames -> PayloadPart bytes (CRCs, headers)",
        "read from the upstream socket (streamconn + httptools, or aiohttp)",
        "write to the client socket (SocketBody, or uvicorn send)",
        "token events -> OpenAI chunk bytes",
        OPEN_STAGE[1],  # anything under a stream's opening counts there, aiohttp included
        REST_STAGE,
    ]


def test_shares_and_microseconds_add_up() -> None:
    out = relay_summary(parse(LINES), us_per_token=32.0)
    assert out[0] == "by relay stage (32 samples x 32 µs per token):"
    assert out[1] == "   34.4%    11.0 µs  write to the client socket (SocketBody, or uvicorn send)"  # 11 of 32 samples


def test_the_relays_own_read_path_and_response_count_in_the_same_stages() -> None:
    lines = [
        ROOT + ";EventStreamResponse._pump (service/api/stream_response.py:60);SseRelay.next (service/api/sse.py:160)"
               ";UpstreamResponse.read (service/transport/streamconn.py:120) 1",
        ROOT + ";EventStreamResponse._pump (service/api/stream_response.py:60) 1",
    ]
    assert [relay_stage(frames) for frames, _ in parse(lines)] == [
        "read from the upstream socket (streamconn + httptools, or aiohttp)",
        "ASGI response glue (starlette StreamingResponse, anyio)"]


def test_the_pushed_relay_counts_each_callback_in_its_stage() -> None:
    """Since issue 18 a token travels inside the upstream's data_received: the leaf-most frame still decides."""
    up = ROOT.split(";")[0] + ";_Connection.data_received (service/transport/streamconn.py:65)"
    lines = [
        up + ";_Connection.on_body (service/transport/streamconn.py:96);Decoding._feed (service/pipeline/sources.py:69)"
             ";SseRelay._frames (service/api/sse.py:190);SocketBody.write (service/protocol.py:128) 3",
        up + ";_Connection.on_body (service/transport/streamconn.py:96)"
             ";FrameDecoder.feed (service/transport/eventstream.py:91) 2",
        up + ";_Connection.on_body (service/transport/streamconn.py:96);GatewayStream._take "
             "(service/pipeline/streaming.py:157) 1",
    ]
    assert [relay_stage(frames) for frames, _ in parse(lines)] == [
        "write to the client socket (SocketBody, or uvicorn send)",
        "event-stream frames -> PayloadPart bytes (CRCs, headers)",
        "relay glue (the callbacks between the stages)"]
