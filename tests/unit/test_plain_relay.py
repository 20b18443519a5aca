"""The relay with and without the decoders' plain-token path (adapters/plain.py), in process: the app (demo config)
serves a streamed request from a fake pushed part stream to a fake client socket (the `SocketBody` extension), and
the client gets the same bytes either way, however the upstream's reads are cut and whatever they carry."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.adapters.tgi import TgiStream
from service.api.stream_response import BODY_SOCKET
from service.app import create_app
from service.config.demo import demo_config_data
from service.config.model import parse_config
from service.simulator.eventstream import payload_part
from service.transport.base import Payload, RawResponse, Target
from service.transport.eventstream import PayloadPartDecoder


class _Parts:
    """A pushed part stream over given network reads (the first is pulled while the stream opens)."""

    def __init__(self, reads: list[bytes], pauses: list[bool]) -> None:
        self._reads = list(reads)
        self._decoder = PayloadPartDecoder("plain-relay")
        self.pauses = pauses

    def __aiter__(self) -> _Parts:
        return self

    async def __anext__(self) -> bytes:
        while self._reads:
            joined = self._decoder.joined(self._reads.pop(0))
            if joined:
                return joined
        raise StopAsyncIteration

    async def deliver(self, on_parts: Callable[[bytes], bool]) -> bool:
        while self._reads:
            if not self._decoder.push(on_parts, self._reads.pop(0)):
                self.pauses.append(True)
                return True
        return False

    async def aclose(self) -> None:
        return None


class _Transport:
    def __init__(self, reads: list[bytes]) -> None:
        self.reads = reads
        self.pauses: list[bool] = []

    async def invoke(self, target: Target, payload: Payload) -> RawResponse:
        raise AssertionError("streams only")

    def invoke_stream(self, target: Target, payload: Payload) -> _Parts:
        return _Parts(self.reads, self.pauses)

    async def aclose(self) -> None:
        return None


class _Socket:
    """The client's socket: records the body; says "pause" every `every` writes (the client fell behind)."""

    def __init__(self, every: int) -> None:
        self.body = bytearray()
        self.writes = 0
        self.every = every

    def ready(self) -> bool:
        return True

    def write(self, data: bytes) -> bool:
        self.body += data
        self.writes += 1
        return not self.every or self.writes % self.every != 0

    async def drain(self) -> None:
        return None


async def _serve(reads: list[bytes], every: int, path: str, extra: dict[str, Any]) -> tuple[bytes, list[bool]]:
    transport = _Transport(reads)
    app = create_app(parse_config(demo_config_data("http://plain-relay.invalid"), source="test"), transport=transport)
    messages = {"messages": [{"role": "user", "content": "Hi"}]} if "chat" in path else {"prompt": "Hi"}
    body = orjson.dumps({"model": "llama3-8b", **messages, "max_tokens": 64, "stream": True, **extra})
    socket = _Socket(every)
    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "state": {}, "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 8080),
             "headers": [(b"host", b"localhost"), (b"content-type", b"application/json"),
                         (b"content-length", b"%d" % len(body)), (b"x-request-id", b"plain-relay-1")],
             "extensions": {BODY_SOCKET: socket}}
    ended = asyncio.Event()
    sent: list[bytes] = []

    async def receive() -> dict[str, Any]:
        if not sent:
            sent.append(b"")
            return {"type": "http.request", "body": body, "more_body": False}
        await ended.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            socket.body += message.get("body", b"")
            if not message.get("more_body"):
                ended.set()

    async with app.router.lifespan_context(app):
        await asyncio.wait_for(app(scope, receive, send), 30)
    return re.sub(rb'"created":\d+', b'"created":0', bytes(socket.body)), transport.pauses


def _relay(reads: list[bytes], every: int = 0, path: str = "/v1/chat/completions",
           **extra: Any) -> tuple[bytes, list[bool]]:
    return asyncio.run(_serve(reads, every, path, extra))


