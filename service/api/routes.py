"""The HTTP routes. Thin: parse at the edge, call the gateway, render. Errors are raised, and mapped to the
OpenAI error shape in `service.api.errors`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from service.adapters.features import ImageSupport
from service.api import render
from service.api.deps import state_of
from service.api.finish import Finisher
from service.api.guards import check_json_body
from service.api.images import inline_images
from service.api.openai_models import ChatCompletionRequest, CompletionRequest, GenerateRequest, WireRequest
from service.api.sse import SseRelay
from service.api.stream_response import EventStreamResponse
from service.api.wire import check_size, parse_body
from service.canonical import Api, Generation, GenerationRequest
from service.errors import (
    ClientDisconnected,
    InvalidRequest,
    ModelNotFound,
    NotReady,
    RouteNotFound,
    echo,
)
from service.pipeline.catalog import Catalog, Model
from service.pipeline.embedding_catalog import EmbeddingModel
from service.runtime import AppState
from service.telemetry.trace import Trace
from service.tenancy import Tenant, check_scrape_token

router = APIRouter(redirect_slashes=False)

Renderer = Callable[[GenerationRequest, Generation], dict[str, Any]]
Handler = Callable[[Request], Awaitable[Response]]
TIMEOUT_HEADER = "x-jumpgate-timeout-s"


async def _serve(request: Request, api: Api, wire_model: type[WireRequest], renderer: Renderer) -> Response:
    """Parse, call the gateway, render; the trace is recorded here, or by the stream when one was opened."""
    state = state_of(request)
    gateway = state.gateway
    trace = Trace(api, request_id=request.state.request_id)
    if state.tracing is not None:
        state.tracing.start_request(trace, request.scope["headers"])
    handed_to_stream = False
    tenant: Tenant | None = None
    try:
        tenant = state.auth.identify(request.headers.get("authorization"))
        trace.tenant = tenant.name
        check_json_body(request.scope["headers"])
        req = _parse(request, await read_body(request), wire_model, state.input_limits)
        trace.stream, trace.metadata = req.stream, req.metadata
        state.auth.authorize(tenant, req.model)
        await state.limiter.admit(tenant)
        if req.has_images and _takes_images(gateway.catalog, req.model):
            req = await inline_images(req, state.settings.config.images)
        if req.stream:
            stream = await gateway.open_stream(req, trace)
            handed_to_stream = True
            if state.log_prompts:
                trace.prompt = _prompt_of(req)
            done = Finisher(state.metrics, state.limiter, tenant, trace, state.log_prompts)
            return EventStreamResponse(SseRelay(req, stream, done), render.stream_headers(stream))
        gen = await gateway.generate(req, trace)
        if state.log_prompts:
            trace.prompt, trace.completion = _prompt_of(req), "\n".join(c.text for c in gen.choices)
        return render.JSONResponse(renderer(req, gen), headers=render.headers(gen))
    except Exception as exc:
        trace.note_failure(exc)
        raise
    finally:
        if not handed_to_stream:
            await Finisher(state.metrics, state.limiter, tenant, trace).finish()


def _parse(request: Request, body: bytes, wire_model: type[WireRequest], limits: Any) -> GenerationRequest:
    wire = parse_body(body, wire_model, limits)
    req = wire.to_canonical(request.state.request_id)
    check_size(req, limits)
    timeout = request.headers.get(TIMEOUT_HEADER)
    return req if timeout is None else replace(req, timeout_s=client_timeout(timeout))


def _takes_images(catalog: Catalog, model: str) -> bool:
    """Images are fetched and checked only for a model with a vision target; routing refuses the others."""
    found = catalog.models.get(model)
    return found is not None and any(ep.capabilities.images is not ImageSupport.NONE for ep, _ in found.targets)


async def read_body(request: Request) -> bytes:
    try:
        return await request.body()
    except ClientDisconnect:
        raise ClientDisconnected("the client closed the connection before its request body arrived") from None


def _prompt_of(req: GenerationRequest) -> str:
    return req.prompt or "" if req.messages is None else "\n".join(m.content for m in req.messages)


def client_timeout(value: str) -> float:
    """A client may shorten the request deadline (seconds); the configured one is the upper bound."""
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < 86400:
        raise InvalidRequest(f"header {TIMEOUT_HEADER} must be a number of seconds > 0; got {value[:40]!r}",
                             param=TIMEOUT_HEADER)
    return seconds


@dataclass(frozen=True, slots=True)
class GenerationRoute:
    """A POST route that generates: its path, API name, request model and renderer. Callable as the handler."""

    path: str
    api: Api
    wire: type[WireRequest]
    render: Renderer

    async def __call__(self, request: Request) -> Response:
        return await _serve(request, self.api, self.wire, self.render)


#: The generation routes, declared once: registered with FastAPI below (OpenAPI, other methods -> 405),
#: documented by service/api/openapi.py, and served by GatewayApp's fast path (service/app.py) for POST.
GENERATION_ROUTES: tuple[GenerationRoute, ...] = (
    GenerationRoute("/v1/chat/completions", "chat", ChatCompletionRequest, render.chat_completion),
    GenerationRoute("/v1/completions", "completions", CompletionRequest, render.completion),
    GenerationRoute("/v1/generate", "generate", GenerateRequest, render.native),
)
for _route in GENERATION_ROUTES:
    router.add_api_route(_route.path, _route, methods=["POST"], name=_route.api)


@router.get("/v1/models")
async def models(request: Request) -> render.JSONResponse:
    state = state_of(request)
    tenant = state.auth.identify(request.headers.get("authorization"))
    every = _all_models(state.gateway.catalog)
    data = [render.model_entry(every[name], state.metrics.window) for name in state.auth.visible(tenant, every)]
    return render.JSONResponse({"object": "list", "data": data})


def _all_models(catalog: Catalog) -> dict[str, Model | EmbeddingModel]:
    return {**catalog.models, **catalog.embedding_models}


@router.get("/v1/models/{model_id}")
async def model(request: Request, model_id: str) -> render.JSONResponse:
    """One model in the OpenAI shape (`client.models.retrieve`); a model the tenant may not use is as unknown."""
    state = state_of(request)
    tenant = state.auth.identify(request.headers.get("authorization"))
    every = _all_models(state.gateway.catalog)
    visible = state.auth.visible(tenant, every)
    if model_id not in visible:
        raise ModelNotFound(f"model {echo(model_id)} does not exist; available models: {', '.join(visible)}",
                            param="model")
    return render.JSONResponse(render.model_entry(every[model_id], state.metrics.window))


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """On the API port only when no `metrics.listen` is set; with API keys on, only for a scrape token."""
    state = state_of(request)
    cfg = state.settings.config.metrics
    if cfg.listen:
        raise RouteNotFound(f"/metrics is served on the metrics listener ({cfg.listen}), not on the API port")
    if state.auth.enabled:
        check_scrape_token(request.headers.get("authorization"), cfg.scrape_token_sha256)
    return Response(state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


@router.get("/admin/status")
async def admin_status(request: Request) -> render.JSONResponse:
    """Circuit state, slots and retry budget per endpoint; which endpoints each model routes to."""
    state = state_of(request)
    state.auth.identify(request.headers.get("authorization"))  # any valid key, when keys are on
    loop = asyncio.get_running_loop()
    return render.JSONResponse({
        "config": state.settings.info(),
        "event_loop": f"{type(loop).__module__}.{type(loop).__name__}",
        "endpoints": {eid: {**s.status(), **_where(state, eid)} for eid, s in sorted(state.fleet.states.items())},
        "models": {name: {"targets": [{"endpoint": ep.id, "weight": w} for ep, w in m.targets],
                          "shadow": m.shadow.endpoint if isinstance(m, Model) and m.shadow else None}
                   for name, m in sorted(_all_models(state.gateway.catalog).items())},
    })


def _where(state: AppState, endpoint_id: str) -> dict[str, str]:
    catalog = state.gateway.catalog
    ep = catalog.endpoints.get(endpoint_id) or catalog.embedding_endpoints.get(endpoint_id)
    return {"region": ep.region, "credentials": ep.credentials} if ep is not None else {}


@router.get("/healthz")
async def healthz() -> render.JSONResponse:
    return render.JSONResponse({"status": "ok"})


@router.get("/readyz")
async def readyz(request: Request) -> render.JSONResponse:
    if not state_of(request).credentials_ready():
        raise NotReady("not ready: AWS credentials could not be resolved")
    return render.JSONResponse({"status": "ready"})
