"""Streaming end to end: OpenAI SDK streams through jumpgate from the simulator's real event streams."""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from service.config.demo import DEMO_MODELS
from tests.e2e.conftest import Sim

pytestmark = pytest.mark.e2e

MESSAGES = [{"role": "user", "content": "Write a short line about the sea."}]
SEEDED = sorted(m for m in DEMO_MODELS if m != "llama2-7b-chat")  # the Meta container takes no seed


def streamed_text(client: OpenAI, **kw: Any) -> tuple[str, str | None]:
    text, finish = [], None
    for chunk in client.chat.completions.create(stream=True, **kw):
        if chunk.choices:
            text.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
    return "".join(text), finish


@pytest.mark.parametrize("model", sorted(DEMO_MODELS))
def test_greedy_stream_equals_the_non_streaming_answer(model: str, client: OpenAI) -> None:
    kw = {"model": model, "messages": MESSAGES, "max_tokens": 24, "temperature": 0}
    whole = client.chat.completions.create(**kw).choices[0]  # type: ignore[call-overload]
    text, finish = streamed_text(client, **kw)
    assert text == whole.message.content and text
    assert finish == whole.finish_reason


@pytest.mark.parametrize("model", SEEDED)
def test_seeded_sampling_stream_equals_the_non_streaming_answer(model: str, client: OpenAI) -> None:
    kw = {"model": model, "messages": MESSAGES, "max_tokens": 24, "temperature": 0.8, "seed": 1234}
    whole = client.chat.completions.create(**kw).choices[0].message.content  # type: ignore[call-overload]
    assert streamed_text(client, **kw)[0] == whole


@pytest.mark.parametrize("model", sorted(DEMO_MODELS))
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
def test_raw_stream_ends_with_done(model: str, path: str, gateway_url: str) -> None:
    body: dict[str, Any] = {"model": model, "max_tokens": 8, "stream": True,
                            "stream_options": {"include_usage": True}}
    body |= {"messages": MESSAGES} if "chat" in path else {"prompt": "The sea"}
    with httpx.stream("POST", gateway_url + path, json=body, timeout=30) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in resp.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    assert '"usage"' in lines[-2] and '"choices":[]' in lines[-2]


def test_include_usage_is_exact_on_tgi(client: OpenAI) -> None:
    kw = {"model": "llama3-8b", "messages": MESSAGES, "max_tokens": 10, "temperature": 0}
    whole = client.chat.completions.create(**kw)  # type: ignore[call-overload]
    chunks = list(client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kw))
    assert chunks[-1].usage is not None and not chunks[-1].choices
    assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_native_generate_streams(gateway_url: str) -> None:
    body = {"model": "llama3-8b-dolly", "inputs": "Say hi", "parameters": {"max_new_tokens": 8}, "stream": True}
    with httpx.stream("POST", gateway_url + "/v1/generate", json=body, timeout=30) as resp:
        lines = [line for line in resp.iter_lines() if line]
    assert lines[-1] == "data: [DONE]" and '"finish_reason"' in lines[-2] and '"source"' in lines[-2]


@pytest.mark.parametrize("kind", ["ModelStreamError", "container"])
def test_mid_stream_error_reaches_the_client_as_an_error(kind: str, client: OpenAI, sim: Sim) -> None:
    sim.fault(endpoint="jumpgate-demo-tgi-llama3-8b", stream_error_after=3, stream_error_kind=kind)
    got: list[str] = []
    with pytest.raises(openai.APIError) as err:
        for chunk in client.chat.completions.create(model="llama3-8b", messages=MESSAGES, max_tokens=40,
                                                    temperature=0, stream=True):
            if chunk.choices:
                got.append(chunk.choices[0].delta.content or "")
    assert err.value.message
    assert "".join(got)  # some tokens arrived before the failure


def inflight(gateway_url: str, endpoint: str) -> float:
    for line in httpx.get(gateway_url + "/metrics").text.splitlines():
        if line.startswith(f'jumpgate_inflight_requests{{endpoint="{endpoint}"}}'):
            return float(line.split()[-1])
    raise AssertionError("no in-flight series for " + endpoint)


def test_client_disconnect_closes_the_upstream_stream(gateway_url: str, sim: Sim) -> None:
    before = sim.http.get("/_sim/stats").json()["jumpgate-demo-tgi-llama3-8b"]["streams_disconnected"]
    sim.http.post("/_sim/config", json={"latency": "realistic", "time_scale": 1.0}).raise_for_status()
    try:
        body = {"model": "llama3-8b", "messages": MESSAGES, "max_tokens": 400, "stream": True, "temperature": 0}
        with httpx.stream("POST", gateway_url + "/v1/chat/completions", json=body, timeout=30) as resp:
            chunks = resp.iter_lines()
            for _ in range(6):
                next(chunks)
            assert inflight(gateway_url, "llama3-8b-g5") == 1
        deadline = time.monotonic() + 60  # bounds a hang only: the loop ends as soon as the state is reached
        while time.monotonic() < deadline:
            stats = sim.http.get("/_sim/stats").json()["jumpgate-demo-tgi-llama3-8b"]
            if stats["streams_disconnected"] == before + 1 and inflight(gateway_url, "llama3-8b-g5") == 0:
                break
            time.sleep(0.05)
        assert stats["streams_disconnected"] == before + 1 and stats["in_flight"] == 0
        assert inflight(gateway_url, "llama3-8b-g5") == 0
    finally:
        sim.http.post("/_sim/config", json={"latency": "zero"}).raise_for_status()
