"""One exception tree for the whole gateway, mapped to HTTP in exactly one place (`to_openai_body`).

    GatewayError                       status  type
    ├── InvalidRequest                 400     invalid_request_error
    │   ├── InvalidParam               400       (a canonical parameter out of range)
    │   └── UnsupportedParam           400       (non-neutral value the endpoint cannot take)
    ├── AuthenticationError            401     authentication_error
    ├── PermissionDenied               403     permission_error
    ├── ModelNotFound                  404     not_found_error
    ├── PayloadTooLarge                413     invalid_request_error
    ├── RateLimited                    429     rate_limit_error
    ├── NoEndpointAvailable            503     service_unavailable
    ├── InternalError                  500     server_error
    └── UpstreamError                  502     upstream_error  (carries `retryable`)
        ├── UpstreamThrottled          429       ThrottlingException, ModelNotReadyException
        ├── UpstreamUnavailable        502       ServiceUnavailable, InternalFailure, 5xx, connection refused
        ├── UpstreamModelError         502       ModelError: the container answered 4xx/5xx (429/503 retried)
        ├── UpstreamRejected           502       SageMaker ValidationError (endpoint missing, bad header)
        ├── UpstreamTimeout            504       the endpoint did not answer in time
        └── UpstreamStreamError        502       ModelStreamError / InternalStreamFailure / error line mid-stream

Messages say what to change. Anything that came from upstream passes through `redact` first, so ARNs,
account ids and access keys never reach a client.
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

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.retry_after = retry_after


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class InvalidParam(InvalidRequest):
    code = "invalid_parameter"


class UnsupportedParam(InvalidRequest):
    code = "unsupported_parameter"


class AuthenticationError(GatewayError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(GatewayError):
    status = 403
    type = "permission_error"
    code = "forbidden"


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


class InternalError(GatewayError):
    status = 500
    type = "server_error"
    code = "internal_error"


class UpstreamError(GatewayError):
    """A failure of the SageMaker call. `retryable` says whether another attempt may succeed."""

    status = 502
    type = "upstream_error"
    code = "upstream_error"
    retryable = False
    #: short bounded label for metrics (`jumpgate_upstream_errors_total{error}`)
    kind = "upstream"


class UpstreamThrottled(UpstreamError):
    status = 429
    type = "rate_limit_error"
    code = "upstream_throttled"
    retryable = True
    kind = "throttled"


class UpstreamUnavailable(UpstreamError):
    code = "upstream_unavailable"
    retryable = True
    kind = "unavailable"


class UpstreamModelError(UpstreamError):
    code = "model_error"
    kind = "model_error"

    def __init__(self, message: str, *, original_status: int | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.original_status = original_status
        self.retryable = retryable


class UpstreamRejected(UpstreamError):
    code = "upstream_rejected"
    kind = "validation"


class UpstreamTimeout(UpstreamError):
    status = 504
    type = "timeout_error"
    code = "upstream_timeout"
    kind = "timeout"


class UpstreamStreamError(UpstreamError):
    code = "stream_error"
    kind = "stream_error"

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


def to_openai_body(err: GatewayError) -> dict[str, Any]:
    """The OpenAI error shape used by every HTTP error response and every SSE error event."""
    return {"error": {"message": err.message, "type": err.type, "param": err.param, "code": err.code}}


def response_headers(err: GatewayError) -> dict[str, str]:
    """429 and 503 always say when to come back (DESIGN.md); 1 second when nothing better is known."""
    if err.retry_after is None and err.status not in (429, 503):
        return {}
    return {"retry-after": str(max(1, round(err.retry_after or 1)))}


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
