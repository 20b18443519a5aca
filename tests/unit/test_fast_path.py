"""The generation fast path skips FastAPI's routing layers, never the app's middleware."""

from __future__ import annotations

import httpx
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.embeddings import EMBEDDINGS_PATH
from service.api.routes import GENERATION_ROUTES
from service.app import GatewayApp, create_app
from service.config.demo import demo_config_data
from service.config.model import parse_config
from service.transport.base import RawResponse
from service.transport.fake import FakeTransport

TGI_OK = b'[{"generated_text": "hi", "details": {"finish_reason": "eos_token", "generated_tokens": 1, "prefill": []}}]'


class Stamp:
    """A middleware someone might add: it marks every response it saw."""

    seen: list[str] = []

    def __init__(self, app: ASGIApp, label: str) -> None:
        self.app, self.label = app, label

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def stamped(message: dict) -> None:  # type: ignore[type-arg]
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-stamp", self.label.encode())]
            await send(message)

        Stamp.seen.append(scope["path"])
        await self.app(scope, receive, stamped)  # type: ignore[arg-type]


def app_with_stamp() -> GatewayApp:
    fake = FakeTransport(lambda t, p: RawResponse(TGI_OK, "application/json"))
    app = create_app(parse_config(demo_config_data("http://sim.invalid"), source="<test>"), transport=fake)
    app.add_middleware(Stamp, label="added-later")
    assert isinstance(app, GatewayApp)
    return app


@pytest.mark.parametrize("route", GENERATION_ROUTES, ids=lambda r: r.path)
async def test_a_middleware_added_to_the_app_runs_on_the_fast_path(route: object) -> None:
    path = route.path  # type: ignore[attr-defined]
    body = {"model": "llama3-8b", "messages": [{"role": "user", "content": "Hi"}]} if "chat" in path else \
        {"model": "llama3-8b", "prompt": "Hi"} if path == "/v1/completions" else {"model": "llama3-8b", "inputs": "Hi"}
    app = app_with_stamp()
    Stamp.seen.clear()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as client:
        ok = await client.post(path, json=body)
        refused = await client.post(path, json={"model": "nope"})
    assert ok.status_code == 200 and ok.headers["x-stamp"] == "added-later" and ok.headers["x-request-id"]
    assert refused.status_code in (400, 404) and refused.headers["x-stamp"] == "added-later"
    assert Stamp.seen == [path, path]


async def test_the_fast_path_serves_exactly_the_declared_generation_routes() -> None:
    app = app_with_stamp()
    assert set(app.fast_routes) == {*(r.path for r in GENERATION_ROUTES), EMBEDDINGS_PATH}
    posted = {path for path, ops in app.openapi()["paths"].items() if "post" in ops}
    assert posted == set(app.fast_routes), "every POST route of the app is a declared fast route"
