from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
import uvloop
from aiohttp import web

from service.transport.sagemaker import SageMakerTransport
from service.transport.signing import Signer
from tests.transport.rawserver import RawServer
from tests.transport.upstream import FakeRuntime

ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = "session-token-example"
REGION = "us-west-2"


def pytest_asyncio_loop_factories(config: pytest.Config,
                                  item: pytest.Item) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """asyncio's loop; and uvloop's too for tests marked `asyncio(loop_factories=["asyncio", "uvloop"])`. The
    gateway serves on uvloop (uvicorn[standard], service/cli.py), whose transports and TLS are its own code."""
    marker = item.get_closest_marker("asyncio")
    if marker is None or "loop_factories" not in marker.kwargs:
        return {"asyncio": asyncio.new_event_loop}
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


async def serve_fake_runtime() -> tuple[FakeRuntime, web.AppRunner]:
    """A FakeRuntime listening on a loopback port (its `url` set); clean up the runner when done."""
    fake = FakeRuntime()
    app = web.Application()
    app.router.add_post("/endpoints/{name}/{operation}", fake.dispatch)
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    fake.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    return fake, runner


@pytest.fixture
async def runtime() -> AsyncIterator[FakeRuntime]:
    fake, runner = await serve_fake_runtime()
    yield fake
    fake.release.set()
    await runner.cleanup()


@pytest.fixture
def signer() -> Signer:
    return Signer.static(ACCESS_KEY, SECRET_KEY, SESSION_TOKEN, region=REGION)


@pytest.fixture
async def transport(runtime: FakeRuntime, signer: Signer) -> AsyncIterator[SageMakerTransport]:
    client = SageMakerTransport(runtime.url, signer, pool_size=8)
    yield client
    await client.aclose()


@pytest.fixture
async def server() -> AsyncIterator[RawServer]:
    raw = RawServer()
    srv = await asyncio.start_server(raw.handle, "127.0.0.1", 0)
    raw.url = f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}"
    yield raw
    srv.close()


@pytest.fixture
async def raw_transport(server: RawServer, signer: Signer) -> AsyncIterator[SageMakerTransport]:
    """A transport whose runtime is the raw server (`server`)."""
    client = SageMakerTransport(server.url, signer)
    yield client
    await client.aclose()
