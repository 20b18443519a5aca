"""The HTTP routes. Thin: parse at the edge, call the gateway, render. Errors are raised, and mapped
to the OpenAI error shape by the one handler in `service.app`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from starlette.responses import Response, StreamingResponse

from service.api import render
from service.api.openai_models import ChatCompletionRequest, CompletionRequest, GenerateRequest
from service.api.sse import sse_frames
from service.api.wire import parse_body
from service.canonical import Generation, GenerationRequest
from service.errors import GatewayError, InvalidRequest
from service.gateway import Gateway
from service.shadow import usage_json
from service.trace import Trace

router = APIRouter()

Renderer = Callable[[GenerationRequest, Generation], dict[str, Any]]


async def _serve(request: Request, api: str, wire_model: type[BaseModel], renderer: Renderer) -> Response:
    """Parse, call the gateway, render; the trace is recorded here, or by the stream when one was opened."""
    gateway: Gateway = request.app.state.gateway
    trace = Trace(api)
    handed_to_stream = False
    try:
        wire = parse_body(await request.body(), wire_model)
        req: GenerationRequest = wire.to_canonical(request.state.request_id)  # type: ignore[attr-defined]
        timeout = request.headers.get(TIMEOUT_HEADER)
        if timeout is not None:
            req = replace(req, timeout_s=_client_timeout(timeout))
        trace.stream = req.stream
        if req.stream:
            stream = await gateway.open_stream(req, trace)
            handed_to_stream = True
            return StreamingResponse(sse_frames(req, stream, gateway.metrics, trace), media_type="text/event-stream",
                                     headers=render.stream_headers(stream))
        gen = await gateway.generate(req, trace)
        gateway.shadow.after(req, {"endpoint": gen.endpoint, "texts": [c.text for c in gen.choices],
                                   "latency_s": round(gen.timings["total_s"], 4), "usage": usage_json(gen.usage)})
        return render.JSONResponse(renderer(req, gen), headers=render.headers(gen))
    except GatewayError as err:
        trace.note_error(err)
        raise
    except Exception:
        trace.status, trace.error = 500, "internal_error"
        raise
    finally:
        if not handed_to_stream:
            trace.finished = time.perf_counter()
            gateway.metrics.record(trace)


TIMEOUT_HEADER = "x-jumpgate-timeout-s"


def _client_timeout(value: str) -> float:
    """A client may shorten the request deadline (seconds); the configured one is the upper bound."""
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < 86400:
        raise InvalidRequest(f"header {TIMEOUT_HEADER} must be a number of seconds > 0; got {value[:40]!r}",
                             param=TIMEOUT_HEADER)
    return seconds


@router.post("/v1/chat/completions")
async def chat_completions(request: Request) -> Response:
    return await _serve(request, "chat", ChatCompletionRequest, render.chat_completion)


@router.post("/v1/completions")
async def completions(request: Request) -> Response:
    return await _serve(request, "completions", CompletionRequest, render.completion)


@router.post("/v1/generate")
async def generate(request: Request) -> Response:
    return await _serve(request, "generate", GenerateRequest, render.native)


@router.get("/v1/models")
async def models(request: Request) -> render.JSONResponse:
    gateway: Gateway = request.app.state.gateway
    window = gateway.metrics.window
    data = []
    for name, model in sorted(gateway.catalog.models.items()):
        data.append({
            "id": name, "object": "model", "created": 0, "owned_by": "jumpgate",
            "unsupported_params": model.policy,
            "endpoints": [
                {"id": ep.id, "endpoint_name": ep.target.endpoint_name, "schema": ep.schema, "weight": weight,
                 "accelerator": ep.accelerator, "instance_type": ep.instance_type,
                 "instance_count": ep.instance_count, "context_length": ep.context_length,
                 "max_concurrency": ep.max_concurrency, "price_per_hour_usd": ep.endpoint_price_per_hour,
                 "streaming": ep.adapter.can_stream,
                 "amortized_cost_per_1m_tokens_usd": window.cost_per_million(ep.id, ep.endpoint_price_per_hour),
                 "amortized_window_s": window.window_s}
                for ep, weight in model.targets
            ],
        })
    return render.JSONResponse({"object": "list", "data": data})


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    return Response(generate_latest(gateway.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/admin/status")
async def admin_status(request: Request) -> render.JSONResponse:
    """Circuit state, slots and retry budget per endpoint; which endpoints each model routes to."""
    gateway: Gateway = request.app.state.gateway
    return render.JSONResponse({
        "config": request.app.state.config_info,
        "endpoints": {eid: state.status() for eid, state in sorted(gateway.fleet.states.items())},
        "models": {name: {"targets": [{"endpoint": ep.id, "weight": w} for ep, w in m.targets],
                          "shadow": m.shadow.endpoint if m.shadow else None}
                   for name, m in sorted(gateway.catalog.models.items())},
    })


@router.get("/healthz")
async def healthz() -> render.JSONResponse:
    return render.JSONResponse({"status": "ok"})


@router.get("/readyz")
async def readyz(request: Request) -> render.JSONResponse:
    ready: Callable[[], bool] = request.app.state.credentials_ready
    if not ready():
        return render.JSONResponse({"status": "not ready", "reason": "AWS credentials could not be resolved"},
                                   status_code=503)
    return render.JSONResponse({"status": "ready"})
