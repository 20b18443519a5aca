"""AsyncJumpgateClient against the live gateway: the same contract as the sync client, plus concurrency."""

from __future__ import annotations

import asyncio

import pytest

from clients.jumpgate_client import (
    AsyncJumpgateClient,
    AsyncStream,
    InvalidRequestError,
    NotFoundError,
    RetryPolicy,
    ServiceUnavailableError,
    UpstreamError,
)
from service.config.demo import DEMO_EMBEDDING_MODELS, DEMO_MODELS
from tests.clients.conftest import TIMEOUT_MODEL, Sim
from tests.procs import Proc

HELLO = [{"role": "user", "content": "Say hello."}]
FAST_RETRY = RetryPolicy(max_retries=2, base=0.01, max_backoff=0.05)


async def test_chat_complete_generate_and_models(gateway_url: str, sim: Sim) -> None:
    async with AsyncJumpgateClient(gateway_url, retry=FAST_RETRY) as client:
        chat = await client.chat("llama2-7b-chat", HELLO, max_tokens=5)
        completion = await client.complete("llama3-8b", "Once upon a time", max_tokens=5)
        native = await client.generate("flan-t5-xl", "Translate to German: hello", max_new_tokens=5)
        models = await client.models()
    assert chat["choices"][0]["message"]["content"].strip()
    assert completion["choices"][0]["text"].strip()
    assert native["endpoint"] == "flan-t5-xl-g5" and native["generations"][0]["text"].strip()
    assert {m["id"] for m in models} == {*DEMO_MODELS, *DEMO_EMBEDDING_MODELS, TIMEOUT_MODEL}
    assert len(sim.requests()) == 3


async def test_streams_are_async_iterators(gateway_url: str) -> None:
    async with AsyncJumpgateClient(gateway_url) as client:
        stream = await client.chat("llama3-8b-messages", HELLO, max_tokens=5, stream=True)
        assert isinstance(stream, AsyncStream)
        chunks = [chunk async for chunk in stream]
        assert chunks[-1]["choices"][0]["finish_reason"] == "length"
        async with await client.generate("llama3-8b", "Hi", max_new_tokens=3, stream=True) as native:
            final = [chunk async for chunk in native][-1]
    assert final["usage"]["completion_tokens"] == 3
    assert stream.response.is_closed and native.response.is_closed


async def test_concurrent_calls_share_one_client(gateway_url: str, sim: Sim) -> None:
    async with AsyncJumpgateClient(gateway_url) as client:
        answers = await asyncio.gather(*(
            client.chat("llama3-8b", [{"role": "user", "content": f"question {i}"}], max_tokens=3,
                        request_id=f"async-{i}")
            for i in range(8)))
    assert sorted(a["id"] for a in answers) == sorted(f"chatcmpl-async-{i}" for i in range(8))
    assert len(sim.requests()) == 8


async def test_typed_errors(gateway_url: str) -> None:
    async with AsyncJumpgateClient(gateway_url) as client:
        with pytest.raises(NotFoundError) as not_found:
            await client.generate("no-such-model", "Hi", request_id="async-404")
        with pytest.raises(InvalidRequestError) as invalid:
            await client.generate("llama3-8b", "Hi", temperature=7)
    assert not_found.value.request_id == "async-404"
    assert invalid.value.param is not None and "temperature" in invalid.value.param


async def test_throttling_is_retried(gateway_url: str, sim: Sim) -> None:
    sim.fault(throttle_next=3)
    async with AsyncJumpgateClient(gateway_url, retry=FAST_RETRY) as client:
        stream = await client.chat("llama3-8b", HELLO, max_tokens=3, stream=True)
        chunks = [c async for c in stream]
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert len(sim.requests()) == 4


async def test_mid_stream_error_event_raises(gateway_url: str, sim: Sim) -> None:
    sim.fault(stream_error_after=1)
    async with AsyncJumpgateClient(gateway_url, retry=FAST_RETRY) as client:
        stream = await client.generate("llama3-8b", "Hi", max_new_tokens=10, stream=True)
        with pytest.raises(UpstreamError) as caught:
            async for _ in stream:
                pass
    assert caught.value.code == "stream_error"
    assert len(sim.requests()) == 1


async def test_service_unavailable(credentialless_gateway: Proc) -> None:
    async with AsyncJumpgateClient(credentialless_gateway.url, retry=RetryPolicy(max_retries=1, base=0.01)) as c:
        with pytest.raises(ServiceUnavailableError) as caught:
            await c.chat("llama3-8b", HELLO)
    assert caught.value.status == 503
