"""call_with_retries: what is retried, how long it waits, and what it reports; also over the real transport."""

from __future__ import annotations

import json

import pytest
from aiohttp import web

from service.errors import (
    InvalidRequest,
    UpstreamError,
    UpstreamModelError,
    UpstreamRejected,
    UpstreamThrottled,
    UpstreamUnavailable,
)
from service.transport.base import Payload, Target
from service.transport.retry import RetryPolicy, call_with_retries
from service.transport.sagemaker import SageMakerTransport
from tests.transport.upstream import FakeRuntime


class Clock:
    """A fake sleep that records the delays asked for."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)


def failing(*errors: Exception, result: str = "ok"):
    remaining = list(errors)
    calls = []

    async def fn() -> str:
        calls.append(1)
        if remaining:
            raise remaining.pop(0)
        return result

    fn.calls = calls  # type: ignore[attr-defined]
    return fn


async def test_throttled_twice_then_success_takes_three_attempts() -> None:
    clock, seen = Clock(), []
    fn = failing(UpstreamThrottled("busy"), UpstreamThrottled("busy"))
    result, attempts = await call_with_retries(fn, RetryPolicy(), sleep=clock.sleep,
                                               on_retry=lambda err, n: seen.append((type(err), n)))
    assert (result, attempts) == ("ok", 3)
    assert seen == [(UpstreamThrottled, 1), (UpstreamThrottled, 2)]
    assert len(clock.delays) == 2
    assert 0 <= clock.delays[0] <= 0.05 and 0 <= clock.delays[1] <= 0.1


@pytest.mark.parametrize("error", [UpstreamRejected("no"), UpstreamModelError("bad input", original_status=422)])
async def test_non_retryable_errors_are_not_retried(error: UpstreamError) -> None:
    clock = Clock()
    fn = failing(error)
    with pytest.raises(type(error)) as info:
        await call_with_retries(fn, RetryPolicy(), sleep=clock.sleep)
    assert info.value.attempts == 1
    assert len(fn.calls) == 1 and clock.delays == []


async def test_instance_level_retryable_false_is_honoured() -> None:
    error = UpstreamUnavailable("dependency down")
    error.retryable = False
    with pytest.raises(UpstreamUnavailable):
        await call_with_retries(failing(error), RetryPolicy(), sleep=Clock().sleep)


async def test_max_attempts_is_honoured_and_the_last_error_raised() -> None:
    clock = Clock()
    errors = [UpstreamUnavailable(f"down {i}") for i in range(5)]
    fn = failing(*errors)
    with pytest.raises(UpstreamUnavailable, match="down 3") as info:
        await call_with_retries(fn, RetryPolicy(max_attempts=4), sleep=clock.sleep)
    assert info.value.attempts == 4
    assert len(fn.calls) == 4 and len(clock.delays) == 3


async def test_other_exceptions_propagate_untouched() -> None:
    fn = failing(InvalidRequest("bad"))
    with pytest.raises(InvalidRequest):
        await call_with_retries(fn, RetryPolicy(), sleep=Clock().sleep)
    assert len(fn.calls) == 1


async def test_retry_after_is_honoured_and_capped() -> None:
    clock = Clock()
    fn = failing(UpstreamThrottled("busy", retry_after=0.7), UpstreamThrottled("busy", retry_after=30))
    await call_with_retries(fn, RetryPolicy(max_delay_s=2.0), sleep=clock.sleep)
    assert clock.delays == [0.7, 2.0]


def test_backoff_is_exponential_with_full_jitter_and_capped() -> None:
    policy = RetryPolicy(base_delay_s=0.1, max_delay_s=0.5)
    assert [policy.delay(n, rand=lambda: 1.0) for n in (1, 2, 3, 4)] == [0.1, 0.2, 0.4, 0.5]
    assert policy.delay(3, rand=lambda: 0.0) == 0.0
    assert policy.delay(2, rand=lambda: 0.5) == pytest.approx(0.1)


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)


async def test_retries_over_the_real_transport_sign_each_attempt(runtime: FakeRuntime,
                                                                  transport: SageMakerTransport) -> None:
    async def flaky(request: web.Request) -> web.StreamResponse:
        if runtime.hits["ep"] <= 2:
            return web.json_response({"message": "Rate exceeded"}, status=400,
                                     headers={"x-amzn-ErrorType": "ThrottlingException"})
        return web.json_response({"generated_text": "done"})

    runtime.handlers["ep"] = flaky
    clock = Clock()
    response, attempts = await call_with_retries(
        lambda: transport.invoke(Target("ep"), Payload(b"{}")), RetryPolicy(), sleep=clock.sleep)
    assert attempts == 3 and json.loads(response.body) == {"generated_text": "done"}
    assert all("authorization" in seen.headers for seen in runtime.received)
    assert len(runtime.received) == 3
