"""The end of every request: record the trace once and charge the tenant. Called from the one place
each kind of response ends (the route for JSON answers, the SSE generator for streams)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from service.telemetry.logs import log_request
from service.telemetry.metrics import Metrics
from service.telemetry.trace import Trace
from service.telemetry.tracing import finish_request
from service.tenancy import Limiter, Tenant


@dataclass
class Finisher:
    metrics: Metrics
    limiter: Limiter
    tenant: Tenant | None
    trace: Trace
    log_prompts: bool = False

    async def finish(self) -> None:
        t = self.trace
        t.finished = time.perf_counter()
        self.metrics.record(t)
        finish_request(t)
        log_request(t, t.request_id, prompt=t.prompt, completion=t.completion)
        if self.tenant is not None and (t.usage is not None or t.cost_usd):
            tokens = t.usage.total_tokens if t.usage is not None else 0
            await self.limiter.settle(self.tenant, tokens, t.cost_usd)
