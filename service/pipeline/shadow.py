"""Shadow traffic: a sampled copy of a model's requests also goes to its `shadow` endpoint (e.g. a
fine-tuned variant evaluated against its base), after the primary answered, in the background.

The client's answer is never delayed or changed: the shadow call starts only once the primary
result exists, runs as its own task, and its failures are logged, never raised. Each comparison is one
JSON line: both outputs, latencies and token counts; the prompt only with `include_prompts: true`.
Shadow cost is counted in `jumpgate_shadow_cost_usd_total`, apart from the attributed cost of clients.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from service.canonical import GenerationRequest, Usage
from service.config.resilience import ShadowLogConfig
from service.errors import GatewayError
from service.pipeline.routing import build_candidate

if TYPE_CHECKING:
    from service.pipeline.gateway import Gateway

log = logging.getLogger("jumpgate.shadow")


class ShadowRunner:
    def __init__(self, gateway: Gateway, log_cfg: ShadowLogConfig | None) -> None:
        self.gateway = gateway
        self.log_cfg = log_cfg
        self.tasks: set[asyncio.Task[None]] = set()

    def after(self, req: GenerationRequest, primary: dict[str, Any]) -> None:
        """Called once the primary answered. `primary`: endpoint, texts, latency_s, usage."""
        model = self.gateway.catalog.models.get(req.model)
        cfg = model.shadow if model is not None else None
        if model is None or cfg is None or self.gateway.rng.random() >= cfg.sample_rate:
            return
        task = asyncio.get_running_loop().create_task(self._run(req, cfg.endpoint, primary))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def drain(self, timeout_s: float) -> None:
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=timeout_s)

    async def _run(self, req: GenerationRequest, endpoint_id: str, primary: dict[str, Any]) -> None:
        gw = self.gateway
        model = gw.catalog.model(req.model)
        ep = gw.catalog.endpoints[endpoint_id]
        started = time.perf_counter()
        entry: dict[str, Any] = {"time": time.time(), "request_id": req.request_id, "model": model.name,
                                 "primary": primary}
        try:
            shadow_req = replace(req, stream=False)
            params = shadow_req.params.with_defaults(model.defaults)
            plan = gw.plan_for(shadow_req, params, build_candidate(model, ep, 1.0, shadow_req, params))
            results = [await gw.call(ep, p) for p in plan.payloads]
            gen = gw.answer(plan, [ep.adapter.decode(r.raw) for r in results], results, started)
            entry["shadow"] = {"endpoint": ep.id, "texts": [c.text for c in gen.choices],
                               "latency_s": round(time.perf_counter() - started, 4), "usage": usage_json(gen.usage)}
            gw.metrics.shadow_cost.labels(model.name, ep.id).inc(gen.cost_usd)
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


def usage_json(usage: Usage) -> dict[str, Any]:
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "source": usage.source.value}



