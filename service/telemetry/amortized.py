"""Amortized cost per 1M tokens per endpoint: the endpoint's hourly price spread over the tokens it served
in a sliding window (one hour in one-minute buckets by default).

    cost per 1M tokens = price_per_hour x instance_count x covered_hours / tokens_in_window x 1e6

`covered_hours` is the window, or the process uptime while that is shorter, so a fresh process does
not charge an hour of price to a minute of traffic. Prompt and completion tokens both count: the
instance is paid for both. With no tokens in the window the value is undefined (None): an idle endpoint
costs money but has no per-token price. Each worker process keeps its own window; the PromQL recording
rule over `jumpgate_tokens_total` gives the fleet-wide number.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Callable


class TokenWindow:
    def __init__(self, window_s: float = 3600.0, bucket_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self.bucket_s = bucket_s
        self.clock = clock
        self.started = clock()
        self._buckets: dict[str, deque[list[float]]] = defaultdict(deque)  # [bucket start, tokens]

    def add(self, endpoint: str, tokens: int) -> None:
        now = self.clock()
        start = now - (now - self.started) % self.bucket_s
        buckets = self._buckets[endpoint]
        if buckets and buckets[-1][0] == start:
            buckets[-1][1] += tokens
        else:
            buckets.append([start, float(tokens)])
        self._expire(buckets, now)

    def tokens(self, endpoint: str) -> float:
        buckets = self._buckets.get(endpoint)
        if not buckets:
            return 0.0
        self._expire(buckets, self.clock())
        return sum(tokens for _, tokens in buckets)

    def cost_per_million(self, endpoint: str, price_per_hour: float) -> float | None:
        tokens = self.tokens(endpoint)
        if tokens <= 0:
            return None
        covered_hours = min(self.window_s, self.clock() - self.started) / 3600.0
        return price_per_hour * covered_hours / tokens * 1e6

    def _expire(self, buckets: deque[list[float]], now: float) -> None:
        while buckets and buckets[0][0] + self.bucket_s <= now - self.window_s:
            buckets.popleft()
