"""Canonical `Generation` → OpenAI / native JSON bodies and jumpgate's response headers."""

from __future__ import annotations

import time
from typing import Any

import orjson
from starlette.responses import Response

from service.canonical import Choice, Generation, GenerationRequest
from service.pipeline.streaming import AnswerStream


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


#: the response headers a browser client may read (CORS)
EXPOSED_HEADERS = ["x-request-id", "x-jumpgate-endpoint", "x-jumpgate-attempts", "x-jumpgate-dropped-params",
                   "x-jumpgate-token-source", "x-jumpgate-cost-usd", "retry-after"]


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
            {"index": c.index, "message": _message(c), "finish_reason": c.finish_reason, "logprobs": None}
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
            {"index": c.index, "text": c.text, "finish_reason": c.finish_reason, "logprobs": None}
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


def _generation(c: Choice) -> dict[str, Any]:
    out: dict[str, Any] = {"index": c.index, "text": c.text, "finish_reason": c.finish_reason}
    if c.tool_calls:
        out["tool_calls"] = tool_calls(c)
    return out
