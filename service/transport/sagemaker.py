"""The SageMaker runtime transport: SigV4-signed POSTs over one aiohttp keep-alive pool, and response streams over
their own keep-alive connections (streamconn.py: the per-token read path without aiohttp's per-chunk machinery).

Knows URLs, headers, signing, event-stream framing and AWS error shapes; never a payload schema.
`map_error` is the one place where a non-2xx SageMaker answer becomes an UpstreamError.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING, Any

import aiohttp

from service.errors import (
    UpstreamDependencyFailed,
    UpstreamError,
    UpstreamModelError,
    UpstreamNoCapacity,
    UpstreamRejected,
    UpstreamStreamError,
    UpstreamThrottled,
    UpstreamTimeout,
    UpstreamUnavailable,
    redact,
)
from service.transport.base import Payload, RawResponse, Target
from service.transport.eventstream import PayloadPartDecoder, json_object
from service.transport.signing import Signer
from service.transport.streamconn import StreamPool, UpstreamResponse

if TYPE_CHECKING:
    from service.transport.credentials import CredentialRegistry

CUSTOM_ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"
TARGET_VARIANT = "X-Amzn-SageMaker-Target-Variant"
INFERENCE_COMPONENT = "X-Amzn-SageMaker-Inference-Component"
STREAM_ACCEPT = "X-Amzn-SageMaker-Accept"  # the streaming API renames Accept

# Headers aiohttp would add on its own: they would be sent unsigned, and Accept would even contradict
# the signed X-Amzn-SageMaker-Accept on the stream path. Only Content-Length (set from the body) is added.
SKIP_AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")
DNS_TTL_S = 60
# Original statuses of a ModelError after which the container itself asks to be tried again.
RETRYABLE_ORIGINAL_STATUS = (429, 503)

# code -> (error class, what the operator or caller can do about it)
_BY_CODE: dict[str, tuple[type[UpstreamError], str]] = {
    "ThrottlingException": (UpstreamThrottled, "retry later or request a higher SageMaker quota"),
    "ModelNotReadyException": (UpstreamThrottled, "the model is still loading; retry shortly"),
    "ServiceUnavailable": (UpstreamUnavailable, "retry"),
    "InternalFailure": (UpstreamUnavailable, "retry"),
    "InternalDependencyException": (UpstreamDependencyFailed, "retrying will not help; contact AWS support"),
    "ValidationError": (UpstreamRejected, "check the endpoint name, the region and the endpoint's "
                                          "target_variant / inference_component / custom_attributes"),
    # Authentication answers (403): the request reached SageMaker signed for the wrong region, with a key AWS does
    # not know, or with expired temporary keys. Messages as AWS words them (aws/aws-sdk-js-v3#5576: 403
    # InvalidSignatureException "Credential should be scoped to a valid region"; aws/aws-sdk-go#1836 for the
    # SageMaker runtime's scope check).
    "InvalidSignatureException": (UpstreamRejected, "the request was signed for another region or service than "
                                                    "the one that received it: set the endpoint's region to the "
                                                    "region it lives in (or its runtime_url to that region's URL)"),
    "UnrecognizedClientException": (UpstreamRejected, "AWS does not know the access key: check the endpoint's "
                                                      "credentials"),
    "ExpiredTokenException": (UpstreamRejected, "the temporary credentials expired: check the credential source"),
}
#: SageMaker's answer when an inference component has no copy to run the request on (scaled to zero, or still
#: scaling out): ValidationError (HTTP 400) "Inference Component has no capacity to process this request.
#: ApplicationAutoScaling may be in-progress (if configured) or try to increase the capacity by invoking
#: UpdateInferenceComponentRuntimeConfig API." Source: AWS Machine Learning Blog, "Unlock cost savings with the new
#: scale down to zero feature in SageMaker Inference" (2024-12-03), section "Test the solution"; the AWS developer
#: guide, "Scale an endpoint to zero instances", says such invocations fail until a copy is provisioned and count
#: them in the NoCapacityInvocationFailures metric. The error code is the generic ValidationError, so the
#: documented message is the only signal.
NO_CAPACITY = "inference component has no capacity to process this request"


class SageMakerTransport:
    """One aiohttp pool for every endpoint. A Target's own region, runtime URL and credential source (see
    transport/base.py) select its URL and signer; targets without them use `runtime_url` and `signer`."""

    def __init__(self, runtime_url: str, signer: Signer, *, pool_size: int = 0,
                 keepalive_s: float = 30.0, credentials: CredentialRegistry | None = None,
                 stream_ssl_context: ssl.SSLContext | None = None) -> None:
        self._base = runtime_url.rstrip("/")
        self._signer = signer
        #: the credential sources of targets that carry one (None: every target uses `signer`)
        self.credentials = credentials
        self._signers: dict[tuple[Any, str], Signer] = {}
        # 0: no cap of the pool's own. Every upstream call holds one of its endpoint's max_concurrency slots
        # (pipeline/attempts.py), so connections are bounded by the sum of the endpoints' slots, and a request that
        # finds its endpoint's slots taken waits at most max_wait_s and is then refused (429) or moved on, counted.
        # A fixed pool (aiohttp's default 100, or the 512 used before) queued requests silently beyond it instead.
        self._pool_size = pool_size
        # Shorter than the idle timeouts of AWS front ends (60 s) so we drop a connection before they do.
        self._keepalive_s = keepalive_s
        self._session: aiohttp.ClientSession | None = None
        # stream_ssl_context: whom response streams trust over https (tests trust their own CA); None: the system's
        self._streams = StreamPool(keepalive_s, ssl_context=stream_ssl_context)

    async def invoke(self, target: Target, payload: Payload) -> RawResponse:
        url = f"{self._url(target)}/endpoints/{target.endpoint_name}/invocations"
        headers = self._signed(url, target, payload, {"Accept": payload.accept})
        timeout = aiohttp.ClientTimeout(total=target.timeout_s)
        with _connection_errors(target, mid_stream=False):
            async with self._client().post(url, data=payload.body, headers=headers, timeout=timeout) as resp:
                body = await resp.read()
        if resp.status != 200:
            raise map_error(target.endpoint_name, resp.status, resp.headers, body)
        return RawResponse(body, resp.headers.get("Content-Type", ""))

    def invoke_stream(self, target: Target, payload: Payload) -> ResponseStream:
        url = f"{self._url(target)}/endpoints/{target.endpoint_name}/invocations-response-stream"
        headers = self._signed(url, target, payload, {STREAM_ACCEPT: payload.accept})
        return ResponseStream(self._streams, url, headers, payload.body, target)

    async def aclose(self) -> None:
        if self.credentials is not None:
            self.credentials.close()
        self._streams.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def credentials_ready(self) -> bool:
        """Readiness: the default signer and every credential source the targets use hold usable credentials."""
        if self.credentials is not None and not self.credentials.ready():
            return False
        return self._signer.credentials_available()

    def _url(self, target: Target) -> str:
        return target.runtime_url.rstrip("/") if target.runtime_url else self._base

    def signer_for(self, target: Target) -> Signer:
        """The default signer, or one per (credential source, region): SigV4 scopes a signature to one region."""
        region = target.region or self._signer.region
        if target.credentials is None and region == self._signer.region:
            return self._signer
        key = (target.credentials, region)
        found = self._signers.get(key)
        if found is None:
            if target.credentials is None or self.credentials is None:
                found = self._signer.for_region(region)  # the default credentials, another region
            else:
                found = Signer.from_provider(self.credentials.provider(target.credentials), region)
            self._signers[key] = found
        return found

    def _signed(self, url: str, target: Target, payload: Payload, accept: dict[str, str]) -> dict[str, str]:
        headers = {"Content-Type": payload.content_type, **accept}
        for name, value in ((CUSTOM_ATTRIBUTES, target.custom_attributes),
                            (TARGET_VARIANT, target.target_variant),
                            (INFERENCE_COMPONENT, target.inference_component)):
            if value:
                headers[name] = value
        return self.signer_for(target).sign("POST", url, headers, payload.body)

    def _client(self) -> aiohttp.ClientSession:
        # Created on first use so that it binds to the loop that serves requests, not the one that built the app.
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._pool_size, limit_per_host=0,
                                             keepalive_timeout=self._keepalive_s,
                                             use_dns_cache=True, ttl_dns_cache=DNS_TTL_S)
            self._session = aiohttp.ClientSession(connector=connector, skip_auto_headers=SKIP_AUTO_HEADERS)
        return self._session


class ResponseStream:
    """The PayloadParts of one `invocations-response-stream` call, opened at the first read: pulled (`async for`),
    or pushed (`deliver`: the parts of each network read handed over from the read's own callback)."""

    def __init__(self, pool: StreamPool, url: str, headers: dict[str, str], body: bytes, target: Target) -> None:
        self._pool, self._url, self._headers, self._body, self._target = pool, url, headers, body, target
        self._resp: UpstreamResponse | None = None
        self._decoder = PayloadPartDecoder(target.endpoint_name)
        self._ended = False

    def __aiter__(self) -> ResponseStream:
        return self

    async def __anext__(self) -> bytes:
        if self._ended:
            raise StopAsyncIteration
        resp = self._resp or await self._open()
        with self._reading():
            while chunk := await resp.read():
                part = self._decoder.joined(chunk)
                if part:
                    return part
        self._end()
        raise StopAsyncIteration

    async def deliver(self, on_parts: Callable[[bytes], bool]) -> bool:
        """Hand the parts of each network read to `on_parts` until it returns False (then True: call again) or the
        body ends (False). Raises like `__anext__`, and whatever `on_parts` raised (the stream is closed then)."""
        if self._ended:
            return False
        resp = self._resp or await self._open()
        with self._reading():
            # positional: the decoder's `push` is the body callback itself (no Python frame between them per read)
            more = await resp.deliver(partial(self._decoder.push, on_parts))
        if not more:
            self._end()
        return more

    async def aclose(self) -> None:
        """Idempotent. A complete response leaves its connection to the pool; a half-read one is closed."""
        self._close()

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """Reading the body: connection failures mapped; any failure closes the response (a half-read one closes
        its connection, which ends the generation upstream)."""
        try:
            with _connection_errors(self._target, mid_stream=True):
                yield
        except BaseException:
            self._close()
            raise

    def _close(self) -> None:
        self._ended = True
        if self._resp is not None:
            self._resp.release()

    async def _open(self) -> UpstreamResponse:
        target = self._target
        # No total limit (generation may legitimately run long): the limits are on getting a connection and on
        # silence while waiting for the response head and each chunk (streamconn.py: its own read path).
        with _connection_errors(target, mid_stream=False):
            resp = self._resp = await self._pool.open(self._url, self._headers, self._body, target.timeout_s)
        if resp.status != 200:
            try:
                with _connection_errors(target, mid_stream=False):
                    body = await resp.read_all()
            finally:
                self._close()
            raise map_error(target.endpoint_name, resp.status, resp.headers, body)
        return resp

    def _end(self) -> None:
        """The body is complete: a partial frame left over is a cut stream (raised); the connection goes back."""
        self._ended = True
        try:
            self._decoder.close()
        finally:
            if self._resp is not None:
                self._resp.release()


@contextmanager
def _connection_errors(target: Target, *, mid_stream: bool) -> Iterator[None]:
    """Turn client-side failures (no HTTP answer to map) into UpstreamErrors."""
    name = target.endpoint_name
    try:
        yield
    except TimeoutError as exc:  # aiohttp's timeouts subclass it
        raise UpstreamTimeout(f"SageMaker endpoint {name!r} did not answer within {target.timeout_s:g}s; "
                              f"raise the endpoint's timeout_s or shorten the request") from exc
    except (aiohttp.ClientError, OSError) as exc:  # OSError: the stream path's (streamconn.py) and the OS's
        detail = redact(f"{type(exc).__name__}: {exc}")
        if mid_stream:
            raise UpstreamStreamError(f"the connection to SageMaker endpoint {name!r} broke mid-stream ({detail})",
                                      retryable=True) from exc
        hint = "check aws.runtime_url and network access"
        if isinstance(exc, ssl.SSLCertVerificationError):
            hint = ("the runtime's TLS certificate is not trusted: check aws.runtime_url, and that the CA of any TLS "
                    "proxy on the way is in this machine's trust store")
        raise UpstreamUnavailable(f"could not reach the SageMaker runtime for endpoint {name!r} ({detail}); "
                                  f"{hint}") from exc


def map_error(endpoint: str, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
    """A non-2xx SageMaker runtime answer -> the UpstreamError the gateway raises (wire-formats.md 1.5)."""
    fields = json_object(body) if body else {}
    code = error_code(headers.get("x-amzn-ErrorType"), fields)
    text = str(fields.get("message") or fields.get("Message") or "")
    if code == "ModelError":
        return _model_error(endpoint, status, fields, text)
    if code == "ValidationError" and NO_CAPACITY in text.lower():
        return UpstreamNoCapacity(f"SageMaker endpoint {endpoint!r} has no copy of the model running (its inference "
                                  f"component is scaled to zero or still scaling out: {redact(text)}); retry once it "
                                  f"has scaled out", retry_after=_retry_after(headers))
    cls, hint = _BY_CODE.get(code, _by_status(status))
    said = f"{status} {code}" if code else f"HTTP {status} without an error code"
    if text:
        said = f"{said}: {text}"
    return cls(f"SageMaker endpoint {endpoint!r} failed ({redact(said)}); {hint}", retry_after=_retry_after(headers))


def error_code(header: str | None, fields: Mapping[str, Any]) -> str:
    """botocore's reading: x-amzn-ErrorType up to the first ':' and after the last '#', else the body."""
    raw = header or fields.get("code") or fields.get("Code") or fields.get("__type") or ""
    return str(raw).split(":", 1)[0].rsplit("#", 1)[-1].strip()


def container_text(original: str) -> str:
    """The container's own words: the `error` of a TGI / LMI / OpenAI error body, else the text as is."""
    inner = json_object(original).get("error") if original.lstrip().startswith("{") else None
    if isinstance(inner, dict):
        inner = inner.get("message")
    return inner if isinstance(inner, str) and inner else original


def _model_error(endpoint: str, status: int, fields: Mapping[str, Any], text: str) -> UpstreamError:
    original_status = _as_int(fields.get("OriginalStatusCode"))
    original = str(fields.get("OriginalMessage") or text)
    said = redact(container_text(original))
    # SageMaker reports a container that never answered as ModelError with original status 0.
    if original_status == 0 or "timed out" in original.lower() or "timed out" in text.lower():
        return UpstreamTimeout(f"SageMaker endpoint {endpoint!r}: the model container did not answer in time "
                               f"({said}); shorten the request or raise the container's timeout")
    shown = original_status if original_status is not None else "an error"
    return UpstreamModelError(f"SageMaker endpoint {endpoint!r}: the model container answered {shown}: {said}",
                              original_status=original_status,
                              retryable=original_status in RETRYABLE_ORIGINAL_STATUS)


def _by_status(status: int) -> tuple[type[UpstreamError], str]:
    if status >= 500:
        return UpstreamUnavailable, "retry"
    if status == 429:
        return UpstreamThrottled, "retry later"
    return UpstreamRejected, "check the gateway's AWS credentials, region and endpoint configuration"


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After")
    try:
        return float(value) if value else None
    except ValueError:  # an HTTP date: rare enough upstream to fall back to our own backoff
        return None


def _as_int(value: object) -> int | None:
    if not isinstance(value, int | float | str) or isinstance(value, bool):
        return None
    try:
        return int(value)
    except ValueError:
        return None
