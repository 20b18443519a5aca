"""JumpgateClient (sync) against a live gateway and simulator: every API, streaming, typed errors, retries."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from clients.jumpgate_client import (
    InvalidRequestError,
    JumpgateClient,
    NotFoundError,
    RateLimitError,
    RequestTooLargeError,
    RetryPolicy,
    ServiceUnavailableError,
    Stream,
    TimeoutError,
    UpstreamError,
)
from service.config.demo import DEMO_EMBEDDING_MODELS, DEMO_MODELS
from tests.clients.conftest import TIMEOUT_MODEL, Sim, metric_value
from tests.procs import Proc

HELLO = [{"role": "user", "content": "Say hello."}]
FAST_RETRY = RetryPolicy(max_retries=2, base=0.01, max_backoff=0.05)


@pytest.fixture
def client(gateway_url: str) -> Iterator[JumpgateClient]:
    with JumpgateClient(gateway_url, retry=FAST_RETRY, timeout=30) as c:
        yield c


@pytest.mark.parametrize("model", sorted(DEMO_MODELS))
def test_chat_answers_for_every_demo_model(client: JumpgateClient, sim: Sim, model: str) -> None:
    answer = client.chat(model, HELLO, max_tokens=8)
    assert answer["object"] == "chat.completion"
    assert answer["model"] == model
    assert answer["choices"][0]["message"]["role"] == "assistant"
    assert answer["choices"][0]["message"]["content"].strip()
    assert answer["usage"]["completion_tokens"] > 0  # estimated for some schemas: may exceed max_tokens
    assert len(sim.requests()) == 1


def test_base_url_may_end_in_v1_like_the_openai_sdk(gateway_url: str) -> None:
    with JumpgateClient(gateway_url + "/v1/") as c:
        assert c.base_url == gateway_url
        assert {m["id"] for m in c.models()} == {*DEMO_MODELS, *DEMO_EMBEDDING_MODELS, TIMEOUT_MODEL}


def test_models_lists_endpoints_with_schema_and_price(client: JumpgateClient) -> None:
    models = {m["id"]: m for m in client.models()}
    assert set(DEMO_MODELS) <= set(models)
    endpoint = models["llama2-13b-neuron"]["endpoints"][0]
    assert endpoint["id"] == DEMO_MODELS["llama2-13b-neuron"]
    assert endpoint["schema"] == "neuron"
    assert endpoint["context_length"] == 2048
    assert endpoint["price_per_hour_usd"] > 0


def test_chat_stream_yields_openai_chunks_and_stops_at_done(client: JumpgateClient) -> None:
    stream = client.chat("llama3-8b", HELLO, max_tokens=6, stream=True, stream_options={"include_usage": True})
    assert isinstance(stream, Stream)
    assert stream.headers["x-jumpgate-endpoint"] == "llama3-8b-g5"
    chunks = list(stream)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text.strip()
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert finishes == ["length"]
    assert chunks[-1]["usage"]["completion_tokens"] == 6
    assert stream.response.is_closed


def test_complete_plain_and_streamed(client: JumpgateClient) -> None:
    answer = client.complete("llama2-13b-neuron", "Once upon a time", max_tokens=5)
    assert answer["object"] == "text_completion"
    assert answer["choices"][0]["text"].strip()
    with client.complete("llama2-13b-neuron", "Once upon a time", max_tokens=5, stream=True) as stream:
        chunks = list(stream)
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert sum(1 for c in chunks if c["choices"][0]["text"]) == 5


def test_generate_sends_native_body_and_returns_usage_and_cost(client: JumpgateClient, sim: Sim) -> None:
    answer = client.generate("llama3-8b-dolly", "Summarise the text.", context="Rivers flow to the sea.",
                             max_new_tokens=7, top_k=20, request_id="client-test-generate")
    assert answer["id"] == "client-test-generate"
    assert answer["endpoint"] == "llama3-8b-dolly-ft"
    assert answer["usage"]["completion_tokens"] == 7
    assert answer["usage"]["source"]
    assert answer["cost_usd"] > 0
    (seen,) = sim.requests()
    prompt = str(seen["body_json"]["inputs"])
    # the Dolly template got the native `inputs` as the instruction and `context` as its input
    assert "Summarise the text." in prompt and "Rivers flow to the sea." in prompt
    assert seen["body_json"]["parameters"]["top_k"] == 20


def test_generate_stream_ends_with_a_final_chunk(client: JumpgateClient) -> None:
    chunks = list(client.generate("llama3-8b", "Hello", max_new_tokens=4, stream=True))
    tokens, final = chunks[:-1], chunks[-1]
    assert len(tokens) == 4 and all(t["text"] for t in tokens)
    assert final["finish_reason"] == "length"
    assert final["endpoint"] == "llama3-8b-g5"
    assert final["usage"]["completion_tokens"] == 4


def test_unknown_model_is_not_found_with_request_id(client: JumpgateClient) -> None:
    with pytest.raises(NotFoundError) as caught:
        client.chat("no-such-model", HELLO, request_id="client-test-404")
    err = caught.value
    assert (err.status, err.type, err.code) == (404, "not_found_error", "model_not_found")
    assert err.request_id == "client-test-404"
    assert "no-such-model" in err.message


def test_unsupported_parameter_names_the_parameter(client: JumpgateClient, sim: Sim) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        client.chat("llama3-8b", HELLO, num_beams=4)
    assert caught.value.status == 400
    assert caught.value.param == "num_beams"
    assert caught.value.request_id
    assert sim.requests() == []


def test_context_budget_overflow_is_a_400_on_max_tokens(client: JumpgateClient) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        client.complete("llama2-13b-neuron", "word " * 3000, max_tokens=128)
    assert caught.value.code == "context_length_exceeded"
    assert caught.value.param == "max_tokens"


def test_oversized_body_is_request_too_large(client: JumpgateClient) -> None:
    with pytest.raises(RequestTooLargeError) as caught:
        client.complete("llama3-8b", "x" * (5 * 1024 * 1024))
    assert caught.value.status == 413


def test_throttled_call_is_retried_until_it_succeeds(client: JumpgateClient, sim: Sim, gateway_url: str) -> None:
    before = metric_value(gateway_url, "jumpgate_requests_total", model="llama3-8b", status="429")
    # the gateway makes 3 upstream attempts per call: the client's first call ends in 429, its retry succeeds
    sim.fault(throttle_next=3)
    answer = client.chat("llama3-8b", HELLO, max_tokens=4)
    assert answer["choices"][0]["message"]["content"]
    assert len(sim.requests()) == 4
    assert metric_value(gateway_url, "jumpgate_requests_total", model="llama3-8b", status="429") == before + 1


def test_throttled_stream_is_retried_before_its_first_byte(client: JumpgateClient, sim: Sim) -> None:
    sim.fault(throttle_next=3)
    chunks = list(client.chat("llama3-8b", HELLO, max_tokens=4, stream=True))
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert len(sim.requests()) == 4


def test_retries_are_bounded(gateway_url: str, sim: Sim) -> None:
    sim.fault(throttle_next=1000)
    with JumpgateClient(gateway_url, retry=RetryPolicy(max_retries=1, base=0.01)) as c, \
            pytest.raises(RateLimitError) as caught:
        c.chat("llama3-8b", HELLO, max_tokens=4)
    assert caught.value.code == "upstream_throttled"
    assert len(sim.requests()) == 2 * 3  # two client attempts, three upstream attempts each


def test_no_retry_when_disabled(gateway_url: str, sim: Sim) -> None:
    sim.fault(throttle_next=1000)
    with JumpgateClient(gateway_url, retry=RetryPolicy(max_retries=0)) as c, pytest.raises(RateLimitError):
        c.chat("llama3-8b", HELLO, max_tokens=4)
    assert len(sim.requests()) == 3


def test_gateway_429_carries_retry_after_and_the_client_waits_for_it(gateway_url: str, sim: Sim) -> None:
    sim.fault(throttle_next=3)
    started = time.monotonic()
    with JumpgateClient(gateway_url, retry=RetryPolicy(max_retries=0)) as c, pytest.raises(RateLimitError) as caught:
        c.chat("llama3-8b", HELLO, max_tokens=4)
    assert caught.value.retry_after is not None
    sim.fault(throttle_next=3)
    with JumpgateClient(gateway_url, retry=RetryPolicy(max_retries=1, base=0.0)) as c:
        c.chat("llama3-8b", HELLO, max_tokens=4)
    assert time.monotonic() - started >= caught.value.retry_after


def test_model_error_is_an_upstream_error_and_not_retried(client: JumpgateClient, sim: Sim) -> None:
    sim.fault(error_next=1, error_kind="model", error_status=500)
    with pytest.raises(UpstreamError) as caught:
        client.chat("llama3-8b", HELLO, max_tokens=4)
    assert caught.value.status == 502
    assert caught.value.code == "model_error"
    assert len(sim.requests()) == 1


def test_mid_stream_failure_raises_and_is_never_retried(client: JumpgateClient, sim: Sim) -> None:
    sim.fault(stream_error_after=2)
    received = []
    stream = client.chat("llama3-8b", HELLO, max_tokens=16, stream=True)
    with pytest.raises(UpstreamError) as caught:
        for chunk in stream:
            received.append(chunk)
    assert caught.value.code == "stream_error"
    assert caught.value.status == 502
    assert caught.value.request_id == stream.request_id
    assert 1 <= len(received) < 16
    assert stream.response.is_closed
    assert len(sim.requests()) == 1


def test_upstream_timeout_is_a_504(client: JumpgateClient, sim: Sim) -> None:
    sim.fault(delay_s=2.0)
    with pytest.raises(TimeoutError) as caught:
        client.chat(TIMEOUT_MODEL, HELLO, max_tokens=4)
    assert caught.value.status == 504
    assert caught.value.code == "upstream_timeout"


def test_503_is_retried_then_raised(credentialless_gateway: Proc) -> None:
    url = credentialless_gateway.url
    before = metric_value(url, "jumpgate_requests_total", model="llama3-8b", status="503")
    with JumpgateClient(url, retry=RetryPolicy(max_retries=2, base=0.01)) as c, \
            pytest.raises(ServiceUnavailableError) as caught:
        c.chat("llama3-8b", HELLO, max_tokens=4)
    assert caught.value.status == 503
    assert caught.value.code == "no_endpoint_available"
    assert "credentials" in caught.value.message
    # three calls reached the gateway: the first and two retries
    assert metric_value(url, "jumpgate_requests_total", model="llama3-8b", status="503") == before + 3
