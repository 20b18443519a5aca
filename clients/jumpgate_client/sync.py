"""`JumpgateClient`: the blocking client, on `httpx.Client`."""

from __future__ import annotations

import time
from collections.abc import Generator, Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any, Literal, overload

import httpx

from clients.jumpgate_client import _core
from clients.jumpgate_client._core import Chunk, RetryPolicy, SSEDecoder
from clients.jumpgate_client.errors import APIConnectionError, JumpgateError, error_from_response


class Stream:
    """An open streaming answer: iterate it for parsed chunks. Closes its connection when exhausted, when it
    raises, on `close()`, or at the end of a `with` block; break out early and close it yourself."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.request_id = response.headers.get("x-request-id")
        self.headers = response.headers
        self._chunks = self._iterate()

    def _iterate(self) -> Generator[Chunk, None, None]:
        decoder = SSEDecoder(self.request_id)
        try:
            for line in self.response.iter_lines():
                yield from decoder.feed(line)
                if decoder.done:
                    return
            yield from decoder.close()
        except httpx.TransportError as exc:
            raise APIConnectionError(f"the stream broke: {exc!r}", request_id=self.request_id) from exc
        finally:
            self.response.close()

    def __iter__(self) -> Iterator[Chunk]:
        return self._chunks

    def __next__(self) -> Chunk:
        return next(self._chunks)

    def close(self) -> None:
        self._chunks.close()
        self.response.close()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class JumpgateClient:
    """jumpgate's OpenAI-compatible and native APIs. Answers are the gateway's JSON as dicts; failures raise
    the typed exceptions of `clients.jumpgate_client.errors`. 429 and 503 are retried per `retry`.

    `timeout` (httpx's: seconds, an `httpx.Timeout`, or None for none) defaults to 330 s to read and 10 s to
    connect: above the gateway's own 300 s request deadline, so its 504 arrives rather than a client-side
    timeout. Raise it with the gateway's `resilience.request_timeout_s`."""

    def __init__(self, base_url: str | None = None, *, api_key: str | None = None,
                 timeout: float | httpx.Timeout | None = _core.DEFAULT_TIMEOUT,
                 retry: RetryPolicy | None = None, headers: Mapping[str, str] | None = None,
                 http_client: httpx.Client | None = None) -> None:
        self.base_url = _core.base_url(base_url)
        self.retry = retry or RetryPolicy()
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(timeout=timeout)
        self._headers = _core.default_headers(api_key, headers)

    @overload
    def chat(self, model: str, messages: Iterable[Mapping[str, Any]], *, stream: Literal[False] = ...,
             request_id: str | None = ..., **params: Any) -> Chunk: ...
    @overload
    def chat(self, model: str, messages: Iterable[Mapping[str, Any]], *, stream: Literal[True],
             request_id: str | None = ..., **params: Any) -> Stream: ...
    def chat(self, model: str, messages: Iterable[Mapping[str, Any]], *, stream: bool = False,
             request_id: str | None = None, **params: Any) -> Chunk | Stream:
        """`POST /v1/chat/completions` with OpenAI parameters (and jumpgate's extras such as `top_k`)."""
        return self._call("/v1/chat/completions", _core.chat_body(model, messages, stream, params), stream, request_id)

    @overload
    def complete(self, model: str, prompt: str | list[str], *, stream: Literal[False] = ...,
                 request_id: str | None = ..., **params: Any) -> Chunk: ...
    @overload
    def complete(self, model: str, prompt: str | list[str], *, stream: Literal[True],
                 request_id: str | None = ..., **params: Any) -> Stream: ...
    def complete(self, model: str, prompt: str | list[str], *, stream: bool = False,
                 request_id: str | None = None, **params: Any) -> Chunk | Stream:
        """`POST /v1/completions`."""
        return self._call("/v1/completions", _core.completion_body(model, prompt, stream, params), stream, request_id)

    @overload
    def generate(self, model: str, inputs: str, context: str | None = ..., *, stream: Literal[False] = ...,
                 request_id: str | None = ..., **parameters: Any) -> Chunk: ...
    @overload
    def generate(self, model: str, inputs: str, context: str | None = ..., *, stream: Literal[True],
                 request_id: str | None = ..., **parameters: Any) -> Stream: ...
    def generate(self, model: str, inputs: str, context: str | None = None, *, stream: bool = False,
                 request_id: str | None = None, **parameters: Any) -> Chunk | Stream:
        """`POST /v1/generate`, the native API: canonical parameter names (`max_new_tokens`, `top_k`, ...)."""
        body = _core.generate_body(model, inputs, context, stream, parameters)
        return self._call("/v1/generate", body, stream, request_id)

    def models(self) -> list[Chunk]:
        """`GET /v1/models`: every model with its endpoints, schema, accelerator, context length and price."""
        response = self._send("GET", "/v1/models", None, False, None)
        data: list[Chunk] = response.json()["data"]
        return data

    def _call(self, path: str, body: Chunk, stream: bool, request_id: str | None) -> Chunk | Stream:
        response = self._send("POST", path, body, stream, request_id)
        if stream:
            return Stream(response)
        result: Chunk = response.json()
        return result

    def _send(self, method: str, path: str, body: Chunk | None, stream: bool,
              request_id: str | None) -> httpx.Response:
        """One call with retries. A streamed response is returned open, after its status line only."""
        headers = {**self._headers, **_core.request_headers(request_id, stream)}
        retries = 0
        while True:
            request = self._http.build_request(method, self.base_url + path, json=body, headers=headers)
            try:
                response = self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                raise APIConnectionError(f"{method} {path} failed: {exc!r}", request_id=request_id) from exc
            if response.is_success:
                return response
            err = self._error(response)
            wait = self.retry.delay(err, retries)
            if wait is None:
                raise err
            retries += 1
            time.sleep(wait)

    @staticmethod
    def _error(response: httpx.Response) -> JumpgateError:
        try:
            content = response.read()
        finally:
            response.close()
        return error_from_response(response.status_code, content, response.headers)

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> JumpgateClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
