"""A serving process settles its start-up heap once it listens: the cyclic collector's full collections then walk
only what requests allocate, not the ~120k objects start-up built (service/server.py, `settle_heap`)."""

from __future__ import annotations

import gc
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from service.server import AnnouncingServer


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # this test process's objects go back to the collector


async def test_a_server_that_listens_has_settled_its_heap_before_it_announces(unfrozen: None) -> None:
    announced: list[int] = []

    def announce() -> None:
        announced.append(gc.get_freeze_count())
        server.should_exit = True  # listening, announced: done

    server = AnnouncingServer(uvicorn.Config(_app, log_level="warning"), announce)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    try:
        assert gc.get_freeze_count() == 0
        await server.serve(sockets=[sock])
    finally:
        sock.close()
    assert len(announced) == 1
    assert announced[0] > 1000, "start-up's objects (every module, class and function loaded) are frozen"
