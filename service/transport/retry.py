"""Retrying one upstream call: exponential backoff with full jitter, only for errors marked retryable.

The caller passes a zero-argument coroutine factory so that every attempt builds (and signs) a new
request; SigV4 signatures embed a timestamp and must not be replayed.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from service.errors import UpstreamError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    base_delay_s: float = 0.05
    max_delay_s: float = 2.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.base_delay_s < 0 or self.max_delay_s < 0:
            raise ValueError("retry delays must not be negative")

    def delay(self, failed_attempt: int, retry_after: float | None = None,
              rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait after attempt `failed_attempt` (1-based) failed.

        Full jitter (uniform in [0, cap]) spreads the retries of many concurrent callers; a server-sent
        retry_after wins over the computed value because the server knows when it will have capacity.
        """
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay_s)
        cap = min(self.max_delay_s, self.base_delay_s * 2.0 ** (failed_attempt - 1))
        return cap * rand()


async def call_with_retries(fn: Callable[[], Awaitable[T]], policy: RetryPolicy, *,
                            on_retry: Callable[[UpstreamError, int], None] | None = None,
                            sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> tuple[T, int]:
    """Await `fn()` until it succeeds; return (result, attempts).

    Only UpstreamError with `retryable` True is retried. The error finally raised carries `attempts`.
    `on_retry(error, attempt)` runs before each backoff, with the number of the attempt that failed.
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            return await fn(), attempt
        except UpstreamError as exc:
            exc.attempts = attempt
            if not exc.retryable or attempt >= policy.max_attempts:
                raise
            if on_retry is not None:
                on_retry(exc, attempt)
            await sleep(policy.delay(attempt, exc.retry_after))
