"""`create_app(config, ...)`: builds the application state and the routes; everything lives on `app.state`."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from types import FrameType
from typing import Any

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.errors import error_response, install_error_handlers, unexpected_response
from service.api.guards import HostGuard
from service.api.openapi import install_openapi
from service.api.render import EXPOSED_HEADERS
from service.api.request_id import RequestIdMiddleware
from service.api.routes import GENERATION_ROUTES, TIMEOUT_HEADER, Handler, router
from service.config.model import Config
from service.config.server import ServerConfig
from service.errors import GatewayError
from service.protocol import protocol_settings
from service.runtime import AppState, build_state
from service.telemetry.metrics import Metrics
from service.telemetry.scrape import serve_metrics
from service.transport.base import CredentialSpec, Transport


def create_app(config: Config, *, transport: Transport | None = None, metrics: Metrics | None = None,
               credentials_ready: Callable[[], bool] | None = None, config_path: str | None = None) -> FastAPI:
    """The gateway app. With `config_path`, SIGHUP reloads that file (an invalid one is refused, loudly)."""
    metrics = metrics or Metrics()
    hooks: list[Callable[[Config], None]] = []
    if transport is None:
        transport, credentials_ready, on_config = _sagemaker_transport(config, metrics)
        hooks.append(on_config)
    state = build_state(config, transport=transport, metrics=metrics,
                        credentials_ready=credentials_ready or (lambda: True), config_path=config_path,
                        config_hooks=hooks)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        if config_path is not None:
            loop.add_signal_handler(signal.SIGHUP, state.reload)
        restore = _on_shutdown_signal(lambda: loop.call_soon_threadsafe(state.begin_drain, loop))
        listen = state.settings.config.metrics.address()
        stop_metrics = serve_metrics(state.metrics, listen) if listen else (lambda: None)
        yield protocol_settings(lambda: state.settings.config.server)  # read by service.protocol per connection
        stop_metrics()
        restore()
        if config_path is not None:
            loop.remove_signal_handler(signal.SIGHUP)
        await state.shadow.drain(state.settings.config.resilience.drain_s)
        await state.limiter.aclose()
        await state.transport.aclose()
        if state.tracing is not None:
            state.tracing.shutdown()  # exports the spans still buffered

    # No trailing-slash redirects: they would answer a POST with a 307 to a URL built from the Host header.
    app = GatewayApp({r.path: r for r in GENERATION_ROUTES}, title="jumpgate", version="0.1.0", lifespan=lifespan,
                     docs_url=None, redoc_url=None, redirect_slashes=False)
    app.state.jumpgate = state
    app.include_router(router)
    install_openapi(app, lambda: sorted(state.gateway.catalog.models))
    install_error_handlers(app)
    _install_middleware(app, state)
    return app


def _on_shutdown_signal(callback: Callable[[], object]) -> Callable[[], None]:
    """Run `callback` on SIGTERM / SIGINT, then the server's own handler (uvicorn's graceful shutdown, installed
    before the app's start-up). Returns what puts the previous handlers back."""
    replaced: dict[int, Callable[..., object]] = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)
        if not callable(previous):
            continue  # not served by a server that handles the signal (tests, tools): nothing to chain
        replaced[sig] = previous

        def handler(signum: int, frame: FrameType | None, previous: Callable[..., object] = previous) -> None:
            callback()
            previous(signum, frame)

        signal.signal(sig, handler)

    def restore() -> None:
        for sig, previous in replaced.items():
            signal.signal(sig, previous)

    return restore


def _install_middleware(app: FastAPI, state: AppState) -> None:
    """Outermost last: request ids on every answer, then CORS (preflights need no host check), then the Host
    guard. The generation fast path runs the same list (GatewayApp)."""

    def host_settings() -> tuple[bool, ServerConfig]:
        config = state.settings.config
        return config.auth is None, config.server

    app.add_middleware(HostGuard, settings=host_settings)
    cors = state.settings.config.cors
    if cors.allow_origins:  # read at start-up: a reload does not change CORS (documented)
        app.add_middleware(CORSMiddleware, allow_origins=cors.allow_origins, allow_methods=["GET", "POST"],
                           allow_headers=["authorization", "content-type", "x-request-id", TIMEOUT_HEADER],
                           expose_headers=EXPOSED_HEADERS, max_age=600)
    app.add_middleware(RequestIdMiddleware)


def _sagemaker_transport(config: Config, metrics: Metrics,
                         ) -> tuple[Transport, Callable[[], bool], Callable[[Config], None]]:
    """The SageMaker transport with a credential provider per source the config names; the returned hook gives a
    reloaded config's sources to the refresher (new roles are fetched, dropped ones let go)."""
    from service.config.aws import credential_spec
    from service.transport.factory import build_transport

    def specs(cfg: Config) -> list[CredentialSpec]:
        default = credential_spec(None, cfg.aws.credentials)
        return [default, *(credential_spec(ep.credentials, cfg.aws.credentials) for ep in cfg.endpoints.values())]

    aws = config.aws
    transport, ready = build_transport(aws.runtime_url, aws.region, credential_spec(None, aws.credentials),
                                       specs(config), on_refresh=metrics.count_credential_refresh)
    registry = transport.credentials
    return transport, ready, (lambda cfg: registry.prepare(specs(cfg)) if registry is not None else None)


class GatewayApp(FastAPI):
    """FastAPI for everything, except POSTs to the generation routes: those go straight to their handler through
    the app's own user middleware (request ids, and whatever else is added), skipping FastAPI's and Starlette's
    exception-middleware and routing layers (about a fifth of the gateway's CPU per request in
    tests/bench/PROFILE.md). Error responses are the same either way; the routes stay registered with FastAPI
    for the OpenAPI document and for other methods (405)."""

    def __init__(self, fast_routes: Mapping[str, Handler], **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.fast_routes = fast_routes
        self._fast_apps: dict[str, ASGIApp] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in self.fast_routes:
            if self._fast_apps is None:
                self._fast_apps = self._build_fast_apps()
            scope["app"] = self
            await self._fast_apps[scope["path"]](scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    def _build_fast_apps(self) -> dict[str, ASGIApp]:
        """Each handler wrapped in exactly the middleware the app declares (as Starlette builds its own stack,
        lazily at the first request), so a middleware added to the app can never be skipped by the fast path."""
        apps: dict[str, ASGIApp] = {}
        for path, handler in self.fast_routes.items():
            app: ASGIApp = _HandlerApp(handler)
            for middleware in reversed(self.user_middleware):
                app = middleware.cls(app, *middleware.args, **middleware.kwargs)
            apps[path] = app
        return apps


class _HandlerApp:
    """A route handler as an ASGI app, with the error mapping the full stack would apply."""

    def __init__(self, handler: Callable[[Request], Awaitable[Response]]) -> None:
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        rid = str(scope.get("state", {}).get("request_id", "-"))
        try:
            response = await self.handler(Request(scope, receive))
        except GatewayError as err:
            response = error_response(err, rid)
        except Exception:
            response = unexpected_response(rid)
        await response(scope, receive, send)


def app_from_env() -> FastAPI:
    """uvicorn factory for `--workers N`: each worker loads the config named by JUMPGATE_CONFIG."""
    import os

    from service.config.model import load_config
    from service.telemetry.logs import setup_logging

    path = os.environ["JUMPGATE_CONFIG"]
    config = load_config(path)
    setup_logging(config.logging.format)  # workers are fresh processes: nothing is inherited
    return create_app(config, config_path=path)

