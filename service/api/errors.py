"""The one place where errors become what a client receives: an HTTP response or an SSE error event.

Every 4xx/5xx the application sends is built here: gateway errors raised by routes (fast path included),
request-id refusals, unknown routes and methods (404 / 405 instead of Starlette's `{"detail": ...}`), and
unexpected exceptions (500 with the request id to quote; the traceback goes to the log, never to the client).
"""

from __future__ import annotations

import logging
from http import HTTPStatus

import orjson
from fastapi import FastAPI, Request
from starlette.exceptions import HTTPException
from starlette.responses import Response

from service.errors import (
    GatewayError,
    InternalError,
    InvalidRequest,
    MethodNotAllowed,
    RouteNotFound,
    response_headers,
    to_openai_body,
)

log = logging.getLogger("jumpgate")

#: how much of a client-sent path is echoed in a 404 / 405 message
MAX_ECHO = 100


def error_response(err: GatewayError, request_id: str | None = None) -> Response:
    """A GatewayError as an HTTP response in the OpenAI error shape, with Retry-After where it applies."""
    if err.status >= 500:
        log.warning("request %s failed: %s %s", request_id or "-", err.status, err.code)
    headers = response_headers(err)
    if request_id is not None:
        headers["x-request-id"] = request_id
    return Response(orjson.dumps(to_openai_body(err)), status_code=err.status, headers=headers,
                    media_type="application/json")


def unexpected_response(request_id: str) -> Response:
    """An exception nobody expected: logged with its traceback (call from an except block), a 500 to the client."""
    return error_response(_unexpected(request_id), request_id)


def error_event(err: GatewayError) -> bytes:
    """A failure after a stream started: one OpenAI-shaped `data: {"error": ...}` event (and no [DONE])."""
    return b"data: " + orjson.dumps(to_openai_body(err)) + b"\n\n"


def unexpected_event(request_id: str) -> bytes:
    return error_event(_unexpected(request_id))


def _unexpected(request_id: str) -> InternalError:
    log.exception("request %s failed unexpectedly", request_id)
    return InternalError(f"internal error; quote request id {request_id} when reporting it")


def http_error(exc: HTTPException, method: str, path: str) -> GatewayError:
    """Starlette's routing refusals as errors of the tree."""
    shown = path if len(path) <= MAX_ECHO else path[:MAX_ECHO] + "..."
    if exc.status_code == 405:
        headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
        allowed = tuple(a.strip() for a in headers.get("allow", "").split(",") if a.strip())
        return MethodNotAllowed(f"method {method} is not allowed on {shown}; use {' or '.join(allowed) or 'another'}",
                                allowed=allowed)
    if exc.status_code == 404:
        return RouteNotFound(f"no route {shown}: see GET /v1/models and the README for the API's paths")
    phrase = HTTPStatus(exc.status_code).phrase if exc.status_code in HTTPStatus.__members__.values() else "error"
    if 400 <= exc.status_code < 500:
        return InvalidRequest(f"{phrase} ({exc.status_code}) for {method} {shown}")
    return InternalError(f"{phrase} ({exc.status_code})")


def install_error_handlers(app: FastAPI) -> None:
    async def gateway_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, GatewayError)
        return error_response(exc, _request_id(request))

    async def routing_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return error_response(http_error(exc, request.method, request.url.path), _request_id(request))

    async def unexpected(request: Request, exc: Exception) -> Response:
        # Starlette answers this from its outermost middleware, outside the request-id middleware.
        return unexpected_response(_request_id(request) or "-")

    app.add_exception_handler(GatewayError, gateway_error)
    app.add_exception_handler(HTTPException, routing_error)
    app.add_exception_handler(Exception, unexpected)


def _request_id(request: Request) -> str | None:
    rid = getattr(request.state, "request_id", None)
    return rid if isinstance(rid, str) else None
