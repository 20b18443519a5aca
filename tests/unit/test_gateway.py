"""The gateway in-process (create_app + FakeTransport): API parsing, errors, streaming, stops, budgets."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import anyio
import httpx
import orjson
import pytest

from service.app import create_app
from service.config.demo import demo_config_data
from service.config.model import parse_config
from service.errors import UpstreamModelError, UpstreamStreamError, UpstreamThrottled
from service.transport.base import Payload, RawResponse, Target
from service.transport.fake import FakeTransport

Handler = Callable[[Target, Payload], Any]


@pytest.fixture
def make_client() -> Callable[[Handler], Any]:
    clients: list[httpx.AsyncClient] = []

    def make(handler: Handler) -> tuple[httpx.AsyncClient, FakeTransport]:
        fake = FakeTransport(handler)
        app = create_app(parse_config(demo_config_data("http://sim.invalid"), source="<test>"), transport=fake)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://localhost")
        clients.append(client)
        return client, fake

    return make


def lmi_lines(tokens: Sequence[str], finish: str = "eos_token") -> list[bytes]:
    lines = [orjson.dumps({"token": {"id": i, "text": t, "log_prob": -0.1}}) + b"\n" for i, t in enumerate(tokens)]
    lines.append(orjson.dumps({"token": {"id": 2, "text": "", "log_prob": -0.1, "special_token": True},
                               "generated_text": "".join(tokens),
                               "details": {"finish_reason": finish, "generated_tokens": len(tokens) + 1}}) + b"\n")
    return lines


def chat(model: str, **kw: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "Hi"}], **kw}


def sse_events(text: str) -> list[Any]:
    return [json.loads(line[6:]) if line[6:] != "[DONE]" else "[DONE]"
            for line in text.split("\n\n") if line.startswith("data: ")]


async def test_streaming_chat_ends_with_done_and_exact_usage(make_client: Any) -> None:
    client, _ = make_client(lambda t, p: lmi_lines([" Bon", "jour", " 👋🏽"]))
    resp = await client.post("/v1/chat/completions", json=chat("llama3-8b-dolly", stream=True,
                                                                stream_options={"include_usage": True}))
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
    events = sse_events(resp.text)
    assert events[-1] == "[DONE]"
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-1] if e.get("choices"))
    assert text == " Bonjour 👋🏽"
    assert events[-3]["choices"][0]["finish_reason"] == "stop"
    assert events[-2]["choices"] == [] and events[-2]["usage"]["completion_tokens"] == 4


async def test_stream_stop_is_held_back_and_never_leaks(make_client: Any) -> None:
    client, fake = make_client(lambda t, p: lmi_lines(["one", " tw", "o ##", "# three", " four"]))
    resp = await client.post("/v1/completions", json={"model": "llama2-13b-neuron", "prompt": "x", "stream": True,
                                                      "stop": ["###"]})
    events = sse_events(resp.text)
    text = "".join(e["choices"][0]["text"] for e in events[:-1])
    assert text == "one two " and "#" not in text
    assert events[-2]["choices"][0]["finish_reason"] == "stop"
    assert fake.streams_closed_early == 1  # the upstream was closed as soon as the stop was seen


async def test_mid_stream_error_ends_with_an_error_event_not_done(make_client: Any) -> None:
    client, _ = make_client(lambda t, p: [*lmi_lines(["a", "b"])[:2], UpstreamStreamError("StreamBroken")])
    resp = await client.post("/v1/chat/completions", json=chat("llama3-8b-dolly", stream=True))
    events = sse_events(resp.text)
    assert events[-1]["error"]["code"] == "stream_error" and "[DONE]" not in events


async def test_stream_that_ends_without_its_final_event_is_an_error(make_client: Any) -> None:
    client, _ = make_client(lambda t, p: lmi_lines(["a", "b"])[:2])
    events = sse_events((await client.post("/v1/chat/completions", json=chat("llama3-8b-dolly", stream=True))).text)
    assert "ended before its final event" in events[-1]["error"]["message"]


async def test_non_streaming_schema_serves_a_streaming_client(make_client: Any) -> None:
    body = orjson.dumps({"generated_texts": ["Hallo Welt"]})
    client, fake = make_client(lambda t, p: RawResponse(body, "application/json"))
    resp = await client.post("/v1/completions", json={"model": "flan-t5-xl", "prompt": "x", "stream": True})
    events = sse_events(resp.text)
    assert "".join(e["choices"][0]["text"] for e in events[:-1]) == "Hallo Welt"
    assert fake.calls[0].method == "invoke"


async def test_pre_stream_throttling_is_retried_then_429_with_retry_after(make_client: Any) -> None:
    def throttled(t: Target, p: Payload) -> Any:
        raise UpstreamThrottled("endpoint x is throttled", retry_after=0.01)

    client, fake = make_client(throttled)
    resp = await client.post("/v1/chat/completions", json=chat("llama3-8b", stream=True))
    assert resp.status_code == 429 and resp.headers["retry-after"] == "1"
    assert resp.json()["error"]["type"] == "rate_limit_error"
    assert len(fake.calls) == 3


async def test_prompt_over_the_neuron_budget_is_400_with_both_numbers(make_client: Any) -> None:
    client, fake = make_client(lambda t, p: RawResponse(b"{}", "application/json"))
    resp = await client.post("/v1/completions", json={"model": "llama2-13b-neuron", "prompt": "word " * 2000,
                                                      "max_tokens": 100})
    error = resp.json()["error"]
    assert resp.status_code == 400 and error["code"] == "context_length_exceeded"
    assert "2048" in error["message"] and "100" in error["message"] and fake.calls == []


@pytest.mark.parametrize(("body", "param", "fragment"), [
    (b"{not json", None, "not valid JSON"),
    (b"[1, 2]", None, "JSON object"),
    (orjson.dumps(chat("llama3-8b", temperature=3)), "temperature", "less than or equal to 2"),
    (orjson.dumps(chat("llama3-8b", bogus=1)), "bogus", "unknown parameter"),
    (orjson.dumps(chat("llama3-8b", max_tokens=5, max_completion_tokens=6)), "max_tokens", "one parameter"),
    (orjson.dumps(chat("llama3-8b", tools=[{"type": "function"}])), "tools.0.function", "Field required"),
    (orjson.dumps(chat("flan-t5-xl", tools=[{"type": "function", "function": {"name": "f"}}])), "tools",
     "cannot call tools"),
    (orjson.dumps(chat("llama3-8b", stop=["a", "b", "c", "d", "e"])), "stop", "at most 4"),
    (orjson.dumps({"model": "llama3-8b", "messages": []}), "messages", "at least 1"),
    (orjson.dumps({"model": "llama3-8b", "prompt": ["a", "b"]}), None, "one prompt"),
    (orjson.dumps(chat("llama2-7b-chat", messages=[{"role": "assistant", "content": "x"}])), "messages", "role"),
    (orjson.dumps(chat("llama3-8b", n=2, stream=True)), "n", "cannot be streamed"),
])
async def test_bad_input_is_400_naming_what_to_change(make_client: Any, body: bytes, param: str | None,
                                                      fragment: str) -> None:
    client, fake = make_client(lambda t, p: RawResponse(b"{}", "application/json"))
    path = "/v1/completions" if b'"prompt"' in body else "/v1/chat/completions"
    resp = await client.post(path, content=body, headers={"content-type": "application/json"})
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert fragment in error["message"] and error["type"] == "invalid_request_error"
    if param:
        assert error["param"] == param
    assert fake.calls == []


async def test_body_over_the_limit_is_413(make_client: Any) -> None:
    client, _ = make_client(lambda t, p: RawResponse(b"{}", "application/json"))
    resp = await client.post("/v1/completions", json={"model": "llama3-8b", "prompt": "x" * (5 * 1024 * 1024)})
    assert resp.status_code == 413 and "limit" in resp.json()["error"]["message"]


async def test_unexpected_failure_is_500_without_internals(make_client: Any) -> None:
    def broken(t: Target, p: Payload) -> Any:
        raise RuntimeError("secret-internal-detail at /srv/x.py line 3")

    client, _ = make_client(broken)
    resp = await client.post("/v1/chat/completions", json=chat("llama3-8b"))
    assert resp.status_code == 500
    assert "secret-internal-detail" not in resp.text and "Traceback" not in resp.text
    assert resp.headers["x-request-id"] in resp.json()["error"]["message"]


async def test_model_error_message_is_redacted(make_client: Any) -> None:
    def failing(t: Target, p: Payload) -> Any:
        raise UpstreamModelError("the container said no; see arn:aws:logs:us-east-1:123456789012:log-group:x")

    client, _ = make_client(failing)
    resp = await client.post("/v1/chat/completions", json=chat("llama3-8b"))
    assert resp.status_code == 502
    # the transport redacts upstream text; the gateway must not add anything back
    assert resp.json()["error"]["code"] == "model_error"


async def test_headers_on_a_successful_answer(make_client: Any) -> None:
    body = orjson.dumps([{"generated_text": " Hi!", "details": {"finish_reason": "eos_token", "generated_tokens": 2,
                                                               "prefill": [{"id": 1}, {"id": 2}, {"id": 3}]}}])
    client, _ = make_client(lambda t, p: RawResponse(body, "application/json"))
    resp = await client.post("/v1/chat/completions", json=chat("llama3-8b"))
    assert resp.headers["x-jumpgate-endpoint"] == "llama3-8b-g5"
    assert resp.headers["x-jumpgate-token-source"] == "backend"
    assert float(resp.headers["x-jumpgate-cost-usd"]) >= 0
    assert resp.json()["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


async def aiter_list(items: Sequence[bytes]) -> AsyncIterator[bytes]:
    for item in items:
        yield item


def two_endpoint_config() -> dict[str, Any]:
    data = demo_config_data("http://sim.invalid")
    tgi = {"schema": "tgi", "instance_type": "ml.g5.2xlarge", "context_length": 8192}
    data["endpoints"] = {"a": {"endpoint_name": "ep-a", **tgi}, "b": {"endpoint_name": "ep-b", **tgi}}
    data["models"] = {"m": {"targets": [{"endpoint": "a", "weight": 1000}, {"endpoint": "b", "weight": 1}]},
                      "solo": {"targets": [{"endpoint": "a"}]}}
    data["resilience"] = {"retry_budget_ratio": 0.0, "retry_budget_min_per_s": 0.0}
    return data


TGI_OK = orjson.dumps([{"generated_text": "ok", "details": {"finish_reason": "length", "generated_tokens": 1}}])


def storm_on_a(target: Target, payload: Payload) -> Any:
    if target.endpoint_name == "ep-a":
        raise UpstreamThrottled("ep-a is throttled")
    return RawResponse(TGI_OK, "application/json")


async def test_a_spent_retry_budget_never_stops_fallback_in_a_long_storm() -> None:
    fake = FakeTransport(storm_on_a)
    app = create_app(parse_config(two_endpoint_config(), source="t"), transport=fake)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as client:
        codes = [(await client.post("/v1/chat/completions", json=chat("m"))).status_code for _ in range(300)]
    assert codes == [200] * 300  # far more requests than the budget's capacity of retries


async def test_an_empty_retry_budget_means_one_attempt_on_a_lone_endpoint() -> None:
    fake = FakeTransport(storm_on_a)
    app = create_app(parse_config(two_endpoint_config(), source="t"), transport=fake)
    app.state.jumpgate.fleet["a"].budget.tokens = 0.0
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as client:
        resp = await client.post("/v1/chat/completions", json=chat("solo"))
    assert resp.status_code == 429 and len(fake.calls) == 1


async def _body_writes(app: Any, body: dict[str, Any]) -> list[bytes]:
    """Drive the ASGI app directly and return the non-empty response body messages, one per write."""
    raw = orjson.dumps(body)
    sent: list[dict[str, Any]] = []
    received = [{"type": "http.request", "body": raw, "more_body": False}]

    async def receive() -> dict[str, Any]:
        if received:
            return received.pop()
        await anyio.sleep_forever()
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions", "query_string": b"",
             "root_path": "", "headers": [(b"host", b"127.0.0.1:2"), (b"content-type", b"application/json"),
                                          (b"content-length", str(len(raw)).encode())],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 2)}
    await app(scope, receive, send)
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    return [m["body"] for m in sent[1:] if m.get("body")]


@pytest.mark.parametrize("reads", [1, 3])
async def test_tokens_of_one_upstream_read_reach_the_client_in_one_write(reads: int) -> None:
    lines = lmi_lines([" Bon", "jour", " !"])  # 3 tokens and the final event
    items = [b"".join(lines)] if reads == 1 else [b"".join(lines[:2]), lines[2], lines[3]]
    fake = FakeTransport(lambda t, p: items)
    app = create_app(parse_config(demo_config_data("http://sim.invalid"), source="<test>"), transport=fake)
    writes = await _body_writes(app, chat("llama3-8b-dolly", stream=True))
    assert len(writes) == reads  # the opening chunk rides with the first write, [DONE] with the last
    events = sse_events(b"".join(writes).decode())
    assert events[-1] == "[DONE]" and events[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(e["choices"][0]["delta"].get("content") or "" for e in events[:-1]) == " Bonjour !"
