"""Canonical `Generation` → OpenAI / native JSON bodies and jumpgate's response headers."""

from __future__ import annotations

import time
from typing import Any

import orjson
from starlette.responses import Response

from service.api import logprobs
from service.canonical import Generation, GenerationRequest
from service.pipeline.catalog import Model
from service.pipeline.embedding_catalog import EmbeddingModel
from service.pipeline.streaming import GatewayStream
from service.telemetry.amortized import TokenWindow


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


#: the response headers a browser client may read (CORS)
EXPOSED_HEADERS = ["x-request-id", "x-jumpgate-endpoint", "x-jumpgate-attempts", "x-jumpgate-dropped-params",
                   "x-jumpgate-token-source", "x-jumpgate-cost-usd", "x-jumpgate-upstream-calls",
                   "x-jumpgate-dimensions", "retry-after"]


def headers(gen: Generation) -> dict[str, str]:
    out = {
        "x-jumpgate-endpoint": gen.endpoint,
        "x-jumpgate-attempts": str(gen.attempts),
        "x-jumpgate-token-source": gen.usage.source.value,
        "x-jumpgate-cost-usd": f"{gen.cost_usd:.10f}",
    }
    if gen.dropped_params:
        out["x-jumpgate-dropped-params"] = ",".join(gen.dropped_params)
    return out


def stream_headers(stream: GatewayStream) -> dict[str, str]:
    """Sent before the first token: usage, token source and cost arrive in the stream's final chunk."""
    out = {"x-jumpgate-endpoint": stream.endpoint.id, "x-jumpgate-attempts": str(stream.attempts),
           "cache-control": "no-cache", "x-accel-buffering": "no"}
    if stream.plan.wire.dropped:
        out["x-jumpgate-dropped-params"] = ",".join(stream.plan.wire.dropped)
    return out


def chat_completion(req: GenerationRequest, gen: Generation) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{req.request_id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": req.model,
        "choices": [
            {"index": c.index, "message": {"role": "assistant", "content": c.text},
             "finish_reason": c.finish_reason, "logprobs": logprobs.chat(c.logprobs)}
            for c in gen.choices
        ],
        "usage": gen.usage.as_dict(),
    }


def completion(req: GenerationRequest, gen: Generation) -> dict[str, Any]:
    return {
        "id": f"cmpl-{req.request_id}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": req.model,
        "choices": [
            {"index": c.index, "text": c.text, "finish_reason": c.finish_reason,
             "logprobs": logprobs.legacy(c.logprobs)}
            for c in gen.choices
        ],
        "usage": gen.usage.as_dict(),
    }


def native(req: GenerationRequest, gen: Generation) -> dict[str, Any]:
    return {
        "id": req.request_id,
        "model": req.model,
        "endpoint": gen.endpoint,
        "generations": [{"index": c.index, "text": c.text, "finish_reason": c.finish_reason} for c in gen.choices],
        "usage": gen.usage.as_dict(with_source=True),
        "cost_usd": gen.cost_usd,
        "attempts": gen.attempts,
        "dropped_params": list(gen.dropped_params),
        "timings": gen.timings,
    }


def model_entry(model: Model | EmbeddingModel, window: TokenWindow) -> dict[str, Any]:
    """A model in the OpenAI shape (`id`, `object`, `created`, `owned_by`) with jumpgate's extra fields."""
    if isinstance(model, EmbeddingModel):
        return _embedding_entry(model, window)
    return {
        "id": model.name, "object": "model", "created": 0, "owned_by": "jumpgate", "kind": "text_generation",
        "unsupported_params": model.policy,
        "endpoints": [
            {"id": ep.id, "endpoint_name": ep.target.endpoint_name, "schema": ep.schema, "weight": weight,
             "accelerator": ep.accelerator, "instance_type": ep.instance_type,
             "instance_count": ep.instance_count, "context_length": ep.context_length,
             "max_concurrency": ep.max_concurrency, "price_per_hour_usd": ep.endpoint_price_per_hour,
             "price_model": ep.price.kind, "region": ep.region, "credentials": ep.credentials,
             "streaming": ep.can_stream,
             "logprobs": None if ep.token_data is None else {"max_top_logprobs": ep.token_data.max_top},
             "amortized_cost_per_1m_tokens_usd": window.cost_per_million(ep.id, ep.endpoint_price_per_hour),
             "amortized_window_s": window.window_s}
            for ep, weight in model.targets
        ],
    }


def _embedding_entry(model: EmbeddingModel, window: TokenWindow) -> dict[str, Any]:
    return {
        "id": model.name, "object": "model", "created": 0, "owned_by": "jumpgate", "kind": "embedding",
        "unsupported_params": "reject",
        "endpoints": [
            {"id": ep.id, "endpoint_name": ep.target.endpoint_name, "schema": ep.schema, "weight": weight,
             "accelerator": ep.accelerator, "instance_type": ep.instance_type,
             "instance_count": ep.instance_count, "max_concurrency": ep.max_concurrency,
             "price_per_hour_usd": ep.endpoint_price_per_hour, "price_model": ep.price.kind, "region": ep.region,
             "credentials": ep.credentials, "batch_size": ep.batch_size,
             "dimensions": "container" if ep.native_dimensions else "gateway" if ep.matryoshka else None,
             "amortized_cost_per_1m_tokens_usd": window.cost_per_million(ep.id, ep.endpoint_price_per_hour),
             "amortized_window_s": window.window_s}
            for ep, weight in model.targets
        ],
    }
