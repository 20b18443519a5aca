"""SageMakerTransport against a real aiohttp server on loopback: requests, signatures, error mapping, streams."""

from __future__ import annotations

import asyncio
import json
import re
import socket

import pytest
from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from service.errors import (
    UpstreamDependencyFailed,
    UpstreamError,
    UpstreamModelError,
    UpstreamRejected,
    UpstreamStreamError,
    UpstreamThrottled,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from service.transport.base import Payload, Target
from service.transport.sagemaker import SageMakerTransport, container_text, error_code
from service.transport.signing import Signer
from tests.transport.conftest import ACCESS_KEY, REGION, SECRET_KEY, SESSION_TOKEN
from tests.transport.upstream import (
    ACCOUNT,
    LOG_STREAM_ARN,
    FakeRuntime,
    Received,
    aws_error,
    error_frame,
    exception_frame,
    model_error,
    payload_part,
    raw_reply,
)

BODY = b'{"inputs": "Hello", "parameters": {"max_new_tokens": 8}}'
PAYLOAD = Payload(BODY, content_type="application/json", accept="application/json")
STREAM_PAYLOAD = Payload(BODY, accept="text/event-stream")
FULL_TARGET = Target("ep", timeout_s=5, custom_attributes="accept_eula=true", target_variant="AllTraffic",
                     inference_component="ic-llama")
AUTH = re.compile(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
                  r"SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$")
# Headers the client may send outside the signature: the body length is only known after signing.
UNSIGNED_OK = {"content-length", "authorization"}


def expected_signature(seen: Received, signed_names: list[str], region: str, service: str) -> str:
    request = AWSRequest(method=seen.method, url=f"http://{seen.headers['host']}{seen.path}", data=seen.body,
                         headers={name: seen.headers[name] for name in signed_names})
    request.context["timestamp"] = seen.headers["x-amz-date"]
    auth = SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY, SESSION_TOKEN), service, region)
    return auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)


def assert_signed(seen: Received) -> list[str]:
    match = AUTH.match(seen.headers["authorization"])
    assert match, seen.headers["authorization"]
    key, _date, region, service, signed, signature = match.groups()
    assert (key, region, service) == (ACCESS_KEY, REGION, "sagemaker")
    names = signed.split(";")
    assert signature == expected_signature(seen, names, region, service)
    assert set(seen.headers) - set(names) <= UNSIGNED_OK, "every header sent must be signed"
    return names


def reply_json(body: dict[str, object], headers: dict[str, str] | None = None):
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response(body, headers=headers)

    return handler


def assert_redacted(err: Exception) -> None:
    text = str(err)
    assert "arn:" not in text
    assert not re.search(r"(?<!\d)\d{12}(?!\d)", text), text


# --- requests and signatures --------------------------------------------------------------------------


async def test_invoke_posts_signed_request_and_returns_body(runtime: FakeRuntime,
                                                           transport: SageMakerTransport) -> None:
    runtime.handlers["ep"] = reply_json({"generated_text": "hi"})
    response = await transport.invoke(FULL_TARGET, PAYLOAD)
    assert json.loads(response.body) == {"generated_text": "hi"}
    assert response.content_type.startswith("application/json")
    seen = runtime.received[0]
    assert (seen.method, seen.path, seen.body) == ("POST", "/endpoints/ep/invocations", BODY)
    assert seen.headers["accept"] == "application/json"
    assert seen.headers["content-type"] == "application/json"
    assert seen.headers["x-amz-security-token"] == SESSION_TOKEN
    names = assert_signed(seen)
    for header in ("x-amzn-sagemaker-custom-attributes", "x-amzn-sagemaker-target-variant",
                   "x-amzn-sagemaker-inference-component", "content-type", "accept", "host",
                   "x-amz-date", "x-amz-security-token"):
        assert header in names, header
    assert seen.headers["x-amzn-sagemaker-custom-attributes"] == "accept_eula=true"


async def test_optional_sagemaker_headers_are_omitted_when_unset(runtime: FakeRuntime,
                                                                transport: SageMakerTransport) -> None:
    runtime.handlers["ep"] = reply_json({})
    await transport.invoke(Target("ep"), PAYLOAD)
    seen = runtime.received[0]
    assert not [name for name in seen.headers if name.startswith("x-amzn-sagemaker")]
    assert_signed(seen)