def _event(text: str, *, special: bool = False, final: bool = False, n: int = 1) -> bytes:
    obj = {"index": n, "token": {"id": n, "text": text, "logprob": -0.1, "special": special},
           "generated_text": "whole" if final else None,
           "details": {"finish_reason": "length", "generated_tokens": 9, "input_length": 3} if final else None}
    return b"data:" + orjson.dumps(obj) + b"\n\n"


texts_st = st.lists(st.one_of(st.sampled_from(["Hel", " lo", "", "😀", '"q"', "\\", "\n", "é"]),
                              st.text(max_size=4)), min_size=1, max_size=12)


def _reads(texts: list[str], specials: list[bool], cuts: list[int], merge: bool) -> list[bytes]:
    """The frames of `texts` (with some special tokens) and a final event, as network reads: one frame per read,
    some cut in two, and with `merge` two frames sharing a read."""
    frames = [payload_part(_event(t, special=s, n=i)) for i, (t, s) in enumerate(zip(texts, specials, strict=False), 1)]
    frames.append(payload_part(_event("</s>", special=True, final=True, n=len(frames) + 1)))
    reads: list[bytes] = []
    for i, frame in enumerate(frames):
        cut = cuts[i % len(cuts)] if cuts else 0
        if merge and i % 3 == 2 and reads:
            reads[-1] += frame
        elif 0 < cut < len(frame):
            reads += [frame[:cut], frame[cut:]]
        else:
            reads.append(frame)
    return reads


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=texts_st, specials=st.lists(st.booleans(), min_size=12, max_size=12),
       cuts=st.lists(st.integers(0, 120), max_size=4), merge=st.booleans(), every=st.sampled_from([0, 3]),
       path=st.sampled_from(["/v1/chat/completions", "/v1/completions"]))
def test_the_client_gets_the_same_bytes_with_and_without_the_plain_path(
        monkeypatch: pytest.MonkeyPatch, texts: list[str], specials: list[bool], cuts: list[int], merge: bool,
        every: int, path: str) -> None:
    reads = _reads(texts, specials, cuts, merge)
    with_plain, paused = _relay(reads, every, path)
    with monkeypatch.context() as m:
        m.setattr(TgiStream, "plain", None)
        without, paused_without = _relay(reads, every, path)
    assert with_plain == without
    assert paused == paused_without  # the socket's pauses reach the upstream read either way
    assert b"data: [DONE]" in with_plain


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    general = TgiStream.push

    def counted(self: TgiStream, on_events: Callable[..., bool], data: bytes) -> bool:
        calls.append(1)
        return general(self, on_events, data)

    monkeypatch.setattr(TgiStream, "push", counted)
    return calls


def _contents(body: bytes) -> list[str]:
    chunks = [orjson.loads(line[6:]) for line in body.split(b"\n\n") if line.startswith(b"data: {")]
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    return [d["content"] for d in deltas if d.get("content")]


def test_the_plain_path_carries_the_usual_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not vacuous: every token after the first is written by the decoder's plain path."""
    calls = _counting(monkeypatch)
    body, _ = _relay(_reads(["a", "b", "c", "d", "e"], [False] * 5, [], False))
    assert calls == [1, 1]  # the first token (the opening chunk goes with it) and the final event
    assert _contents(body) == ["a", "b", "c", "d", "e"]


@pytest.mark.parametrize("extra", [{"stop": ["zz"]}, {"logprobs": True}])
def test_a_stream_whose_tokens_are_read_keeps_every_token_on_the_general_path(
        monkeypatch: pytest.MonkeyPatch, extra: dict[str, Any]) -> None:
    calls = _counting(monkeypatch)
    body, _ = _relay(_reads(["a", "b", "c", "d", "e"], [False] * 5, [], False), **extra)
    assert calls == [1] * 6
    assert _contents(body) == ["a", "b", "c", "d", "e"]
