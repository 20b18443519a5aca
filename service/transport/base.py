"""The transport seam: bytes in, bytes out, no payload schema.

A transport makes ONE signed call per `invoke` / `invoke_stream` and raises the `UpstreamError`
subclasses of `service.errors` for failures; retrying is the caller's business (`retry.py`), so that
attempts are visible to the gateway's headers and metrics and every attempt is signed anew.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

CredentialKind = Literal["static", "chain", "profile", "role"]


@dataclass(frozen=True, slots=True)
class CredentialSpec:
    """Where an endpoint's AWS credentials come from (service/transport/credentials.py turns it into a provider).

    Equal specs share one provider, so endpoints that assume the same role share one refresher. A role is assumed
    from `base` (its own static keys or profile, else the default chain). Secrets never appear in repr or in
    `describe()` / `label()`.
    """

    kind: CredentialKind = "chain"
    profile: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    role_arn: str | None = None
    external_id: str | None = field(default=None, repr=False)
    session_name: str = "jumpgate"
    duration_s: int = 3600
    base: CredentialSpec | None = None

    def label(self) -> str:
        """Short and bounded (config-defined), for metric labels and client-facing listings: no account id."""
        if self.kind == "role":
            return f"role:{(self.role_arn or '').rsplit('/', 1)[-1]}"
        return f"profile:{self.profile}" if self.kind == "profile" else self.kind

    def describe(self) -> str:
        """For operators (check-config, logs): what the source is, never a secret."""
        if self.kind == "static":
            return "static keys from the config"
        if self.kind == "profile":
            return f"profile {self.profile!r} from the AWS config / credentials files"
        if self.kind == "role":
            base = self.base.describe() if self.base is not None else "the default credential chain"
            extra = ", with an external id" if self.external_id else ""
            return (f"role {self.role_arn} assumed with STS (session {self.session_name!r}, "
                    f"{self.duration_s}s{extra}) from {base}")
        return "the default credential chain (env, profile, ECS task role, IRSA / pod identity, instance role)"


CHAIN = CredentialSpec()


@dataclass(frozen=True, slots=True)
class Target:
    """Where and how to call: the transport-relevant part of an endpoint's config.

    `region`, `runtime_url` and `credentials` are None for a target that uses the transport's defaults (the
    aws section): a region of its own is signed for (SigV4 credential scope) and called at its own URL.
    """

    endpoint_name: str
    timeout_s: float = 70.0
    custom_attributes: str | None = None
    target_variant: str | None = None
    inference_component: str | None = None
    region: str | None = None
    runtime_url: str | None = None
    credentials: CredentialSpec | None = None


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


class PartStream(Protocol):
    """The PayloadParts of one response stream (an async generator is one): `async for` / `anext`, then `aclose`,
    which releases the connection (idempotent)."""

    def __aiter__(self) -> PartStream: ...

    def __anext__(self) -> Awaitable[bytes]: ...

    def aclose(self) -> Awaitable[None]: ...


@runtime_checkable
class PushedParts(PartStream, Protocol):
    """A part stream that can also push: `deliver(on_parts)` calls `on_parts` from the network read itself (no
    task wake-up per read) until it returns False (then `deliver` returns True: call it again to go on) or the
    stream ends (False). Raises as `anext` does, and whatever `on_parts` raised; `anext` and `deliver` may be mixed."""

    def deliver(self, on_parts: Callable[[bytes], bool]) -> Awaitable[bool]: ...


class Transport(Protocol):
    async def invoke(self, target: Target, payload: Payload) -> RawResponse:
        """POST /endpoints/{name}/invocations once. Raises UpstreamError subclasses on failure."""
        ...

    def invoke_stream(self, target: Target, payload: Payload) -> PartStream:
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