async def test_stream_uses_sagemaker_accept_header_and_signs_it(runtime: FakeRuntime,
                                                              transport: SageMakerTransport) -> None:
    runtime.handlers["ep"] = lambda request: runtime.stream(request, [payload_part(b"data: 1\n\n")])
    parts = [part async for part in transport.invoke_stream(FULL_TARGET, STREAM_PAYLOAD)]
    assert parts == [b"data: 1\n\n"]
    seen = runtime.received[0]
    assert seen.path == "/endpoints/ep/invocations-response-stream"
    assert seen.headers["x-amzn-sagemaker-accept"] == "text/event-stream"
    assert "accept" not in seen.headers, "the streaming API takes Accept only as X-Amzn-SageMaker-Accept"
    names = assert_signed(seen)
    assert {"x-amzn-sagemaker-accept", "x-amzn-sagemaker-custom-attributes", "x-amzn-sagemaker-target-variant",
            "x-amzn-sagemaker-inference-component"} <= set(names)


async def test_signature_without_session_token(runtime: FakeRuntime) -> None:
    runtime.handlers["ep"] = reply_json({})
    client = SageMakerTransport(runtime.url + "/", Signer.static(ACCESS_KEY, SECRET_KEY, region=REGION))
    try:
        await client.invoke(Target("ep"), PAYLOAD)
    finally:
        await client.aclose()
    seen = runtime.received[0]
    assert seen.path == "/endpoints/ep/invocations"
    assert "x-amz-security-token" not in seen.headers
    assert "x-amz-security-token" not in AUTH.match(seen.headers["authorization"]).group(5).split(";")


# --- error mapping ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("handler", "cls", "retryable", "needle"), [
    (aws_error(400, "ThrottlingException", {"message": "Rate exceeded"}), UpstreamThrottled, True, "Rate exceeded"),
    (aws_error(429, "ModelNotReadyException", {"Message": "Model not ready"}), UpstreamThrottled, True, "not ready"),
    (aws_error(503, "ServiceUnavailable", {"message": "Try again"}), UpstreamUnavailable, True, "ServiceUnavailable"),
    (aws_error(500, "InternalFailure", {"message": "oops"}), UpstreamUnavailable, True, "InternalFailure"),
    (aws_error(530, "InternalDependencyException", {"message": "dep"}), UpstreamDependencyFailed, False, "support"),
    (aws_error(400, "ValidationError", {"message": f"Endpoint x of account {ACCOUNT} not found."}),
     UpstreamRejected, False, "Endpoint x of account <account> not found."),
    (aws_error(400, "ValidationError", {"message": "bad header"}, in_header=False), UpstreamRejected, False,
     "bad header"),
    (raw_reply(502, b"<html><body>Bad Gateway</body></html>"), UpstreamUnavailable, True, "HTTP 502"),
    (raw_reply(503, b""), UpstreamUnavailable, True, "HTTP 503"),
    (raw_reply(403, b'{"message": "The security token included in the request is invalid."}',
               "application/json"), UpstreamRejected, False, "security token"),
])
async def test_error_mapping(runtime: FakeRuntime, transport: SageMakerTransport, handler, cls: type,
                             retryable: bool, needle: str) -> None:
    runtime.handlers["ep"] = handler
    with pytest.raises(UpstreamError) as info:
        await transport.invoke(Target("ep"), PAYLOAD)
    assert type(info.value) is cls
    assert info.value.retryable is retryable
    assert needle in info.value.message
    assert "'ep'" in info.value.message, "the message names the endpoint that failed"
    assert_redacted(info.value)


@pytest.mark.parametrize(("status", "original", "inner", "retryable"), [
    (422, json.dumps({"error": "Input validation error: `inputs` must have less than 4096 tokens",
                      "error_type": "validation"}), "Input validation error: `inputs` must have less", False),
    (400, json.dumps({"code": 400, "error": "LMI says no"}), "LMI says no", False),
    (400, json.dumps({"error": {"message": "OpenAI-style failure", "type": "invalid_request_error"}}),
     "OpenAI-style failure", False),
    (500, "plain text crash", "plain text crash", False),
    (503, json.dumps({"error": "overloaded"}), "overloaded", True),
    (429, json.dumps({"error": "too many requests"}), "too many requests", True),
])
async def test_model_error_unwraps_the_container_message(runtime: FakeRuntime, transport: SageMakerTransport,
                                                        status: int, original: str, inner: str,
                                                        retryable: bool) -> None:
    runtime.handlers["ep"] = model_error(status, original)
    with pytest.raises(UpstreamModelError) as info:
        await transport.invoke(Target("ep"), PAYLOAD)
    err = info.value
    assert (err.original_status, err.retryable) == (status, retryable)
    assert inner in err.message and "error_type" not in err.message
    assert "'ep'" in err.message
    assert_redacted(err)


