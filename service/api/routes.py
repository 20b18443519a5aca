"""The HTTP routes. Thin: parse at the edge, call the gateway, render. Errors are raised, and mapped
to the OpenAI error shape by the one handler in `service.app`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel
from starlette.responses import Response, StreamingResponse

from service.api import render
from service.api.finish import Finisher
from service.api.openai_models import ChatCompletionRequest, CompletionRequest, GenerateRequest
from service.api.sse import sse_frames
from service.api.wire import check_size, parse_body
from service.canonical import Generation, GenerationRequest
from service.errors import GatewayError, InvalidRequest
from service.pipeline.gateway import Gateway
from service.pipeline.shadow import usage_json
from service.telemetry.trace import Trace
from service.tenancy import Authenticator, Tenant

router = APIRouter()

Renderer = Callable[[GenerationRequest, Generation], dict[str, Any]]


async def _serve(request: Request, api: str, wire_model: type[BaseModel], renderer: Renderer) -> Response:
    """Parse, call the gateway, render; the trace is recorded here, or by the stream when one was opened."""
    gateway: Gateway = request.app.state.gateway
    state = request.app.state
    trace = Trace(api, request_id=request.state.request_id)
    handed_to_stream = False
    tenant: Tenant | None = None
    try:
        tenant = state.auth.identify(request.headers.get("authorization"))
        trace.tenant = tenant.name
        wire = parse_body(await request.body(), wire_model, state.input_limits)
        req: GenerationRequest = wire.to_canonical(request.state.request_id)  # type: ignore[attr-defined]
        check_size(req, state.input_limits)
        timeout = request.headers.get(TIMEOUT_HEADER)
        if timeout is not None:
            req = replace(req, timeout_s=_client_timeout(timeout))
        trace.stream = req.stream
        state.auth.authorize(tenant, req.model)
        await state.limiter.admit(tenant)
        if req.stream:
            stream = await gateway.open_stream(req, trace)
            handed_to_stream = True
            if state.log_prompts:
                trace.prompt = _prompt_of(req)
            done = Finisher(gateway.metrics, state.limiter, tenant, trace, state.log_prompts)
            return StreamingResponse(sse_frames(req, stream, done), media_type="text/event-stream",
                                     headers=render.stream_headers(stream))
        gen = await gateway.generate(req, trace)
        if state.log_prompts:
            trace.prompt, trace.completion = _prompt_of(req), "\n".join(c.text for c in gen.choices)
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
            await Finisher(gateway.metrics, state.limiter, tenant, trace).finish()


TIMEOUT_HEADER = "x-jumpgate-timeout-s"


def _prompt_of(req: GenerationRequest) -> str:
    return req.prompt or "" if req.messages is None else "\n".join(m.content for m in req.messages)


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


#: POST routes served by GatewayApp's fast path (service/app.py)
FAST_ROUTES = {"/v1/chat/completions": chat_completions, "/v1/completions": completions, "/v1/generate": generate}


@router.get("/v1/models")
async def models(request: Request) -> render.JSONResponse:
    gateway: Gateway = request.app.state.gateway
    auth: Authenticator = request.app.state.auth
    tenant = auth.identify(request.headers.get("authorization"))
    window = gateway.metrics.window
    data = []
    for name in auth.visible(tenant, gateway.catalog.models):
        model = gateway.catalog.models[name]
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
    return Response(gateway.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


@router.get("/admin/status")
async def admin_status(request: Request) -> render.JSONResponse:
    """Circuit state, slots and retry budget per endpoint; which endpoints each model routes to."""
    gateway: Gateway = request.app.state.gateway
    request.app.state.auth.identify(request.headers.get("authorization"))  # any valid key, when keys are on
    loop = asyncio.get_running_loop()
    return render.JSONResponse({
        "config": request.app.state.config_info,
        "event_loop": f"{type(loop).__module__}.{type(loop).__name__}",
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
