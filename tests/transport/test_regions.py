"""One transport, several regions and accounts: each target is called at its own URL and signed for its own
region with its own credentials (checked against botocore's signature); an assumed role's keys come from STS
(moto in server mode) through botocore's AssumeRoleCredentialFetcher; the estate errors are mapped."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from service.errors import CredentialsUnavailable, UpstreamNoCapacity, UpstreamRejected, UpstreamThrottled
from service.transport.base import CredentialSpec, Payload, Target
from service.transport.credentials import CredentialRegistry, boto_fetcher
from service.transport.factory import build_transport
from service.transport.sagemaker import map_error
from tests.discover.conftest import start_moto
from tests.sigv4 import verify
from tests.transport.conftest import serve_fake_runtime
from tests.transport.upstream import FakeRuntime, aws_error

STATIC = CredentialSpec("static", access_key_id="AKIDEASTSTATIC000001", secret_access_key="east-secret")
BASE = CredentialSpec("static", access_key_id="AKIDBASEKEY000000001", secret_access_key="base-secret")
ROLE = CredentialSpec("role", role_arn="arn:aws:iam::222233334444:role/team-invoker", external_id="ext-1234",
                      session_name="jumpgate-test", duration_s=900, base=BASE)
PAYLOAD = Payload(b'{"inputs": "hi"}')
NO_CAPACITY_MESSAGE = ("Inference Component has no capacity to process this request. ApplicationAutoScaling may be "
                       "in-progress (if configured) or try to increase the capacity by invoking "
                       "UpdateInferenceComponentRuntimeConfig API.")


@pytest.fixture(scope="module")
def moto_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = start_moto(tmp_path_factory.mktemp("moto-sts"), "moto.server")
    yield server.url
    server.stop()


@pytest.fixture
def sts_env(moto_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """STS is moto (botocore's AWS_ENDPOINT_URL_STS); nothing from the machine's AWS setup leaks in."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto_url)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    return moto_url


def assumed_roles(moto_url: str) -> list[dict[str, Any]]:
    data = httpx.get(moto_url + "/moto-api/data.json", timeout=10).raise_for_status().json()
    return list(data.get("sts", {}).get("AssumedRole", []))


def test_a_role_is_assumed_with_sts_by_botocores_fetcher(sts_env: str) -> None:
    before = time.time()
    issued = boto_fetcher(ROLE, sts_region="eu-west-1")()
    assert issued.credentials.access_key.startswith("ASIA") and issued.credentials.token
    assert issued.expires_at is not None and before + 850 < issued.expires_at < time.time() + 950
    role = next(r for r in assumed_roles(sts_env) if r["access_key_id"] == issued.credentials.access_key)
    assert (role["role_arn"], role["session_name"], role["external_id"]) == (
        ROLE.role_arn, "jumpgate-test", "ext-1234")
    again = boto_fetcher(ROLE, sts_region="eu-west-1")()
    assert again.credentials.access_key != issued.credentials.access_key  # every fetch is a new AssumeRole


@pytest.fixture
async def runtimes() -> AsyncIterator[tuple[FakeRuntime, FakeRuntime]]:
    """Two runtime hosts, standing for two regions."""
    (first, r1), (second, r2) = await serve_fake_runtime(), await serve_fake_runtime()
    yield first, second
    for runner in (r1, r2):
        await runner.cleanup()


async def ok(request: web.Request) -> web.StreamResponse:
    return web.json_response([{"generated_text": "hello"}])


async def test_each_target_is_signed_for_its_region_with_its_credentials(
        runtimes: tuple[FakeRuntime, FakeRuntime], sts_env: str) -> None:
    east, west = runtimes
    east.handlers["ep-east"] = west.handlers["ep-west"] = ok
    transport, ready = build_transport("http://127.0.0.1:9", "us-east-1", STATIC, [STATIC, ROLE], start=False)
    assert transport.credentials is not None
    registry: CredentialRegistry = transport.credentials
    assert not ready()
    registry.refresher.run_pending()  # what the refresher thread does at start-up
    assert ready()
    try:
        await transport.invoke(Target("ep-east", region="us-east-1", runtime_url=east.url, credentials=STATIC),
                               PAYLOAD)
        await transport.invoke(Target("ep-west", region="eu-west-1", runtime_url=west.url, credentials=ROLE),
                               PAYLOAD)
    finally:
        await transport.aclose()
    (seen_east,), (seen_west,) = east.received, west.received
    scope = verify("POST", seen_east.path, seen_east.headers, seen_east.body, STATIC.access_key_id, "east-secret")
    assert scope == {"service": "sagemaker", "region": "us-east-1"}
    key = seen_west.headers["authorization"].split("Credential=")[1].split("/")[0]
    role = next(r for r in assumed_roles(sts_env) if r["access_key_id"] == key)
    assert role["role_arn"] == ROLE.role_arn and key != BASE.access_key_id
    scope = verify("POST", seen_west.path, seen_west.headers, seen_west.body, key, role["secret_access_key"])
    assert scope == {"service": "sagemaker", "region": "eu-west-1"}
    assert seen_west.headers["x-amz-security-token"] == role["session_token"]


async def test_targets_without_their_own_source_use_the_default_one(runtimes: tuple[FakeRuntime, FakeRuntime]) -> None:
    east, _ = runtimes
    east.handlers["ep"] = ok
    transport, _ = build_transport(east.url, "us-east-1", STATIC, [], start=False)
    try:
        await transport.invoke(Target("ep"), PAYLOAD)
        await transport.invoke(Target("ep", region="ap-south-1"), PAYLOAD)
    finally:
        await transport.aclose()
    regions = [verify("POST", r.path, r.headers, r.body, STATIC.access_key_id, "east-secret")["region"]
               for r in east.received]
    assert regions == ["us-east-1", "ap-south-1"]


async def test_a_source_without_credentials_fails_the_request_with_a_503_not_a_wait(
        runtimes: tuple[FakeRuntime, FakeRuntime], sts_env: str) -> None:
    east, _ = runtimes
    east.handlers["ep"] = ok
    transport, _ = build_transport(east.url, "us-east-1", STATIC, [], start=False)  # the role is not fetched yet
    try:
        with pytest.raises(CredentialsUnavailable) as info:
            await transport.invoke(Target("ep", region="us-east-1", credentials=ROLE), PAYLOAD)
    finally:
        await transport.aclose()
    assert info.value.status == 503 and east.received == []


@pytest.mark.parametrize(("status", "code", "message", "cls", "hint"), [
    (400, "ValidationError", NO_CAPACITY_MESSAGE, UpstreamNoCapacity, "scaled to zero"),
    (403, "InvalidSignatureException", "Credential should be scoped to a valid region. ", UpstreamRejected,
     "set the endpoint's region"),
    (403, "UnrecognizedClientException", "The security token included in the request is invalid.",
     UpstreamRejected, "does not know the access key"),
    (400, "ValidationError", "Endpoint x of account 123456789012 not found.", UpstreamRejected, "endpoint name"),
])
def test_estate_errors_are_mapped(status: int, code: str, message: str, cls: type, hint: str) -> None:
    headers = {"x-amzn-ErrorType": f"{code}:http://internal.amazon.com/coral/com.amazon.sagemaker/"}
    err = map_error("ep", status, headers, json.dumps({"message": message}).encode())
    assert type(err) is cls and hint in err.message
    assert "123456789012" not in err.message


def test_no_capacity_is_a_retryable_503_that_the_breaker_treats_as_load() -> None:
    headers = {"x-amzn-ErrorType": "ValidationError"}
    err = map_error("ep", 400, headers, json.dumps({"message": NO_CAPACITY_MESSAGE}).encode())
    assert isinstance(err, UpstreamThrottled)  # gateway._breaker_failure: throttling is load, not ill health
    assert (err.status, err.retryable, err.kind, err.code) == (503, True, "no_capacity", "upstream_no_capacity")


async def test_the_fake_aws_error_helper_carries_no_capacity(runtimes: tuple[FakeRuntime, FakeRuntime]) -> None:
    east, _ = runtimes
    east.handlers["ep"] = aws_error(400, "ValidationError", {"message": NO_CAPACITY_MESSAGE})
    transport, _ = build_transport(east.url, "us-east-1", STATIC, [], start=False)
    try:
        with pytest.raises(UpstreamNoCapacity):
            await transport.invoke(Target("ep", inference_component="ic-a"), PAYLOAD)
    finally:
        await transport.aclose()
    assert east.received[0].headers["x-amzn-sagemaker-inference-component"] == "ic-a"
