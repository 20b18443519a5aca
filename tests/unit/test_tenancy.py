"""API keys, tenant limits and input limits, in-process."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.app import create_app
from service.config.demo import demo_config_data
from service.config.model import parse_config
from service.config.tenancy import AuthConfig, TenantConfig
from service.errors import AuthenticationError, PermissionDenied, RateLimited
from service.tenancy import Authenticator, LocalLimiter, Tenant
from service.transport.base import RawResponse
from service.transport.fake import FakeTransport

KEY_A, KEY_B = "sk-team-a-0123456789", "sk-team-b-9876543210"


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def auth() -> Authenticator:
    return Authenticator(AuthConfig(tenants={
        "team-a": TenantConfig(api_key_sha256=[sha(KEY_A)], models=["llama3-8b"]),
        "team-b": TenantConfig(api_key_sha256=[sha(KEY_B)]),
    }))


def test_bearer_keys_map_to_tenants() -> None:
    assert auth().identify(f"Bearer {KEY_A}").name == "team-a"
    assert auth().identify(f"bearer {KEY_B}").name == "team-b"


@pytest.mark.parametrize("header", [None, "", "Bearer", "Basic abc", f"Bearer {KEY_A}x", KEY_A])
def test_missing_or_wrong_keys_are_401(header: str | None) -> None:
    with pytest.raises(AuthenticationError):
        auth().identify(header)


def test_model_outside_the_tenant_list_is_403() -> None:
    tenant = auth().identify(f"Bearer {KEY_A}")
    auth().authorize(tenant, "llama3-8b")
    with pytest.raises(PermissionDenied, match="allowed: llama3-8b"):
        auth().authorize(tenant, "flan-t5-xl")


def test_config_refuses_a_plain_key_instead_of_its_hash() -> None:
    with pytest.raises(ValueError, match="SHA-256"):
        TenantConfig(api_key_sha256=[KEY_A])


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_requests_per_minute_bucket() -> None:
    clock = Clock()
    limiter = LocalLimiter(clock=clock)
    tenant = Tenant("t", rpm=3)
    for _ in range(3):
        await limiter.admit(tenant)
    with pytest.raises(RateLimited) as err:
        await limiter.admit(tenant)
    assert err.value.code == "requests_per_minute" and err.value.retry_after >= 1
    clock.now += 20  # a third of a minute refills one request
    await limiter.admit(tenant)


async def test_tokens_per_minute_are_charged_after_the_request() -> None:
    clock = Clock()
    limiter = LocalLimiter(clock=clock)
    tenant = Tenant("t", tpm=100)
    await limiter.admit(tenant)
    await limiter.settle(tenant, 150, 0.0)  # overdraws the bucket
    with pytest.raises(RateLimited, match="100 tokens per minute"):
        await limiter.admit(tenant)
    clock.now += 31  # refilled past zero
    await limiter.admit(tenant)


async def test_monthly_budget() -> None:
    limiter = LocalLimiter()
    tenant = Tenant("t", monthly_budget_usd=0.01)
    await limiter.admit(tenant)
    await limiter.settle(tenant, 10, 0.011)
    with pytest.raises(RateLimited, match=r"monthly budget of \$0.01") as err:
        await limiter.admit(tenant)
    assert err.value.code == "budget_exceeded"


def app_client(**extra: Any) -> httpx.AsyncClient:
    data = demo_config_data("http://sim.invalid") | extra
    body = orjson.dumps([{"generated_text": "hi", "details": {"finish_reason": "length", "generated_tokens": 1}}])
    app = create_app(parse_config(data, source="t"),
                     transport=FakeTransport(lambda t, p: RawResponse(body, "application/json")))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://localhost")


AUTH = {"auth": {"tenants": {"team-a": {"api_key_sha256": [sha(KEY_A)], "models": ["llama3-8b"],
                                        "requests_per_minute": 2}}}}
CHAT = {"model": "llama3-8b", "messages": [{"role": "user", "content": "hi"}]}


async def test_http_auth_errors_use_the_documented_shape() -> None:
    async with app_client(**AUTH) as client:
        missing = await client.post("/v1/chat/completions", json=CHAT)
        assert missing.status_code == 401 and missing.json()["error"]["type"] == "authentication_error"
        headers = {"authorization": f"Bearer {KEY_A}"}
        forbidden = await client.post("/v1/chat/completions", json=CHAT | {"model": "flan-t5-xl"}, headers=headers)
        assert forbidden.status_code == 403 and forbidden.json()["error"]["param"] == "model"
        assert [m["id"] for m in (await client.get("/v1/models", headers=headers)).json()["data"]] == ["llama3-8b"]
        codes = [(await client.post("/v1/chat/completions", json=CHAT, headers=headers)).status_code for _ in range(3)]
        assert codes == [200, 200, 429]


@pytest.mark.parametrize(("body", "status", "fragment"), [
    ({"model": "llama3-8b", "messages": [{"role": "user", "content": "x"}] * 300}, 400, "300 messages"),
    ({"model": "llama3-8b", "prompt": "x" * 500_000}, 413, "characters"),
    ({"model": "llama3-8b", "prompt": "x", "logit_bias": {"a": 1}, "n": 1} | {"user": "u"}, 400, "logit_bias"),
])
async def test_input_limits(body: dict[str, Any], status: int, fragment: str) -> None:
    async with app_client() as client:
        path = "/v1/completions" if "prompt" in body else "/v1/chat/completions"
        resp = await client.post(path, json=body)
    assert resp.status_code == status and fragment in resp.json()["error"]["message"]


async def test_deeply_nested_json_is_refused_before_validation() -> None:
    nested: Any = {}
    for _ in range(40):
        nested = {"a": nested}
    async with app_client() as client:
        resp = await client.post("/v1/chat/completions", json=CHAT | {"response_format": nested})
    assert resp.status_code == 400 and "deeper than 32" in resp.json()["error"]["message"]


@pytest.mark.parametrize("value", ["a\rb", "with space", "x" * 200, "tab\there"])
async def test_request_id_header_with_unsafe_characters_is_400(value: str) -> None:
    async with app_client() as client:
        resp = await client.get("/healthz", headers={"x-request-id": value})
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "x-request-id"


@given(st.text(max_size=60))
def test_authenticator_never_accepts_a_key_it_was_not_given(key: str) -> None:
    if key.strip() in (KEY_A, KEY_B):
        return
    with pytest.raises(AuthenticationError):
        auth().identify(f"Bearer {key}")
