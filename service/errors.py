"""One exception tree for the whole gateway. Each class says, as data, what the failure means:

    GatewayError                       status  type                   retryable  opens circuit
    ├── InvalidRequest                 400     invalid_request_error
    │   ├── InvalidParam               400       (a canonical parameter out of range)
    │   ├── UnsupportedParam           400       (non-neutral value the endpoint cannot take)
    │   └── UnsupportedFeature         400       (tools, response_format or images the model cannot take)
    ├── AuthenticationError            401     authentication_error
    ├── PermissionDenied               403     permission_error
    │   └── HostNotAllowed             403       (Host header not served without auth: DNS rebinding)
    ├── RouteNotFound                  404     not_found_error         (no such path)
    ├── ModelNotFound                  404     not_found_error
    ├── MethodNotAllowed               405     invalid_request_error
    ├── PayloadTooLarge                413     invalid_request_error
    ├── UnsupportedMediaType           415     invalid_request_error  (not application/json, or encoded)
    ├── RateLimited                    429     rate_limit_error
    ├── InternalError                  500     server_error
    ├── NoEndpointAvailable            503     service_unavailable
    ├── NotReady                       503     service_unavailable    (readiness: credentials missing)
    ├── ServerShuttingDown             503     server_shutting_down   (a stream cut at the drain deadline)
    ├── DeadlineExceeded               504     timeout_error          (the request's deadline, not the endpoint)
    ├── ClientDisconnected             499     client_closed_request  (gone before its body arrived)
    └── UpstreamError                  502     upstream_error
        ├── EndpointAtCapacity         429     rate_limit_error       yes        no   (all slots busy)
        ├── UpstreamThrottled          429     rate_limit_error       yes        no   ThrottlingException, ModelNotReady
        │   └── UpstreamNoCapacity     503     service_unavailable    yes        no   inference component scaled to zero
        ├── CredentialsUnavailable     503     service_unavailable    yes        no   the endpoint's credentials expired
        ├── UpstreamUnavailable        502       upstream_error       yes        yes  ServiceUnavailable, 5xx, refused
        │   └── UpstreamDependencyFailed 502     upstream_error       no         yes  InternalDependencyException
        ├── UpstreamModelError         502       upstream_error       429/503    5xx  ModelError from the container
        ├── UpstreamRejected           502       upstream_error       no         no   SageMaker ValidationError
        ├── UpstreamTimeout            504     timeout_error          no         yes  no answer in time
        ├── UpstreamStreamError        502       upstream_error       per case   yes  mid-stream failure
        └── InvalidModelOutput         502     invalid_model_output   no         no   an emulated tool call or JSON
                                                                                      still invalid after retries

`client_fault` (a 4xx the gateway decided, before or instead of an upstream call) is derived from the class.
These are mapped to HTTP responses and SSE error events in one module, `service.api.errors`. Messages say what
to change. Anything that came from upstream passes through `redact` first, so ARNs, account ids and access keys
never reach a client.
"""

from __future__ import annotations

import re
from typing import Any

