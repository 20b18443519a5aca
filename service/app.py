"""`create_app(config, ...)`: builds the gateway and its routes; all state lives on `app.state`."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.openapi import install_openapi
from service.api.render import JSONResponse
from service.api.routes import FAST_ROUTES, router
from service.config.model import Config
from service.errors import GatewayError, InternalError, InvalidRequest, response_headers, to_openai_body
from service.pipeline.catalog import build_catalog
from service.pipeline.gateway import Gateway
from service.telemetry.metrics import Metrics
from service.tenancy import Authenticator, build_limiter
from service.transport.base import Transport

log = logging.getLogger("jumpgate")

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def create_app(config: Config, *, transport: Transport | None = None, metrics: Metrics | None = None,
               credentials_ready: Callable[[], bool] | None = None, config_path: str | None = None) -> FastAPI:
    """The gateway app. With `config_path`, SIGHUP reloads that file (an invalid one is refused, loudly)."""
    if transport is None:
        transport, credentials_ready = _sagemaker_transport(config)
    catalog = build_catalog(config)
    metrics = metrics or Metrics()
    metrics.describe_endpoints(catalog)
    gateway = Gateway(catalog, transport, metrics=metrics, resilience=config.resilience,
                      shadow_log=config.shadow_log)
    limiter = build_limiter(config.rate_limits, metrics.limiter_errors.inc)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        if config_path is not None:
            loop.add_signal_handler(signal.SIGHUP, reload_config, app)
        yield
        if config_path is not None:
            loop.remove_signal_handler(signal.SIGHUP)
        await gateway.shadow.drain(gateway.resilience.drain_s)
        await limiter.aclose()
        await transport.aclose()

    app = GatewayApp(title="jumpgate", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.config = config
    app.state.config_path = config_path
    app.state.config_info = {"source": config_path or "<embedded>", "loaded_at": time.time(), "reloads": 0}
    app.state.gateway = gateway
    app.state.auth = Authenticator(config.auth)
    app.state.limiter = limiter
    app.state.input_limits = config.input_limits
    app.state.log_prompts = config.logging.log_prompts
    app.state.credentials_ready = credentials_ready or (lambda: True)
    app.include_router(router)
    install_openapi(app, lambda: sorted(app.state.gateway.catalog.models))
    app.add_exception_handler(GatewayError, _gateway_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected_error)
    app.add_middleware(RequestIdMiddleware)
    return app


def _sagemaker_transport(config: Config) -> tuple[Transport, Callable[[], bool]]:
    from service.config.aws import credential_spec
    from service.transport.factory import build_transport

    aws = config.aws
    specs = [credential_spec(ep.credentials, aws.credentials) for ep in config.endpoints.values()]
    return build_transport(aws.runtime_url, aws.region, credential_spec(None, aws.credentials), specs)


def reload_config(app: FastAPI) -> bool:
    """Load the config file again and switch to it; requests in flight finish on what they hold.
    A file that does not validate is refused and the running config kept."""
    from service.config.model import ConfigError, load_config

    gateway: Gateway = app.state.gateway
    path = app.state.config_path
    try:
        config = load_config(path)
        catalog = build_catalog(config)
    except ConfigError as exc:
        log.error("config reload refused, still serving the previous config; problems:\n%s", exc)
        gateway.metrics.config_reloads.labels("refused").inc()
        return False
    except Exception:
        log.exception("config reload failed, still serving the previous config")
        gateway.metrics.config_reloads.labels("refused").inc()
        return False
    gateway.metrics.describe_endpoints(catalog)
    gateway.use(catalog, config.resilience)
    gateway.shadow.log_cfg = config.shadow_log
    app.state.auth = Authenticator(config.auth)  # keys and tenant limits change with the file
    app.state.input_limits = config.input_limits
    app.state.log_prompts = config.logging.log_prompts
    app.state.config = config
    app.state.config_info = {**app.state.config_info, "loaded_at": time.time(),
                             "reloads": app.state.config_info["reloads"] + 1}
    gateway.metrics.config_reloads.labels("applied").inc()
    log.info("config reloaded from %s: %d models, %d endpoints", path, len(catalog.models), len(catalog.endpoints))
    return True


def error_response(exc: GatewayError, rid: str) -> JSONResponse:
    """The one mapping of the error tree to HTTP (SSE errors use to_openai_body in api/sse.py)."""
    if exc.status >= 500:
        log.warning("request %s failed: %s %s", rid, exc.status, exc.code)
    return JSONResponse(to_openai_body(exc), status_code=exc.status, headers=response_headers(exc))


def unexpected_response(rid: str) -> JSONResponse:
    # The traceback goes to the log (from the caller's except block), never to the client.
    log.exception("request %s failed unexpectedly", rid)
    err = InternalError(f"internal error; quote request id {rid} when reporting it")
    return JSONResponse(to_openai_body(err), status_code=500, headers={"x-request-id": rid})


async def _gateway_error(request: Request, exc: GatewayError) -> JSONResponse:
    return error_response(exc, _request_id(request))


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # Starlette answers this from its outermost middleware, outside RequestIdMiddleware: the id is added here.
    return unexpected_response(_request_id(request))


def _request_id(request: Request) -> str:
    return str(getattr(request.state, "request_id", "-"))


Handler = Callable[[Request], Awaitable[Response]]


class GatewayApp(FastAPI):
    """FastAPI for everything, except POSTs to the generation routes: those go straight to their handler,
    skipping FastAPI's and Starlette's middleware and routing layers (about a fifth of the gateway's CPU per
    request in tests/bench/PROFILE.md). Request ids and error responses are the same either way; the routes
    stay registered with FastAPI for the OpenAPI document."""

    fast_routes: dict[str, Handler] = FAST_ROUTES

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            handler = self.fast_routes.get(scope["path"])
            if handler is not None:
                await self._fast(handler, scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    async def _fast(self, handler: Handler, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            rid = _incoming_id(scope["headers"]) or new_request_id()
        except InvalidRequest as err:
            await JSONResponse(to_openai_body(err), status_code=400)(scope, receive, send)
            return
        scope["app"] = self
        scope.setdefault("state", {})["request_id"] = rid
        try:
            response = await handler(Request(scope, receive))
        except GatewayError as err:
            response = error_response(err, rid)
        except Exception:
            response = unexpected_response(rid)
        response.headers["x-request-id"] = rid
        await response(scope, receive, send)


class RequestIdMiddleware:
    """Echo a well-formed client `x-request-id` or make one; put it on every response, errors included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            rid = _incoming_id(scope["headers"]) or new_request_id()
        except InvalidRequest as err:
            await JSONResponse(to_openai_body(err), status_code=400)(scope, receive, send)
            return
        scope.setdefault("state", {})["request_id"] = rid
        encoded = rid.encode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", encoded)]
            await send(message)

        await self.app(scope, receive, send_with_id)


def new_request_id() -> str:
    return os.urandom(16).hex()  # 128 random bits, like uuid4, without building a UUID object


def _incoming_id(raw_headers: Any) -> str | None:
    """A client's request id is echoed in a response header, so it must be safe there: anything else is a 400."""
    for name, value in raw_headers:
        if name == b"x-request-id":
            text = value.decode("latin-1")
            if not _SAFE_REQUEST_ID.match(text):
                raise InvalidRequest("header x-request-id must be 1 to 128 characters of A-Z a-z 0-9 . _ : - "
                                     "(no spaces or control characters)", param="x-request-id")
            return text
    return None


def app_from_env() -> FastAPI:
    """uvicorn factory for `--workers N`: each worker loads the config named by JUMPGATE_CONFIG."""
    import os

    from service.config.model import load_config
    from service.telemetry.logs import setup_logging

    path = os.environ["JUMPGATE_CONFIG"]
    config = load_config(path)
    setup_logging(config.logging.format)  # workers are fresh processes: nothing is inherited
    return create_app(config, config_path=path)
