"""What the sync and async clients share: request bodies, the retry policy and the SSE decoder. No I/O here."""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from clients.jumpgate_client.errors import JumpgateError, StreamIncompleteError, error_from_event

DEFAULT_URL = "http://127.0.0.1:8080"
URL_ENV = "JUMPGATE_URL"
API_KEY_ENV = "JUMPGATE_API_KEY"
RETRY_STATUSES = frozenset({429, 503})
#: The gateway's own deadline for a request (`resilience.request_timeout_s`, 300 s by default): it answers 504
#: by then. The client waits longer, so that it receives that answer (and any answer the gateway is still
#: relaying) instead of cutting the connection first and leaving the gateway to finish work nobody reads.
GATEWAY_REQUEST_TIMEOUT_S = 300.0
#: Seconds to wait for an answer (for a stream: between two reads): the gateway's deadline plus a margin for
#: queueing in front of it (a load balancer, the gateway's own slot wait) and for the transfer.
DEFAULT_TIMEOUT_S = GATEWAY_REQUEST_TIMEOUT_S + 30.0
#: Seconds to open a connection: a gateway that cannot be reached is reported at once, not after 330 s.
CONNECT_TIMEOUT_S = 10.0
#: The clients' default `timeout=` (a number, an `httpx.Timeout`, or None for none, as httpx takes it)
DEFAULT_TIMEOUT = httpx.Timeout(DEFAULT_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)

Chunk = dict[str, Any]


def base_url(url: str | None) -> str:
    """The gateway's root URL: from the argument, else $JUMPGATE_URL, else the local default. A trailing
    `/v1` is dropped, so the URL given to the OpenAI SDK works here too."""
    root = (url or os.environ.get(URL_ENV) or DEFAULT_URL).rstrip("/")
    return root.removesuffix("/v1")


def default_headers(api_key: str | None, extra: Mapping[str, str] | None) -> dict[str, str]:
    headers = {"accept": "application/json", **(extra or {})}
    key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
    if key:
        headers["authorization"] = f"Bearer {key}"
    return headers


def request_headers(request_id: str | None, stream: bool) -> dict[str, str]:
    headers = {"accept": "text/event-stream"} if stream else {}
    if request_id:
        headers["x-request-id"] = request_id
    return headers


def chat_body(model: str, messages: Iterable[Mapping[str, Any]], stream: bool, params: Mapping[str, Any]) -> Chunk:
    return {**params, "model": model, "messages": [dict(m) for m in messages], "stream": stream}


def completion_body(model: str, prompt: str | list[str], stream: bool, params: Mapping[str, Any]) -> Chunk:
    return {**params, "model": model, "prompt": prompt, "stream": stream}


def generate_body(model: str, inputs: str, context: str | None, stream: bool,
                  parameters: Mapping[str, Any]) -> Chunk:
    """The native API's body: canonical parameter names go under `parameters`."""
    return {"model": model, "inputs": inputs, "context": context, "parameters": dict(parameters), "stream": stream}


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of 429 and 503 answers. `max_retries` extra attempts at most; before each, wait the server's
    `Retry-After` when it sent one (giving up at once if that is longer than `max_wait`), else exponential
    backoff with full jitter: uniform in [0, min(max_backoff, base * 2**retry)]. A stream is retried only
    before its first byte, i.e. on its status line; once events flow, failures are raised."""

    max_retries: int = 2
    base: float = 0.5
    max_backoff: float = 8.0
    max_wait: float = 60.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if min(self.base, self.max_backoff, self.max_wait) < 0:
            raise ValueError("retry delays must not be negative")

    def delay(self, err: JumpgateError, retries_done: int, rand: Callable[[], float] = random.random) -> float | None:
        """Seconds to wait before retrying after `err`, or None when it must be raised instead."""
        if err.status not in RETRY_STATUSES or retries_done >= self.max_retries:
            return None
        if err.retry_after is not None:
            # The server knows when it will have capacity; a little jitter keeps many clients from
            # all returning on the same tick.
            wait = err.retry_after + rand() * min(self.base, err.retry_after * 0.1 + 0.05)
        else:
            wait = rand() * min(self.max_backoff, self.base * 2 ** retries_done)
        return wait if wait <= self.max_wait else None


class SSEDecoder:
    """Server-sent events → parsed JSON chunks. Feed it lines without their line ending.

    An event is the `data:` lines before a blank line, joined by newlines (the SSE rule). `data: [DONE]`
    ends the stream; a `{"error": {...}}` event raises the typed exception; comments (`:` lines) and
    other fields (`event:`, `id:`, `retry:`) are ignored.
    """

    def __init__(self, request_id: str | None = None) -> None:
        self.request_id = request_id
        self.done = False
        self._data: list[str] = []

    def feed(self, line: str) -> Iterator[Chunk]:
        if self.done:
            return
        if line == "":
            yield from self._dispatch()
            return
        if line.startswith(":"):
            return
        name, _, value = line.partition(":")
        if name == "data":
            self._data.append(value.removeprefix(" "))

    def close(self) -> Iterator[Chunk]:
        """The body ended: dispatch a last event left without its blank line, then insist on [DONE]."""
        yield from self._dispatch()
        if not self.done:
            raise StreamIncompleteError("the stream ended before `data: [DONE]`; the answer may be cut short",
                                        request_id=self.request_id)

    def _dispatch(self) -> Iterator[Chunk]:
        if not self._data:
            return
        data, self._data = "\n".join(self._data), []
        if data == "[DONE]":
            self.done = True
            return
        try:
            event = json.loads(data)
        except ValueError as exc:
            raise StreamIncompleteError(f"the stream sent an event that is not JSON: {data[:200]!r}",
                                        request_id=self.request_id) from exc
        if isinstance(event, dict) and "error" in event:
            self.done = True
            raise error_from_event(event, self.request_id)
        yield event
