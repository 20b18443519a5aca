"""The paced upstream speaks SageMaker's response stream as the reference describes it, checked from outside.

Frames are decoded with plain botocore (not the gateway's decoder), TGI events against wire-formats.md 2.5, and
the official OpenAI SDK reads the same stream through a real gateway. Nothing here depends on timing: a stream
the client abandons is waited for by polling the upstream's counters with a deadline.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import openai
import orjson
import pytest
from botocore.eventstream import EventStreamBuffer  # type: ignore[import-untyped]

from tests.bench import paced
from tests.bench import stack as st
from tests.bench.load import SigV4Headers
from tests.bench.paced_upstream import EVENTSTREAM, token_texts
from tests.procs import Proc, free_port

pytestmark = pytest.mark.e2e

MAX_TOKENS = 8
PATH = "/endpoints/paced-tgi/invocations-response-stream"


def start_upstream(tmp: Path, *extra: str) -> Proc:
    port = free_port()
    return Proc(["-m", "tests.bench.paced_upstream", "--port", str(port), "--max-tokens", str(MAX_TOKENS), *extra],
                port, "/ping", tmp / f"paced-upstream-{port}.log")


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    proc = start_upstream(tmp_path_factory.mktemp("paced"), "--ttft-ms", "0", "--gap-ms", "0")
    yield proc
    proc.stop()


def tgi_body(tokens: int, *, stream: bool = True) -> bytes:
    return orjson.dumps({"inputs": "Say something.", "parameters": {"max_new_tokens": tokens, "details": True},
                         "stream": stream})


def signed(url: str, body: bytes, secret: str = "jumpgate-demo-secret") -> dict[str, str]:
    headers = {"Content-Type": "application/json", "X-Amzn-SageMaker-Accept": "application/json"}
    return SigV4Headers(url, body, headers, "AKIDJUMPGATEDEMO", secret, st.REGION).sign()


def test_a_stream_is_one_payload_part_per_token_carrying_tgi_events(upstream: Proc) -> None:
    url, body = upstream.url + PATH, tgi_body(5)
    resp = httpx.post(url, content=body, headers=signed(url, body))
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == EVENTSTREAM
    assert resp.headers["x-amzn-sagemaker-content-type"] == "text/event-stream"
    buffer = EventStreamBuffer()
    buffer.add_data(resp.content)
    messages = list(buffer)
    assert [m.headers[":event-type"] for m in messages] == ["PayloadPart"] * 5
    assert {m.headers[":message-type"] for m in messages} == {"event"}
    events = []
    for message in messages:
        assert message.payload.startswith(b"data:") and message.payload.endswith(b"\n\n")
        events.append(json.loads(message.payload[5:]))
    assert [e["index"] for e in events] == [1, 2, 3, 4, 5]
    assert [e["token"]["text"] for e in events] == token_texts(5)
    assert all(e["generated_text"] is None and e["details"] is None for e in events[:-1])
    assert events[-1]["generated_text"] == "".join(token_texts(5))
    assert events[-1]["details"]["finish_reason"] == "length" and events[-1]["details"]["generated_tokens"] == 5


def test_a_badly_signed_request_gets_403(upstream: Proc) -> None:
    url, body = upstream.url + PATH, tgi_body(3)
    resp = httpx.post(url, content=body, headers=signed(url, body, secret="not-the-secret"))
    assert resp.status_code == 403
    assert resp.headers["x-amzn-errortype"] == "InvalidSignatureException"
    unsigned = httpx.post(url, content=body, headers={"Content-Type": "application/json"})
    assert unsigned.status_code == 403


@pytest.mark.parametrize("body", [tgi_body(3, stream=False), tgi_body(MAX_TOKENS + 1), b"not json", b"[]"])
def test_a_request_the_container_would_not_stream_gets_400(upstream: Proc, body: bytes) -> None:
    url = upstream.url + PATH
    resp = httpx.post(url, content=body, headers=signed(url, body))
    assert resp.status_code == 400
    assert resp.headers["x-amzn-errortype"] == "ValidationError"
    assert "endpoint paced-tgi" in resp.json()["message"]


def test_a_stream_its_client_abandons_is_counted_as_dropped(tmp_path: Path) -> None:
    proc = start_upstream(tmp_path, "--ttft-ms", "0", "--gap-ms", "60000")  # token 2 would come a minute later
    try:
        url, body = proc.url + PATH, tgi_body(MAX_TOKENS)
        head = "".join(f"{k}: {v}\r\n" for k, v in signed(url, body).items())
        with socket.create_connection(("127.0.0.1", proc.port)) as sock:
            sock.sendall(f"POST {PATH} HTTP/1.1\r\n{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
            assert b"PayloadPart" in read_until(sock, b"PayloadPart")
        stats = poll(proc.url, lambda s: s["streams_dropped"] == 1)
        assert (stats["streams_started"], stats["streams_completed"], stats["active"]) == (1, 0, 0)
    finally:
        proc.stop()


def read_until(sock: socket.socket, needle: bytes) -> bytes:
    got = b""
    sock.settimeout(30)
    while needle not in got:
        data = sock.recv(65536)
        assert data, f"connection closed before {needle!r}: {got[:300]!r}"
        got += data
    return got


def poll(url: str, done: Callable[[dict[str, int]], bool], timeout: float = 30.0) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while True:
        stats: dict[str, int] = httpx.get(url + "/_paced/stats").json()
        if done(stats) or time.monotonic() > deadline:
            return stats
        time.sleep(0.05)


def test_the_openai_sdk_reads_the_upstream_text_through_the_gateway(tmp_path: Path) -> None:
    settings = paced.Settings(series=(4,), tokens=MAX_TOKENS, ttft_ms=0, gap_ms=0, window_s=1, rounds=1, procs=1,
                              profile=None, profile_at=4)
    stack = paced.PacedStack(tmp_path, settings)
    try:
        client = openai.OpenAI(base_url=stack.gw.url + "/v1", api_key="unused")
        chunks = client.chat.completions.create(model=paced.MODEL, stream=True, max_tokens=MAX_TOKENS,
                                                messages=[{"role": "user", "content": paced.PROMPT}])
        texts = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
        assert texts == token_texts(MAX_TOKENS)
        up = stack.capture()  # what the direct load re-sends: the gateway's own TGI payload
        assert orjson.loads(up.body)["parameters"]["max_new_tokens"] == MAX_TOKENS
        assert up.url.endswith(f"/endpoints/{paced.ENDPOINT_NAME}/invocations-response-stream")
    finally:
        stack.stop()


def test_a_paced_stream_wakes_once_per_token_not_until_the_clock_ticks() -> None:
    """uvloop's timers fire up to half a millisecond early (millisecond resolution): a stream that re-armed for the
    same instant spun thousands of times a second, taking the CPU the benchmark measures the gateway with. A late
    timer (a busy machine) only sends several tokens in one wake, so the bound holds however slow the machine."""
    import asyncio

    import uvloop

    from tests.bench.paced_upstream import Frames, Pacing, Stream

    tokens, ticks, written = 12, [0], []

    async def run() -> None:
        done = asyncio.get_running_loop().create_future()
        stream = Stream(written.append, Frames(tokens), tokens, 5, Pacing(0.002, 0.0035), lambda: done.set_result(None))
        tick = stream._tick

        def counted() -> None:
            ticks[0] += 1
            tick()

        stream._tick = counted  # type: ignore[method-assign]
        stream.cancel()
        stream._timer = asyncio.get_running_loop().call_soon(counted)  # type: ignore[assignment]
        await asyncio.wait_for(done, 30)

    uvloop.run(run())
    assert 1 <= ticks[0] <= tokens + 1 and b"".join(written).endswith(b"0\r\n\r\n")
