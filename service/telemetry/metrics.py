"""Every Prometheus series of the metrics contract (DESIGN.md), its labels and buckets, in one table.

`Metrics.record(trace)` is called once per request; gauges (in-flight, endpoint price) and counters of
events inside a request (retries, upstream errors, fallbacks) have their own small methods. Label
values are bounded: configured model and endpoint ids, API names, status codes, error codes; an
unconfigured model is `unknown`, never the client's string.

Buckets: requests and upstream calls span milliseconds to minutes (LLM answers take seconds, long
generations minutes); gateway overhead is sub-millisecond to 100 ms; time to first token 10 ms to 30 s;
time per output token 1 ms to 1 s.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

from service.telemetry.amortized import TokenWindow
from service.telemetry.trace import Trace

REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30)
TPOT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1)


@dataclass(frozen=True, slots=True)
class EndpointSeries:
    """A configured endpoint, as its series are labelled."""

    endpoint: str
    instance_type: str
    accelerator: str
    price_per_hour: float  # x instance count


@dataclass(frozen=True, slots=True)
class RouteSeries:
    """A model's target endpoint, and how its tokens are counted."""

    model: str
    endpoint: str
    token_source: str


def _credential_refresh_counter(registry: CollectorRegistry) -> Counter:
    """source: a credential source's bounded label (chain, static, profile:<name>, role:<role name>); result:
    success | failure (service/transport/credentials.py)."""
    return Counter("jumpgate_credential_refresh", "AWS credential fetches and renewals", ["source", "result"],
                   registry=registry)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None, window: TokenWindow | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.window = window or TokenWindow()
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        r = self.registry
        self.requests = Counter("jumpgate_requests", "Requests by outcome", ["model", "endpoint", "api", "status"],
                                registry=r)
        self.request_duration = Histogram(
            "jumpgate_request_duration_seconds", "Whole request, as the client saw it",
            ["model", "endpoint", "api", "stream"], buckets=REQUEST_BUCKETS, registry=r)
        self.upstream_duration = Histogram(
            "jumpgate_upstream_duration_seconds", "SageMaker calls, all attempts of a request",
            ["endpoint", "schema", "accelerator", "region"], buckets=REQUEST_BUCKETS, registry=r)
        self.overhead = Histogram("jumpgate_overhead_seconds", "Gateway time minus upstream time", ["api"],
                                  buckets=OVERHEAD_BUCKETS, registry=r)
        self.ttft = Histogram("jumpgate_time_to_first_token_seconds", "Streaming: request start to first token",
                              ["model", "endpoint", "accelerator"], buckets=TTFT_BUCKETS, registry=r)
        self.tpot = Histogram("jumpgate_time_per_output_token_seconds", "Streaming: mean time between tokens",
                              ["model", "endpoint", "accelerator"], buckets=TPOT_BUCKETS, registry=r)
        self.tokens = Counter("jumpgate_tokens", "Tokens by direction and how they were counted",
                              ["model", "endpoint", "direction", "source"], registry=r)
        self.cost = Counter("jumpgate_cost_usd", "Attributed cost (see README: Cost)", ["model", "endpoint", "tenant"],
                            registry=r)
        # multiprocess_mode only matters with --workers N: the price is the same in every worker (max), and
        # in-flight calls add up over the workers that are alive (livesum).
        self.price = Gauge("jumpgate_endpoint_price_per_hour_usd", "Hourly price x instance count",
                           ["endpoint", "instance_type", "accelerator"], registry=r, multiprocess_mode="max")
        self.inflight = Gauge("jumpgate_inflight_requests", "Upstream calls in flight", ["endpoint"], registry=r,
                              multiprocess_mode="livesum")
        self.upstream_errors = Counter("jumpgate_upstream_errors", "Failed upstream attempts",
                                       ["endpoint", "error", "region"], registry=r)
        self.retries = Counter("jumpgate_retries", "Upstream retries", ["endpoint", "reason"], registry=r)
        self.fallbacks = Counter("jumpgate_fallbacks", "Requests moved to another endpoint",
                                 ["model", "from_endpoint", "to_endpoint"], registry=r)
        self.shadow_cost = Counter("jumpgate_shadow_cost_usd", "Attributed cost of shadow requests",
                                   ["model", "endpoint"], registry=r)
        self.config_reloads = Counter("jumpgate_config_reloads", "Config reloads on SIGHUP", ["result"], registry=r)
        self.limiter_errors = Counter("jumpgate_limiter_errors", "Rate limiter backend (Redis) unreachable",
                                      registry=r)
        self.rejected = Counter("jumpgate_rejected", "Requests refused by the gateway", ["model", "reason"],
                                registry=r)
        self.abandoned = Counter("jumpgate_abandoned", "Requests ended by their own side, not the endpoint's: the "
                                 "request deadline, a client disconnect, the drain deadline", ["model", "endpoint",
                                                                                               "reason"], registry=r)
        self.throttle_streak = Gauge("jumpgate_endpoint_throttle_streak", "Throttles in a row (0: not throttling); "
                                     "while > 0 routing tries the endpoint after its siblings", ["endpoint"],
                                     registry=r, multiprocess_mode="max")
        self.credential_refresh = _credential_refresh_counter(r)
        self.scale_waits = Counter("jumpgate_scale_from_zero_waits", "Pauses waiting for an inference component "
                                   "scaled to zero to get a copy", ["endpoint"], registry=r)

    def exposition(self) -> bytes:
        """The text for GET /metrics. With `jumpgate serve --workers N` every worker writes its samples to
        PROMETHEUS_MULTIPROC_DIR and any worker answers the scrape with all of them added up."""
        return generate_latest(self.scrape_registry())

    def scrape_registry(self) -> CollectorRegistry:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # untyped upstream
            return registry
        return self.registry

    def describe(self, endpoints: Iterable[EndpointSeries], routes: Iterable[RouteSeries]) -> None:
        """Set the price gauges and create every configured series at zero before traffic: a counter series
        born with its first request would hide that request from rate() and increase() after each restart."""
        for ep in endpoints:
            self.price.labels(ep.endpoint, ep.instance_type, ep.accelerator).set(ep.price_per_hour)
            self.inflight.labels(ep.endpoint).set(0)
        for route in routes:
            for direction in ("prompt", "completion"):
                self.tokens.labels(route.model, route.endpoint, direction, route.token_source)
            for api in ("chat", "completions", "generate"):
                self.requests.labels(route.model, route.endpoint, api, "200")
            self.cost.labels(route.model, route.endpoint, "anonymous")

    def record(self, t: Trace) -> None:
        total = (t.finished or t.started) - t.started
        child = self._child
        child(self.requests, t.model, t.endpoint, t.api, str(t.status)).inc()
        child(self.request_duration, t.model, t.endpoint, t.api, "true" if t.stream else "false").observe(total)
        if t.rejected is not None:
            child(self.rejected, t.model, t.rejected).inc()
        if t.abandoned is not None:
            child(self.abandoned, t.model, t.endpoint, t.abandoned).inc()
        if t.endpoint == "none":
            return
        child(self.upstream_duration, t.endpoint, t.schema, t.accelerator, t.region).observe(t.upstream_seconds)
        child(self.overhead, t.api).observe(max(0.0, total - t.upstream_seconds))
        if t.first_token_seconds is not None:
            child(self.ttft, t.model, t.endpoint, t.accelerator).observe(t.first_token_seconds)
        if t.per_token_seconds is not None:
            child(self.tpot, t.model, t.endpoint, t.accelerator).observe(t.per_token_seconds)
        if t.usage is not None:
            source = t.usage.source.value
            child(self.tokens, t.model, t.endpoint, "prompt", source).inc(t.usage.prompt_tokens)
            child(self.tokens, t.model, t.endpoint, "completion", source).inc(t.usage.completion_tokens)
            self.window.add(t.endpoint, t.usage.total_tokens)
        if t.cost_usd:
            child(self.cost, t.model, t.endpoint, t.tenant).inc(t.cost_usd)

    def count_credential_refresh(self, source: str, result: str) -> None:
        """The credential refresher's hook (transport/credentials.py): result is success or failure. Called from
        the refresher thread; prometheus-client counters are thread-safe."""
        self.credential_refresh.labels(source, result).inc()

    def _child(self, metric: Any, *labels: str) -> Any:
        """`metric.labels(...)` with the child cached: label values are bounded, so the cache is too."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found
