"""Canonical `Generation` → OpenAI / native JSON bodies and jumpgate's response headers."""

from __future__ import annotations

import time
from typing import Any

import orjson
from starlette.responses import Response

from service.adapters.features import ImageSupport
from service.api import logprobs
from service.canonical import Choice, Generation, GenerationRequest
from service.pipeline.capabilities import Capabilities
from service.pipeline.catalog import Model
from service.pipeline.embedding_catalog import EmbeddingModel
from service.pipeline.streaming import AnswerStream
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


def stream_headers(stream: AnswerStream) -> dict[str, str]:
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
            {"index": c.index, "message": _message(c), "finish_reason": c.finish_reason,
             "logprobs": logprobs.chat(c.logprobs)}
            for c in gen.choices
        ],
        "usage": gen.usage.as_dict(),
    }


def _message(c: Choice) -> dict[str, Any]:
    if not c.tool_calls:
        return {"role": "assistant", "content": c.text}
    return {"role": "assistant", "content": c.text or None, "tool_calls": tool_calls(c)}


def tool_calls(c: Choice) -> list[dict[str, Any]]:
    return [{"id": t.id, "type": "function", "function": {"name": t.name, "arguments": t.arguments}}
            for t in c.tool_calls]


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
        "generations": [_generation(c) for c in gen.choices],
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
             **_features(ep.capabilities),
             "amortized_cost_per_1m_tokens_usd": window.cost_per_million(ep.id, ep.endpoint_price_per_hour),
             "amortized_window_s": window.window_s}
            for ep, weight in model.targets
        ],
    }


def _features(c: Capabilities) -> dict[str, Any]:
    """How the endpoint serves tools, JSON output and images: `native`, `prompt` (emulated by the gateway), or
    None (refused with a 400)."""
    tools = "native" if c.native_tools else "prompt" if c.tool_format is not None else None
    json_output = "grammar" if c.grammar else "prompt" if c.tool_format is not None or c.native_tools else None
    return {"tools": tools, "tool_format": c.tool_format.name if c.tool_format else None,
            "json_schema_output": json_output,
            "images": None if c.images is ImageSupport.NONE else {"max_images": c.max_images}}


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
def _generation(c: Choice) -> dict[str, Any]:
    out: dict[str, Any] = {"index": c.index, "text": c.text, "finish_reason": c.finish_reason}
    if c.tool_calls:
        out["tool_calls"] = tool_calls(c)
    return out
