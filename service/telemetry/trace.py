"""One mutable record per request, filled by the api, gateway and stream as the request goes, and
recorded into the metrics exactly once, in a `finally` (so failures and disconnects are counted too).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from service.canonical import Usage
from service.errors import GatewayError

#: error codes of requests ended by their own side, and the reason label they are counted under
ABANDONED = {"deadline_exceeded": "deadline", "server_shutting_down": "drain", "client_disconnected": "disconnect"}
UNKNOWN = "unknown"  # label value for a model that is not configured (keeps label values bounded)
NONE = "none"        # label value when no endpoint was chosen


@dataclass(slots=True)
class Trace:
    api: str
    started: float = field(default_factory=time.perf_counter)
    stream: bool = False
    model: str = UNKNOWN
    tenant: str = "anonymous"
    endpoint: str = NONE
    schema: str = NONE
    accelerator: str = NONE
    region: str = NONE
    status: int = 200
    error: str | None = None        # bounded error code, for the failure that ended the request
    rejected: str | None = None     # why the gateway refused it (error code), for jumpgate_rejected_total
    upstream_seconds: float = 0.0
    upstream_bytes: int = 0         # request and response bodies moved to and from the endpoint (serverless cost)
    first_token_seconds: float | None = None   # from request start
    per_token_seconds: float | None = None
    usage: Usage | None = None
    cost_usd: float = 0.0
    disconnected: bool = False
    abandoned: str | None = None    # deadline | disconnect | drain: ended by its own side, not the endpoint
    finished: float | None = None
    request_id: str = "-"
    metadata: tuple[tuple[str, str], ...] = ()  # the client's `metadata` pairs, for the request log line
    prompt: str | None = None       # only filled when logging.log_prompts is on
    completion: str | None = None
    finish_reasons: tuple[str, ...] = ()
    span: Any = None                # the request's OpenTelemetry span, when tracing is on (telemetry/tracing.py)
    trace_id: str | None = None     # its trace id, for the request log line

    def note_failure(self, exc: Exception) -> None:
        """What a request that raised is recorded as: its GatewayError, or an unexpected 500."""
        if isinstance(exc, GatewayError):
            self.note_error(exc)
        else:
            self.status, self.error = 500, "internal_error"

    def note_error(self, err: GatewayError) -> None:
        self.status, self.error = err.status, err.code
        if err.client_fault:
            self.rejected = err.code
        elif err.code in ABANDONED:
            self.abandoned = ABANDONED[err.code]  # refused by the gateway itself, before or instead of an upstream call
