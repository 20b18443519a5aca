"""FakeTransport: the in-memory transport other unit tests build on."""

from __future__ import annotations

import pytest

from service.errors import UpstreamStreamError, UpstreamThrottled
from service.transport.base import Payload, RawResponse, Target, Transport
from service.transport.fake import Call, FakeTransport

TARGET, PAYLOAD = Target("ep"), Payload(b"{}")


def handler(target: Target, payload: Payload) -> RawResponse | list[bytes | Exception]:
    if target.endpoint_name == "busy":
        raise UpstreamThrottled("busy")
    if payload.accept == "text/event-stream":
        return [b"a", b"b", UpstreamStreamError("broke")] if target.endpoint_name == "breaks" else [b"a", b"b"]
    return RawResponse(b'{"ok": true}', "application/json")


async def test_invoke_and_calls_are_recorded() -> None:
    fake: Transport = FakeTransport(handler)
    assert (await fake.invoke(TARGET, PAYLOAD)).body == b'{"ok": true}'
    assert fake.calls == [Call("invoke", TARGET, PAYLOAD)]


async def test_stream_items_and_scripted_failures() -> None:
    fake = FakeTransport(handler)
    stream_payload = Payload(b"{}", accept="text/event-stream")
    assert [part async for part in fake.invoke_stream(TARGET, stream_payload)] == [b"a", b"b"]
    got = []
    with pytest.raises(UpstreamStreamError):
        async for part in fake.invoke_stream(Target("breaks"), stream_payload):
            got.append(part)
    assert got == [b"a", b"b"]
    assert fake.streams_closed_early == 0


async def test_handler_errors_and_early_close() -> None:
    fake = FakeTransport(handler)
    with pytest.raises(UpstreamThrottled):
        await fake.invoke(Target("busy"), PAYLOAD)
    stream = fake.invoke_stream(TARGET, Payload(b"{}", accept="text/event-stream"))
    assert await anext(stream) == b"a"
    await stream.aclose()
    assert fake.streams_closed_early == 1
    await fake.aclose()
    assert fake.closed


async def test_async_handler_and_wrong_shapes() -> None:
    async def async_handler(target: Target, payload: Payload) -> list[bytes | Exception]:
        return [b"x"]

    fake = FakeTransport(async_handler)
    assert [p async for p in fake.invoke_stream(TARGET, PAYLOAD)] == [b"x"]
    with pytest.raises(TypeError, match="RawResponse"):
        await fake.invoke(TARGET, PAYLOAD)
