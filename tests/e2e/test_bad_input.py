"""A battery of hostile requests against a real gateway process: every answer is a 4xx in the OpenAI error shape,
with no stack trace and no internal path, and the process serves normally afterwards."""

from __future__ import annotations

import gzip
import json
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

pytestmark = pytest.mark.e2e

CHAT = "/v1/chat/completions"
ROUTES = {CHAT: {"model": "llama3-8b", "messages": [{"role": "user", "content": "Hi"}]},
          "/v1/completions": {"model": "llama3-8b", "prompt": "Hi"},
          "/v1/generate": {"model": "llama3-8b", "inputs": "Hi"}}
BAD_VALUES: dict[str, list[Any]] = {
    "max_tokens": ["10", True, 1.5, -1, 0, [], {}, 10**30],
    "temperature": ["0.5", True, -0.1, 2.5, [], {"x": 1}],
    "top_p": ["1", False, 1.5, -1],
    "n": ["2", True, 0, 17, 2.0],
    "stream": ["yes", "off", 1, 0, [], None],
    "stop": [1, [1, 2], [""], ["a"] * 17, {"a": 1}, True],
    "seed": ["1", 1.5, True],
    "top_k": ["5", -1.5, True],
    "presence_penalty": ["0", 3, -3, True],
    "model": [1, None, True, "", ["llama3-8b"], "x" * 100_000],
}
LEAKS = ("Traceback", "site-packages", "/work/", "service/", "File \"", "pydantic", "uvicorn")

Case = tuple[str, str, bytes, dict[str, str]]  # method, path, body, headers


def type_cases() -> Iterator[Case]:
    for path, base in ROUTES.items():
        for field, values in BAD_VALUES.items():
            for value in values:
                body = {**base, field: value} if path != "/v1/generate" or field in ("model", "stream") else \
                    {**base, "parameters": {field if field != "max_tokens" else "max_new_tokens": value}}
                yield "POST", path, json.dumps(body).encode(), {"content-type": "application/json"}


def shape_cases() -> Iterator[Case]:
    json_ct = {"content-type": "application/json"}
    body = json.dumps(ROUTES[CHAT]).encode()
    for ct in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
               "application/jsonx", "json", ""):
        yield "POST", CHAT, body, ({"content-type": ct} if ct else {})
    yield "POST", CHAT, gzip.compress(body), {**json_ct, "content-encoding": "gzip"}
    yield "POST", CHAT, body, {**json_ct, "content-encoding": "br"}
    for raw in (b"", b"{", b"[]", b"null", b'"text"', b"{}", b"\xff\xfe\x00", b'{"model": "llama3-8b",}',
                b"{" * 100 + b"}" * 100, b'{"a": ' * 40 + b"1" + b"}" * 40, b"\x00" * 64,
                json.dumps({"model": "llama3-8b", "messages": []}).encode(),
                json.dumps({"model": "llama3-8b", "messages": [{"role": "tool"}]}).encode(),
                json.dumps({"model": "llama3-8b", "messages": [{"role": "user", "content": 5}]}).encode(),
                json.dumps({"model": "llama3-8b", "messages": [{"role": "wizard", "content": "x"}]}).encode(),
                json.dumps({**ROUTES[CHAT], "unknown_one": 1, "unknown_two": 2}).encode(),
                json.dumps({**ROUTES[CHAT], "logit_bias": {"50256": -100}}).encode()):
        yield "POST", CHAT, raw, json_ct
    big = json.dumps({**ROUTES[CHAT], "messages": [{"role": "user", "content": "x" * (5 * 1024 * 1024)}]}).encode()
    yield "POST", CHAT, big, json_ct
    many = json.dumps({**ROUTES[CHAT], "messages": [{"role": "user", "content": "x"}] * 300}).encode()
    yield "POST", CHAT, many, json_ct
    long_prompt = json.dumps({**ROUTES[CHAT], "messages": [{"role": "user", "content": "y" * 500_000}]}).encode()
    yield "POST", CHAT, long_prompt, json_ct


