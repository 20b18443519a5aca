"""The text log format (`logging.format: text`, what `make serve` writes) carries every field of the JSON format,
with the same values, one line per record whatever the values hold."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator

import orjson
import pytest

from service.canonical import TokenSource, Usage
from service.telemetry.logs import JsonFormatter, TextFormatter, log_request, logfmt_value
from service.telemetry.trace import Trace
from tests.logfmt import parse_line


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def captured() -> Iterator[Capture]:
    logger = logging.getLogger("jumpgate.request")
    handler, level = Capture(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def request_record(captured: Capture, **trace: object) -> logging.LogRecord:
    t = Trace(api="chat", **trace)  # type: ignore[arg-type]
    t.finished = t.started + 0.25
    log_request(t, "req-1", prompt=None)
    (record,) = captured.records[-1:]
    return record


def both(record: logging.LogRecord) -> tuple[dict[str, object], dict[str, object]]:
    text = TextFormatter().format(record)
    assert "\n" not in text and "\r" not in text
    return orjson.loads(JsonFormatter().format(record)), parse_line(text)


def test_a_request_line_has_the_same_fields_and_values_in_both_formats(captured: Capture) -> None:
    record = request_record(captured, model="llama3-8b", endpoint="llama3-8b-g5", tenant="team-a", status=200,
                            stream=True, upstream_seconds=0.2, cost_usd=2.5e-6,
                            usage=Usage(34, 8, TokenSource.BACKEND))
    as_json, as_text = both(record)
    assert as_text == as_json
    assert list(as_text)[4:] == list(as_json)[4:]  # same order as well: the fields follow the message
    assert {"request_id", "tenant", "model", "endpoint", "status", "latency_ms", "upstream_ms", "cost_usd",
            "error", "prompt_tokens", "completion_tokens", "token_source"} <= set(as_text)
    line = TextFormatter().format(record)
    assert " model=llama3-8b endpoint=llama3-8b-g5 status=200 stream=true " in line  # readable as it is


HOSTILE = ["", " ", "a b", 'say "hi"', "k=v", "line\nbreak", "cr\rlf", "tab\tand\x00nul", "200", "-1.5e3", "null",
           "true", "Ελλάδα 😀", "\\", "x" * 5000, "\u2028", "status=500 forged=1"]


@pytest.mark.parametrize("value", HOSTILE)
def test_any_value_reads_back_as_it_was_and_never_splits_or_forges_a_line(captured: Capture, value: str) -> None:
    record = request_record(captured, model=value, tenant=value, error=value)
    as_json, as_text = both(record)
    assert as_text == as_json
    assert as_text["model"] == value and as_text["status"] == 200


def test_values_are_bare_only_when_unambiguous() -> None:
    assert logfmt_value("llama3-8b") == "llama3-8b"
    assert logfmt_value("200") == '"200"'  # a string that would read back as a number is quoted
    assert logfmt_value(200) == "200"
    assert logfmt_value(None) == "null"
    assert logfmt_value(False) == "false"
    assert logfmt_value("a b") == '"a b"'


def test_other_records_keep_their_message_and_exceptions(captured: Capture) -> None:
    record = logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, "Started server process [%d]", (7,), None)
    assert TextFormatter().format(record).endswith(" INFO uvicorn.error Started server process [7]")
    try:
        raise ValueError("boom")
    except ValueError:
        failed = logging.LogRecord("jumpgate", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    assert "ValueError: boom" in TextFormatter().format(failed)