@pytest.mark.parametrize(("status", "original"), [
    (0, "Your invocation timed out while waiting for a response from container primary."),
    (500, "upstream request timed out"),
])
async def test_model_error_timeout_becomes_upstream_timeout(runtime: FakeRuntime, transport: SageMakerTransport,
                                                            status: int, original: str) -> None:
    runtime.handlers["ep"] = model_error(status, original)
    with pytest.raises(UpstreamTimeout) as info:
        await transport.invoke(Target("ep"), PAYLOAD)
    assert "'ep'" in info.value.message
    assert_redacted(info.value)


async def test_model_error_redacts_arns_in_the_container_text(runtime: FakeRuntime,
                                                             transport: SageMakerTransport) -> None:
    text = f"denied for {LOG_STREAM_ARN} AKIAABCDEFGHIJKLMNOP"
    runtime.handlers["ep"] = model_error(400, json.dumps({"error": text}))
    with pytest.raises(UpstreamModelError) as info:
        await transport.invoke(Target("ep"), PAYLOAD)
    assert "<arn>" in info.value.message and "AKIA" not in info.value.message
    assert_redacted(info.value)


async def test_retry_after_header_is_carried(runtime: FakeRuntime, transport: SageMakerTransport) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response({"message": "slow down"}, status=400,
                                 headers={"x-amzn-ErrorType": "ThrottlingException", "Retry-After": "3"})

    runtime.handlers["ep"] = handler
    with pytest.raises(UpstreamThrottled) as info:
        await transport.invoke(Target("ep"), PAYLOAD)
    assert info.value.retry_after == 3.0


async def test_stream_errors_before_the_stream_map_like_invoke(runtime: FakeRuntime,
                                                               transport: SageMakerTransport) -> None:
    runtime.handlers["ep"] = model_error(422, json.dumps({"error": "bad input", "error_type": "validation"}))
    with pytest.raises(UpstreamModelError, match="bad input"):
        async for _ in transport.invoke_stream(Target("ep"), STREAM_PAYLOAD):
            pass


def test_error_code_reading() -> None:
    assert error_code("ValidationError:http://internal.amazon.com/coral/x/", {}) == "ValidationError"
    assert error_code("aws.protocoljson#ThrottlingException", {}) == "ThrottlingException"
    assert error_code(None, {"__type": "com.amazon.coral.service#InternalFailure"}) == "InternalFailure"
    assert error_code(None, {"Code": "ModelError"}) == "ModelError"
    assert error_code(None, {}) == ""


def test_container_text() -> None:
    assert container_text('{"error": "x", "error_type": "y"}') == "x"
    assert container_text('{"error": {"message": "m"}}') == "m"
    assert container_text('{"detail": "no error field"}') == '{"detail": "no error field"}'
    assert container_text("not json {") == "not json {"


# --- client-side failures ----------------------------------------------------------------------------


async def test_timeout_becomes_upstream_timeout(runtime: FakeRuntime, transport: SageMakerTransport) -> None:
    runtime.handlers["ep"] = runtime.stall
    with pytest.raises(UpstreamTimeout, match=r"'ep' did not answer within 0\.2s"):
        await transport.invoke(Target("ep", timeout_s=0.2), PAYLOAD)


async def test_stream_timeout_between_chunks(runtime: FakeRuntime, transport: SageMakerTransport) -> None:
    runtime.handlers["ep"] = runtime.stall
    with pytest.raises(UpstreamTimeout):
        async for _ in transport.invoke_stream(Target("ep", timeout_s=0.2), STREAM_PAYLOAD):
            pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_connection_refused_is_unavailable_and_retryable(signer: Signer) -> None:
    client = SageMakerTransport(f"http://127.0.0.1:{free_port()}", signer)
    try:
        with pytest.raises(UpstreamUnavailable) as info:
            await client.invoke(Target("ep"), PAYLOAD)
        assert info.value.retryable
        assert "'ep'" in info.value.message
        with pytest.raises(UpstreamUnavailable):
            async for _ in client.invoke_stream(Target("ep"), STREAM_PAYLOAD):
                pass
    finally:
        await client.aclose()


async def test_connection_reset_mid_body_is_unavailable(runtime: FakeRuntime, transport: SageMakerTransport) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Length": "1000"})
        await resp.prepare(request)
        await resp.write(b"{")
        request.transport.close()
        return resp

    runtime.handlers["ep"] = handler
    with pytest.raises(UpstreamUnavailable) as info:
        await transport.invoke(Target("ep"), PAYLOAD)
    assert info.value.retryable


# --- streams ------------------------------------------------------------------------------------------


