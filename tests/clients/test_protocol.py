"""The client's pure parts: SSE decoding, error mapping, Retry-After parsing and the retry policy."""

from __future__ import annotations

import email.utils

import pytest

from clients.jumpgate_client import (
    InternalServerError,
    InvalidRequestError,
    JumpgateError,
    RateLimitError,
    RequestTooLargeError,
    RetryPolicy,
    ServiceUnavailableError,
    SSEDecoder,
    StreamIncompleteError,
    TimeoutError,
    UpstreamError,
)
from clients.jumpgate_client.errors import error_from_response, parse_retry_after


def decode(lines: list[str]) -> list[dict[str, object]]:
    decoder = SSEDecoder("rid-1")
    out = []
    for line in lines:
        out.extend(decoder.feed(line))
        if decoder.done:
            return out
    out.extend(decoder.close())
    return out


def test_events_split_on_blank_lines_and_stop_at_done() -> None:
    lines = ['data: {"n": 1}', "", ": keep-alive", "", 'data: {"n": 2}', "", "data: [DONE]", "", 'data: {"n": 3}']
    assert decode(lines) == [{"n": 1}, {"n": 2}]


def test_multi_line_data_is_joined_and_other_fields_ignored() -> None:
    lines = ["event: message", "id: 7", 'data: {"a":', 'data: 1}', "retry: 100", "", "data:[DONE]", ""]
    assert decode(lines) == [{"a": 1}]


def test_body_ending_without_done_raises_stream_incomplete() -> None:
    with pytest.raises(StreamIncompleteError) as caught:
        decode(['data: {"n": 1}', ""])
    assert caught.value.request_id == "rid-1"


def test_last_event_without_trailing_blank_line_is_still_delivered() -> None:
    decoder = SSEDecoder()
    assert list(decoder.feed('data: {"n": 1}')) == []
    with pytest.raises(StreamIncompleteError):
        list(decoder.close())
    decoder = SSEDecoder()
    list(decoder.feed("data: [DONE]"))
    assert list(decoder.close()) == []


def test_non_json_event_is_reported() -> None:
    with pytest.raises(StreamIncompleteError, match="not JSON"):
        decode(["data: {oops", ""])


@pytest.mark.parametrize(("error_type", "cls", "status"), [
    ("upstream_error", UpstreamError, 502), ("timeout_error", TimeoutError, 504),
    ("rate_limit_error", RateLimitError, 429), ("invalid_request_error", InvalidRequestError, 400),
    ("service_unavailable", ServiceUnavailableError, 503), ("something_new", InternalServerError, 500),
])
def test_error_event_raises_the_class_of_its_type(error_type: str, cls: type[JumpgateError], status: int) -> None:
    event = f'data: {{"error": {{"message": "boom", "type": "{error_type}", "param": "p", "code": "c"}}}}'
    with pytest.raises(cls) as caught:
        decode(['data: {"n": 1}', "", event, ""])
    err = caught.value
    assert type(err) is cls
    assert (err.status, err.type, err.code, err.param, err.message) == (status, error_type, "c", "p", "boom")
    assert err.request_id == "rid-1"


def test_error_response_mapping_reads_body_and_headers() -> None:
    body = b'{"error": {"message": "too big", "type": "invalid_request_error", "param": null, "code": "big"}}'
    err = error_from_response(413, body, {"x-request-id": "r-9", "retry-after": "3"})
    assert isinstance(err, RequestTooLargeError)
    assert (err.status, err.type, err.code, err.request_id, err.retry_after) == (413, "invalid_request_error",
                                                                                   "big", "r-9", 3.0)
    assert str(err) == "413 invalid_request_error: too big (request id r-9)"


def test_error_response_that_is_not_json_keeps_its_text() -> None:
    err = error_from_response(503, b"upstream connect error", {})
    assert isinstance(err, ServiceUnavailableError)
    assert err.message == "upstream connect error"
    unknown = error_from_response(418, b"", {})
    assert type(unknown) is InternalServerError and unknown.status == 418


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(" 0.5 ") == 0.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    date = email.utils.formatdate(1_000_030, usegmt=True)
    assert parse_retry_after(date, now=1_000_000) == pytest.approx(30.0)


def _err(status: int, retry_after: float | None = None) -> JumpgateError:
    return error_from_response(status, b"{}", {} if retry_after is None else {"retry-after": str(retry_after)})


def test_policy_retries_only_429_and_503_a_bounded_number_of_times() -> None:
    policy = RetryPolicy(max_retries=2, base=1.0, max_backoff=8.0)
    assert policy.delay(_err(429), 0, rand=lambda: 1.0) == 1.0
    assert policy.delay(_err(503), 1, rand=lambda: 1.0) == 2.0
    assert policy.delay(_err(503), 2, rand=lambda: 1.0) is None
    for status in (400, 404, 500, 502, 504):
        assert policy.delay(_err(status), 0) is None


def test_policy_backoff_has_full_jitter_and_a_cap() -> None:
    policy = RetryPolicy(max_retries=10, base=1.0, max_backoff=5.0)
    assert policy.delay(_err(429), 0, rand=lambda: 0.0) == 0.0
    assert policy.delay(_err(429), 6, rand=lambda: 1.0) == 5.0
    assert policy.delay(_err(429), 6, rand=lambda: 0.5) == 2.5


def test_policy_honours_retry_after_with_small_jitter_and_gives_up_when_too_long() -> None:
    policy = RetryPolicy(max_retries=3, base=0.5, max_wait=10.0)
    assert policy.delay(_err(429, 4), 0, rand=lambda: 0.0) == 4.0
    assert 4.0 <= policy.delay(_err(429, 4), 0, rand=lambda: 1.0) <= 4.5  # type: ignore[operator]
    assert policy.delay(_err(503, 30), 0) is None


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="max_retries"):
        RetryPolicy(max_retries=-1)
    with pytest.raises(ValueError, match="negative"):
        RetryPolicy(base=-1)