def unicode_cases() -> Iterator[Case]:
    json_ct = {"content-type": "application/json"}
    for content in ('"\\ud800"', '"\\udfff\\ud800"', '"\\u0000"', '"\\u202e\\u202d"', '"\\ufeff"'):
        raw = ('{"model": "llama3-8b", "messages": [{"role": "user", "content": ' + content + '}], "max_tokens": '
               '"1"}').encode()
        yield "POST", CHAT, raw, json_ct
    for model in ("llama3-8b\u0000", "\u202ellama3-8b", "🦙" * 50, "llama3-8b ", "LLAMA3-8B", "../llama3-8b"):
        yield "POST", CHAT, json.dumps({**ROUTES[CHAT], "model": model}).encode(), json_ct
    yield "POST", CHAT, b'{"model": "llama3-8b", "messages": [{"role": "user", "content": "\xc3\x28"}]}', json_ct


def method_path_cases() -> Iterator[Case]:
    for method in ("GET", "PUT", "DELETE", "PATCH"):
        for path in ROUTES:
            yield method, path, b"", {}
    for path in ("/v1/chat/completions/", "//v1/chat/completions", "/v1/../v1/models", "/v1/%2e%2e/models",
                 "/" + "a" * 3000, "/v1/models/" + "b" * 3000, "/admin", "/.env",
                 "/v1/chat/completions;x=1", "/V1/CHAT/COMPLETIONS", "/v1/chat/completions%00"):
        yield "POST", path, json.dumps(ROUTES[CHAT]).encode(), {"content-type": "application/json"}


def header_cases() -> Iterator[Case]:
    body = json.dumps(ROUTES[CHAT]).encode()
    json_ct = {"content-type": "application/json"}
    for rid in ("", "a b", "x" * 129, "id;drop", "<script>", "a\tb", "%C3%A9"):
        yield "POST", CHAT, body, {**json_ct, "x-request-id": rid}
    for timeout in ("0", "-1", "abc", "1e400", "NaN", "inf", "999999", ""):
        yield "POST", CHAT, body, {**json_ct, "x-jumpgate-timeout-s": timeout}
    for host in ("evil.example", "evil.example:8080", "localhost.evil.example", "127.0.0.1.nip.io", "[::2]"):
        yield "POST", CHAT, body, {**json_ct, "host": host}


def all_cases() -> list[Case]:
    return [*type_cases(), *shape_cases(), *unicode_cases(), *method_path_cases(), *header_cases()]


def assert_clean_4xx(resp: httpx.Response, case: Case) -> None:
    shown = f"{case[0]} {case[1][:60]} {case[2][:80]!r} {case[3]}"
    assert 400 <= resp.status_code < 500, f"{resp.status_code} for {shown}: {resp.text[:300]}"
    body = resp.json()
    assert set(body) == {"error"} and {"message", "type", "param", "code"} <= set(body["error"]), shown
    assert len(resp.content) < 4096, f"a {len(resp.content)}-byte answer for {shown}"
    for leak in LEAKS:
        assert leak not in resp.text, f"{leak!r} in the answer to {shown}: {resp.text[:300]}"


def test_at_least_150_hostile_requests_each_get_a_clean_4xx(gateway_url: str) -> None:
    cases = all_cases()
    assert len(cases) >= 150
    with httpx.Client(base_url=gateway_url, timeout=30) as client:
        for method, path, body, headers in cases:
            resp = client.request(method, path, content=body, headers=headers)
            assert_clean_4xx(resp, (method, path, body, headers))
        assert client.get("/healthz").status_code == 200
        ok = client.post(CHAT, json={**ROUTES[CHAT], "max_tokens": 4})
        assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"]


RAW_REQUESTS = [
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nX-Evil: a\rb\r\nContent-Length: 0\r\n\r\n",
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"0\r\n\r\n",
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Length: -5\r\n\r\n",
    b"GARBAGE\r\n\r\n",
    b"POST /v1/chat/completions HTTP/9.9\r\nHost: localhost\r\n\r\n",
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Length: abc\r\n\r\n",
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: local\x00host\r\nContent-Length: 0\r\n\r\n",
]


@pytest.mark.parametrize("raw", RAW_REQUESTS, ids=range(len(RAW_REQUESTS)))
def test_malformed_http_is_refused_in_the_documented_shape(gateway_url: str, raw: bytes) -> None:
    answer = raw_exchange(gateway_url, raw)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), answer[:200]
    error = json.loads(body)["error"]
    assert error["code"] and error["type"] == "invalid_request_error"
    assert httpx.get(gateway_url + "/healthz").status_code == 200


def raw_exchange(url: str, raw: bytes) -> bytes:
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=30) as sock:
        sock.sendall(raw)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)
