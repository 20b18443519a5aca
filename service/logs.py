"""Structured logs: one JSON object per line, and one `request` line per request with its outcome.

Request lines carry ids, tenant, model, endpoint, status, latency, tokens and cost. Prompts and
completions appear only with `logging.log_prompts: true`; credentials and API keys never (they are not
in any field the gateway logs, and upstream text is redacted before it reaches an error message).
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import queue
import sys
import time
from typing import Any

import orjson

from service.trace import Trace

REQUEST_FIELDS = "fields"  # LogRecord attribute holding a request line's structured fields
_request_log = logging.getLogger("jumpgate.request")


class JsonFormatter(logging.Formatter):
    _second = -1
    _stamp = ""

    def _time(self, created: float) -> str:
        # One strftime per second, not per line: request lines are written on the hot path.
        second = int(created)
        if second != self._second:
            self._second, self._stamp = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._stamp}.{int((created - second) * 1000):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {"time": self._time(record.created), "level": record.levelname,
                                 "logger": record.name, "message": record.getMessage()}
        entry.update(getattr(record, REQUEST_FIELDS, {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class _Enqueue(logging.handlers.QueueHandler):
    """Hands records to the writer thread as they are: formatting and the write to stderr happen there,
    off the event loop (a request line costs the loop only its LogRecord)."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record


_listener: logging.handlers.QueueListener | None = None


def setup_logging(fmt: str = "json", level: int = logging.INFO) -> None:
    global _listener
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s"))
    if _listener is not None:
        _listener.stop()
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    _listener = logging.handlers.QueueListener(records, stream, respect_handler_level=False)
    _listener.start()
    atexit.register(_listener.stop)  # flush what is queued when the process exits
    root = logging.getLogger()
    root.handlers[:] = [_Enqueue(records)]
    root.setLevel(level)


def log_request(t: Trace, request_id: str, *, prompt: str | None = None, completion: str | None = None) -> None:
    fields: dict[str, Any] = {
        "request_id": request_id, "tenant": t.tenant, "api": t.api, "model": t.model, "endpoint": t.endpoint,
        "status": t.status, "stream": t.stream, "latency_ms": round(((t.finished or t.started) - t.started) * 1000, 2),
        "upstream_ms": round(t.upstream_seconds * 1000, 2), "cost_usd": t.cost_usd, "error": t.error,
    }
    if t.usage is not None:
        fields |= {"prompt_tokens": t.usage.prompt_tokens, "completion_tokens": t.usage.completion_tokens,
                   "token_source": t.usage.source.value}
    if prompt is not None:
        fields |= {"prompt": prompt, "completion": completion}
    _request_log.info("request", extra={REQUEST_FIELDS: fields})
