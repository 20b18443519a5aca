"""Shadow traffic: a sampled copy of a model's requests also goes to its `shadow` endpoint (e.g. a fine-tuned
variant evaluated against its base), after the primary answered, in the background.

The client's answer is never delayed or changed: the gateway offers a `ShadowSample` once the primary result
exists; the shadow call runs as its own task, and its failures are logged, never raised. Each comparison is one
JSON line: both outputs, latencies and token counts; the prompt only with `include_prompts: true`. Shadow cost
is counted in `jumpgate_shadow_cost_usd_total`, apart from the attributed cost of clients.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson

from service.canonical import GenerationRequest, Usage
from service.config.resilience import ShadowLogConfig
from service.errors import GatewayError
from service.pipeline.attempts import Attempts
from service.pipeline.catalog import Endpoint, Model
from service.pipeline.plan import plan_on
from service.pipeline.results import answer
from service.telemetry.metrics import Metrics

log = logging.getLogger("jumpgate.shadow")


@dataclass(frozen=True, slots=True)
class ShadowSample:
    """A primary request that answered, offered for shadowing."""

    request: GenerationRequest
    model: Model
    shadow: Endpoint
    primary_endpoint: str
    primary_texts: tuple[str, ...]
    primary_latency_s: float
    primary_usage: Usage


class ShadowRunner:
    def __init__(self, attempts: Attempts, metrics: Metrics, log_cfg: ShadowLogConfig | None, *,
                 rng: random.Random | None = None) -> None:
        self.attempts = attempts
        self.metrics = metrics
        self.log_cfg = log_cfg
        self.rng = rng or random.Random()
        self.tasks: set[asyncio.Task[None]] = set()

    def configure(self, log_cfg: ShadowLogConfig | None) -> None:
        self.log_cfg = log_cfg

    def offer(self, sample: ShadowSample) -> None:
        """Start the shadow call in the background when the model's sample rate draws it."""
        cfg = sample.model.shadow
        if cfg is None or self.rng.random() >= cfg.sample_rate:
            return
        task = asyncio.get_running_loop().create_task(self._run(sample))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def drain(self, timeout_s: float) -> None:
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=timeout_s)

    async def _run(self, sample: ShadowSample) -> None:
        req, ep = sample.request, sample.shadow
        started = time.perf_counter()
        entry: dict[str, Any] = {
            "time": time.time(), "request_id": req.request_id, "model": sample.model.name,
            "primary": {"endpoint": sample.primary_endpoint, "texts": list(sample.primary_texts),
                        "latency_s": round(sample.primary_latency_s, 4),
                        "usage": sample.primary_usage.as_dict(with_source=True)},
        }
        try:
            plan = plan_on(sample.model, ep, replace(req, stream=False), self.rng)
            results = [await self.attempts.call(ep, p) for p in plan.payloads]
            gen = answer(ep, plan.params, plan.prompt_text, [ep.adapter.decode(r.raw) for r in results], results)
            entry["shadow"] = {"endpoint": ep.id, "texts": [c.text for c in gen.choices],
                               "latency_s": round(time.perf_counter() - started, 4),
                               "usage": gen.usage.as_dict(with_source=True)}
            self.metrics.shadow_cost.labels(sample.model.name, ep.id).inc(gen.cost_usd)
        except GatewayError as err:
            entry["shadow"] = {"endpoint": ep.id, "error": err.code, "message": err.message}
        except Exception:
            log.exception("shadow request %s to %s failed", req.request_id, ep.id)
            return
        if self.log_cfg is not None and self.log_cfg.include_prompts:
            entry["prompt"] = req.prompt if req.messages is None else [m.content for m in req.messages]
        self._write(entry)

    def _write(self, entry: dict[str, Any]) -> None:
        if self.log_cfg is None:
            log.info("shadow comparison %s", orjson.dumps(entry).decode())
            return
        with Path(self.log_cfg.path).open("ab") as f:  # one write per line: lines never interleave
            f.write(orjson.dumps(entry) + b"\n")
