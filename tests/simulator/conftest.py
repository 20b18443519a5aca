"""Helpers for the simulator tests: an in-process client, SigV4-signed invocations, stream decoding."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.eventstream import EventStreamBuffer, EventStreamMessage
from starlette.applications import Starlette

from service.simulator.app import create_simulator_app

BASE = "http://sim.test"
TGI = "jumpgate-demo-tgi-llama3-8b"
NEURON = "jumpgate-demo-neuron-llama2-13b"
LLAMA = "jumpgate-demo-jumpstart-llama2-7b-chat"
LMI = "jumpgate-demo-ft-llama3-8b-dolly"
T5 = "jumpgate-demo-flan-t5-xl"


def sign(path: str, body: bytes, headers: dict[str, str] | None = None, base: str = BASE) -> dict[str, str]:
    """SigV4-sign a POST with botocore, as the gateway does; returns the headers to send."""
    request = AWSRequest(method="POST", url=base + path, data=body, headers=dict(headers or {}))
    SigV4Auth(Credentials("AKIDEXAMPLE", "secret"), "sagemaker", "us-east-1").add_auth(request)
    return dict(request.headers.items())


@pytest.fixture
def app() -> Starlette:
    return create_simulator_app()


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        yield c


async def invoke(client: httpx.AsyncClient, endpoint: str, body: Any, *, stream: bool = False,
                 content_type: str = "application/json", headers: dict[str, str] | None = None,
                 accept: str | None = None) -> httpx.Response:
    """Call InvokeEndpoint (or the response-stream API) with a signed request; ``body`` may be raw bytes."""
    path = f"/endpoints/{endpoint}/invocations" + ("-response-stream" if stream else "")
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    extra = {"Content-Type": content_type, **(headers or {})}
    if accept:
        extra["X-Amzn-SageMaker-Accept" if stream else "Accept"] = accept
    return await client.post(path, content=raw, headers=sign(path, raw, extra))


def frames(raw: bytes) -> list[EventStreamMessage]:
    """Decode an event-stream body with botocore (checksums verified)."""
    buffer = EventStreamBuffer()
    buffer.add_data(raw)
    return list(buffer)


def payload(raw: bytes) -> bytes:
    """Concatenated PayloadPart bytes; fails on any non-PayloadPart frame."""
    out = b""
    for msg in frames(raw):
        assert msg.headers[":message-type"] == "event", msg.headers
        assert msg.headers[":event-type"] == "PayloadPart"
        out += msg.payload
    return out


def sse_events(data: bytes) -> list[Any]:
    """TGI SSE events as parsed JSON (``[DONE]`` kept as the string)."""
    events = []
    for block in data.decode().split("\n\n"):
        if not block.strip():
            continue
        assert block.startswith("data:"), block
        text = block[len("data:"):].strip()
        events.append(text if text == "[DONE]" else orjson.loads(text))
    return events


def json_lines(data: bytes) -> list[Any]:
    text = data.decode()
    assert text.endswith("\n")
    return [orjson.loads(line) for line in text.splitlines() if line]


async def control(client: httpx.AsyncClient, method: str, path: str, body: Any = None) -> Any:
    resp = await client.request(method, path, content=None if body is None else orjson.dumps(body))
    assert resp.status_code == 200, resp.text
    return resp.json()