async def test_stream_yields_payload_parts_exactly(runtime: FakeRuntime, transport: SageMakerTransport) -> None:
    parts = [b'data: {"token": {"text": "He', b'llo"}}\n\ndata: {"tok', "é".encode()[:1], "é".encode()[1:] + b"\n"]
    frames = [payload_part(p) for p in parts]
    # One write carrying a frame and a half, then the rest: framing must not follow TCP writes.
    blob = b"".join(frames)
    runtime.handlers["ep"] = lambda request: runtime.stream(request, [blob[:50], blob[50:51], blob[51:]])
    got = [part async for part in transport.invoke_stream(Target("ep"), STREAM_PAYLOAD)]
    # The parts of one read come joined (their boundaries mean nothing); every byte arrives, in order, once.
    assert b"".join(got) == b"".join(parts)
    assert 1 <= len(got) <= len(parts) and all(got)


@pytest.mark.parametrize(("frame", "retryable", "needle"), [
    (exception_frame("ModelStreamError", {"Message": f"broken for {LOG_STREAM_ARN}", "ErrorCode": "StreamBroken"}),
     False, "ModelStreamError (StreamBroken)"),
    (exception_frame("InternalStreamFailure", {"message": "try again"}), True, "InternalStreamFailure"),
    (error_frame("InternalError", "service fell over"), False, "service fell over"),
])
async def test_exception_frames_raise_stream_errors(runtime: FakeRuntime, transport: SageMakerTransport,
                                                    frame: bytes, retryable: bool, needle: str) -> None:
    runtime.handlers["ep"] = lambda request: runtime.stream(request, [payload_part(b"first"), frame])
    got: list[bytes] = []
    with pytest.raises(UpstreamStreamError) as info:
        async for part in transport.invoke_stream(Target("ep"), STREAM_PAYLOAD):
            got.append(part)
    assert got == [b"first"]
    assert info.value.retryable is retryable
    assert needle in info.value.message and "'ep'" in info.value.message
    assert_redacted(info.value)


async def test_corrupt_frame_raises_stream_error(runtime: FakeRuntime, transport: SageMakerTransport) -> None:
    frame = bytearray(payload_part(b"hello"))
    frame[-6] ^= 0xFF  # a payload byte: the message CRC no longer matches
    runtime.handlers["ep"] = lambda request: runtime.stream(request, [bytes(frame)])
    with pytest.raises(UpstreamStreamError, match="Checksum mismatch"):
        async for _ in transport.invoke_stream(Target("ep"), STREAM_PAYLOAD):
            pass


async def test_stream_cut_inside_a_frame(runtime: FakeRuntime, transport: SageMakerTransport) -> None:
    runtime.handlers["ep"] = lambda request: runtime.stream(request, [payload_part(b"whole"), payload_part(b"x")[:9]])
    with pytest.raises(UpstreamStreamError, match="ended inside a frame"):
        async for _ in transport.invoke_stream(Target("ep"), STREAM_PAYLOAD):
            pass


async def test_early_close_releases_the_connection(runtime: FakeRuntime, transport: SageMakerTransport) -> None:
    frames = [payload_part(b"tok%d" % i) for i in range(500)]
    runtime.handlers["ep"] = lambda request: runtime.stream(request, frames, delay=0.01)
    stream = transport.invoke_stream(Target("ep"), STREAM_PAYLOAD)
    assert await anext(stream) == b"tok0"
    await stream.aclose()
    await asyncio.wait_for(runtime.disconnected.wait(), timeout=5)
    # The pool still works after the dropped connection.
    runtime.handlers["ok"] = reply_json({"fine": True})
    assert json.loads((await transport.invoke(Target("ok"), PAYLOAD)).body) == {"fine": True}


async def test_cancelled_consumer_releases_the_connection(runtime: FakeRuntime,
                                                          transport: SageMakerTransport) -> None:
    frames = [payload_part(b"tok%d" % i) for i in range(500)]
    runtime.handlers["ep"] = lambda request: runtime.stream(request, frames, delay=0.01)
    started = asyncio.Event()

    async def consume() -> None:
        async for _ in transport.invoke_stream(Target("ep"), STREAM_PAYLOAD):
            started.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), timeout=5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(runtime.disconnected.wait(), timeout=5)


async def test_aclose_is_idempotent_and_the_transport_reopens(runtime: FakeRuntime,
                                                              transport: SageMakerTransport) -> None:
    runtime.handlers["ep"] = reply_json({})
    await transport.aclose()
    await transport.aclose()
    await transport.invoke(Target("ep"), PAYLOAD)
    assert runtime.hits["ep"] == 1
