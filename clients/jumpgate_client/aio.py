"""`AsyncJumpgateClient`: the asyncio client, on `httpx.AsyncClient`. Same methods and errors as the sync one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Mapping
from types import TracebackType
from typing import Any, Literal, overload

import httpx

from clients.jumpgate_client import _core
from clients.jumpgate_client._core import Chunk, RetryPolicy, SSEDecoder
from clients.jumpgate_client.errors import APIConnectionError, JumpgateError, error_from_response


class AsyncStream:
    """An open streaming answer: `async for chunk in stream`. Closes its connection when exhausted, when it
    raises, on `aclose()`, or at the end of an `async with` block."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.request_id = response.headers.get("x-request-id")
        self.headers = response.headers
        self._chunks = self._iterate()

    async def _iterate(self) -> AsyncGenerator[Chunk, None]:
        decoder = SSEDecoder(self.request_id)
        try:
            async for line in self.response.aiter_lines():
                for chunk in decoder.feed(line):
                    yield chunk
                if decoder.done:
                    return
            for chunk in decoder.close():
                yield chunk
        except httpx.TransportError as exc:
            raise APIConnectionError(f"the stream broke: {exc!r}", request_id=self.request_id) from exc
        finally:
            await self.response.aclose()

    def __aiter__(self) -> AsyncIterator[Chunk]:
        return self._chunks

    async def __anext__(self) -> Chunk:
        return await self._chunks.__anext__()

    async def aclose(self) -> None:
        await self._chunks.aclose()
        await self.response.aclose()

    async def __aenter__(self) -> AsyncStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class AsyncJumpgateClient:
    """The asyncio twin of `JumpgateClient`; use it as `async with AsyncJumpgateClient(url) as client`. The
    same `timeout` default: 330 s to read, above the gateway's 300 s request deadline; 10 s to connect."""

    def __init__(self, base_url: str | None = None, *, api_key: str | None = None,
                 timeout: float | httpx.Timeout | None = _core.DEFAULT_TIMEOUT,
                 retry: RetryPolicy | None = None, headers: Mapping[str, str] | None = None,
                 http_client: httpx.AsyncClient | None = None) -> None:
        self.base_url = _core.base_url(base_url)
        self.retry = retry or RetryPolicy()
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(timeout=timeout)
        self._headers = _core.default_headers(api_key, headers)

    @overload
    async def chat(self, model: str, messages: Iterable[Mapping[str, Any]], *, stream: Literal[False] = ...,
                   request_id: str | None = ..., **params: Any) -> Chunk: ...
    @overload
    async def chat(self, model: str, messages: Iterable[Mapping[str, Any]], *, stream: Literal[True],
                   request_id: str | None = ..., **params: Any) -> AsyncStream: ...
    async def chat(self, model: str, messages: Iterable[Mapping[str, Any]], *, stream: bool = False,
                   request_id: str | None = None, **params: Any) -> Chunk | AsyncStream:
        """`POST /v1/chat/completions`."""
        body = _core.chat_body(model, messages, stream, params)
        return await self._call("/v1/chat/completions", body, stream, request_id)

    @overload
    async def complete(self, model: str, prompt: str | list[str], *, stream: Literal[False] = ...,
                       request_id: str | None = ..., **params: Any) -> Chunk: ...
    @overload
    async def complete(self, model: str, prompt: str | list[str], *, stream: Literal[True],
                       request_id: str | None = ..., **params: Any) -> AsyncStream: ...
    async def complete(self, model: str, prompt: str | list[str], *, stream: bool = False,
                       request_id: str | None = None, **params: Any) -> Chunk | AsyncStream:
        """`POST /v1/completions`."""
        body = _core.completion_body(model, prompt, stream, params)
        return await self._call("/v1/completions", body, stream, request_id)

    @overload
    async def generate(self, model: str, inputs: str, context: str | None = ..., *, stream: Literal[False] = ...,
                       request_id: str | None = ..., **parameters: Any) -> Chunk: ...
    @overload
    async def generate(self, model: str, inputs: str, context: str | None = ..., *, stream: Literal[True],
                       request_id: str | None = ..., **parameters: Any) -> AsyncStream: ...
    async def generate(self, model: str, inputs: str, context: str | None = None, *, stream: bool = False,
                       request_id: str | None = None, **parameters: Any) -> Chunk | AsyncStream:
        """`POST /v1/generate`, the native API with canonical parameter names."""
        body = _core.generate_body(model, inputs, context, stream, parameters)
        return await self._call("/v1/generate", body, stream, request_id)

    async def models(self) -> list[Chunk]:
        """`GET /v1/models`."""
        response = await self._send("GET", "/v1/models", None, False, None)
        data: list[Chunk] = response.json()["data"]
        return data

    async def _call(self, path: str, body: Chunk, stream: bool, request_id: str | None) -> Chunk | AsyncStream:
        response = await self._send("POST", path, body, stream, request_id)
        if stream:
            return AsyncStream(response)
        result: Chunk = response.json()
        return result

    async def _send(self, method: str, path: str, body: Chunk | None, stream: bool,
                    request_id: str | None) -> httpx.Response:
        headers = {**self._headers, **_core.request_headers(request_id, stream)}
        retries = 0
        while True:
            request = self._http.build_request(method, self.base_url + path, json=body, headers=headers)
            try:
                response = await self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                raise APIConnectionError(f"{method} {path} failed: {exc!r}", request_id=request_id) from exc
            if response.is_success:
                return response
            err = await self._error(response)
            wait = self.retry.delay(err, retries)
            if wait is None:
                raise err
            retries += 1
            await asyncio.sleep(wait)

    @staticmethod
    async def _error(response: httpx.Response) -> JumpgateError:
        try:
            content = await response.aread()
        finally:
            await response.aclose()
        return error_from_response(response.status_code, content, response.headers)

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncJumpgateClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()
