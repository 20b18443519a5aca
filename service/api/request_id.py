"""Request ids: a well-formed client `x-request-id` is echoed, otherwise one is made; it goes on every response,
errors included. The one implementation, used by the full FastAPI stack and by the generation fast path."""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable, Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.errors import error_response
from service.errors import InvalidRequest

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def new_request_id() -> str:
    return os.urandom(16).hex()  # 128 random bits, like uuid4, without building a UUID object


def incoming_id(raw_headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """A client's request id is echoed in a response header, so it must be safe there: anything else is a 400."""
    for name, value in raw_headers:
        if name == b"x-request-id":
            text = value.decode("latin-1")
            if not _SAFE_REQUEST_ID.match(text):
                raise InvalidRequest("header x-request-id must be 1 to 128 characters of A-Z a-z 0-9 . _ : - "
                                     "(no spaces or control characters)", param="x-request-id")
            return text
    return None


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            rid = incoming_id(scope["headers"]) or new_request_id()
        except InvalidRequest as err:
            await error_response(err)(scope, receive, send)
            return
        scope.setdefault("state", {})["request_id"] = rid
        encoded = rid.encode()

        # A plain function handing back the server's own awaitable: a stream calls this once per token, and an
        # `async def` wrapper would add a coroutine per call.
        def send_with_id(message: Message) -> Awaitable[None]:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k != b"x-request-id"]
                message["headers"] = [*headers, (b"x-request-id", encoded)]
            return send(message)

        await self.app(scope, receive, send_with_id)
