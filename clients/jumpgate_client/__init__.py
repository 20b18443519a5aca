"""Python client for jumpgate: sync and async, streaming iterators, typed errors, retries on 429 and 503.

    from clients.jumpgate_client import JumpgateClient

    with JumpgateClient("http://127.0.0.1:8080") as client:
        answer = client.chat("llama3-8b", [{"role": "user", "content": "Hello"}], max_tokens=32)
        for chunk in client.generate("llama3-8b", "Hello", stream=True, max_new_tokens=32):
            print(chunk["text"], end="")
"""

from clients.jumpgate_client._core import RetryPolicy, SSEDecoder
from clients.jumpgate_client.aio import AsyncJumpgateClient, AsyncStream
from clients.jumpgate_client.errors import (
    APIConnectionError,
    AuthenticationError,
    InternalServerError,
    InvalidRequestError,
    JumpgateError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestTooLargeError,
    ServiceUnavailableError,
    StreamIncompleteError,
    TimeoutError,
    UpstreamError,
)
from clients.jumpgate_client.sync import JumpgateClient, Stream

__all__ = [
    "APIConnectionError",
    "AsyncJumpgateClient",
    "AsyncStream",
    "AuthenticationError",
    "InternalServerError",
    "InvalidRequestError",
    "JumpgateClient",
    "JumpgateError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestTooLargeError",
    "RetryPolicy",
    "SSEDecoder",
    "ServiceUnavailableError",
    "Stream",
    "StreamIncompleteError",
    "TimeoutError",
    "UpstreamError",
]
