"""The client's exception tree, mirroring the gateway's error shape `{"error": {message, type, param, code}}`.

    JumpgateError                      .status (None when no HTTP answer was had)
    ├── APIConnectionError             the gateway could not be reached, or the client timed out
    ├── StreamIncompleteError          a stream closed before `data: [DONE]` and without an error event
    ├── InvalidRequestError            400
    ├── AuthenticationError            401
    ├── PermissionDeniedError          403
    ├── NotFoundError                  404
    ├── RequestTooLargeError           413
    ├── RateLimitError                 429   (.retry_after from `Retry-After`)
    ├── InternalServerError            500 and any other unlisted status
    ├── UpstreamError                  502
    ├── ServiceUnavailableError        503   (.retry_after from `Retry-After`)
    └── TimeoutError                   504   (the upstream model timed out; not the client's own timeout)

An error event inside a stream carries no status: its class comes from the error `type` instead.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping
from typing import Any


class JumpgateError(Exception):
    status: int | None = None
    default_type = "server_error"

    def __init__(self, message: str, *, status: int | None = None, type: str | None = None,
                 code: str | None = None, param: str | None = None, request_id: str | None = None,
                 retry_after: float | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.type = type or self.default_type
        self.code = code
        self.param = param
        self.request_id = request_id
        self.retry_after = retry_after
        self.body = body

    def __str__(self) -> str:
        where = f" (request id {self.request_id})" if self.request_id else ""
        status = f"{self.status} " if self.status is not None else ""
        return f"{status}{self.type}: {self.message}{where}"


class APIConnectionError(JumpgateError):
    default_type = "connection_error"


class StreamIncompleteError(JumpgateError):
    default_type = "stream_incomplete"


class InvalidRequestError(JumpgateError):
    status = 400
    default_type = "invalid_request_error"


class AuthenticationError(JumpgateError):
    status = 401
    default_type = "authentication_error"


class PermissionDeniedError(JumpgateError):
    status = 403
    default_type = "permission_error"


class NotFoundError(JumpgateError):
    status = 404
    default_type = "not_found_error"


class RequestTooLargeError(JumpgateError):
    status = 413
    default_type = "invalid_request_error"


class RateLimitError(JumpgateError):
    status = 429
    default_type = "rate_limit_error"


class InternalServerError(JumpgateError):
    status = 500
    default_type = "server_error"


class UpstreamError(JumpgateError):
    status = 502
    default_type = "upstream_error"


class ServiceUnavailableError(JumpgateError):
    status = 503
    default_type = "service_unavailable"


class TimeoutError(JumpgateError):  # the name the gateway's 504 is known by (shadows the builtin in this module only)
    status = 504
    default_type = "timeout_error"


BY_STATUS: dict[int, type[JumpgateError]] = {
    cls.status: cls
    for cls in (InvalidRequestError, AuthenticationError, PermissionDeniedError, NotFoundError, RequestTooLargeError,
                RateLimitError, InternalServerError, UpstreamError, ServiceUnavailableError, TimeoutError)
}

# Stream error events have no status; the error type names the class. 413 shares 400's type, and 429 from a
# throttled upstream says rate_limit_error too, so the first class registered for a type wins.
BY_TYPE: dict[str, type[JumpgateError]] = {}
for _cls in BY_STATUS.values():
    BY_TYPE.setdefault(_cls.default_type, _cls)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """`Retry-After` as seconds to wait: delta-seconds or an HTTP date; None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _error_fields(body: Any) -> dict[str, Any]:
    fields = body.get("error") if isinstance(body, dict) else None
    return fields if isinstance(fields, dict) else {}


def error_from_response(status: int, content: bytes, headers: Mapping[str, str]) -> JumpgateError:
    """The typed exception for a non-2xx answer; tolerates bodies that are not the gateway's JSON."""
    try:
        body: Any = json.loads(content) if content else None
    except ValueError:
        body = content.decode("utf-8", "replace")
    fields = _error_fields(body)
    message = fields.get("message") or (body if isinstance(body, str) and body else f"HTTP {status}")
    cls = BY_STATUS.get(status, InternalServerError)
    return cls(str(message), status=status, type=fields.get("type"), code=fields.get("code"),
               param=fields.get("param"), request_id=headers.get("x-request-id"),
               retry_after=parse_retry_after(headers.get("retry-after")), body=body)


def error_from_event(event: Mapping[str, Any], request_id: str | None) -> JumpgateError:
    """The typed exception for a `data: {"error": {...}}` event received mid-stream."""
    fields = _error_fields(event)
    cls = BY_TYPE.get(str(fields.get("type")), InternalServerError)
    return cls(str(fields.get("message") or "the stream failed"), type=fields.get("type"), code=fields.get("code"),
               param=fields.get("param"), request_id=request_id, body=dict(event))
