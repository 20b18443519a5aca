"""Structured logs: one JSON object per line, and one `request` line per request with its outcome.

`logging.format: text` writes the same records for a person: `time LEVEL logger message key=value ...`, with
every field of the JSON line (logfmt: a value is bare when that is unambiguous, else JSON-quoted, so a
newline or a quote in a client-sent value can neither split nor forge a line).

Request lines carry ids, tenant, model, endpoint, status, latency, tokens and cost. Prompts and
completions appear only with `logging.log_prompts: true`; credentials and API keys never (they are not
in any field the gateway logs, and upstream text is redacted before it reaches an error message).
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import queue
import re
import sys
import threading
import time
from typing import Any

import orjson

from service.telemetry.trace import Trace

REQUEST_FIELDS = "fields"  # LogRecord attribute holding a request line's structured fields
_request_log = logging.getLogger("jumpgate.request")


class _Stamp:
    _second = -1
    _stamp = ""

    def _time(self, created: float) -> str:
        # One strftime per second, not per line: request lines are written on the hot path.
        second = int(created)
        if second != self._second:
            self._second, self._stamp = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._stamp}.{int((created - second) * 1000):03d}Z"


class JsonFormatter(_Stamp, logging.Formatter):

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {"time": self._time(record.created), "level": record.levelname,
                                 "logger": record.name, "message": record.getMessage()}
        entry.update(getattr(record, REQUEST_FIELDS, {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


#: a string value written bare in text logs; anything else (spaces, quotes, `=`, control characters, an empty
#: string, or text that would read back as a number, true/false or null) is JSON-quoted
_BARE = re.compile(r"[A-Za-z0-9_.:/@+-]+")
_LITERAL = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?|true|false|null")


def logfmt_value(value: Any) -> str:
    """One field value as text-format logs write it; `orjson.loads` reads back any value that is not bare."""
    if isinstance(value, str) and _BARE.fullmatch(value) and not _LITERAL.fullmatch(value):
        return value
    return orjson.dumps(value, default=str).decode()


class TextFormatter(_Stamp, logging.Formatter):
    """`logging.format: text`: one line per record, `time LEVEL logger message` and then the request line's
    fields as key=value, the same fields in the same order as the JSON format's."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{self._time(record.created)} {record.levelname} {record.name} {record.getMessage()}"
        fields = getattr(record, REQUEST_FIELDS, None)
        if fields:
            line += " " + " ".join(f"{key}={logfmt_value(value)}" for key, value in fields.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class _Enqueue(logging.handlers.QueueHandler):
    """Hands records to the writer thread as they are: formatting and the write to stderr happen there,
    off the event loop (a request line costs the loop only its LogRecord)."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record


class BatchWriter:
    """The writer thread: waits for a record, lets more arrive for `batch_s` (unless it is a warning or worse),
    then formats and writes them all in one write. The stdlib QueueListener wakes per record, which at one
    request at a time costs the event loop a thread switch and a GIL handoff per request; this wakes at most
    1/batch_s times a second."""

    def __init__(self, records: queue.SimpleQueue[logging.LogRecord | None], handler: logging.StreamHandler[Any],
                 batch_s: float = 0.05) -> None:
        self._records, self._handler, self._batch_s = records, handler, batch_s
        self._thread = threading.Thread(target=self._run, name="jumpgate-log-writer", daemon=True)
        self._stopped = False

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Write what is queued and end the thread (idempotent; also run at exit)."""
        if not self._stopped:
            self._stopped = True
            self._records.put(None)
            self._thread.join(5)

    def _run(self) -> None:
        while True:
            first = self._records.get()
            if first is not None and first.levelno < logging.WARNING:  # warnings and errors go out at once
                time.sleep(self._batch_s)  # let a burst gather: one wake-up and one write for all of it
            batch, done = [first], first is None
            while not done:
                try:
                    record = self._records.get_nowait()
                except queue.Empty:
                    break
                batch.append(record)
                done = record is None
            self._write([r for r in batch if r is not None])
            if done:
                return

    def _write(self, batch: list[logging.LogRecord]) -> None:
        if not batch:
            return
        lines = []
        for record in batch:
            try:
                lines.append(self._handler.format(record) + "\n")
            except Exception:  # one bad record must not silence the rest
                self._handler.handleError(record)
        stream = self._handler.stream
        try:
            stream.write("".join(lines))
            stream.flush()
        except Exception:  # e.g. stderr closed at exit: logging never raises into the gateway
            pass


_writer: BatchWriter | None = None


def setup_logging(fmt: str = "json", level: int = logging.INFO) -> None:
    global _writer
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    if _writer is not None:
        _writer.stop()
    records: queue.SimpleQueue[logging.LogRecord | None] = queue.SimpleQueue()
    _writer = BatchWriter(records, stream)
    _writer.start()
    atexit.register(_writer.stop)  # flush what is queued when the process exits
    _lean_records()
    root = logging.getLogger()
    root.handlers[:] = [_Enqueue(records)]
    root.setLevel(level)


def _lean_records() -> None:
    """Skip what no jumpgate format prints: thread, process and caller lookups for every record (the knobs of
    the "Optimization" section of Python's logging HOWTO; together about a quarter of a request line's cost)."""
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging._srcfile = None  # no stack walk to find the caller's file and line


def log_request(t: Trace, request_id: str, *, prompt: str | None = None, completion: str | None = None) -> None:
    fields: dict[str, Any] = {
        "request_id": request_id, "tenant": t.tenant, "api": t.api, "model": t.model, "endpoint": t.endpoint,
        "status": t.status, "stream": t.stream, "latency_ms": round(((t.finished or t.started) - t.started) * 1000, 2),
        "upstream_ms": round(t.upstream_seconds * 1000, 2), "upstream_bytes": t.upstream_bytes,
        "cost_usd": t.cost_usd, "error": t.error,
    }
    if t.usage is not None:
        fields |= {"prompt_tokens": t.usage.prompt_tokens, "completion_tokens": t.usage.completion_tokens,
                   "token_source": t.usage.source.value}
    if t.trace_id is not None:
        fields["trace_id"] = t.trace_id  # the request's OpenTelemetry trace, when it was sampled
    if prompt is not None:
        fields |= {"prompt": prompt, "completion": completion}
    _request_log.info("request", extra={REQUEST_FIELDS: fields})
