"""The transport seam: bytes in, bytes out, no payload schema.

A transport makes ONE signed call per `invoke` / `invoke_stream` and raises the `UpstreamError`
subclasses of `service.errors` for failures; retrying is the caller's business (`retry.py`), so that
attempts are visible to the gateway's headers and metrics and every attempt is signed anew.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Target:
    """Where and how to call: the transport-relevant part of an endpoint's config."""

    endpoint_name: str
    timeout_s: float = 70.0
    custom_attributes: str | None = None
    target_variant: str | None = None
    inference_component: str | None = None


@dataclass(frozen=True, slots=True)
class Payload:
    """What an adapter produced: body bytes and their media types."""

    body: bytes
    content_type: str = "application/json"
    accept: str = "application/json"


@dataclass(frozen=True, slots=True)
class RawResponse:
    body: bytes
    content_type: str


class Transport(Protocol):
    async def invoke(self, target: Target, payload: Payload) -> RawResponse:
        """POST /endpoints/{name}/invocations once. Raises UpstreamError subclasses on failure."""
        ...

    def invoke_stream(self, target: Target, payload: Payload) -> AsyncGenerator[bytes, None]:
        """POST /endpoints/{name}/invocations-response-stream once and yield the PayloadParts' raw bytes.

        The parts completed by one network read come joined as one item: part boundaries fall anywhere
        (inside a line, inside a character), so consumers buffer bytes anyway, and a batch that arrived
        together can be relayed with one write.

        Pre-stream failures raise like `invoke`; ModelStreamError / InternalStreamFailure frames raise
        UpstreamStreamError. Closing the iterator (aclose) releases the connection.
        """
        ...

    async def aclose(self) -> None:
        """Release the connection pool."""
        ...
