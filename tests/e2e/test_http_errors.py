"""Routing refusals from a real gateway process: every one in the OpenAI error shape, none a redirect."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.e2e


def assert_openai_error(resp: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["code"] == code
    assert "detail" not in resp.text and "Traceback" not in resp.text
    assert resp.headers["x-request-id"]
    return body["error"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("path", ["/v2/chat/completions", "/nope", "/v1/models/x/y", "/"])
def test_unknown_route_is_a_404_in_the_openai_shape(gateway_url: str, path: str) -> None:
    for method in ("GET", "POST", "DELETE"):
        error = assert_openai_error(httpx.request(method, gateway_url + path), 404, "not_found")
        assert error["type"] == "not_found_error"


def test_a_long_unknown_path_is_echoed_cut(gateway_url: str) -> None:
    error = assert_openai_error(httpx.get(gateway_url + "/" + "a" * 5000), 404, "not_found")
    assert len(str(error["message"])) < 300


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("GET", "/v1/chat/completions", "POST"), ("PUT", "/v1/completions", "POST"), ("DELETE", "/v1/generate", "POST"),
    ("POST", "/v1/models", "GET"), ("POST", "/healthz", "GET"), ("PATCH", "/metrics", "GET"),
])
def test_wrong_method_is_a_405_naming_the_allowed_one(gateway_url: str, method: str, path: str, allowed: str) -> None:
    resp = httpx.request(method, gateway_url + path)
    error = assert_openai_error(resp, 405, "method_not_allowed")
    assert allowed in str(error["message"]) and allowed in resp.headers["allow"]


@pytest.mark.parametrize("path", ["/v1/chat/completions/", "/v1/completions/", "/v1/generate/", "/v1/models/"])
def test_a_trailing_slash_is_not_redirected(gateway_url: str, path: str) -> None:
    body = {"model": "llama3-8b", "messages": [{"role": "user", "content": "Hi"}]}
    for method in ("GET", "POST"):
        resp = httpx.request(method, gateway_url + path, json=body, follow_redirects=False)
        assert "location" not in resp.headers
        assert_openai_error(resp, 404, "not_found")


def test_a_bad_request_id_is_refused_in_the_openai_shape(gateway_url: str) -> None:
    for path in ("/v1/chat/completions", "/v1/models"):
        resp = httpx.post(gateway_url + path, json={}, headers={"x-request-id": "bad id"})
        assert resp.status_code == 400 and resp.json()["error"]["param"] == "x-request-id"