_REDACTIONS = (
    (re.compile(r"arn:aws[a-zA-Z-]*:[^\s\"',]+"), "<arn>"),
    (re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"), "<access-key>"),
    (re.compile(r"(?<!\d)\d{12}(?!\d)"), "<account>"),
    (re.compile(r"(?i)(signature|credential|x-amz-security-token)=[^\s,\"']+"), r"\1=<redacted>"),
)

MAX_UPSTREAM_MESSAGE = 1000
#: how much of a client-sent value an error message repeats
MAX_ECHO = 64


def echo(value: object, limit: int = MAX_ECHO) -> str:
    """A client-sent value as an error message may repeat it: its repr, cut to `limit` characters, so a hostile
    100 KB model name comes back as a short hint, not a 100 KB answer."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def redact(text: str) -> str:
    """Remove ARNs, account ids, access keys and signatures from upstream text, and bound its length."""
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    if len(text) > MAX_UPSTREAM_MESSAGE:
        text = text[:MAX_UPSTREAM_MESSAGE] + "..."
    return text


class GatewayError(Exception):
    status = 500
    type = "server_error"
    code: str | None = None
    #: another attempt (on this or another endpoint) may succeed
    retryable = False
    #: the failure says the endpoint is unhealthy: it counts towards opening its circuit breaker
    opens_circuit = False

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.retry_after = retry_after
        self.headers: dict[str, str] = {}

    @property
    def client_fault(self) -> bool:
        """Refused by the gateway itself (bad input, auth, limits), not a failure of an upstream call."""
        return self.status < 500 and not isinstance(self, UpstreamError)


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class InvalidParam(InvalidRequest):
    code = "invalid_parameter"


class UnsupportedParam(InvalidRequest):
    code = "unsupported_parameter"


class UnsupportedFeature(InvalidRequest):
    """The model (or this endpoint of it) cannot take tools, a response format or images: routing drops such
    endpoints, and a model with none left answers this 400."""

    code = "unsupported_feature"


class AuthenticationError(GatewayError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(GatewayError):
    status = 403
    type = "permission_error"
    code = "forbidden"


class HostNotAllowed(PermissionDenied):
    code = "host_not_allowed"


class UnsupportedMediaType(GatewayError):
    status = 415
    type = "invalid_request_error"
    code = "unsupported_media_type"


class RouteNotFound(GatewayError):
    status = 404
    type = "not_found_error"
    code = "not_found"


class MethodNotAllowed(GatewayError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"

    def __init__(self, message: str, *, allowed: tuple[str, ...]) -> None:
        super().__init__(message)
        self.headers["allow"] = ", ".join(allowed)


class ModelNotFound(GatewayError):
    status = 404
    type = "not_found_error"
    code = "model_not_found"


class PayloadTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class RateLimited(GatewayError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limited"


class NoEndpointAvailable(GatewayError):
    status = 503
    type = "service_unavailable"
    code = "no_endpoint_available"


class NotReady(GatewayError):
    status = 503
    type = "service_unavailable"
    code = "not_ready"


class ServerShuttingDown(GatewayError):
    status = 503
    type = "server_shutting_down"
    code = "server_shutting_down"


class DeadlineExceeded(GatewayError):
    """The request's own deadline (the configured request timeout, or the client's shorter one) ran out. The
    endpoint may be fine: this never counts against it (breaker, upstream error metrics)."""

    status = 504
    type = "timeout_error"
    code = "deadline_exceeded"


class ClientDisconnected(GatewayError):
    """The client went away before its request body arrived (it closed the connection, or the server's body
    timeout closed it). Nobody reads the answer; the request line says 499, as for an abandoned stream."""

    status = 499
    type = "client_closed_request"
    code = "client_disconnected"

    @property
    def client_fault(self) -> bool:
        return False  # counted as abandoned (jumpgate_abandoned_total), not as refused by the gateway


class InternalError(GatewayError):
    status = 500
    type = "server_error"
    code = "internal_error"


class UpstreamError(GatewayError):
    """A failure of the SageMaker call. `retryable` says whether another attempt may succeed."""

    status = 502
    type = "upstream_error"
    code = "upstream_error"
    #: short bounded label for metrics (`jumpgate_upstream_errors_total{error}`)
    kind = "upstream"
    #: attempts made on the endpoint that raised it (set by the retry loop)
    attempts = 1


class EndpointAtCapacity(UpstreamError):
    """Every concurrency slot of the endpoint stayed busy: load, not ill health; another endpoint may serve."""

    status = 429
    type = "rate_limit_error"
    code = "rate_limited"
    retryable = True
    kind = "capacity"


class UpstreamThrottled(UpstreamError):
    status = 429
    type = "rate_limit_error"
    code = "upstream_throttled"
    retryable = True
    kind = "throttled"


class UpstreamUnavailable(UpstreamError):
    code = "upstream_unavailable"
    retryable = True
    opens_circuit = True
    kind = "unavailable"



class UpstreamDependencyFailed(UpstreamUnavailable):
    """InternalDependencyException: AWS documents it as "contact support", not "try again"."""

    code = "upstream_dependency_failed"
    retryable = False


class UpstreamModelError(UpstreamError):
    code = "model_error"
    kind = "model_error"

    def __init__(self, message: str, *, original_status: int | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.original_status = original_status
        self.retryable = retryable
        # a 4xx from the container is about the request, not the endpoint's health
        self.opens_circuit = (original_status or 500) >= 500


class UpstreamRejected(UpstreamError):
    code = "upstream_rejected"
    kind = "validation"


class UpstreamTimeout(UpstreamError):
    status = 504
    type = "timeout_error"
    code = "upstream_timeout"
    opens_circuit = True
    kind = "timeout"


class UpstreamStreamError(UpstreamError):
    code = "stream_error"
    opens_circuit = True
    kind = "stream_error"

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class InvalidModelOutput(UpstreamError):
    """The model answered, but not with the tool call or the JSON the request needs, even after the configured
    retries with the validation error as feedback. The endpoint is healthy: no retry elsewhere, no circuit."""

    type = "invalid_model_output"
    code = "invalid_model_output"
    kind = "invalid_output"


class UpstreamNoCapacity(UpstreamThrottled):
    """SageMaker has no copy of the model to run the request on: an inference component scaled to zero (or
    still scaling out) answers `ValidationError` "Inference Component has no capacity to process this request"
    (see service/transport/sagemaker.py `NO_CAPACITY`). A retryable lack of capacity: fall back to a sibling or
    wait for the scale-out. It derives from UpstreamThrottled so the circuit breaker treats it as load, not as a
    health failure; 503 with Retry-After, because capacity, not the caller's rate, is what is missing.
    """

    status = 503
    type = "service_unavailable"
    code = "upstream_no_capacity"
    kind = "no_capacity"


class CredentialsUnavailable(UpstreamError):
    """The endpoint's AWS credentials are missing or expired and could not be refreshed (STS or the credential
    chain failed). An UpstreamError so that failover moves on to a sibling endpoint with other credentials; never
    a circuit-breaker failure (the endpoint itself is fine). 503 with Retry-After: the next refresh attempt."""

    status = 503
    type = "service_unavailable"
    code = NoEndpointAvailable.code  # what clients have always been told when the gateway has no credentials
    kind = "credentials"
    retryable = True


def to_openai_body(err: GatewayError) -> dict[str, Any]:
    """The OpenAI error shape used by every HTTP error response and every SSE error event."""
    return {"error": {"message": err.message, "type": err.type, "param": err.param, "code": err.code}}


def response_headers(err: GatewayError) -> dict[str, str]:
    """429 and 503 always say when to come back (DESIGN.md); 1 second when nothing better is known."""
    if err.retry_after is None and err.status not in (429, 503):
        return dict(err.headers)
    return {**err.headers, "retry-after": str(max(1, round(err.retry_after or 1)))}

